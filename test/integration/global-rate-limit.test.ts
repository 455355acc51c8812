// Issue 14, global rate limits: two real Switchyard instances (2 workers
// each, their own ports and shared-memory segments) share one real
// redis-server on a free port. One key limited to 100/s burst 20 and hammered
// through both instances for 10 s is admitted 20 + 100 x T times within the
// stated bound (workers x lease size, README), not twice that. Then Redis is
// frozen (SIGSTOP: calls time out), killed (SIGKILL: connections refused) and
// started again: each route's fail mode (open, closed, local) answers as
// configured, requests never hang past the Redis timeout, the log says when
// each worker's circuit opened and closed, and once Redis is back its buckets
// decide again without a restart.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { startBackend, type Backend } from '../helpers/backend.js';
import { idealBucketRange, logLines, metricsText, metricValue, waitWorkersReady } from '../helpers/gateway.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startSwitchyard, type Switchyard } from '../helpers/switchyard.js';

const RATE = 100;
const BURST = 20;
const LOAD_MS = 10_000;
const WORKERS = 2;
const INSTANCES = 2;
/** leaseSize(100, 20) in src/gateway/global-rate-limit.ts: min(burst / 20, rate / 20), at least 1. */
const LEASE = 1;
/** The stated bound: tokens that can sit in leases, one lease per worker per instance. */
const BOUND = WORKERS * INSTANCES * LEASE;
/** Where the window starts and ends at Redis versus at the client: a request in flight at either end. */
const TIMING_SLACK = RATE * 0.1;

interface LaneResult {
  statuses: Record<string, number>;
  /** performance.now() of every request as it was sent. */
  sentAt: number[];
  first: number;
  last: number;
  /** performance.now() of every answer (or error). */
  answeredAt: number[];
  /** Slowest answer, ms. */
  slowestMs: number;
}

/** `connections` keep-alive lanes per instance sending GET `path` back to back until `ms` have passed. */
async function hammer(instances: readonly Switchyard[], path: string, connections: number, ms: number): Promise<LaneResult> {
  const pools = instances.map((sy) => new Pool(`http://127.0.0.1:${sy.port}`, { connections, pipelining: 1 }));
  const r: LaneResult = { statuses: {}, sentAt: [], answeredAt: [], first: Infinity, last: 0, slowestMs: 0 };
  const deadline = Date.now() + ms;
  const lane = async (pool: Pool): Promise<void> => {
    while (Date.now() < deadline) {
      const sent = performance.now();
      r.sentAt.push(sent);
      r.first = Math.min(r.first, sent);
      r.last = Math.max(r.last, sent);
      try {
        const res = await pool.request({ path, method: 'GET', headersTimeout: 5000, bodyTimeout: 5000 });
        await res.body.dump();
        r.statuses[res.statusCode] = (r.statuses[res.statusCode] ?? 0) + 1;
      } catch (err) {
        const code = (err as { code?: string }).code ?? String(err);
        r.statuses[code] = (r.statuses[code] ?? 0) + 1;
      }
      r.answeredAt.push(performance.now());
      r.slowestMs = Math.max(r.slowestMs, performance.now() - sent);
    }
  };
  await Promise.all(pools.flatMap((pool) => Array.from({ length: connections }, () => lane(pool))));
  await Promise.all(pools.map((p) => p.destroy()));
  return r;
}

/** `n` requests, `concurrency` at a time, to one instance; status counts and the slowest answer. */
async function burst(sy: Switchyard, path: string, n: number, concurrency = 8): Promise<LaneResult> {
  const pool = new Pool(`http://127.0.0.1:${sy.port}`, { connections: concurrency, pipelining: 1 });
  const r: LaneResult = { statuses: {}, sentAt: [], answeredAt: [], first: Infinity, last: 0, slowestMs: 0 };
  let left = n;
  const lane = async (): Promise<void> => {
    while (left-- > 0) {
      const sent = performance.now();
      r.sentAt.push(sent);
      r.first = Math.min(r.first, sent);
      r.last = Math.max(r.last, sent);
      const res = await pool.request({ path, method: 'GET', headersTimeout: 5000, bodyTimeout: 5000 });
      await res.body.dump();
      r.statuses[res.statusCode] = (r.statuses[res.statusCode] ?? 0) + 1;
      r.slowestMs = Math.max(r.slowestMs, performance.now() - sent);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  await pool.destroy();
  return r;
}

function routes(fail: string): Record<string, unknown> {
  return { name: `fail-${fail}`, match: { host: '*', path: `/${fail}` }, upstream: 'app', rate_limit: { rate: `${RATE}/s`, burst: BURST, scope: 'global', fail } };
}

async function startPair(redis: RedisServer, backend: Backend): Promise<Switchyard[]> {
  const config = {
    workers: WORKERS,
    // Both workers of each instance take connections.
    scheduling: 'round-robin',
    logging: { level: 'info', access: false },
    redis: { url: redis.url, timeout: '100ms', instances: INSTANCES },
    upstreams: { app: { servers: [{ address: backend.address }], retries: 0 } },
    routes: [
      { name: 'accuracy', match: { host: '*', path: '/accuracy' }, upstream: 'app', rate_limit: { rate: `${RATE}/s`, burst: BURST, scope: 'global' } },
      routes('open'),
      routes('closed'),
      routes('local'),
      { name: 'weird', match: { host: '*', path: '/weird' }, upstream: 'app', rate_limit: { rate: '1/m', burst: 2, scope: 'global', key: 'header:X-Tenant' } },
    ],
  };
  const pair = await Promise.all([startSwitchyard(config, { outputBytes: 16 << 20 }), startSwitchyard(config, { outputBytes: 16 << 20 })]);
  await Promise.all(pair.map((sy) => waitWorkersReady(sy.adminPort, WORKERS)));
  return pair;
}

describe('global rate limits: two instances sharing one redis-server', () => {
  let redis: RedisServer;
  let backend: Backend;
  let pair: Switchyard[];

  before(async () => {
    redis = await startRedis();
    backend = await startBackend();
    pair = await startPair(redis, backend);
  });

  after(async () => {
    await Promise.all((pair ?? []).map((sy) => sy.stop()));
    await backend?.close();
    await redis?.stop();
  });

  test(`${RATE}/s burst ${BURST} over ${LOAD_MS / 1000} s through both instances: ${BURST} + ${RATE} x T within ±${BOUND} (+ timing)`, async (t) => {
    const r = await hammer(pair, '/accuracy', 4, LOAD_MS);
    const reached = backend.requests.filter((q) => q.url === '/accuracy').length;
    const seconds = (r.last - r.first) / 1000;
    const expected = BURST + RATE * seconds;
    const ideal = idealBucketRange(r.sentAt, r.answeredAt, RATE, BURST);
    t.diagnostic(`an exact bucket over the send / answer times admits ${ideal.low}..${ideal.high}; longest pause ${ideal.longestPauseMs} ms`);
    const summary = `upstream saw ${reached} over ${seconds.toFixed(2)} s (expected ${expected.toFixed(0)}); statuses ${JSON.stringify(r.statuses)}`;
    const outcomes = await Promise.all(pair.map(async (sy) => (await metricsText(sy.adminPort)).split('\n').filter((l) => l.startsWith('switchyard_global') || l.startsWith('switchyard_redis')).join('; ')));
    t.diagnostic(`metrics: ${outcomes.join(' | ')}`);
    t.diagnostic(`global limit accuracy: ${summary}; error ${(reached - expected).toFixed(1)} requests (${(((reached - expected) / expected) * 100).toFixed(2)} %), stated bound ±${BOUND}`);
    // A loaded machine pauses the client or the proxies for longer than burst / rate, and a real bucket loses what it
    // cannot hold meanwhile: the exact bucket over the times the requests really took (sent .. answered) is the
    // reference; on a quiet machine it is 20 + 100 x T.
    const slack = BOUND + TIMING_SLACK;
    assert.ok(reached >= ideal.low - slack && reached <= ideal.high + slack, `${summary}; exact bucket ${ideal.low}..${ideal.high}: want within ±${slack} of it`);
    const most = BURST + (RATE * ideal.windowMs) / 1000;
    assert.ok(reached <= most + slack, `${summary}: never more than ${BURST} + ${RATE} x ${ideal.windowMs.toFixed(0)} ms + ${slack}, whatever the timing`);
    assert.equal(r.statuses['200'], reached, 'every 200 was one upstream request');
    // The load must outrun the bucket at times, or nothing is measured (a machine this busy slows the client too).
    assert.ok((r.statuses['429'] ?? 0) > 0 && ideal.high < r.sentAt.length, `the load must exceed the limit: ${summary}`);
    assert.deepEqual(Object.keys(r.statuses).sort(), ['200', '429'], summary);
    // Both instances admitted a share: the bucket is one, not one each.
    const text = await Promise.all(pair.map((sy) => metricsText(sy.adminPort)));
    const byInstance = text.map((m) => metricValue(m, 'switchyard_global_rate_limit_decisions_total', { route: 'accuracy', outcome: 'redis' }) ?? 0);
    assert.ok(byInstance.every((n) => n > 100), `both instances decided through Redis: ${byInstance.join(', ')}`);
    // Fewer Redis calls than requests decided would mean leases; at 100/s burst 20 a lease is one token, so about one call per admitted request.
    const calls = text.map((m) => metricValue(m, 'switchyard_redis_calls_total') ?? 0).reduce((a, b) => a + b, 0);
    assert.ok(calls < byInstance.reduce((a, b) => a + b, 0), `refusals are answered locally until the bucket refills: ${calls} calls`);
  });

  test('a key with Redis syntax, braces and 4 KB of bytes is just a key: its own bucket, limited', async () => {
    const send = async (tenant: string): Promise<number> => {
      const pool = new Pool(`http://127.0.0.1:${pair[0]!.port}`);
      const res = await pool.request({ path: '/weird', method: 'GET', headers: { 'x-tenant': tenant } });
      await res.body.dump();
      await pool.destroy();
      return res.statusCode;
    };
    const nasty = ['}{* FLUSHALL', 'a'.repeat(4096), '{accuracy}', "'; redis.call('FLUSHALL') --", '\u00ff\u00fe'];
    for (const key of nasty) {
      assert.deepEqual([await send(key), await send(key), await send(key)], [200, 200, 429], `burst 2 for ${JSON.stringify(key.slice(0, 30))}`);
    }
    const keys = await redis.command('DBSIZE');
    assert.match(keys, /^:\d+\r\n$/);
    assert.ok(Number(keys.slice(1)) >= nasty.length, `one bucket per key in Redis (${keys.trim()}), nothing flushed`);
  });

  test('Redis frozen, then killed, then back: open admits, closed refuses, local uses rate / instances; picked up again', async (t) => {
    const [a] = pair as [Switchyard, Switchyard];
    // Frozen: calls time out (redis.timeout 100ms) and the breaker opens; no request waits much longer.
    process.kill(redisPid(redis), 'SIGSTOP');
    try {
      const open = await burst(a, '/open', 200);
      const closed = await burst(a, '/closed', 100);
      t.diagnostic(`frozen: open ${JSON.stringify(open.statuses)} slowest ${open.slowestMs.toFixed(0)} ms; closed ${JSON.stringify(closed.statuses)}`);
      assert.deepEqual(open.statuses, { 200: 200 }, 'fail: open admits everything while Redis cannot answer');
      assert.deepEqual(closed.statuses, { 429: 100 }, 'fail: closed refuses everything while Redis cannot answer');
      assert.ok(open.slowestMs < 1500, `no request waits for a frozen Redis beyond its timeout: slowest ${open.slowestMs} ms`);
    } finally {
      process.kill(redisPid(redis), 'SIGCONT');
    }
    await redis.kill();
    await sleep(300);
    // local: this instance's own bucket at rate / instances, burst / instances: 10 + 50/s.
    const local = await burst(a, '/local', 300, 4);
    const seconds = (local.last - local.first) / 1000;
    const want = BURST / INSTANCES + (RATE / INSTANCES) * seconds;
    t.diagnostic(`killed: local admitted ${local.statuses['200'] ?? 0} in ${seconds.toFixed(2)} s (want ${want.toFixed(0)})`);
    assert.ok(Math.abs((local.statuses['200'] ?? 0) - want) <= 5 + (RATE / INSTANCES) * 0.1, `fail: local admits ${want.toFixed(0)}: ${JSON.stringify(local.statuses)}`);
    const closedKilled = await burst(a, '/closed', 20);
    assert.deepEqual(closedKilled.statuses, { 429: 20 }, 'still closed with Redis gone');

    const m = await metricsText(a.adminPort);
    assert.ok((metricValue(m, 'switchyard_global_rate_limit_decisions_total', { route: 'fail-open', outcome: 'fail-open' }) ?? 0) >= 190, 'fail-open decisions counted');
    assert.ok((metricValue(m, 'switchyard_global_rate_limit_decisions_total', { route: 'fail-local', outcome: 'fail-local' }) ?? 0) >= 290, 'fail-local decisions counted');
    assert.equal(metricValue(m, 'switchyard_redis_circuit_open'), WORKERS, 'both workers report an open circuit');

    // Back, on the same port, empty: picked up by the next probe (at most 2 s), without a restart.
    await redis.restart();
    const deadline = Date.now() + 10_000;
    let closedAgain: LaneResult | undefined;
    while (Date.now() < deadline) {
      closedAgain = await burst(a, '/closed', 4, 1);
      if (closedAgain.statuses['200'] === 4) break;
      await sleep(200);
    }
    assert.deepEqual(closedAgain?.statuses, { 200: 4 }, 'fail: closed route admits again once Redis answers');
    // Both workers' breakers close (each on its next request after a probe), and Redis's buckets decide again.
    const decidedByRedis = async () => metricValue(await metricsText(a.adminPort), 'switchyard_global_rate_limit_decisions_total', { route: 'fail-open', outcome: 'redis' }) ?? 0;
    const redisBefore = await decidedByRedis();
    let open: number | undefined;
    for (let i = 0; i < 50; i++) {
      await burst(a, '/open', 8, 4);
      open = metricValue(await metricsText(a.adminPort), 'switchyard_redis_circuit_open');
      if (open === 0) break;
      await sleep(200);
    }
    assert.equal(open, 0, 'every worker closed its breaker once Redis answered');
    assert.ok((await decidedByRedis()) > redisBefore, "the fail-open route's requests are decided by Redis's bucket again");
    const lines = logLines(a.output());
    const opened = lines.filter((l) => String(l.msg).startsWith('redis unavailable: circuit open'));
    const closedLog = lines.filter((l) => String(l.msg).startsWith('redis available again'));
    assert.ok(opened.length >= 1 && opened.every((l) => typeof l.redis === 'string' && typeof l.error === 'string'), `a warning per worker when its circuit opened: ${JSON.stringify(opened)}; output ${a.output().length} chars, ends ${a.output().slice(-2000)}`);
    assert.ok(closedLog.length >= 1, 'an info line when a circuit closed again');
    assert.ok(
      lines.some((l) => l.status === 429 && l.detail === 'global rate limit unavailable (redis cannot answer) and the route fails closed'),
      'a fail-closed refusal says why in the log',
    );
  });
});

/** The running redis-server's pid. */
function redisPid(redis: RedisServer): number {
  if (redis.pid === undefined) throw new Error('redis-server is not running');
  return redis.pid;
}
