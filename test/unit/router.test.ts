import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Router, hostName } from '../../src/proxy/router.ts';
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
const match = (host: string | undefined, target: string, method = 'GET', raw: string[] = []) => router.match(host, method, target, raw)?.target;

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
  assert.equal(big.match('h', 'GET', '/svc999/x', [])?.target, 'svc999');
  assert.equal(big.match('h', 'GET', '/svc500/admin/y', [])?.target, 'svc500-admin');
  assert.equal(big.match('h', 'GET', '/svc1000', [])?.target, 'root');
});

test('hostName strips ports, keeps IPv6 brackets', () => {
  assert.equal(hostName('[::1]:8080'), '[::1]');
  assert.equal(hostName('[::1]'), '[::1]');
  assert.equal(hostName('Example.COM:80'), 'example.com');
});

test('trie edges: trailing slashes, the root, empty segments and queries', () => {
  const r = new Router(
    [route('*', '/', 'root'), route('*', '/a', 'a'), route('*', '/a/', 'a-slash'), route('*', '/a/b/c', 'abc')],
    (x) => x.upstream,
  );
  const m = (t: string) => r.match('h', 'GET', t, [])?.target;
  assert.equal(m('/a'), 'a');
  assert.equal(m('/a?x=/a/b/c'), 'a');
  assert.equal(m('/a/'), 'a-slash');
  assert.equal(m('/a/b'), 'a-slash');
  assert.equal(m('/a/b/c'), 'abc');
  assert.equal(m('/a/b/cd'), 'a-slash');
  assert.equal(m('/a//b/c'), 'a-slash');
  assert.equal(m('/ab'), 'root');
  assert.equal(m('/'), 'root');
  assert.equal(m('/?q'), 'root');
});
