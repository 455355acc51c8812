import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { RouteRuntime, redactQueryParam } from '../../src/gateway/route-runtime.ts';
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

test('with a CORS policy the upstream\'s own Access-Control-* headers are dropped', () => {
  const r = rt('/', { cors: { origins: ['https://a.test'], methods: ['GET'], headers: [], exposeHeaders: [], credentials: false } });
  assert.deepEqual(r.responseHeaders(['Access-Control-Allow-Origin', '*', 'Vary', 'Accept', 'access-control-allow-credentials', 'true']), ['Vary', 'Accept']);
  assert.deepEqual(rt('/', {}).responseHeaders(['Access-Control-Allow-Origin', '*']), ['Access-Control-Allow-Origin', '*']);
});
