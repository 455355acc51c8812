// RateLimit-* / Retry-After headers and the choice of a request's bucket key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RateLimitConfig } from '../../src/config/types.js';
import { RateLimiter, rateLimitHeaders, rateLimitKey, type RateDecision } from '../../src/gateway/rate-limit.js';

const cfg = (ratePerSecond: number, burst: number): RateLimitConfig => ({ ratePerSecond, burst, key: 'client-ip', scope: 'instance', fail: 'local' });

test('headers of real decisions: allowed, then refused with Retry-After', () => {
  const limiter = RateLimiter.create(64, { name: `/switchyard-test-${process.pid}-rlh` });
  try {
    const c = cfg(0.5, 2); // one token per 2 s
    const first = limiter.take('r', '10.0.0.1', c);
    assert.equal(first.allowed, true);
    assert.deepEqual(new Map(rateLimitHeaders(first, c)), new Map([
      ['RateLimit-Limit', '2'],
      ['RateLimit-Remaining', '1'],
      ['RateLimit-Reset', '2'],
      ['RateLimit-Policy', '2;w=4'],
    ]));
    limiter.take('r', '10.0.0.1', c);
    const refused = limiter.take('r', '10.0.0.1', c);
    assert.equal(refused.allowed, false);
    const h = new Map(rateLimitHeaders(refused, c));
    assert.equal(h.get('RateLimit-Remaining'), '0');
    assert.equal(h.get('Retry-After'), '2', 'a token in (just under) 2 s, rounded up');
    assert.equal(h.get('RateLimit-Reset'), '4');
  } finally {
    limiter.close();
    limiter.unlink();
  }
});

test('Retry-After rounds up to whole seconds and is at least 1; w is at least 1', () => {
  const refused = (retryAfterMs: number): RateDecision => ({ allowed: false, remaining: 0, retryAfterMs, resetMs: 200 });
  const retry = (d: RateDecision): string | undefined => new Map(rateLimitHeaders(d, cfg(50, 10))).get('Retry-After');
  assert.equal(retry(refused(20)), '1');
  assert.equal(retry(refused(1000)), '1');
  assert.equal(retry(refused(1001)), '2');
  assert.equal(retry({ allowed: true, remaining: 3, retryAfterMs: 0, resetMs: 0 }), undefined);
  const headers = new Map(rateLimitHeaders(refused(20), cfg(50, 10)));
  assert.equal(headers.get('RateLimit-Policy'), '10;w=1');
  assert.equal(headers.get('RateLimit-Reset'), '1');
});

test('rateLimitKey: client-ip, api-key, jwt-sub, header:NAME, with the client-address fallback', () => {
  const base = { clientIp: '192.0.2.7', rawHeaders: ['Host', 'x', 'X-Tenant', 'acme', 'X-Empty', ''] };
  assert.equal(rateLimitKey('client-ip', base), '192.0.2.7');
  assert.equal(rateLimitKey('api-key', { ...base, identity: { kind: 'api_key', subject: 'ci' } }), 'key:ci');
  assert.equal(rateLimitKey('api-key', { ...base, identity: { kind: 'jwt', subject: 'ci' } }), '192.0.2.7');
  assert.equal(rateLimitKey('api-key', base), '192.0.2.7');
  assert.equal(rateLimitKey('jwt-sub', { ...base, identity: { kind: 'jwt', subject: 'u1' } }), 'sub:u1');
  assert.equal(rateLimitKey('jwt-sub', base), '192.0.2.7');
  assert.equal(rateLimitKey('header:x-tenant', base), 'hdr:acme', 'header names are case-insensitive');
  assert.equal(rateLimitKey('header:X-Missing', base), '192.0.2.7');
  assert.equal(rateLimitKey('header:x-empty', base), '192.0.2.7', 'an empty value counts as absent');
  // A header value equal to an address still gets its own bucket.
  assert.equal(rateLimitKey('header:x-tenant', { ...base, rawHeaders: ['x-tenant', '192.0.2.7'] }), 'hdr:192.0.2.7');
  assert.equal(rateLimitKey('client-ip', { clientIp: undefined, rawHeaders: [] }), undefined);
});
