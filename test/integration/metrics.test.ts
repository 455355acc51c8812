// GET /metrics on the real CLI with two workers: the request counters are
// summed over both workers and match exactly the number of requests sent.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  admin,
  baseConfig,
  freePort,
  isAlive,
  request,
  sleep,
  startBackend,
  startCli,
  status,
  tempDir,
  waitForStatus,
  type Backend,
  type RunningCli,
  type TempDir,
} from '../helpers/process.js';

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

describe('metrics', () => {
  let tmp: TempDir;
  let backend: Backend;
  let cli: RunningCli;
  let proxyPort: number;
  let adminPort: number;

  before(async () => {
    tmp = await tempDir();
    backend = await startBackend();
    proxyPort = await freePort();
    adminPort = await freePort();
    // round-robin scheduling: each request's fresh connection goes to the next worker, so each serves
    // about half and a total of exactly N proves both were summed.
    const file = await tmp.writeConfig(baseConfig({ proxyPort, adminPort, servers: [backend.address], workers: 2, scheduling: 'round-robin' }));
    cli = await startCli(file, { waitFor: [proxyPort, adminPort] });
  });
  after(async () => {
    await cli?.stop();
    await backend?.close();
    await tmp?.remove();
  });

  test('without the token: 401', async () => {
    assert.equal((await admin(adminPort, '/metrics', 'GET', null)).status, 401);
  });

  test(`switchyard_requests_total grows by exactly ${N} for ${N} requests, summed over both workers`, async () => {
    // The start-up probe already sent requests: count from here.
    const before = await metrics(adminPort);
    const base = sum(before, 'switchyard_requests_total');
    assert.equal(sum(before, 'switchyard_workers'), 2);
    assert.equal(sum(before, 'switchyard_metrics_workers_missing'), 0);

    for (let i = 0; i < N; i++) {
      const res = await request({ port: proxyPort, path: `/n/${i}` });
      assert.equal(res.status, 200);
    }
    // A worker counts a request when it finishes it, which can be just after the client read the last byte.
    let text = await metrics(adminPort);
    for (let i = 0; i < 20 && sum(text, 'switchyard_requests_total') - base < N; i++) {
      await sleep(25);
      text = await metrics(adminPort);
    }
    assert.equal(sum(text, 'switchyard_requests_total') - base, N);
    assert.equal(sum(text, 'switchyard_metrics_workers_missing'), 0);
    const ok = text.split('\n').filter((l) => l.startsWith('switchyard_requests_total{') && l.includes('status_class="2xx"'));
    assert.ok(ok.some((l) => l.includes(`server="${backend.address}"`)), ok.join('\n'));
    const count = sum(text, 'switchyard_request_duration_seconds_count') - sum(before, 'switchyard_request_duration_seconds_count');
    assert.equal(count, N, 'the latency histogram saw every request');

    // Nothing counted twice or late: the total holds steady.
    await sleep(100);
    assert.equal(sum(await metrics(adminPort), 'switchyard_requests_total') - base, N);
  });
});

describe('metrics across a reload', () => {
  let tmp: TempDir;
  let backend: Backend;
  let cli: RunningCli;
  let proxyPort: number;
  let adminPort: number;

  before(async () => {
    tmp = await tempDir();
    backend = await startBackend();
    proxyPort = await freePort();
    adminPort = await freePort();
    const file = await tmp.writeConfig(baseConfig({ proxyPort, adminPort, servers: [backend.address], workers: 2, scheduling: 'round-robin' }));
    cli = await startCli(file, { waitFor: [proxyPort, adminPort] });
  });
  after(async () => {
    await cli?.stop();
    await backend?.close();
    await tmp?.remove();
  });

  test('counters keep the requests of workers a reload replaced (Prometheus sees no reset)', async () => {
    const base = sum(await metrics(adminPort), 'switchyard_requests_total');
    for (let i = 0; i < N; i++) assert.equal((await request({ port: proxyPort, path: `/a/${i}` })).status, 200);
    const oldPids = (await status(adminPort)).workers.map((w) => w.pid);
    const res = await admin(adminPort, '/reload', 'POST');
    assert.equal(res.status, 200, res.body);
    // Both old workers drained and exited: their counts now live on only in the primary.
    await waitForStatus(adminPort, (s) => s.workers.length === 2 && s.workers.every((w) => w.state === 'ready' && !oldPids.includes(w.pid)));
    for (let i = 0; i < 20 && oldPids.some((pid) => pid !== null && isAlive(pid)); i++) await sleep(100);
    for (let i = 0; i < N; i++) assert.equal((await request({ port: proxyPort, path: `/b/${i}` })).status, 200);
    let total = sum(await metrics(adminPort), 'switchyard_requests_total') - base;
    for (let i = 0; i < 20 && total < 2 * N; i++) {
      await sleep(25);
      total = sum(await metrics(adminPort), 'switchyard_requests_total') - base;
    }
    assert.equal(total, 2 * N);
  });
});
