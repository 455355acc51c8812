import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { RouteRuntime } from '../../src/proxy/route-runtime.ts';
import { redactQueryParam, removeQueryParam } from '../../src/gateway/query-credential.ts';
import { queryValue } from '../../src/gateway/auth/request-parts.ts';
import type { RouteConfig } from '../../src/config/types.ts';
import type { UpstreamRuntime } from '../../src/proxy/upstream-runtime.ts';

const upstream = { config: { timeouts: { connectMs: 2000, responseMs: 30_000, idleMs: 60_000 }, retries: 1 } } as unknown as UpstreamRuntime;
const rt = (path: string, extra: Partial<RouteConfig>) => new RouteRuntime({ name: 'r', host: '*', path, upstream: 'u', stripPrefix: false, upgrades: ['websocket'], ...extra }, upstream, { log: pino({ level: 'silent' }), limiter: undefined });

test('strip_prefix removes the matched prefix and keeps the rest byte for byte', () => {
  const r = rt('/api', { stripPrefix: true });
  assert.equal(r.upstreamTarget('/api/users/7?x=%20'), '/users/7?x=%20');
  assert.equal(r.upstreamTarget('/api'), '/');
  assert.equal(r.upstreamTarget('/api?q'), '/?q');
  assert.equal(rt('/api/', { stripPrefix: true }).upstreamTarget('/api/a%2Fb'), '/a%2Fb');
});

test('rewrite replaces the prefix', () => {
  const r = rt('/v1/users', { rewrite: '/internal/users' });
  assert.equal(r.upstreamTarget('/v1/users/7'), '/internal/users/7');
  assert.equal(r.upstreamTarget('/v1/users?all'), '/internal/users?all');
  assert.equal(rt('/', { rewrite: '/base/' }).upstreamTarget('/x'), '/base/x');
});

test('without strip or rewrite the target is untouched', () => {
  assert.equal(rt('/api', {}).upstreamTarget('/api//x/../y'), '/api//x/../y');
});

test('route timeouts and retries override the upstream', () => {
  const r = rt('/', { timeouts: { responseMs: 5000 }, retries: 0 });
  assert.deepEqual(r.timeouts, { connectMs: 2000, responseMs: 5000, idleMs: 60_000 });
  assert.equal(r.retries, 0);
  assert.equal(rt('/', {}).retries, 1);
});

test('redactQueryParam hides a credential in the query, however it is encoded', () => {
  assert.equal(redactQueryParam('/q/x?api_key=SECRET&a=1', 'api_key'), '/q/x?api_key=REDACTED&a=1');
  assert.equal(redactQueryParam('/q?a=1&api%5Fkey=S&api_key=T', 'api_key'), '/q?a=1&api%5Fkey=REDACTED&api_key=REDACTED');
  assert.equal(redactQueryParam('/q?other=1', 'api_key'), '/q?other=1');
  assert.equal(redactQueryParam('/q', 'api_key'), '/q');
});

test('removeQueryParam drops exactly the parameter the authenticator reads, every copy and spelling, and nothing else', () => {
  const cases: Array<[string, string]> = [
    ['/q?api_key=K', '/q'],
    ['/q?api_key=K&a=1', '/q?a=1'],
    ['/q?a=1&api_key=K', '/q?a=1'],
    ['/q?a=1&api_key=K&b=%20+x', '/q?a=1&b=%20+x'],
    ['/q?api_key=K&api_key=L&a=1&api_key', '/q?a=1'],
    ['/q?api%5Fkey=K&%61pi_key=L&api%5fkey&b', '/q?b'],
    ['/q?a=1&&api_key=K&&b=2&', '/q?a=1&&&b=2&'],
    ['/q?api_key=', '/q'],
    ['/q?api_keyX=1&Xapi_key=2&API_KEY=3&api_key%20=4&api+key=5', '/q?api_keyX=1&Xapi_key=2&API_KEY=3&api_key%20=4&api+key=5'],
    ['/q?a=api_key&b=api_key%3D1', '/q?a=api_key&b=api_key%3D1'],
    ['/q??api_key=K&a', '/q??a'],
    ['/q?&?api_key=K', '/q?&?api_key=K'],
    ['/q?x=%ZZ&api_key=K&y=%E9', '/q?x=%ZZ&y=%E9'],
    ['/q?api_key%=K', '/q?api_key%=K'],
    ['/q', '/q'],
    ['/q?', '/q?'],
  ];
  for (const [target, want] of cases) {
    assert.equal(removeQueryParam(target, 'api_key'), want, target);
    // What stays is what the authenticator cannot read any more.
    assert.equal(queryValue({ method: 'GET', target: removeQueryParam(target, 'api_key'), rawHeaders: [], clientIp: '' }, 'api_key').found, false, target);
  }
  assert.equal(removeQueryParam('/q?api+key=K&api%20key=L&a', 'api key'), '/q?a');
  assert.equal(removeQueryParam('/q?t%C3%A9=1&te=3', 't\u00e9'), '/q?te=3', 'escapes decode as UTF-8, like URLSearchParams');
});

test('the credential query parameter of api_key and jwt routes never reaches the upstream; the rest of the target is kept', () => {
  const forward = { claimHeaders: [] };
  const apiKey = rt('/api', { stripPrefix: true, auth: { type: 'api_key', keys: [], header: 'x-api-key', query: 'key', forward } });
  assert.equal(apiKey.upstreamTarget('/api/x?a=%2F&key=K&b'), '/x?a=%2F&b');
  assert.equal(apiKey.upstreamTarget('/api/x?k%65y=K'), '/x');
  const jwt = rt('/', { auth: { type: 'jwt', jwt: { algorithms: ['HS256'], secret: 's'.repeat(32), clockSkewMs: 0, from: 'query:access_token' }, forward } });
  assert.equal(jwt.upstreamTarget('/x?access_token=T&access_token=U&q=1'), '/x?q=1');
  jwt.close();
  const header = rt('/', { auth: { type: 'jwt', jwt: { algorithms: ['HS256'], secret: 's'.repeat(32), clockSkewMs: 0, from: 'authorization' }, forward } });
  assert.equal(header.upstreamTarget('/x?access_token=T'), '/x?access_token=T', 'only the route\'s own credential parameter');
  header.close();
});

test('with a CORS policy the upstream\'s own Access-Control-* headers are dropped', () => {
  const r = rt('/', { cors: { origins: ['https://a.test'], methods: ['GET'], headers: [], exposeHeaders: [], credentials: false } });
  assert.deepEqual(r.policy.responseHeaders(['Access-Control-Allow-Origin', '*', 'Vary', 'Accept', 'access-control-allow-credentials', 'true']), ['Vary', 'Accept']);
  assert.deepEqual(rt('/', {}).policy.responseHeaders(['Access-Control-Allow-Origin', '*']), ['Access-Control-Allow-Origin', '*']);
});
