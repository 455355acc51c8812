// API keys: header and query sources, hashed constant-time comparison,
// refusals with their logged reasons, and config errors at creation.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import pino from 'pino';
import { createAuthenticator } from '../../src/gateway/auth/index.ts';
import type { AuthResult, GatewayRequest } from '../../src/gateway/auth/index.ts';
import type { AuthConfig } from '../../src/config/types.ts';

const log = pino({ level: 'silent' });
const sha256 = (key: string): string => createHash('sha256').update(key, 'utf8').digest('hex');

function request(headers: Array<[string, string]> = [], target = '/'): GatewayRequest {
  return { method: 'GET', target, rawHeaders: headers.flat(), clientIp: '127.0.0.1' };
}

function config(extra: Partial<Extract<AuthConfig, { type: 'api_key' }>> = {}): AuthConfig {
  return {
    type: 'api_key',
    keys: [
      { name: 'alice', sha256: sha256('alice-key-0123456789'), scopes: ['read'] },
      { name: 'bob', sha256: sha256('bob-key-ÿ-€'), scopes: ['read', 'write'] },
    ],
    forward: { claimHeaders: [] },
    ...extra,
  };
}

function refused(result: AuthResult, reason: string): void {
  assert.equal(result.ok, false);
  assert.equal(!result.ok && result.reason, reason);
  assert.equal(!result.ok && result.wwwAuthenticate, undefined, 'API keys define no challenge');
}

describe('api_key authentication', () => {
  it('accepts a known key in the default x-api-key header (any case) and reports its name and scopes', () => {
    const auth = createAuthenticator(config(), log);
    const result = auth.authenticate(request([['X-Api-Key', 'alice-key-0123456789']]));
    assert.ok(!(result instanceof Promise), 'API key checks are synchronous');
    assert.deepEqual(result, { ok: true, identity: { kind: 'api_key', subject: 'alice', scopes: ['read'], claims: {} } });
  });

  it('reads a configured header and query parameter; the query value is percent-decoded UTF-8', () => {
    const auth = createAuthenticator(config({ header: 'X-Key', query: 'api_key' }), log);
    const viaHeader = auth.authenticate(request([['x-key', 'alice-key-0123456789']])) as AuthResult;
    assert.equal(viaHeader.ok && viaHeader.identity.subject, 'alice');
    const viaQuery = auth.authenticate(request([], `/x?a=1&api_key=${encodeURIComponent('bob-key-ÿ-€')}`)) as AuthResult;
    assert.equal(viaQuery.ok && viaQuery.identity.subject, 'bob');
    refused(auth.authenticate(request([['x-api-key', 'alice-key-0123456789']])) as AuthResult, 'missing API key');
  });

  it('hashes header bytes as received: a UTF-8 key sent raw in a latin1 head matches', () => {
    const auth = createAuthenticator(config(), log);
    const onTheWire = Buffer.from('bob-key-ÿ-€', 'utf8').toString('latin1');
    const result = auth.authenticate(request([['x-api-key', onTheWire]])) as AuthResult;
    assert.equal(result.ok && result.identity.subject, 'bob');
  });

  it('ignores the query parameter unless one is configured', () => {
    const auth = createAuthenticator(config(), log);
    refused(auth.authenticate(request([], '/?api_key=alice-key-0123456789')) as AuthResult, 'missing API key');
  });

  it('refuses missing, empty, unknown and duplicated keys', () => {
    const auth = createAuthenticator(config({ query: 'k' }), log);
    refused(auth.authenticate(request()) as AuthResult, 'missing API key');
    refused(auth.authenticate(request([['x-api-key', '']])) as AuthResult, 'missing API key');
    refused(auth.authenticate(request([['x-api-key', 'alice-key-012345678']])) as AuthResult, 'unknown API key');
    refused(auth.authenticate(request([['x-api-key', sha256('alice-key-0123456789')]])) as AuthResult, 'unknown API key');
    refused(
      auth.authenticate(request([['x-api-key', 'nope'], ['X-API-KEY', 'alice-key-0123456789']])) as AuthResult,
      'more than one API key presented',
    );
    refused(auth.authenticate(request([], '/?k=alice-key-0123456789&k=x')) as AuthResult, 'more than one API key presented');
  });

  it('refuses a malformed stored digest at creation', () => {
    assert.throws(
      () => createAuthenticator({ type: 'api_key', keys: [{ name: 'x', sha256: 'abc', scopes: [] }], forward: { claimHeaders: [] } }, log),
      /api key "x": sha256 must be 64 hex digits/,
    );
  });
});
