// hash.key extraction from raw headers: header names case-insensitive, cookie
// parsing as browsers send it (RFC 6265 section 5.4).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileHashKey, extractHashKey } from '../../src/balancer/hash-key.js';

describe('hash key: header:NAME', () => {
  const key = compileHashKey('header:X-User')!;

  it('matches the name in any case and trims the value', () => {
    assert.equal(key(['Host', 'a', 'x-user', ' alice ']), 'alice');
    assert.equal(key(['X-USER', 'bob']), 'bob');
    assert.equal(key(['X-User-Id', 'nope', 'X-Use', 'nope']), undefined);
  });

  it('joins repeated field lines with ", " and ignores empty ones', () => {
    assert.equal(key(['x-user', 'a', 'Host', 'h', 'X-User', 'b']), 'a, b');
    assert.equal(key(['x-user', '', 'x-user', 'b']), 'b');
  });

  it('is undefined when absent or empty (the client address decides)', () => {
    assert.equal(key([]), undefined);
    assert.equal(key(['x-user', '  ']), undefined);
  });
});

describe('hash key: cookie:NAME', () => {
  const session = (...cookieHeaders: string[]): string | undefined =>
    extractHashKey('cookie:session', cookieHeaders.flatMap((v) => ['Cookie', v]));

  it('finds the cookie among others, with or without spaces', () => {
    assert.equal(session('session=abc'), 'abc');
    assert.equal(session('a=1; session=abc; b=2'), 'abc');
    assert.equal(session('a=1;session=abc;b=2'), 'abc');
    assert.equal(session('a=1;  session = abc ;b=2'), 'abc');
    assert.equal(session('a=1;\tsession=abc'), 'abc');
  });

  it('does not match a longer or shorter name, and names are case-sensitive', () => {
    assert.equal(session('xsession=no; session_id=no; sessions=no'), undefined);
    assert.equal(session('xsession=no; session=yes'), 'yes');
    assert.equal(session('Session=no'), undefined);
    assert.equal(extractHashKey('cookie:sess', ['Cookie', 'session=no; sess=yes']), 'yes');
  });

  it('strips the double quotes of a quoted value; keeps "=" inside values', () => {
    assert.equal(session('session="abc"'), 'abc');
    assert.equal(session('session="'), '"');
    assert.equal(session('session=a=b=='), 'a=b==');
  });

  it('searches several Cookie field lines in order, the first match wins', () => {
    assert.equal(session('a=1', 'session=second'), 'second');
    assert.equal(session('session=first', 'session=second'), 'first');
    assert.equal(session('session=one; session=two'), 'one');
    assert.equal(extractHashKey('cookie:session', ['COOKIE', 'session=upper', 'Set-Cookie', 'session=no']), 'upper');
  });

  it('is undefined when absent, empty or without "="', () => {
    assert.equal(session(), undefined);
    assert.equal(session('session='), undefined);
    assert.equal(session('session=""'), undefined);
    assert.equal(session('session'), undefined);
    assert.equal(session('; ;session ;'), undefined);
    assert.equal(extractHashKey('cookie:session', ['X-Cookie', 'session=no']), undefined);
  });
});

describe('hash key: spec', () => {
  it('source-ip extracts nothing; a malformed spec throws', () => {
    assert.equal(compileHashKey('source-ip'), undefined);
    assert.equal(extractHashKey('source-ip', ['X-User', 'a']), undefined);
    for (const bad of ['header:', 'cookie', 'query:x', 'header:a b', '']) {
      assert.throws(() => compileHashKey(bad), TypeError, bad);
    }
  });
});
