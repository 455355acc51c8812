// Issue 4 acceptance, black-box against the real CLI: passive outlier
// detection. A server answering 5xx to everything (no active health check to
// catch it) is ejected after `consecutive_failures`, for a period that grows
// on repeats, and never more than `max_ejection_percent` of an upstream is out.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { admin, waitForStatus, workersReady } from '../helpers/admin-status.js';
import { startKillableBackend, type KillableBackend } from '../helpers/killable-backend.js';
import { request, sleep } from '../helpers/process.js';
import { startSwitchyard, withOutput, type Switchyard } from '../helpers/switchyard.js';

const FAILURES = 5;
const BASE_EJECTION_MS = 2000;

/** `count` sequential GETs on fresh connections; the statuses seen. Sequential, so failure counts are exact. */
async function send(sy: Switchyard, count: number, tag: string): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < count; i++) statuses.push((await request({ port: sy.port, path: `/${tag}/${i}` })).status);
  return statuses;
}

async function startUpstream(servers: KillableBackend[], maxEjectionPercent: number, baseEjection: string): Promise<Switchyard> {
  const sy = await startSwitchyard({
    upstreams: {
      app: {
        balance: 'round-robin',
        servers: servers.map((s) => ({ address: s.address })),
        outlier: { consecutive_failures: FAILURES, base_ejection: baseEjection, max_ejection_percent: maxEjectionPercent },
      },
    },
    routes: [{ match: { host: '*', path: '/' }, upstream: 'app' }],
  });
  await waitForStatus(sy.adminPort, 'both workers ready', (s) => workersReady(s, 2));
  return sy;
}

describe('outlier ejection of a server answering 500', () => {
  let servers: KillableBackend[] = [];
  let sy: Switchyard | undefined;

  before(async () => {
    servers = await Promise.all([0, 1, 2, 3].map(() => startKillableBackend()));
    servers[0]!.status = 500;
    sy = await startUpstream(servers, 50, `${BASE_EJECTION_MS}ms`);
  });
  after(async () => {
    await sy?.stop();
    await Promise.all(servers.map((s) => s.close()));
  });

  test(`ejected after ${FAILURES} consecutive 500s; avoided for base_ejection; back after it; ejected longer the second time`, { timeout: 30_000 }, () =>
    withOutput(sy, async () => {
      const bad = servers[0]!;
      const log: string[] = [];
      // 1. Until ejected: the bad server gets every 4th request, so 40 give it 10 chances.
      await send(sy!, 40, 'a');
      const ejectedAt = Date.now();
      const firstRound = bad.arrivals.length;
      log.push(`bad server got ${firstRound} of 40 requests before ejection`);

      // 2. Within base_ejection: avoided, and every request succeeds.
      const during = await send(sy!, 40, 'b');
      const duringMs = Date.now() - ejectedAt;
      const duringToBad = bad.arrivals.length - firstRound;
      log.push(`then ${duringToBad} of 40 in the next ${duringMs} ms`);
      const nonOk = during.filter((s) => s !== 200).length;

      // 3. After base_ejection: tried again, and ejected again after FAILURES more.
      await sleep(Math.max(0, ejectedAt + BASE_EJECTION_MS + 500 - Date.now()));
      const beforeReturn = bad.arrivals.length;
      await send(sy!, 40, 'c');
      const reejectedAt = Date.now();
      const returned = bad.arrivals.length - beforeReturn;
      log.push(`after base_ejection it got ${returned} of 40`);

      // 4. The second ejection lasts longer than base_ejection (it doubles): still avoided after it.
      await sleep(Math.max(0, reejectedAt + BASE_EJECTION_MS + 500 - Date.now()));
      const beforeSecond = bad.arrivals.length;
      await send(sy!, 40, 'd');
      const secondWindow = bad.arrivals.length - beforeSecond;
      log.push(`${BASE_EJECTION_MS + 500} ms into the second ejection it got ${secondWindow} of 40`);

      const metrics = await admin(sy!.adminPort, '/metrics');
      const ejections = metrics.body
        .split('\n')
        .filter((l) => l.startsWith('switchyard_upstream_ejections_total{') && l.includes(bad.address))
        .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
      log.push(`switchyard_upstream_ejections_total for it: ${ejections}`);
      const measured = log.join('; ');
      console.log(`# outlier: ${measured}`);

      const problems: string[] = [];
      if (firstRound < FAILURES || firstRound > FAILURES + 1) problems.push(`not ejected after exactly ${FAILURES} consecutive failures`);
      if (duringMs >= BASE_EJECTION_MS) problems.push('inconclusive: 40 requests took longer than base_ejection');
      if (duringToBad !== 0) problems.push('not avoided while ejected');
      if (nonOk !== 0) problems.push(`${nonOk} of 40 requests failed while the bad server was ejected`);
      if (returned === 0) problems.push('never tried again after base_ejection');
      if (returned > FAILURES + 1) problems.push(`not ejected again after ${FAILURES} more failures`);
      if (secondWindow !== 0) problems.push('the second ejection was not longer than base_ejection');
      if (ejections < 2) problems.push('ejections not counted in /metrics');
      assert.deepEqual(problems, [], measured);
    }),
  );
});

describe('max_ejection_percent', () => {
  let servers: KillableBackend[] = [];
  let sy: Switchyard | undefined;

  before(async () => {
    servers = await Promise.all([0, 1, 2, 3].map(() => startKillableBackend()));
    for (const s of servers.slice(0, 3)) s.status = 500;
    // A long ejection, so none expires during the test.
    sy = await startUpstream(servers, 50, '30s');
  });
  after(async () => {
    await sy?.stop();
    await Promise.all(servers.map((s) => s.close()));
  });

  test('3 of 4 servers answering 500 with max_ejection_percent 50: exactly 2 ejected, the rest keeps serving', { timeout: 30_000 }, () =>
    withOutput(sy, async () => {
      await send(sy!, 80, 'warm');
      const counts = servers.map((s) => s.arrivals.length);
      await send(sy!, 40, 'steady');
      const steady = servers.map((s, i) => s.arrivals.length - counts[i]!);
      const measured = `requests per server (3 bad, then the good one) while warming ${JSON.stringify(counts)}, in the next 40 ${JSON.stringify(steady)}`;
      console.log(`# max_ejection_percent: ${measured}`);
      const ejected = steady.filter((n) => n === 0).length;
      assert.ok(ejected <= 2, `more than 50% of the upstream ejected: ${measured}`);
      assert.equal(ejected, 2, `expected 2 of the 3 failing servers ejected: ${measured}`);
      assert.ok(steady[3]! > 0, `the healthy server got no traffic: ${measured}`);
    }),
  );
});
