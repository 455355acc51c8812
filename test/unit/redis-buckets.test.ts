// The Redis side of global rate limits (src/gateway/redis-buckets.ts) against
// real redis-servers on free ports: the bucket update is atomic across
// clients, refills on Redis's clock, works over TLS (rediss:// with the CA)
// and with a password, and a wrong password, an unverifiable certificate or a
// dead server make calls fail fast and open the circuit breaker.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { RedisBuckets, type BreakerState } from '../../src/gateway/redis-buckets.js';
import type { RedisConfig } from '../../src/config/types.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

const log = pino({ level: 'silent' });
const servers: RedisServer[] = [];
const clients: RedisBuckets[] = [];
const dir = mkdtempSync(path.join(os.tmpdir(), 'wt-scale-redis-'));

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(servers.map((s) => s.stop()));
  rmSync(dir, { recursive: true, force: true });
});

function client(config: Partial<RedisConfig> & { url: string }, states: BreakerState[] = []): RedisBuckets {
  const c = new RedisBuckets({ timeoutMs: 500, instances: 1, keyPrefix: 'test:', ...config }, log, { onState: (s) => states.push(s), onError: () => {} });
  clients.push(c);
  return c;
}

/** Calls until Redis answers (the client connects in the background), at most 5 s. */
async function firstAnswer(c: RedisBuckets, bucket: string, rate: number, burst: number, want: number) {
  for (let i = 0; i < 100; i++) {
    const r = await c.lease(bucket, rate, burst, want);
    if (r !== undefined) return r;
    await sleep(50);
  }
  assert.fail('no answer from Redis within 5 s');
}

describe('Redis buckets', () => {
  test('atomic: two clients taking one token at a time get exactly the burst', async () => {
    const redis = await startRedis();
    servers.push(redis);
    const [a, b] = [client({ url: redis.url }), client({ url: redis.url })];
    const bucket = a.bucketName('r', 'k');
    assert.equal(bucket, b.bucketName('r', 'k'), 'every instance names a bucket alike');
    assert.match(bucket, /^test:rl:\{[A-Za-z0-9_-]{22}\}$/, 'one hash tag: one slot on Redis Cluster');
    await firstAnswer(a, 'warm', 1, 1, 0);
    await firstAnswer(b, 'warm', 1, 1, 0);
    const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => (i % 2 ? a : b).lease(bucket, 0.001, 50, 1)));
    assert.equal(replies.reduce((n, r) => n + (r?.granted ?? 0), 0), 50);
    const refused = replies.find((r) => r?.granted === 0)!;
    assert.ok(refused.retryAfterMs > 900_000, `the next token is 1000 s away at 0.001/s: ${refused.retryAfterMs} ms`);
  });

  test("refills on Redis's clock; a give-back never overfills", async () => {
    const redis = servers[0]!;
    const c = client({ url: redis.url });
    const bucket = c.bucketName('refill', 'k');
    const first = await firstAnswer(c, bucket, 100, 20, 20);
    assert.equal(first.granted, 20);
    await sleep(300);
    const later = await c.lease(bucket, 100, 20, 20);
    assert.ok(later!.granted >= 15 && later!.granted <= 20, `about 30 refilled in 300 ms, capped at 20: ${later!.granted}`);
    await c.lease(bucket, 100, 20, -1000);
    const full = await c.lease(bucket, 100, 20, 1000);
    assert.equal(full!.granted, 20, 'given back, but never above the burst');
  });

  test('a password: the right one works, a wrong one fails fast and opens the breaker', async () => {
    const redis = await startRedis({ password: 's3cret with spaces' });
    servers.push(redis);
    const good = client({ url: redis.url });
    assert.equal((await firstAnswer(good, 'p', 10, 5, 1)).granted, 1);
    const states: BreakerState[] = [];
    const bad = client({ url: redis.url.replace('s3cret', 'wrong') }, states);
    for (let i = 0; i < 5; i++) assert.equal(await bad.lease('p', 10, 5, 1), undefined);
    assert.equal(bad.breaker, 'open');
    assert.deepEqual(states, ['open']);
    assert.equal(bad.callable(), false, 'no calls while open');
  });

  test('TLS: rediss:// with the CA works; without it the certificate is refused', async () => {
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const redis = await startRedis({ tls: { certFile: cert, keyFile: key } });
    servers.push(redis);
    assert.match(redis.url, /^rediss:/);
    const trusted = client({ url: redis.url, caPem: readFileSync(cert, 'utf8') });
    assert.equal((await firstAnswer(trusted, 't', 10, 5, 2)).granted, 2);
    const untrusted = client({ url: redis.url });
    for (let i = 0; i < 5; i++) assert.equal(await untrusted.lease('t', 10, 5, 1), undefined, 'a self-signed certificate without its CA is not trusted');
    assert.equal(untrusted.breaker, 'open');
  });
});
