// Authorization rules compiled from a route's config: methods, client CIDRs
// (IPv4, IPv6, IPv4-mapped), required scopes and accepted claim values, each
// refusal with a reason for the log.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileAuthorizer } from '../../src/gateway/authorize.ts';
import type { GatewayRequest, Identity } from '../../src/gateway/auth/index.ts';

function request(method = 'GET', clientIp = '127.0.0.1'): GatewayRequest {
  return { method, target: '/', rawHeaders: [], clientIp };
}
function identity(scopes: string[], claims: Record<string, unknown> = {}): Identity {
  return { kind: 'jwt', subject: 's', scopes, claims };
}

describe('authorize', () => {
  it('allows everything when nothing is configured', () => {
    assert.deepEqual(compileAuthorizer({})(request('DELETE', '::1'), undefined), { ok: true });
  });

  it('methods', () => {
    const check = compileAuthorizer({ methods: ['get', 'HEAD'] });
    assert.deepEqual(check(request('GET'), undefined), { ok: true });
    assert.deepEqual(check(request('HEAD'), undefined), { ok: true });
    assert.deepEqual(check(request('POST'), undefined), { ok: false, reason: 'method POST not allowed' });
  });

  it('client CIDRs: IPv4, IPv6, single addresses, IPv4-mapped IPv6 clients and ranges', () => {
    const check = compileAuthorizer({ cidrs: ['10.0.0.0/8', '127.0.0.1', 'fd00::/8', '::ffff:192.168.0.0/112'] });
    for (const ip of ['10.1.2.3', '127.0.0.1', '::ffff:127.0.0.1', '::FFFF:10.9.9.9', 'fd12::1', '192.168.7.7']) {
      assert.deepEqual(check(request('GET', ip), undefined), { ok: true }, ip);
    }
    for (const ip of ['11.0.0.1', '127.0.0.2', '::1', 'fe80::1', '192.169.0.1', 'not-an-ip', '']) {
      assert.deepEqual(check(request('GET', ip), undefined), { ok: false, reason: `client address ${ip} not allowed` }, ip);
    }
  });

  it('refuses malformed CIDRs at compile time', () => {
    for (const bad of ['10.0.0.0/33', '10.0.0.0/', '10.0.0/8', 'fd00::/129', 'host.test', '10.0.0.0/8/1', '10.0.0.0/x']) {
      assert.throws(() => compileAuthorizer({ cidrs: [bad] }), /is not an IP address or CIDR/, bad);
    }
  });

  it('scopes: all required', () => {
    const check = compileAuthorizer({ scopes: ['read', 'write'] });
    assert.deepEqual(check(request(), identity(['write', 'read', 'admin'])), { ok: true });
    assert.deepEqual(check(request(), identity(['read'])), { ok: false, reason: 'missing scope "write"' });
    assert.deepEqual(check(request(), undefined), { ok: false, reason: 'missing scope "read"' });
  });

  it('claims: one accepted value, any element of a list, numbers and booleans as text', () => {
    const check = compileAuthorizer({ claims: { role: ['admin', 'ops'], tenant: ['42'] } });
    assert.deepEqual(check(request(), identity([], { role: 'ops', tenant: 42 })), { ok: true });
    assert.deepEqual(check(request(), identity([], { role: ['viewer', 'admin'], tenant: '42' })), { ok: true });
    assert.deepEqual(check(request(), identity([], { role: 'viewer', tenant: '42' })), { ok: false, reason: 'claim "role" has no accepted value' });
    assert.deepEqual(check(request(), identity([], { role: 'admin' })), { ok: false, reason: 'claim "tenant" has no accepted value' });
    assert.deepEqual(check(request(), identity([], { role: { admin: true }, tenant: '42' })), { ok: false, reason: 'claim "role" has no accepted value' });
    assert.deepEqual(check(request(), undefined), { ok: false, reason: 'claim "role" has no accepted value' });
  });

  it('checks the request (method, address) before the identity', () => {
    const check = compileAuthorizer({ scopes: ['x'], cidrs: ['10.0.0.0/8'], methods: ['GET'] });
    assert.deepEqual(check(request('POST', '1.1.1.1'), undefined), { ok: false, reason: 'method POST not allowed' });
    assert.deepEqual(check(request('GET', '1.1.1.1'), undefined), { ok: false, reason: 'client address 1.1.1.1 not allowed' });
    assert.deepEqual(check(request('GET', '10.0.0.1'), identity(['x'])), { ok: true });
  });
});
