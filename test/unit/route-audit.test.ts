import { test } from 'node:test';
import assert from 'node:assert/strict';
import { auditRoutes, formatFinding } from '../../src/proxy/route-audit.ts';
import type { AuthConfig, RouteConfig } from '../../src/config/types.ts';

const KEY: AuthConfig = { type: 'api_key', keys: [{ name: 'k', sha256: 'a'.repeat(64), scopes: [] }], header: 'x-api-key', forward: { claimHeaders: [] } };
const OTHER_KEY: AuthConfig = { ...KEY, keys: [{ name: 'k2', sha256: 'b'.repeat(64), scopes: [] }] };
const BASIC: AuthConfig = { type: 'basic', realm: 'r', users: [{ name: 'u', hash: 'x' }], forward: { claimHeaders: [] } };

let n = 0;
const route = (host: string, path: string, upstream: string, extra: Partial<RouteConfig> = {}): RouteConfig => ({
  name: `r${n++}`,
  host,
  path,
  upstream,
  stripPrefix: false,
  upgrades: ['websocket'],
  ...extra,
});
/** The findings as "route>via" pairs with their methods and hosts, sorted for comparison. */
const audit = (routes: RouteConfig[]) =>
  auditRoutes(routes).map((f) => ({ pair: `${f.route}>${f.via}`, methods: [...f.methods].sort(), hosts: [...f.hosts].sort(), weaker: f.weaker }));

test('the issue\'s example: DELETE falls from an authenticated POST/PUT route to an open route for the same prefix', () => {
  const routes = [
    route('api.test', '/v1/orders', 'orders', { methods: ['POST', 'PUT'], auth: KEY }),
    route('api.test', '/v1/orders', 'orders'),
    route('*', '/', 'web'),
  ];
  const [f, ...rest] = audit(routes);
  assert.equal(rest.length, 0);
  assert.deepEqual(f, { pair: '0>1', methods: ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'other'], hosts: ['api.test'], weaker: 'without auth' });
  assert.match(formatFinding(auditRoutes(routes)[0]!, routes), /^routes\[0\] r\d+ \(POST,PUT api\.test \/v1\/orders\) has api_key auth, but GET, HEAD, PATCH, DELETE, OPTIONS, methods no route names for \/v1\/orders and below with Host api\.test reach upstream "orders" via routes\[1\] r\d+ without auth$/);
});

test('an open route that names exactly the methods it opens, on the same host and path, is deliberate', () => {
  const routes = [route('api.test', '/v1/orders', 'orders', { auth: KEY }), route('api.test', '/v1/orders', 'orders', { methods: ['GET', 'HEAD'] })];
  assert.deepEqual(audit(routes), []);
});

test('a wildcard-host auth route and the "*" catch-all: only hosts no route names get through', () => {
  const routes = [
    route('*.example.test', '/admin', 'web', { auth: BASIC }),
    route('static.example.test', '/', 'static'),
    route('api.example.test', '/v1', 'api'),
    route('*', '/', 'web'),
  ];
  assert.deepEqual(audit(routes), [{ pair: '0>3', methods: ['any'], hosts: ['*'], weaker: 'without auth' }]);
});

test('an exact-host catch-all shadows a "*" auth route for that host', () => {
  const routes = [route('*', '/admin', 'app', { auth: KEY }), route('shop.test', '/', 'app'), route('other.test', '/', 'elsewhere')];
  assert.deepEqual(audit(routes), [{ pair: '0>1', methods: ['any'], hosts: ['shop.test'], weaker: 'without auth' }]);
});

test('different upstreams, nested carve-outs and equal checks are not findings', () => {
  assert.deepEqual(audit([route('*', '/admin', 'a', { auth: KEY }), route('*', '/', 'b')]), []);
  assert.deepEqual(audit([route('*', '/api', 'a', { auth: KEY }), route('*', '/api/health', 'a'), route('*', '/api/login/', 'a')]), []);
  assert.deepEqual(audit([route('*', '/api', 'a', { auth: KEY, methods: ['POST'] }), route('*', '/api', 'a', { auth: { ...KEY, forward: { subjectHeader: 'X-Who', claimHeaders: [] } } })]), []);
  // A longer auth prefix that takes every method leaves nothing for the shorter open one.
  assert.deepEqual(audit([route('*', '/v1/orders', 'a', { auth: KEY }), route('*', '/v1', 'a')]), []);
});

test('nested prefixes: methods the auth route does not take fall through to the shorter open prefix', () => {
  const routes = [route('*', '/v1/orders/', 'a', { auth: KEY, methods: ['POST'] }), route('*', '/v1', 'a', { methods: ['GET', 'POST'] })];
  // GET is named by /v1, but for a shorter path: the request for /v1/orders/... still falls through.
  assert.deepEqual(audit(routes), [{ pair: '0>1', methods: ['GET'], hosts: ['*'], weaker: 'without auth' }]);
});

test('header conditions are chosen by the client: an open route for the same path behind a header is a finding', () => {
  const routes = [route('*', '/api', 'a', { auth: KEY }), route('*', '/api', 'a', { methods: ['GET'], headers: { 'x-debug': '1' } })];
  assert.deepEqual(audit(routes), [{ pair: '0>1', methods: ['GET'], hosts: ['*'], weaker: 'without auth' }]);
  // And an auth route that needs a header: without it the request goes to the open one.
  const needsHeader = [route('*', '/api', 'a', { auth: KEY, headers: { 'x-version': '2' } }), route('*', '/api', 'a')];
  assert.deepEqual(audit(needsHeader), [{ pair: '0>1', methods: ['any'], hosts: ['*'], weaker: 'without auth' }]);
});

test('weaker checks: another scheme, other keys, a missing or different authorize', () => {
  const with_ = (extra: Partial<RouteConfig>) => audit([route('*', '/x', 'a', { auth: KEY, methods: ['POST'], authorize: { scopes: ['w'] } }), route('*', '/', 'a', extra)])[0]?.weaker;
  assert.equal(with_({ auth: BASIC }), 'with basic auth instead of api_key');
  assert.equal(with_({ auth: OTHER_KEY }), 'with api_key auth of other keys or settings');
  assert.equal(with_({ auth: KEY }), 'without its authorize rules');
  assert.equal(with_({ auth: KEY, authorize: { scopes: ['r'] } }), 'with other authorize rules');
  assert.equal(with_({ auth: KEY, authorize: { scopes: ['w'] } }), undefined);
});

test('a more specific auth host: other methods on it, and every method on other hosts under the wildcard', () => {
  const routes = [route('api.example.test', '/admin', 'a', { auth: KEY, methods: ['GET'] }), route('*.example.test', '/admin', 'a')];
  const [f] = audit(routes);
  assert.deepEqual(f!.hosts, ['*.example.test', 'api.example.test']);
  assert.deepEqual(f!.methods, ['any']);
});
