import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Router, hostName } from '../../src/proxy/router.ts';
import type { RouteConfig } from '../../src/config/types.ts';

const route = (host: string, path: string, upstream: string): RouteConfig => ({ name: `${host}${path}`, host, path, upstream });
const router = new Router(
  [route('*', '/', 'default'), route('*', '/api', 'api'), route('*', '/api/v2/', 'v2'), route('shop.example.com', '/', 'shop'), route('shop.example.com', '/api', 'shop-api')],
  (r) => r.upstream,
);
const match = (host: string | undefined, target: string) => router.match(host, target)?.target;

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

test('exact host beats the wildcard, case-insensitively and ignoring the port', () => {
  assert.equal(match('SHOP.example.com:8080', '/api/x'), 'shop-api');
  assert.equal(match('shop.example.com', '/other'), 'shop');
  assert.equal(match(undefined, '/api'), 'api');
});

test('no route gives undefined', () => {
  const only = new Router([route('a.example', '/x', 'u')], (r) => r.upstream);
  assert.equal(only.match('b.example', '/x'), undefined);
  assert.equal(only.match('a.example', '/y'), undefined);
});

test('hostName strips ports, keeps IPv6 brackets', () => {
  assert.equal(hostName('[::1]:8080'), '[::1]');
  assert.equal(hostName('[::1]'), '[::1]');
  assert.equal(hostName('Example.COM:80'), 'example.com');
});
