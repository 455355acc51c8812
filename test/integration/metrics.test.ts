// GET /metrics on the real CLI with two workers: the request counters are
// summed over both workers and match exactly the number of requests sent.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { admin, getStatus, waitForStatus } from '../helpers/admin-status.js';
import { startNamedBackend, type Backend } from '../helpers/backend.js';
import { isAlive, request, sleep, tempDir, type TempDir } from '../helpers/process.js';
import { baseConfig, freePort, startCli, type RunningCli } from '../helpers/switchyard.js';

const N = 200;

/** Sum of every sample of `name` (any labels) in a Prometheus text. */
function sum(text: string, name: string): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

async function metrics(port: number): Promise<string> {
  const res = await admin(port, '/metrics');
  assert.equal(res.status, 200, res.body);
  assert.match(res.headers['content-type'] ?? '', /^text\/plain; version=0\.0\.4/);
  return res.body;
}

/**
 * The CLI with 2 workers in front of one backend, started before the suite's
 * tests and stopped after them. Round-robin scheduling: each request's fresh
 * connection goes to the next worker, so each serves about half and a total
 * of exactly N proves both were summed.
 */
function twoWorkerCli() {
  const ctx = {} as { tmp: TempDir; backend: Backend; cli: RunningCli; proxyPort: number; adminPort: number };
  before(async () => {
    ctx.tmp = await tempDir();
    ctx.backend = await startNamedBackend();
    ctx.proxyPort = await freePort();
    ctx.adminPort = await freePort();
    const file = await ctx.tmp.writeConfig(
      baseConfig({ proxyPort: ctx.proxyPort, adminPort: ctx.adminPort, servers: [ctx.backend.address], workers: 2, scheduling: 'round-robin' }),
    );
    ctx.cli = await startCli(file, { waitFor: [ctx.proxyPort, ctx.adminPort] });
  });
  after(async () => {
    await ctx.cli?.stop();
    await ctx.backend?.close();
    await ctx.tmp?.remove();
  });
  return ctx;
}

describe('metrics', () => {
  const ctx = twoWorkerCli();

  test('without the token: 401', async () => {
    assert.equal((await admin(ctx.adminPort, '/metrics', 'GET', null)).status, 401);
  });

  test('a config without dsr: shows no switchyard_dsr_* series (no forwarder reported down)', async () => {
    assert.doesNotMatch(await metrics(ctx.adminPort), /^switchyard_dsr_/m);
  });

  test(`switchyard_requests_total grows by exactly ${N} for ${N} requests, summed over both workers`, async () => {
    // The start-up probe already sent requests: count from here.
    const before = await metrics(ctx.adminPort);
    const base = sum(before, 'switchyard_requests_total');
    assert.equal(sum(before, 'switchyard_workers'), 2);
    assert.equal(sum(before, 'switchyard_metrics_workers_missing'), 0);

    for (let i = 0; i < N; i++) {
      const res = await request({ port: ctx.proxyPort, path: `/n/${i}` });
      assert.equal(res.status, 200);
    }
    // A worker counts a request when it finishes it, which can be just after the client read the last byte.
    let text = await metrics(ctx.adminPort);
    for (let i = 0; i < 20 && sum(text, 'switchyard_requests_total') - base < N; i++) {
      await sleep(25);
      text = await metrics(ctx.adminPort);
    }
    assert.equal(sum(text, 'switchyard_requests_total') - base, N);
    assert.equal(sum(text, 'switchyard_metrics_workers_missing'), 0);
    const ok = text.split('\n').filter((l) => l.startsWith('switchyard_requests_total{') && l.includes('status_class="2xx"'));
    assert.ok(ok.some((l) => l.includes(`server="${ctx.backend.address}"`)), ok.join('\n'));
    const count = sum(text, 'switchyard_request_duration_seconds_count') - sum(before, 'switchyard_request_duration_seconds_count');
    assert.equal(count, N, 'the latency histogram saw every request');

    // Nothing counted twice or late: the total holds steady.
    await sleep(100);
    assert.equal(sum(await metrics(ctx.adminPort), 'switchyard_requests_total') - base, N);
  });
});

describe('metrics across a reload', () => {
  const ctx = twoWorkerCli();

  test('counters keep the requests of workers a reload replaced (Prometheus sees no reset)', async () => {
    const base = sum(await metrics(ctx.adminPort), 'switchyard_requests_total');
    for (let i = 0; i < N; i++) assert.equal((await request({ port: ctx.proxyPort, path: `/a/${i}` })).status, 200);
    const oldPids = (await getStatus(ctx.adminPort)).workers.map((w) => w.pid);
    const res = await admin(ctx.adminPort, '/reload', 'POST');
    assert.equal(res.status, 200, res.body);
    // Both old workers drained and exited: their counts now live on only in the primary.
    await waitForStatus(ctx.adminPort, 'two new ready workers after the reload', (s) => s.workers.length === 2 && s.workers.every((w) => w.state === 'ready' && !oldPids.includes(w.pid)));
    for (let i = 0; i < 20 && oldPids.some((pid) => pid !== null && isAlive(pid)); i++) await sleep(100);
    for (let i = 0; i < N; i++) assert.equal((await request({ port: ctx.proxyPort, path: `/b/${i}` })).status, 200);
    let total = sum(await metrics(ctx.adminPort), 'switchyard_requests_total') - base;
    for (let i = 0; i < 20 && total < 2 * N; i++) {
      await sleep(25);
      total = sum(await metrics(ctx.adminPort), 'switchyard_requests_total') - base;
    }
    assert.equal(total, 2 * N);
  });
});
