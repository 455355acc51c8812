// CORS: origin matching (exact, wildcard subdomain, "*"), credentials,
// preflight answers and actual-response headers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { CorsConfig } from '../../src/config/types.js';
import { compileCors } from '../../src/gateway/cors.js';

const base: CorsConfig = {
  origins: ['https://app.example.org', 'https://*.example.com', 'http://*.local.test:8080'],
  methods: ['GET', 'PUT', 'DELETE'],
  headers: ['Content-Type', 'X-Request-Id'],
  exposeHeaders: ['X-Total-Count', 'RateLimit-Remaining'],
  credentials: false,
  maxAgeSeconds: 600,
};
const asMap = (h: Array<[string, string]>): Map<string, string> => new Map(h);
const corsNames = (h: Array<[string, string]>): string[] => h.map(([n]) => n).filter((n) => n.startsWith('Access-Control-'));

test('origin matrix: exact, wildcard subdomain (any depth, same scheme and port), refused look-alikes', () => {
  const cors = compileCors(base);
  const cases: Array<[string, boolean]> = [
    ['https://app.example.org', true],
    ['https://APP.example.org', true],
    ['https://app.example.org:8443', false],
    ['http://app.example.org', false],
    ['https://example.org', false],
    ['https://a.example.com', true],
    ['https://a.b.example.com', true],
    ['https://example.com', false],
    ['https://evilexample.com', false],
    ['https://a.example.com.evil.net', false],
    ['http://a.example.com', false],
    ['https://a.example.com:8443', false],
    ['http://x.local.test:8080', true],
    ['http://x.local.test', false],
    ['http://x.local.test:8081', false],
    ['null', false],
  ];
  for (const [origin, allowed] of cases) {
    const headers = cors.responseHeaders(origin);
    const m = asMap(headers);
    assert.equal(m.get('Access-Control-Allow-Origin'), allowed ? origin : undefined, origin);
    if (!allowed) assert.deepEqual(corsNames(headers), [], `${origin}: no CORS headers at all`);
    assert.equal(m.get('Vary'), 'Origin', `${origin}: the answer depends on Origin`);
  }
});

test('actual responses: allow-origin, expose-headers, credentials only when configured', () => {
  const plain = asMap(compileCors(base).responseHeaders('https://a.example.com'));
  assert.equal(plain.get('Access-Control-Expose-Headers'), 'X-Total-Count, RateLimit-Remaining');
  assert.equal(plain.has('Access-Control-Allow-Credentials'), false);
  const withCreds = asMap(compileCors({ ...base, credentials: true }).responseHeaders('https://a.example.com'));
  assert.equal(withCreds.get('Access-Control-Allow-Credentials'), 'true');
  assert.equal(withCreds.get('Access-Control-Allow-Origin'), 'https://a.example.com');
  assert.deepEqual(compileCors(base).responseHeaders(undefined), [['Vary', 'Origin']]);
});

test('"*": literal without credentials (every response, no Vary); echoed origin with credentials', () => {
  const star = compileCors({ ...base, origins: ['*'] });
  const any = asMap(star.responseHeaders('https://anything.example'));
  assert.equal(any.get('Access-Control-Allow-Origin'), '*');
  assert.equal(any.has('Vary'), false);
  assert.equal(asMap(star.responseHeaders(undefined)).get('Access-Control-Allow-Origin'), '*');

  const creds = compileCors({ ...base, origins: ['*'], credentials: true });
  const echoed = asMap(creds.responseHeaders('https://anything.example'));
  assert.equal(echoed.get('Access-Control-Allow-Origin'), 'https://anything.example', 'never * with credentials');
  assert.equal(echoed.get('Access-Control-Allow-Credentials'), 'true');
  assert.equal(echoed.get('Vary'), 'Origin');
  const pre = creds.preflight('https://anything.example', 'PUT', undefined);
  assert.equal(asMap(pre.headers).get('Access-Control-Allow-Origin'), 'https://anything.example');
});

test('preflight: allowed origin, method and headers get the full answer', () => {
  const pre = compileCors({ ...base, credentials: true }).preflight('https://a.example.com', 'PUT', 'content-type, X-REQUEST-ID');
  assert.equal(pre.allowed, true);
  assert.deepEqual(asMap(pre.headers), new Map([
    ['Access-Control-Allow-Origin', 'https://a.example.com'],
    ['Access-Control-Allow-Credentials', 'true'],
    ['Access-Control-Allow-Methods', 'GET, PUT, DELETE'],
    ['Access-Control-Allow-Headers', 'Content-Type, X-Request-Id'],
    ['Access-Control-Max-Age', '600'],
    ['Vary', 'Origin'],
  ]));
  const noMaxAge = compileCors({ ...base, maxAgeSeconds: undefined }).preflight('https://a.example.com', 'GET', undefined);
  assert.equal(noMaxAge.allowed, true);
  assert.equal(asMap(noMaxAge.headers).has('Access-Control-Max-Age'), false);
});

test('preflight refusals carry no CORS headers: origin, method, header', () => {
  const cors = compileCors(base);
  const refusals: Array<[string | undefined, string, string | undefined]> = [
    ['https://evilexample.com', 'GET', undefined],
    [undefined, 'GET', undefined],
    ['https://a.example.com', 'PATCH', undefined],
    ['https://a.example.com', 'PUT', 'content-type, x-secret'],
  ];
  for (const [origin, method, headers] of refusals) {
    const pre = cors.preflight(origin, method, headers);
    assert.equal(pre.allowed, false, `${origin} ${method} ${headers}`);
    assert.deepEqual(corsNames(pre.headers), []);
  }
  assert.equal(cors.preflight('https://a.example.com', 'POST', undefined).allowed, true, 'CORS-safelisted method');
  assert.equal(cors.preflight('https://a.example.com', 'PUT', ' , ').allowed, true, 'empty header list');
});

test('"*" methods and headers: literal without credentials, echoed with', () => {
  const open = compileCors({ ...base, origins: ['*'], methods: ['*'], headers: ['*'] });
  const a = asMap(open.preflight('https://x.test', 'PATCH', 'X-Anything').headers);
  assert.equal(a.get('Access-Control-Allow-Methods'), '*');
  assert.equal(a.get('Access-Control-Allow-Headers'), '*');
  const creds = compileCors({ ...base, methods: ['*'], headers: ['*'], credentials: true });
  const b = asMap(creds.preflight('https://a.example.com', 'PATCH', 'X-Anything, x-other').headers);
  assert.equal(b.get('Access-Control-Allow-Methods'), 'PATCH');
  assert.equal(b.get('Access-Control-Allow-Headers'), 'x-anything, x-other');
});

test('a malformed wildcard is a config-time error', () => {
  assert.throws(() => compileCors({ ...base, origins: ['https://a.*.example.com'] }), /wildcard/);
  assert.throws(() => compileCors({ ...base, origins: ['*.example.com'] }), /wildcard/);
});
