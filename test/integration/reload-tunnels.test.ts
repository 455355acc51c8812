// Issue 14, item 3: long-lived connections survive reloads. A real WebSocket
// (the `ws` package on both ends) through the real CLI stays open and echoes
// through 5 reloads while new requests are served by the new workers; the
// replaced worker that holds it shows as `retiring` and exits when it closes.
// Then the bounds: tunnel_max_age closes it, SIGTERM ends everything within
// shutdown_timeout, and a retiring worker that dies is not respawned.
import assert from 'node:assert/strict';
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { stringify } from 'yaml';
import WebSocket, { WebSocketServer } from 'ws';
import { admin, getStatus, waitForStatus, workersReady, type Status as BalancingStatus } from '../helpers/admin-status.js';
import { isAlive, request, sleep } from '../helpers/process.js';
import { startSwitchyard, withOutput, type Switchyard } from '../helpers/switchyard.js';

interface EchoBackend {
  address: string;
  close(): Promise<void>;
}

/** HTTP 200 "ok" for plain requests, a WebSocket echo for upgrades. */
async function startEchoBackend(): Promise<EchoBackend> {
  const server = http.createServer((_req, res) => res.end('ok'));
  const wss = new WebSocketServer({ server });
  wss.on('connection', (socket) => socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary })));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const client of wss.clients) client.terminate();
        wss.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The config with the route's X-Gen response header set to `gen`: which config generation answered. */
function generation(sy: Switchyard, gen: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const [route] = sy.config.routes as Array<Record<string, unknown>>;
  return { ...sy.config, ...extra, routes: [{ ...route, response_headers: { set: { 'X-Gen': String(gen) } } }] };
}

async function openSocket(port: number): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/chat`);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return ws;
}

/** Sends `text` and waits for the same text back. */
async function echo(ws: WebSocket, text: string, timeoutMs = 3000): Promise<void> {
  const answer = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no echo of ${text} within ${timeoutMs} ms`)), timeoutMs);
    ws.once('message', (data: Buffer) => {
      clearTimeout(timer);
      resolve(data.toString());
    });
  });
  ws.send(text);
  assert.equal(await answer, text);
}

function closed(ws: WebSocket): Promise<number> {
  return ws.readyState === WebSocket.CLOSED ? Promise.resolve(Date.now()) : new Promise((resolve) => ws.once('close', () => resolve(Date.now())));
}

const pids = (s: BalancingStatus, state: string) => s.workers.flatMap((w) => (w.state === state && w.pid !== null ? [w.pid] : []));

/** The worker that reports the open tunnel. */
async function tunnelWorker(sy: Switchyard): Promise<number> {
  const s = await waitForStatus(sy.adminPort, 'a worker reports the tunnel', (st) => st.workers.some((w) => w.tunnels === 1));
  return s.workers.find((w) => w.tunnels === 1)!.pid!;
}

/** Rewrites the file and reloads; resolves once only new workers serve (the replaced ones exited or retiring). */
async function reload(sy: Switchyard, config: Record<string, unknown>): Promise<void> {
  const before = new Set(pids(await getStatus(sy.adminPort), 'ready'));
  writeFileSync(sy.configFile, stringify(config));
  const res = await admin(sy.adminPort, '/reload', 'POST');
  assert.equal(res.status, 200, res.body);
  // Replaced workers may still be listed (draining, or retiring for a tunnel): count the ready ones.
  await waitForStatus(
    sy.adminPort,
    'new workers ready',
    (s) => s.workers.filter((w) => w.state === 'ready').length === 2 && pids(s, 'ready').every((pid) => !before.has(pid)),
    15_000,
  );
}

/** pid of the worker that logged the access line of request `reqId`. */
function servedBy(sy: Switchyard, reqId: string): number | undefined {
  for (const line of sy.output().split('\n')) {
    if (!line.includes(reqId)) continue;
    const entry = JSON.parse(line) as { msg?: string; reqId?: string; pid?: number };
    if (entry.msg === 'access' && entry.reqId === reqId) return entry.pid;
  }
  return undefined;
}

describe('tunnels across reloads', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  after(async () => {
    for (const fn of cleanup.reverse()) await fn();
  });

  async function setUp(extra: Record<string, unknown> = {}): Promise<Switchyard> {
    const backend = await startEchoBackend();
    cleanup.push(() => backend.close());
    const sy = await startSwitchyard({
      workers: 2,
      logging: { level: 'info', access: true },
      ...extra,
      upstreams: { app: { servers: [{ address: backend.address }], timeouts: { tunnel_idle: '1m' } } },
      routes: [{ match: { host: '*', path: '/' }, upstream: 'app', response_headers: { set: { 'X-Gen': '0' } } }],
    });
    cleanup.push(() => sy.stop());
    const workers = (extra.workers as number | undefined) ?? 2;
    await waitForStatus(sy.adminPort, 'workers ready', (s) => workersReady(s, workers));
    return sy;
  }

  test('a WebSocket echoes through 5 reloads; new requests go to the new workers; its worker exits when it closes', { timeout: 120_000 }, async () => {
    const sy = await setUp();
    await withOutput(sy, async () => {
      const ws = await openSocket(sy.port);
      let closedEarly = false;
      ws.once('close', () => (closedEarly = true));
      await echo(ws, 'before any reload');
      const holder = await tunnelWorker(sy);

      for (let gen = 1; gen <= 5; gen++) {
        await reload(sy, generation(sy, gen));
        await echo(ws, `after reload ${gen}`);
        const s = await waitForStatus(sy.adminPort, `reload ${gen}: the holder is retiring`, (st) => pids(st, 'retiring').includes(holder));
        assert.equal(s.retiringWorkers, 1, `only the tunnel's worker stays: ${JSON.stringify(s.workers)}`);
        assert.ok(!pids(s, 'ready').includes(holder));
        // A new request: new config, and a new worker served it (not the retiring one).
        const res = await request({ port: sy.port, path: `/gen-${gen}` });
        assert.equal(res.status, 200);
        assert.equal(res.headers['x-gen'], String(gen));
        const reqId = res.headers['x-request-id'] as string;
        let pid: number | undefined;
        for (let i = 0; i < 40 && pid === undefined; i++, await sleep(50)) pid = servedBy(sy, reqId);
        assert.ok(pid !== undefined, `access line of ${reqId} not found`);
        assert.ok(pids(s, 'ready').includes(pid), `request ${gen} served by ${pid}; ready workers ${JSON.stringify(pids(s, 'ready'))}`);
        assert.notEqual(pid, holder);
      }
      assert.equal(closedEarly, false, 'the WebSocket closed during the reloads');
      assert.ok(isAlive(holder));
      // Every replaced worker without a tunnel has gone.
      const s = await waitForStatus(sy.adminPort, 'only ready workers and the holder', (st) => st.workers.length === 3);
      assert.deepEqual(pids(s, 'retiring'), [holder]);

      ws.close(1000, 'done');
      await closed(ws);
      const deadline = Date.now() + 5000;
      while (isAlive(holder) && Date.now() < deadline) await sleep(50);
      assert.equal(isAlive(holder), false, 'the retiring worker did not exit once its last tunnel closed');
      const final = await waitForStatus(sy.adminPort, 'holder gone from /status', (st) => st.retiringWorkers === 0);
      assert.equal(final.workers.reduce((n, w) => n + w.restarts, 0), 0);
    });
  });

  test('tunnel_max_age closes a tunnel on a replaced worker, and only then', { timeout: 60_000 }, async () => {
    const sy = await setUp({ tunnel_max_age: '4s' });
    await withOutput(sy, async () => {
      const ws = await openSocket(sy.port);
      const closedAt = closed(ws);
      const holder = await tunnelWorker(sy);
      const reloadedAt = Date.now();
      writeFileSync(sy.configFile, stringify(generation(sy, 1, { tunnel_max_age: '4s' })));
      const res = await admin(sy.adminPort, '/reload', 'POST');
      assert.equal(res.status, 200, res.body);
      await echo(ws, 'still open after the reload');
      const age = (await closedAt) - reloadedAt;
      // Retired after the reload began: never closed before 4 s from then.
      assert.ok(age >= 3900, `closed ${age} ms after the reload: before tunnel_max_age`);
      assert.ok(age < 9000, `closed ${age} ms after the reload: tunnel_max_age (4s) not enforced`);
      const deadline = Date.now() + 5000;
      while (isAlive(holder) && Date.now() < deadline) await sleep(50);
      assert.equal(isAlive(holder), false);
      // A new WebSocket opens on the new workers as usual.
      const again = await openSocket(sy.port);
      await echo(again, 'new tunnel');
      again.terminate();
    });
  });

  test('SIGTERM ends a retiring worker and its tunnels within shutdown_timeout', { timeout: 60_000 }, async () => {
    const sy = await setUp({ shutdown_timeout: '2s' });
    await withOutput(sy, async () => {
      const ws = await openSocket(sy.port);
      const holder = await tunnelWorker(sy);
      await reload(sy, generation(sy, 1, { shutdown_timeout: '2s' }));
      await waitForStatus(sy.adminPort, 'holder retiring', (st) => pids(st, 'retiring').includes(holder));
      const t0 = Date.now();
      const code = await sy.stop(10_000);
      const took = Date.now() - t0;
      assert.equal(code, 0);
      assert.ok(took < 2000 + 2500, `shutdown took ${took} ms with shutdown_timeout 2s`);
      await closed(ws);
      assert.equal(isAlive(holder), false);
    });
  });

  test('a retiring worker that dies is not respawned', { timeout: 60_000 }, async () => {
    const sy = await setUp();
    await withOutput(sy, async () => {
      const ws = await openSocket(sy.port);
      const holder = await tunnelWorker(sy);
      await reload(sy, generation(sy, 1));
      await waitForStatus(sy.adminPort, 'holder retiring', (st) => pids(st, 'retiring').includes(holder));
      process.kill(holder, 'SIGKILL');
      await closed(ws);
      await sleep(1000); // longer than the first respawn backoff (100 ms)
      const s = await getStatus(sy.adminPort);
      assert.equal(s.workers.length, 2, JSON.stringify(s.workers));
      assert.equal(pids(s, 'ready').length, 2);
      assert.equal(s.workers.reduce((n, w) => n + w.restarts, 0), 0);
      assert.equal(sy.workerPids().length, 2);
      assert.match(sy.output(), /retiring worker died/);
    });
  });

  test('tunnels cannot pin old workers without bound: beyond 2 retiring per worker, the oldest closes its tunnels', { timeout: 90_000 }, async () => {
    const sy = await setUp({ workers: 1 });
    await withOutput(sy, async () => {
      const sockets: WebSocket[] = [];
      const holders: number[] = [];
      for (let gen = 1; gen <= 3; gen++) {
        const ws = await openSocket(sy.port);
        sockets.push(ws);
        holders.push((await getStatus(sy.adminPort)).workers.find((w) => w.state === 'ready')!.pid!);
        const before = new Set(pids(await getStatus(sy.adminPort), 'ready'));
        writeFileSync(sy.configFile, stringify(generation(sy, gen, { workers: 1 })));
        assert.equal((await admin(sy.adminPort, '/reload', 'POST')).status, 200);
        await waitForStatus(sy.adminPort, `reload ${gen}`, (s) => pids(s, 'ready').length === 1 && !before.has(pids(s, 'ready')[0]!) && pids(s, 'retiring').length === Math.min(gen, 2), 15_000);
      }
      // The first holder was cut short (within shutdown_timeout, 2s); the two newer ones keep theirs.
      await closed(sockets[0]!);
      const deadline = Date.now() + 5000;
      while (isAlive(holders[0]!) && Date.now() < deadline) await sleep(50);
      assert.equal(isAlive(holders[0]!), false);
      await echo(sockets[1]!, 'second still open');
      await echo(sockets[2]!, 'third still open');
      const s = await getStatus(sy.adminPort);
      assert.deepEqual(pids(s, 'retiring').sort(), [holders[1]!, holders[2]!].sort());
      assert.match(sy.output(), /too many retiring workers: the oldest closes its tunnels now/);
      for (const ws of sockets) ws.terminate();
    });
  });
});
