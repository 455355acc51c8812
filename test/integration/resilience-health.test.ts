// Issue 4 acceptance, black-box against the real CLI: what clients see while
// servers die, come back, hang or answer too slowly. Active health checks,
// retries, slow start, response timeouts and the 503 of an all-down upstream.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { getStatus, waitForStatus, workersReady, type Status } from '../helpers/admin-status.js';
import { startRawBackend, type RawBackend } from '../helpers/backend.js';
import { startKillableBackend, type KillableBackend } from '../helpers/killable-backend.js';
import { describeLoad, startLoad } from '../helpers/load.js';
import { request, sleep } from '../helpers/process.js';
import { startSwitchyard, withOutput, type Switchyard } from '../helpers/switchyard.js';

function healthOf(s: Status, address: string): boolean | undefined {
  return s.upstreams.app?.servers.find((server) => server.address === address)?.healthy;
}

/**
 * Polls /status every 25 ms; resolves Date.now() when `address` first shows
 * `healthy`, or throws after timeoutMs. A refused connection is retried: the
 * admin API listens only once the first workers are ready.
 */
async function whenHealth(sy: Switchyard, address: string, healthy: boolean, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last: Status | undefined;
  while (Date.now() < deadline) {
    try {
      last = await getStatus(sy.adminPort);
      if (healthOf(last, address) === healthy) return Date.now();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ECONNREFUSED') throw err;
    }
    await sleep(25);
  }
  throw new Error(`${address} not healthy:${healthy} within ${timeoutMs} ms; last upstream status: ${JSON.stringify(last?.upstreams.app)}`);
}

/** Start-up done: both workers ready (a booting worker competes for the 2 cores and skews timings). */
async function started(sy: Switchyard): Promise<void> {
  await waitForStatus(sy.adminPort, 'both workers ready', (s) => workersReady(s, 2));
}

describe('a server dies and comes back under load', () => {
  const INTERVAL_MS = 500;
  const FALL = 3;
  const RISE = 2;
  const SLOW_START_MS = 4000;
  let backends: KillableBackend[] = [];
  let sy: Switchyard | undefined;

  before(async () => {
    backends = await Promise.all([0, 1, 2].map(() => startKillableBackend()));
    sy = await startSwitchyard({
      upstreams: {
        app: {
          balance: 'round-robin',
          servers: backends.map((b) => ({ address: b.address })),
          health: { path: '/healthz', interval: `${INTERVAL_MS}ms`, timeout: '250ms', rise: RISE, fall: FALL, slow_start: `${SLOW_START_MS}ms` },
          retries: 1,
        },
      },
      routes: [{ match: { host: '*', path: '/' }, upstream: 'app' }],
    });
    await started(sy);
  });
  after(async () => {
    await sy?.stop();
    await Promise.all(backends.map((b) => b.close()));
  });

  test(
    `100 connections: killing one of 3 servers fails no request, it is marked down within interval x fall + 1 s, ` +
      `and after a restart it is marked up and its share ramps up over slow_start`,
    { timeout: 40_000 },
    () =>
      withOutput(sy, async () => {
        const victim = backends[1]!;
        const load = startLoad({ port: sy!.port, connections: 100, maxDurationMs: 30_000 });
        try {
          await sleep(1500);
          const warm = Date.now();
          await sleep(500);
          for (const b of backends) assert.ok(b.countBetween(warm) > 0, `${b.address} got no request in the warm-up`);

          const killedAt = Date.now();
          await victim.kill();
          const downAt = await whenHealth(sy!, victim.address, false, 8000);
          const detectionMs = downAt - killedAt;
          const failedAtKill = load.failed;
          await sleep(500);

          const restartedAt = Date.now();
          await victim.restart();
          const upAt = await whenHealth(sy!, victim.address, true, 8000);
          await sleep(SLOW_START_MS + 1000);
          const result = await load.stop();

          // Share of the victim's traffic in 1 s windows after it was marked up.
          const share = (from: number): number => {
            const mine = victim.countBetween(from, from + 1000);
            const all = backends.reduce((n, b) => n + b.countBetween(from, from + 1000), 0);
            return all === 0 ? 0 : mine / all;
          };
          const shares = [0, 1000, 2000, 3000, 4000].map((offset) => Number(share(upAt + offset).toFixed(3)));
          const measured =
            `detection ${detectionMs} ms (bound ${INTERVAL_MS * FALL + 1000}), failed at detection ${failedAtKill}, ` +
            `marked up ${upAt - restartedAt} ms after restart, victim share per second after up ${JSON.stringify(shares)}; load: ${describeLoad(result)}`;
          console.log(`# kill/restart: ${measured}`);

          // Every broken promise at once, so one run tells the whole story.
          const problems: string[] = [];
          if (result.failed !== 0) problems.push(`${result.failed} requests failed`);
          if (detectionMs > INTERVAL_MS * FALL + 1000) problems.push('marked down later than interval x fall + 1 s');
          if (victim.countBetween(upAt) === 0) problems.push('the restarted server got no traffic back');
          // The weight ramps from 10% to 100% over slow_start: the first second after recovery must carry
          // clearly less than the last, which must be close to a full third.
          if (shares[4]! < 0.2) problems.push('the restarted server did not get back to a full share');
          if (shares[0]! >= 0.6 * shares[4]!) problems.push('no slow start: the restarted server took its full share at once');
          assert.deepEqual(problems, [], measured);
        } finally {
          await load.stop();
        }
      }),
  );
});

describe('response timeout', () => {
  let backends: KillableBackend[] = [];
  let sy: Switchyard | undefined;

  before(async () => {
    backends = await Promise.all([0, 1, 2].map(() => startKillableBackend()));
    backends[0]!.delayMs = 5000;
    sy = await startSwitchyard({
      upstreams: {
        // retries: 0, so the timeout itself is what the client sees.
        app: { balance: 'round-robin', servers: backends.map((b) => ({ address: b.address })), retries: 0, timeouts: { response: '1s' } },
      },
      routes: [{ match: { host: '*', path: '/' }, upstream: 'app' }],
    });
    await started(sy);
  });
  after(async () => {
    await sy?.stop();
    await Promise.all(backends.map((b) => b.close()));
  });

  test('one server answering after 5 s with timeouts.response 1s: 504 within 1.5 s; the others answer 200 fast meanwhile', { timeout: 20_000 }, () =>
    withOutput(sy, async () => {
      const slow = backends[0]!;
      // One request every 50 ms for 1.2 s, each on its own connection, so the slow ones overlap the fast ones.
      const pending: Array<Promise<{ path: string; status: number | string; ms: number }>> = [];
      for (let i = 0; i < 24; i++) {
        const path = `/t/${i}`;
        const t0 = Date.now();
        pending.push(
          request({ port: sy!.port, path, timeoutMs: 8000 }).then(
            (res) => ({ path, status: res.status, ms: Date.now() - t0 }),
            (err: Error) => ({ path, status: err.message, ms: Date.now() - t0 }),
          ),
        );
        await sleep(50);
      }
      const results = await Promise.all(pending);
      const toSlow = results.filter((r) => slow.paths.includes(r.path));
      const toOthers = results.filter((r) => !slow.paths.includes(r.path));
      const summary = JSON.stringify({ slow: toSlow, others: toOthers });
      console.log(`# timeout: slow ${toSlow.map((r) => `${r.status}/${r.ms}ms`).join(' ')}; others max ${Math.max(...toOthers.map((r) => r.ms))} ms`);

      assert.ok(toSlow.length >= 4 && toOthers.length >= 8, `round-robin should spread 24 requests over 3 servers: ${summary}`);
      for (const r of toSlow) {
        assert.equal(r.status, 504, `request to the slow server: ${summary}`);
        // The lower bound allows the data path's 100 ms coarse clock (src/proxy/coarse-clock.ts).
        assert.ok(r.ms >= 900 && r.ms <= 1500, `504 after ${r.ms} ms, not within 1-1.5 s: ${summary}`);
      }
      for (const r of toOthers) {
        assert.equal(r.status, 200, `request to a healthy server: ${summary}`);
        assert.ok(r.ms < 250, `a healthy server's request took ${r.ms} ms while another server was slow: ${summary}`);
      }
    }),
  );
});

describe('every server down', () => {
  let refusing: KillableBackend | undefined;
  let hanging: RawBackend | undefined;
  let sy: Switchyard | undefined;

  before(async () => {
    refusing = await startKillableBackend();
    // Accepts connections and never answers: forwarding to it would hang.
    hanging = await startRawBackend(() => {});
    sy = await startSwitchyard({
      upstreams: {
        app: {
          servers: [{ address: refusing.address }, { address: hanging.address }],
          health: { path: '/healthz', interval: '200ms', timeout: '100ms', rise: 2, fall: 2 },
          timeouts: { connect: '2s', response: '5s' },
        },
      },
      routes: [{ match: { host: '*', path: '/' }, upstream: 'app' }],
    });
    await started(sy);
  });
  after(async () => {
    await sy?.stop();
    await refusing?.close();
    await hanging?.close();
  });

  test('once health checks marked them down (one refusing, one hanging), requests get 503 within 100 ms', { timeout: 20_000 }, () =>
    withOutput(sy, async () => {
      await refusing!.kill();
      await whenHealth(sy!, refusing!.address, false, 5000);
      await whenHealth(sy!, hanging!.address, false, 5000);
      const latencies: number[] = [];
      for (let i = 0; i < 20; i++) {
        const t0 = Date.now();
        const res = await request({ port: sy!.port, path: `/down/${i}`, timeoutMs: 6000 });
        latencies.push(Date.now() - t0);
        assert.equal(res.status, 503, `request ${i}: ${res.status} ${res.body}`);
      }
      console.log(`# all down: 503 latencies max ${Math.max(...latencies)} ms, all ${JSON.stringify(latencies)}`);
      assert.ok(Math.max(...latencies) < 100, `503 latencies (ms): ${JSON.stringify(latencies)}`);
    }),
  );
});
