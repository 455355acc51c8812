// The worker's HTTP-01 answers: only the exact path, GET or HEAD, a known
// token and the Host it was issued for; the whole prefix is claimed in every
// spelling the router would match, and nothing else is.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AcmeChallenges } from '../../src/proxy/acme-challenge.js';

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
    for (const p of ['/.well-known/acme-challenge', '/.well-known/ACME-CHALLENGE/x', '/.well-known/%61cme-challenge/x', '/a/../.well-known/acme-challenge/x', '/.well-known//acme-challenge/x', '/.well-known/acme-challenge;p/x']) {
      assert.ok(c.claims(p), p);
    }
    for (const p of ['/', '/api/x', '/.well-known/security.txt', '/.well-known/acme-challenger/x', '/acme-challenge/x', '/.well-known/%zz']) {
      assert.ok(!c.claims(p), p);
    }
  });
});
