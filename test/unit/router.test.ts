import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Router } from '../../src/proxy/router.ts';
import type { RouteConfig } from '../../src/config/types.ts';

const route = (host: string, path: string, upstream: string, extra: Partial<RouteConfig> = {}): RouteConfig => ({
  name: upstream,
  host,
  path,
  upstream,
  stripPrefix: false,
  upgrades: ['websocket'],
  ...extra,
});
const router = new Router(
  [
    route('*', '/', 'default'),
    route('*', '/api', 'api'),
    route('*', '/api/v2/', 'v2'),
    route('shop.example.com', '/', 'shop'),
    route('shop.example.com', '/api', 'shop-api'),
    route('*.example.com', '/', 'any-sub'),
    route('*.eu.example.com', '/', 'eu-sub'),
    route('*', '/orders', 'orders-write', { methods: ['POST', 'PUT'] }),
    route('*', '/orders', 'orders-v2', { headers: { 'x-version': '2' } }),
    route('*', '/orders', 'orders'),
  ],
  (r) => r.upstream,
);
const match = (host: string | undefined, target: string, method = 'GET', raw: string[] = []) => {
  const m = router.match(host, method, target, raw);
  return m === undefined ? undefined : 'refused' in m ? `refused: ${m.refused}` : m.target;
};

test('longest path prefix wins', () => {
  assert.equal(match('x', '/'), 'default');
  assert.equal(match('x', '/api'), 'api');
  assert.equal(match('x', '/api/users'), 'api');
  assert.equal(match('x', '/api/v2/users'), 'v2');
  assert.equal(match('x', '/api?q=1'), 'api');
});

test('a prefix matches on segment boundaries only', () => {
  assert.equal(match('x', '/apiary'), 'default');
  assert.equal(match('x', '/api/v2'), 'api'); // "/api/v2/" needs the slash
});

test('exact host, then the longest wildcard suffix, then "*"; case-insensitive, port ignored', () => {
  assert.equal(match('SHOP.example.com:8080', '/api/x'), 'shop-api');
  assert.equal(match('shop.example.com', '/other'), 'shop');
  assert.equal(match('a.example.com', '/api'), 'any-sub');
  assert.equal(match('a.b.example.com', '/'), 'any-sub');
  assert.equal(match('x.eu.example.com', '/'), 'eu-sub');
  assert.equal(match('example.com', '/'), 'default'); // the wildcard needs a subdomain
  assert.equal(match('evilexample.com', '/'), 'default');
  assert.equal(match(undefined, '/api'), 'api');
});

test('methods and headers narrow a route; more conditions are tried first', () => {
  assert.equal(match('x', '/orders', 'POST'), 'orders-write');
  assert.equal(match('x', '/orders', 'GET', ['X-Version', '2']), 'orders-v2');
  assert.equal(match('x', '/orders', 'GET', ['X-Version', '3']), 'orders');
  assert.equal(match('x', '/orders/7', 'DELETE'), 'orders');
});

test('no route gives undefined', () => {
  const only = new Router([route('a.example', '/x', 'u')], (r) => r.upstream);
  assert.equal(only.match('b.example', 'GET', '/x', []), undefined);
  assert.equal(only.match('a.example', 'GET', '/y', []), undefined);
  assert.equal(only.match('a.example', 'GET', '*', []), undefined);
});

test('a thousand routes index by first segment and still find the longest prefix', () => {
  const routes = Array.from({ length: 1000 }, (_, i) => route('*', `/svc${i}`, `svc${i}`));
  routes.push(route('*', '/svc500/admin', 'svc500-admin'), route('*', '/', 'root'));
  const big = new Router(routes, (r) => r.upstream);
  const m = (t: string) => (big.match('h', 'GET', t, []) as { target: string }).target;
  assert.equal(m('/svc999/x'), 'svc999');
  assert.equal(m('/svc500/admin/y'), 'svc500-admin');
  assert.equal(m('/svc1000'), 'root');
});

test('hosts: port, case and a trailing dot do not matter; hosts no backend takes are refused', () => {
  assert.equal(match('shop.example.com.', '/api'), 'shop-api');
  assert.equal(match('SHOP.Example.COM.:80', '/api'), 'shop-api');
  assert.equal(match('x.eu.example.com.', '/'), 'eu-sub');
  assert.equal(match('shop%2eexample.com', '/'), 'refused: bad-host');
  assert.equal(match('shop..example.com', '/'), 'refused: bad-host');
  assert.equal(match('[::1]:8080', '/api'), 'api');
});

test('a path whose forms belong to different routes is refused; forms that agree are matched', () => {
  assert.equal(match('x', '/API'), 'refused: bad-path'); // "/" as received, "/api" in lower case
  assert.equal(match('x', '/api;v=1'), 'refused: bad-path');
  assert.equal(match('x', '/x/../api'), 'refused: bad-path');
  assert.equal(match('x', '/%61pi'), 'refused: bad-path');
  assert.equal(match('x', '/api#x'), 'refused: bad-path');
  assert.equal(match('x', '/api/%zz'), 'refused: bad-path');
  assert.equal(match('x', '/api/Users/../X;y'), 'api'); // every form stays under /api
  assert.equal(match('x', '/Other/%7Ex'), 'default');
  assert.equal(match('x', '/api/v2/%2e/a'), 'v2');
});

test('route paths with upper-case letters: lower-case requests compare both ways too', () => {
  const r = new Router([route('*', '/Admin', 'admin'), route('*', '/', 'root')], (x) => x.upstream);
  const m = (t: string) => {
    const hit = r.match('h', 'GET', t, []);
    return hit === undefined || 'refused' in hit ? hit : hit.target;
  };
  assert.equal(m('/Admin/x'), 'admin');
  assert.deepEqual(m('/admin'), { refused: 'bad-path', detail: 'the path belongs to route root as "/admin" but to route admin as "/admin"' });
  assert.equal(m('/other'), 'root');
});

test('escaped slashes: decoded for matching by default, refused when asked', () => {
  const routes = [route('*', '/a/b', 'ab'), route('*', '/', 'root')];
  const decode = new Router(routes, (x) => x.upstream);
  const reject = new Router(routes, (x) => x.upstream, 'reject');
  assert.equal((decode.match('h', 'GET', '/a%2fb/c', []) as { refused: string }).refused, 'bad-path'); // "/" as received, "/a/b" decoded
  assert.equal((decode.match('h', 'GET', '/a/b/c%2Fd', []) as { target: string }).target, 'ab');
  assert.equal((reject.match('h', 'GET', '/a/b/c%2Fd', []) as { refused: string }).refused, 'bad-path');
});

test('trie edges: trailing slashes, the root, empty segments and queries', () => {
  const r = new Router(
    [route('*', '/', 'root'), route('*', '/a', 'a'), route('*', '/a/', 'a-slash'), route('*', '/a/b/c', 'abc')],
    (x) => x.upstream,
  );
  const m = (t: string) => {
    const hit = r.match('h', 'GET', t, []);
    return hit === undefined || 'refused' in hit ? hit?.refused : hit.target;
  };
  assert.equal(m('/a'), 'a');
  assert.equal(m('/a?x=/a/b/c'), 'a');
  assert.equal(m('/a/'), 'a-slash');
  assert.equal(m('/a/b'), 'a-slash');
  assert.equal(m('/a/b/c'), 'abc');
  assert.equal(m('/a/b/cd'), 'a-slash');
  assert.equal(m('/a//b/c'), 'bad-path'); // "/a/" as received, "/a/b/c" merged
  assert.equal(m('/a//b'), 'a-slash');
  assert.equal(m('/ab'), 'root');
  assert.equal(m('/'), 'root');
  assert.equal(m('/?q'), 'root');
});
