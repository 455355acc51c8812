// `balance: least-conn` and the shared per-server counters, measured through
// the real proxy with 2 workers, as the native hot-path issue's acceptance
// asks: a slow server gets clearly fewer requests; /status counts (summed
// over workers) equal the upstream requests the servers really hold open; and
// a worker killed with SIGKILL under load leaves no counts behind.
//
// Scheduling is round-robin here (the primary hands connections to the
// workers in turn), so both workers certainly carry requests in every phase.
import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startSwitchyard, type Switchyard } from '../helpers/switchyard.js';
import { clientAddress, getOnce, mapPool, startLoad, type ShortResponse } from '../helpers/client-pool.js';
import { startIdentityBackends, type IdentityBackend } from '../helpers/identity-backends.js';
import { activeByServer, getStatus, waitForStatus, workersReady, type Status } from '../helpers/admin-status.js';
import { until } from '../helpers/until.js';

const WORKERS = 2;
const SERVERS = 6;
const SLOW_MS = 300;
const PHASE_TIMEOUT = { timeout: 60_000 };

/** Polls `cond` every 5 ms; throws with `what` after timeoutMs. */

const totalOpen = (backends: readonly IdentityBackend[]): number => backends.reduce((n, b) => n + b.open, 0);

function allIdle(s: Status): boolean {
  return s.unresponsiveWorkers.length === 0 && s.upstreams.app!.servers.every((server) => server.active === 0);
}

describe('least-conn with 2 workers', () => {
  let backends: IdentityBackend[];
  let sy: Switchyard;

  before(async () => {
    backends = await startIdentityBackends(SERVERS);
    sy = await startSwitchyard({
      workers: WORKERS,
      scheduling: 'round-robin',
      upstreams: { app: { balance: 'least-conn', servers: backends.map((b) => ({ address: b.address })) } },
      routes: [{ match: { host: '*', path: '/' }, upstream: 'app' }],
    });
    await waitForStatus(sy.adminPort, 'workers ready', (s) => workersReady(s, WORKERS));
  });

  after(async () => {
    await sy?.stop();
    await Promise.all((backends ?? []).map((b) => b.close()));
  });

  test(`a server answering after ${SLOW_MS} ms gets clearly fewer requests under concurrent load`, PHASE_TIMEOUT, async (t: TestContext) => {
    const slow = backends[0]!;
    const fast = backends.slice(1);
    slow.delayMs = SLOW_MS;
    for (const b of backends) b.resetCounts();
    try {
      const answers = await mapPool(3_000, 32, (i) => getOnce(sy.port, clientAddress(i)).then((r) => r.status));
      const fastMean = fast.reduce((n, b) => n + b.served, 0) / fast.length;
      t.diagnostic(`slow server: ${slow.served} requests; fast servers: ${fast.map((b) => b.served).join(' ')} (mean ${fastMean.toFixed(1)})`);
      assert.equal(answers.filter((s) => s !== 200).length, 0, 'every request must be answered 200');
      // Round-robin would give it an equal share; least-conn, about its speed ratio.
      assert.ok(slow.served <= fastMean / 4, `slow server got ${slow.served} requests, fast ones ${fastMean.toFixed(1)} on average`);
    } finally {
      slow.delayMs = 0;
    }
  });

  test('/status active counts equal the upstream requests the servers hold open', PHASE_TIMEOUT, async (t: TestContext) => {
    // Odd, so the two workers get unequal shares: per-worker counts could not even them out by chance.
    const HELD = 15;
    for (const b of backends) b.hold = true;
    const inFlight: Array<Promise<ShortResponse>> = [];
    try {
      for (let i = 0; i < HELD; i++) {
        inFlight.push(getOnce(sy.port, clientAddress(i), '/', 20_000));
        // One at a time: each pick sees every earlier request counted.
        await until(`request ${i + 1} to reach a server`, () => totalOpen(backends) === i + 1, 5_000, 5);
      }
      const s = await getStatus(sy.adminPort);
      const active = activeByServer(s, 'app');
      const held = new Map(backends.map((b) => [b.address, b.open]));
      const statusSum = [...active.values()].reduce((a, b) => a + b, 0);
      t.diagnostic(`held by the servers: ${[...held.values()].join(' ')}; /status active: ${backends.map((b) => active.get(b.address)).join(' ')} (sum ${statusSum})`);
      assert.deepEqual(s.unresponsiveWorkers, [], 'every worker must answer the stats request');
      assert.equal(statusSum, HELD, `/status active sums to ${statusSum}, the servers hold ${HELD}`);
      assert.deepEqual(Object.fromEntries(active), Object.fromEntries(held), 'per-server /status active vs requests held');
      // One process-wide count: least-conn levels the servers whichever worker picked.
      const counts = [...held.values()];
      assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `held requests per server ${counts.join(' ')}: least-conn over both workers' counts keeps them within 1`);
    } finally {
      for (const b of backends) {
        b.hold = false;
        b.release();
      }
      await Promise.allSettled(inFlight);
    }
    const settled = await Promise.allSettled(inFlight);
    assert.equal(settled.filter((r) => r.status === 'rejected' || r.value.status !== 200).length, 0, 'every held request must finish 200 once released');
    await waitForStatus(sy.adminPort, 'every active count back to 0 after release', allIdle, 5_000);
  });

  test('SIGKILL of a worker during load leaves no leaked counts once its replacement is up', PHASE_TIMEOUT, async (t: TestContext) => {
    for (const b of backends) b.delayMs = 50; // requests stay in flight long enough to be cut off
    try {
      const load = startLoad(sy.port, 32);
      let stopped = false;
      try {
        await sleep(700);
        const beforeKill = await getStatus(sy.adminPort);
        const victim = beforeKill.workers.find((w) => w.state === 'ready')!.pid!;
        assert.ok(sy.workerPids().includes(victim), `worker ${victim} from /status is a child of the primary`);
        const activeBefore = [...activeByServer(beforeKill, 'app').values()].reduce((a, b) => a + b, 0);
        process.kill(victim, 'SIGKILL');
        const replaced = await waitForStatus(sy.adminPort, 'a replacement worker ready', (s) => workersReady(s, WORKERS, new Set([victim])), 15_000);
        await sleep(500); // the replacement serves some of the load too
        const result = await load.stop();
        stopped = true;
        t.diagnostic(
          `active before the kill: ${activeBefore}; killed ${victim}; workers now ${replaced.workers.map((w) => w.pid).join(', ')}; ` +
            `requests ok ${result.ok}, failed ${result.failed}`,
        );
      } finally {
        if (!stopped) await load.stop();
      }
      await until('the servers to finish every request', () => totalOpen(backends) === 0, 5_000, 5);
      const idle = await waitForStatus(sy.adminPort, 'every active count back to exactly 0', allIdle, 5_000).catch((err: Error) => err);
      if (idle instanceof Error) {
        const s = await getStatus(sy.adminPort);
        t.diagnostic(`leaked active counts: ${JSON.stringify(Object.fromEntries(activeByServer(s, 'app')))}`);
        throw idle;
      }
    } finally {
      for (const b of backends) b.delayMs = 0;
    }
  });
});
