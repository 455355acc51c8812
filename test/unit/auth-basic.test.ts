// Basic auth against bcrypt and scrypt hashes: valid users pass; wrong
// passwords, unknown users and malformed headers are refused with the Basic
// challenge; successes are cached briefly (bounded, never failures); unknown
// users cost a hash like known ones.

import assert from 'node:assert/strict';
import { randomBytes, scryptSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import bcrypt from 'bcryptjs';
import pino from 'pino';
import { createAuthenticator } from '../../src/gateway/auth/index.ts';
import type { AuthResult, Authenticator, GatewayRequest, SuccessCacheOptions } from '../../src/gateway/auth/index.ts';
import type { BasicUser } from '../../src/config/types.ts';

const log = pino({ level: 'silent' });
const CHALLENGE = 'Basic realm="switchyard \\"admin\\"", charset="UTF-8"';

function scryptHash(password: string, N = 1024, r = 8, p = 1): string {
  const salt = randomBytes(16);
  const hash = scryptSync(password, salt, 32, { N, r, p });
  return `scrypt$${N}$${r}$${p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

const USERS: BasicUser[] = [
  { name: 'alice', hash: bcrypt.hashSync('alice-pw', 4) },
  { name: 'bob', hash: scryptHash('bøb:pw') }, // non-ASCII and a colon in the password
];

function basic(users = USERS, basicCache?: SuccessCacheOptions): Authenticator {
  return createAuthenticator({ type: 'basic', realm: 'switchyard "admin"', users, forward: { claimHeaders: [] } }, log, basicCache ? { successCache: basicCache } : {});
}

function request(authorization?: string): GatewayRequest {
  return { method: 'GET', target: '/', rawHeaders: authorization === undefined ? [] : ['Authorization', authorization], clientIp: '127.0.0.1' };
}

const credentials = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;

async function refused(auth: Authenticator, authorization: string | undefined, reason: string): Promise<void> {
  const result = await auth.authenticate(request(authorization));
  assert.deepEqual(result, { ok: false, reason, wwwAuthenticate: CHALLENGE });
}

async function subjectOf(auth: Authenticator, authorization: string): Promise<string> {
  const result = await auth.authenticate(request(authorization));
  assert.ok(result.ok, `expected acceptance, got: ${result.ok ? '' : result.reason}`);
  return result.identity.subject;
}

describe('basic authentication', () => {
  it('accepts bcrypt and scrypt users (scheme case-insensitive, password with ":" and UTF-8)', async () => {
    const auth = basic();
    assert.equal(await subjectOf(auth, credentials('alice', 'alice-pw')), 'alice');
    assert.equal(await subjectOf(auth, credentials('bob', 'bøb:pw').replace('Basic', 'bAsIc')), 'bob');
    const result = (await auth.authenticate(request(credentials('alice', 'alice-pw')))) as AuthResult;
    assert.deepEqual(result, { ok: true, identity: { kind: 'basic', subject: 'alice', scopes: [], claims: {} } });
  });

  it('refuses wrong passwords, unknown users, missing and malformed credentials', async () => {
    const auth = basic();
    await refused(auth, credentials('alice', 'alice-PW'), 'wrong password for user "alice"');
    await refused(auth, credentials('bob', 'bøb:pW'), 'wrong password for user "bob"');
    await refused(auth, credentials('mallory', 'alice-pw'), 'unknown user');
    await refused(auth, undefined, 'missing Basic credentials');
    await refused(auth, 'Bearer abc.def.ghi', 'missing Basic credentials');
    await refused(auth, 'Basic', 'missing Basic credentials');
    await refused(auth, 'Basic !!!not-base64', 'malformed Basic credentials');
    await refused(auth, `Basic ${Buffer.from('no-colon').toString('base64')}`, 'malformed Basic credentials');
    await refused(auth, `Basic ${Buffer.from(':pw').toString('base64')}`, 'malformed Basic credentials');
    const twice = await auth.authenticate({ method: 'GET', target: '/', rawHeaders: ['Authorization', credentials('alice', 'alice-pw'), 'authorization', credentials('alice', 'alice-pw')], clientIp: '127.0.0.1' });
    assert.equal(!twice.ok && twice.reason, 'more than one Authorization header');
  });

  it('caches a success (answered synchronously) until the TTL, and never caches a failure', async () => {
    const auth = basic(USERS, { ttlMs: 80, maxEntries: 10 });
    const good = request(credentials('alice', 'alice-pw'));
    assert.ok(auth.authenticate(good) instanceof Promise, 'first check hashes');
    await auth.authenticate(good);
    const cached = auth.authenticate(good);
    assert.ok(!(cached instanceof Promise), 'a cached success needs no hash');
    assert.equal((cached as AuthResult).ok, true);

    const bad = request(credentials('alice', 'wrong'));
    await auth.authenticate(bad);
    assert.ok(auth.authenticate(bad) instanceof Promise, 'a failure is checked again');

    await sleep(100);
    assert.ok(auth.authenticate(good) instanceof Promise, 'expired after the TTL');
    auth.close();
  });

  it('keeps at most maxEntries successes, evicting the least recently used', async () => {
    const auth = basic(USERS, { ttlMs: 60_000, maxEntries: 1 });
    const alice = request(credentials('alice', 'alice-pw'));
    const bob = request(credentials('bob', 'bøb:pw'));
    await auth.authenticate(alice);
    await auth.authenticate(bob);
    assert.ok(!(auth.authenticate(bob) instanceof Promise));
    assert.ok(auth.authenticate(alice) instanceof Promise, 'alice was evicted');
    auth.close();
    assert.ok(auth.authenticate(bob) instanceof Promise, 'close() drops the cache');
  });

  it('spends a comparable hash on unknown users (no user enumeration by timing)', async () => {
    const auth = basic([{ name: 'carol', hash: bcrypt.hashSync('carol-pw', 8) }]);
    const timed = async (authorization: string): Promise<number> => {
      const started = performance.now();
      await auth.authenticate(request(authorization));
      return performance.now() - started;
    };
    // Interleaved after a warm-up, so JIT and machine load affect both sides alike.
    const knownTimes: number[] = [];
    const unknownTimes: number[] = [];
    for (let i = 0; i < 9; i++) {
      const k = await timed(credentials('carol', 'wrong'));
      const u = await timed(credentials('nobody', 'wrong'));
      if (i < 2) continue;
      knownTimes.push(k);
      unknownTimes.push(u);
    }
    const median = (times: number[]): number => times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
    const known = median(knownTimes);
    const unknown = median(unknownTimes);
    assert.ok(known > 3, `cost 8 bcrypt should take milliseconds, took ${known.toFixed(2)} ms`);
    assert.ok(unknown > known * 0.5 && unknown < known * 2, `known user ${known.toFixed(1)} ms, unknown ${unknown.toFixed(1)} ms`);
  });

  it('refuses malformed stored hashes at creation', () => {
    assert.throws(() => basic([{ name: 'x', hash: 'plaintext' }]), /basic auth user "x": unsupported password hash/);
    assert.throws(() => basic([{ name: 'x', hash: '$2b$04$short' }]), /malformed bcrypt hash/);
    assert.throws(() => basic([{ name: 'x', hash: 'scrypt$1000$8$1$c2FsdA==$aGFzaA==' }]), /malformed scrypt hash/);
    assert.throws(() => basic([{ name: 'x', hash: 'scrypt$1024$8$1$c2FsdA==$aGFzaA==' }]), /shorter than 16 bytes/);
    assert.throws(() => basic([{ name: 'a:b', hash: USERS[0]!.hash }]), /cannot contain ":"/);
  });
});
