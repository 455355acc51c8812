// JWT keys from a JWKS URL, against a real HTTP server on loopback: keys are
// fetched once and refreshed in the background, a new kid is picked up after
// the cooldown (key rotation), a hanging server costs at most the bounded
// wait, and a failing server leaves the last keys in use.

import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import type { CryptoKey, JWK } from 'jose';
import pino from 'pino';
import { createAuthenticator } from '../../src/gateway/auth/index.ts';
import type { AuthResult, Authenticator, GatewayRequest, JwksTuning } from '../../src/gateway/auth/index.ts';
import { until } from '../helpers/until.js';

interface JwksServer {
  url: string;
  keys: JWK[];
  mode: 'serve' | 'hang' | 'fail';
  fetches: number;
  close(): Promise<void>;
}

const servers: JwksServer[] = [];
const authenticators: Authenticator[] = [];
after(async () => {
  for (const a of authenticators) a.close();
  await Promise.all(servers.map((s) => s.close()));
});

async function jwksServer(keys: JWK[]): Promise<JwksServer> {
  const state: JwksServer = { url: '', keys, mode: 'serve', fetches: 0, close: async () => {} };
  const server = http.createServer((_req, res) => {
    state.fetches++;
    if (state.mode === 'hang') return; // never answers; closeAllConnections() ends it
    if (state.mode === 'fail') {
      res.writeHead(503).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(JSON.stringify({ keys: state.keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  state.close = () => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(() => resolve()));
  };
  servers.push(state);
  return state;
}

async function keyPair(kid: string): Promise<{ privateKey: CryptoKey; jwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  return { privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } };
}

function sign(privateKey: CryptoKey, kid: string): Promise<string> {
  return new SignJWT({ sub: `user-of-${kid}` }).setProtectedHeader({ alg: 'ES256', kid }).setExpirationTime('5m').sign(privateKey);
}

/** Log lines written by the authenticator, parsed. */
function capturingLogger(): { log: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'warn' }, sink), lines };
}

function remote(url: string, jwks: Partial<JwksTuning> = {}, log = pino({ level: 'silent' })): Authenticator {
  const auth = createAuthenticator(
    { type: 'jwt', jwt: { algorithms: ['ES256'], jwksUrl: url, clockSkewMs: 0, from: 'authorization' }, forward: { claimHeaders: [] } },
    log,
    { jwks: { timeoutMs: 300, cooldownMs: 50, cacheMaxAgeMs: 60_000, ...jwks } },
  );
  authenticators.push(auth);
  return auth;
}

const bearer = (token: string): GatewayRequest => ({ method: 'GET', target: '/', rawHeaders: ['Authorization', `Bearer ${token}`], clientIp: '127.0.0.1' });


function subjectOf(result: AuthResult): string {
  assert.ok(result.ok, `expected acceptance, got: ${result.ok ? '' : result.reason}`);
  return result.identity.subject;
}

describe('jwt with a JWKS URL', () => {
  it('fetches the keys once at creation and verifies from the cached keys', async () => {
    const k1 = await keyPair('k1');
    const server = await jwksServer([k1.jwk]);
    const auth = remote(server.url);
    await until('the initial fetch', () => server.fetches === 1, 2_000, 10);
    for (let i = 0; i < 5; i++) assert.equal(subjectOf(await auth.authenticate(bearer(await sign(k1.privateKey, 'k1')))), 'user-of-k1');
    assert.equal(server.fetches, 1);
  });

  it('picks up a rotated key: an unknown kid triggers a refetch once the cooldown has passed', async () => {
    const k1 = await keyPair('k1');
    const k2 = await keyPair('k2');
    const server = await jwksServer([k1.jwk]);
    const auth = remote(server.url);
    assert.equal(subjectOf(await auth.authenticate(bearer(await sign(k1.privateKey, 'k1')))), 'user-of-k1');

    server.keys = [k2.jwk]; // rotation: k1 retired, k2 published
    await sleep(80); // past the 50 ms cooldown
    assert.equal(subjectOf(await auth.authenticate(bearer(await sign(k2.privateKey, 'k2')))), 'user-of-k2');
    const fetches = server.fetches;
    const stale = await auth.authenticate(bearer(await sign(k1.privateKey, 'k1')));
    assert.equal(stale.ok, false, 'the retired key no longer verifies');
    assert.equal(!stale.ok && stale.reason, 'no JWKS key matches the token');
    assert.equal(server.fetches, fetches, 'within the cooldown an unknown kid does not refetch');
  });

  it('refreshes in the background before the cache ages out, and close() stops it', async () => {
    const k1 = await keyPair('k1');
    const server = await jwksServer([k1.jwk]);
    const auth = remote(server.url, { cacheMaxAgeMs: 60 });
    await until('three background refreshes', () => server.fetches >= 3, 2_000, 10);
    auth.close();
    await sleep(30); // let a refresh already in flight land
    const fetches = server.fetches;
    await sleep(200);
    assert.equal(server.fetches, fetches, 'no refresh after close()');
  });

  it('a hanging JWKS server costs a request at most the bounded wait, then 401', async () => {
    const k1 = await keyPair('k1');
    const server = await jwksServer([k1.jwk]);
    server.mode = 'hang';
    const auth = remote(server.url, { timeoutMs: 200 });
    const token = await sign(k1.privateKey, 'k1');
    const started = performance.now();
    const result = await auth.authenticate(bearer(token));
    const elapsed = performance.now() - started;
    assert.equal(result.ok, false);
    assert.equal(!result.ok && result.reason, 'JWKS fetch timed out');
    assert.equal(!result.ok && result.wwwAuthenticate, 'Bearer realm="switchyard", error="invalid_token"');
    assert.ok(elapsed < 600, `waited ${elapsed.toFixed(0)} ms for a 200 ms bound`);
  });

  it('an unreachable JWKS with no keys yet: 401 with the cause in the reason', async () => {
    const k1 = await keyPair('k1');
    const server = await jwksServer([k1.jwk]);
    const url = server.url;
    await server.close();
    const auth = remote(url);
    const result = await auth.authenticate(bearer(await sign(k1.privateKey, 'k1')));
    assert.equal(result.ok, false);
    assert.match(!result.ok ? result.reason : '', /^token not verified: .*fetch failed/);
  });

  it('when a refresh fails, the last keys fetched stay in use and the failure is logged', async () => {
    const k1 = await keyPair('k1');
    const server = await jwksServer([k1.jwk]);
    const { log, lines } = capturingLogger();
    const auth = remote(server.url, { cacheMaxAgeMs: 100 }, log);
    const token = await sign(k1.privateKey, 'k1');
    assert.equal(subjectOf(await auth.authenticate(bearer(token))), 'user-of-k1');

    server.mode = 'fail';
    await sleep(150); // the keys are now older than cacheMaxAge and refreshes fail
    // A token not seen before (ES256 signatures differ each time), so it is verified, not recalled.
    const fresh = await sign(k1.privateKey, 'k1');
    assert.equal(subjectOf(await auth.authenticate(bearer(fresh))), 'user-of-k1');
    assert.ok(lines.some((l) => l.msg === 'JWKS fetch failed; using the last keys fetched'), 'verified against the last keys');
    assert.ok(lines.some((l) => l.msg === 'JWKS refresh failed'), 'the background refresh failure is logged');
    assert.ok(lines.every((l) => !JSON.stringify(l).includes(token) && !JSON.stringify(l).includes(fresh)), 'tokens are never logged');
  });
});
