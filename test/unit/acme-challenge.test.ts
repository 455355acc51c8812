// The worker's HTTP-01 answers: only the exact path, GET or HEAD, a known
// token and the Host it was issued for; the whole prefix is claimed in every
// spelling the router would match, and nothing else is.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ACME_CHALLENGE_PREFIX, AcmeChallenges } from '../../src/proxy/acme-challenge.js';
import { pathForms } from '../../src/proxy/request-target.js';

const TOKEN = 'evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA';
const KEY_AUTH = `${TOKEN}.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI`;

function challenges(): AcmeChallenges {
  const c = new AcmeChallenges('decode');
  c.replace([{ type: 'http-01', token: TOKEN, keyAuthorization: KEY_AUTH, domain: 'example.com' }]);
  return c;
}

describe('ACME HTTP-01 answers in a worker', () => {
  test('the known token, for its own host (any case, a port, a trailing dot), by GET or HEAD', () => {
    const c = challenges();
    const path = `/.well-known/acme-challenge/${TOKEN}`;
    assert.ok(c.claims(path));
    for (const host of ['example.com', 'EXAMPLE.com', 'example.com:80', 'example.com.']) {
      assert.deepEqual(c.answer('GET', path, host), { status: 200, body: KEY_AUTH }, host);
    }
    assert.deepEqual(c.answer('HEAD', path, 'example.com'), { status: 200, body: KEY_AUTH });
  });

  test('another host, another method, a changed token or extra path: 404', () => {
    const c = challenges();
    const path = `/.well-known/acme-challenge/${TOKEN}`;
    assert.deepEqual(c.answer('GET', path, 'evil.example'), { status: 404 });
    assert.deepEqual(c.answer('GET', path, undefined), { status: 404 });
    assert.deepEqual(c.answer('GET', path, 'example.com@evil'), { status: 404 });
    assert.deepEqual(c.answer('POST', path, 'example.com'), { status: 404 });
    for (const p of [`${path}/`, `${path}x`, `${path}?x=1`, `${path.toUpperCase()}`, `/.well-known/acme-challenge/${TOKEN.slice(1)}`, `/.well-known/acme-challenge/../${TOKEN}`]) {
      assert.deepEqual(c.answer('GET', p, 'example.com'), { status: 404 }, p);
    }
  });

  test('a replaced set forgets the old tokens', () => {
    const c = challenges();
    c.replace([]);
    assert.deepEqual(c.answer('GET', `/.well-known/acme-challenge/${TOKEN}`, 'example.com'), { status: 404 });
  });

  test('claims the prefix in every routed spelling, and nothing else', () => {
    const c = challenges();
    for (const p of [
      '/.well-known/acme-challenge',
      '/.well-known/ACME-CHALLENGE/x',
      '/.well-known/%61cme-challenge/x',
      '/a/../.well-known/acme-challenge/x',
      '/.well-known//acme-challenge/x',
      '/.well-known/acme-challenge;p/x',
      '/%2Ewell-known/acme-challenge/x',
      '/%2F.well-known/acme-challenge/x',
      '/a%5c..%5c%2ewell-known/acme-challenge/x',
      '/a\\..\\.well-known\\acme-challenge/x',
      '/.well-known./acme-challenge/x',
    ]) {
      assert.ok(c.claims(p), p);
    }
    for (const p of ['/', '/api/x', '/.well-known/security.txt', '/.well-known/acme-challenger/x', '/acme-challenge/x', '/.well-known/%zz']) {
      assert.ok(!c.claims(p), p);
    }
  });

  test('the cheap first test never lets through a spelling the routed forms put under the prefix (random spellings)', () => {
    const c = challenges();
    const underPrefix = (p: string): boolean => {
      const forms = pathForms(p, 'decode', true);
      return typeof forms !== 'string' && forms.folded.some((f) => f === ACME_CHALLENGE_PREFIX || f.startsWith(ACME_CHALLENGE_PREFIX + '/'));
    };
    // Names and separators in the spellings the forms undo: escapes, case, dots, params, Windows suffixes.
    const names = ['.well-known', '%2Ewell-known', '.WELL-KNOWN', '.well-known.', 'acme-challenge', 'ACME%2dchallenge', 'acme-challenge;p', '..', '.', '%2e%2e', '%2E', 'a', 'a;p', 'x::$DATA', ''];
    const separators = ['/', '/', '\\', '%2f', '%5C', '//'];
    const pick = (list: string[]): string => list[Math.floor(Math.random() * list.length)]!;
    let claimed = 0;
    for (let i = 0; i < 100_000; i++) {
      let p = '/' + pick(names);
      const n = Math.floor(Math.random() * 5);
      for (let k = 0; k < n; k++) p += pick(separators) + pick(names);
      if (!underPrefix(p)) continue;
      claimed++;
      assert.ok(c.claims(p), p);
    }
    assert.ok(claimed > 1000, `only ${claimed} random spellings fell under the prefix`);
  });
});
