// The failed-authentication limit (issue 10, defect 8) against real
// shared-memory buckets: every scheme charges one attempt per credential it
// checks and gives it back on success, so only failures count; a client out
// of attempts is refused at once (no hash, no signature check) with a
// Retry-After, other clients are untouched, and identical checks in flight
// share one attempt. Password hashes run on the hash pool's threads.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { SignJWT } from 'jose';
import pino from 'pino';
import { AuthFailureGate } from '../../src/gateway/auth-failures.ts';
import { createAuthenticator } from '../../src/gateway/auth/index.ts';
import type { AuthResult, Authenticator, GatewayRequest } from '../../src/gateway/auth/index.ts';
import { HashPool } from '../../src/gateway/auth/hash-pool.ts';
import { RateLimiter } from '../../src/gateway/rate-limit.ts';

const log = pino({ level: 'silent' });
const limiter = RateLimiter.create(1024, { name: `/switchyard-test-${process.pid}-rl-authfail` });
after(() => {
  limiter.close();
  limiter.unlink();
});
let clients = 0;
/** A client address no other test uses, so each test starts with full buckets. */
const newClient = (): string => `10.${(++clients >> 8) & 255}.${clients & 255}.1`;
// 6/m: nothing refills during a test.
const gate = new AuthFailureGate(limiter, { ratePerSecond: 0.1, burst: 3 });

const req = (clientIp: string, headers: Array<[string, string]>, target = '/'): GatewayRequest => ({ method: 'GET', target, rawHeaders: headers.flat(), clientIp });
const basicCred = (user: string, pw: string): [string, string] => ['Authorization', `Basic ${Buffer.from(`${user}:${pw}`).toString('base64')}`];

function assertOutOfAttempts(result: AuthResult | Promise<AuthResult>): void {
  assert.ok(!(result instanceof Promise), 'refused at once: nothing is checked');
  assert.equal(result.ok, false);
  if (result.ok) return;
  assert.equal(result.reason, 'too many failed authentication attempts from this client');
  assert.ok(result.retryAfter !== undefined && result.retryAfter >= 1 && result.retryAfter <= 10, `Retry-After ${result.retryAfter}`);
}

describe('failed-attempt limit', () => {
  const users = [{ name: 'alice', hash: bcrypt.hashSync('alice-pw', 4) }];
  const noCache = { successCache: { ttlMs: 0, maxEntries: 1 } };
  const basic = (tuning = {}): Authenticator => createAuthenticator({ type: 'basic', realm: 'r', users, forward: { claimHeaders: [] } }, log, tuning, gate);

  it('basic: wrong passwords spend attempts; then no hash at all, only 429s; other clients are untouched', async () => {
    const auth = basic();
    const attacker = newClient();
    for (let i = 0; i < 3; i++) {
      const r = await auth.authenticate(req(attacker, [basicCred('alice', `guess-${i}`)]));
      assert.equal(r.ok, false);
      assert.equal(r.ok ? undefined : r.retryAfter, undefined, 'within the burst: a plain 401');
    }
    assertOutOfAttempts(auth.authenticate(req(attacker, [basicCred('alice', 'guess-3')])));
    assertOutOfAttempts(auth.authenticate(req(attacker, [basicCred('alice', 'alice-pw')])));
    assertOutOfAttempts(auth.authenticate(req(attacker, [basicCred('mallory', 'x')])));
    const other = await auth.authenticate(req(newClient(), [basicCred('alice', 'alice-pw')]));
    assert.ok(other.ok, 'another client still logs in');
    // Missing or malformed credentials check nothing and spend nothing.
    const r = await auth.authenticate(req(attacker, []));
    assert.equal(r.ok ? undefined : r.reason, 'missing Basic credentials');
  });

  it('basic: successes give their attempt back; identical checks in flight share one hash and one attempt', async () => {
    const auth = basic(noCache);
    const client = newClient();
    for (let i = 0; i < 10; i++) assert.ok((await auth.authenticate(req(client, [basicCred('alice', 'alice-pw')]))).ok, `success ${i} costs nothing`);
    // A browser's first page load: many connections, same credentials, at once. Burst 3 is far below 20.
    const results = await Promise.all(Array.from({ length: 20 }, () => auth.authenticate(req(client, [basicCred('alice', 'alice-pw')]))));
    assert.ok(results.every((r) => r.ok), 'all 20 pass');
    // 20 identical wrong guesses at once are one guess.
    const wrong = await Promise.all(Array.from({ length: 20 }, () => auth.authenticate(req(client, [basicCred('alice', 'nope')]))));
    assert.ok(wrong.every((r) => !r.ok && r.retryAfter === undefined), 'one 401 answer shared');
    for (let i = 0; i < 2; i++) assert.equal((await auth.authenticate(req(client, [basicCred('alice', `other-${i}`)]))).ok, false);
    assertOutOfAttempts(auth.authenticate(req(client, [basicCred('alice', 'other-2')])));
  });

  it('basic: distinct guesses in parallel cannot overrun the limit', async () => {
    const auth = basic();
    const attacker = newClient();
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => auth.authenticate(req(attacker, [basicCred('alice', `p-${i}`)]))));
    const checked = results.filter((r) => !r.ok && r.retryAfter === undefined).length;
    assert.equal(checked, 3, 'exactly the burst was hashed; the rest were refused unchecked');
  });

  it('api_key: unknown keys spend attempts, a known key gives its attempt back', async () => {
    const sha256 = createHash('sha256').update('the-right-key').digest('hex');
    const auth = createAuthenticator({ type: 'api_key', keys: [{ name: 'svc', sha256, scopes: [] }], header: 'x-api-key', query: 'key', forward: { claimHeaders: [] } }, log, {}, gate);
    const client = newClient();
    for (let i = 0; i < 5; i++) assert.ok((auth.authenticate(req(client, [['x-api-key', 'the-right-key']])) as AuthResult).ok);
    for (let i = 0; i < 3; i++) assert.equal((auth.authenticate(req(client, [['x-api-key', `guess-${i}`]])) as AuthResult).ok, false);
    assertOutOfAttempts(auth.authenticate(req(client, [], '/?key=guess-4')));
    // A key already verified for this route is known good: it proves the client holds it, so it is not a guess.
    assert.ok((auth.authenticate(req(client, [['x-api-key', 'the-right-key']])) as AuthResult).ok);
    assert.ok((auth.authenticate(req(newClient(), [['x-api-key', 'the-right-key']])) as AuthResult).ok);
  });

  it('jwt: bad tokens spend attempts; parallel first uses of a good token share one verification', async () => {
    const secret = 's'.repeat(32);
    const auth = createAuthenticator({ type: 'jwt', jwt: { algorithms: ['HS256'], secret, clockSkewMs: 0, from: 'authorization' }, forward: { claimHeaders: [] } }, log, {}, gate);
    const sign = (s: string) => new SignJWT({ sub: 'u', exp: Math.floor(Date.now() / 1000) + 60 }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(s));
    const client = newClient();
    const good = await sign(secret);
    const results = await Promise.all(Array.from({ length: 20 }, () => auth.authenticate(req(client, [['Authorization', `Bearer ${good}`]]))));
    assert.ok(results.every((r) => r.ok));
    for (let i = 0; i < 3; i++) assert.equal((await auth.authenticate(req(client, [['Authorization', `Bearer ${await sign(`${'x'.repeat(31)}${i}`)}`]]))).ok, false);
    assertOutOfAttempts(auth.authenticate(req(client, [['Authorization', `Bearer ${await sign('y'.repeat(32))}`]])));
    auth.close();
  });
});

describe('hash pool', () => {
  it('hashes off the event loop: timers keep firing while a slow bcrypt runs', async () => {
    const pool = new HashPool(1, 4);
    const hash = bcrypt.hashSync('pw', 10);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const started = Date.now();
    const ok = await pool.verify({ kind: 'bcrypt', password: 'pw', hash });
    const took = Date.now() - started;
    clearInterval(timer);
    assert.equal(ok, true);
    // Functional, not a timing bound: on the event loop a bcrypt of cost 10 would allow no tick at all while it runs.
    assert.ok(ticks >= 2, `${ticks} timer ticks during a ${took} ms check`);
    assert.equal(await pool.verify({ kind: 'bcrypt', password: 'px', hash }), false);
  });

  it('bounds the queue: checks beyond it are refused at once as busy', async () => {
    const pool = new HashPool(1, 2);
    const hash = bcrypt.hashSync('pw', 8);
    const outcomes = await Promise.all(Array.from({ length: 6 }, () => pool.verify({ kind: 'bcrypt', password: 'pw', hash })));
    // One running, two queued (the first is taken off the queue at once), the rest refused.
    assert.deepEqual(outcomes, [true, true, true, 'busy', 'busy', 'busy']);
    assert.equal(pool.queued, 0);
  });
});
