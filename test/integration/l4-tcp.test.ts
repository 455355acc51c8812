// Issue 13, mode: tcp, black-box against the real CLI with raw TCP backends:
// bytes relayed exactly both ways (1 MB each way, half-close), round-robin,
// least-conn over connections counted in shared memory across both workers,
// connect retries to the next server before any byte was sent, the idle
// timeout, the per-listener connection cap, a health failure that moves new
// connections without breaking live ones, and a reload under held
// connections that loses none of them.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { after, afterEach, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { admin, getStatus, waitForStatus, workersReady, type Status as BalancingStatus } from '../helpers/admin-status.js';
import { isAlive, sleep } from '../helpers/process.js';
import { freePort, startSwitchyard, withOutput, type Switchyard } from '../helpers/switchyard.js';
import { holdConnection, signer, startTcpBackend, tcpExchange, type HeldConnection, type TcpBackend } from '../helpers/tcp.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let sy: Switchyard | undefined;
let backends: TcpBackend[] = [];
let held: HeldConnection[] = [];

afterEach(async () => {
  for (const h of held) h.socket.destroy();
  held = [];
  await sy?.stop();
  sy = undefined;
  await Promise.all(backends.map((b) => b.close()));
  backends = [];
});
after(async () => {
  await sy?.stop();
});

/** Fails with what the Switchyard of the moment printed too (tests start their own, into `sy`). */
const diagnosed = (fn: () => Promise<void>): Promise<void> => withOutput({ output: () => sy?.output() ?? '' }, fn);

/** Switchyard with one tcp listener (first, so startSwitchyard waits for it) in front of `upstream`. */
async function startTcp(upstream: Record<string, unknown>, listen: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Promise<Switchyard> {
  const port = await freePort();
  const httpPort = await freePort(new Set([port]));
  sy = await startSwitchyard({
    listen: [
      { host: '127.0.0.1', port, mode: 'tcp', upstream: 'db', ...listen },
      { host: '127.0.0.1', port: httpPort },
    ],
    upstreams: { db: upstream },
    routes: [{ match: { path: '/' }, upstream: 'db' }],
    ...extra,
  });
  // The admin API listens once the workers are ready, a little after the proxy ports do.
  await waitForStatus(sy.adminPort, 'workers ready', (s) => workersReady(s, (extra.workers as number | undefined) ?? 2));
  // startSwitchyard's readiness probe opened connections through the listener: forget them.
  await sleep(100);
  for (const b of backends) b.received.length = 0;
  return sy;
}

describe('mode: tcp', () => {
  test('relays 1 MB each way exactly, with half-close, alternating round-robin over both servers', { timeout: 30_000 }, () =>
    diagnosed(async () => {
      backends = await Promise.all(['A', 'B'].map((n) => startTcpBackend(n)));
      // One worker: round-robin state is per worker, so only one worker alternates strictly.
      await startTcp({ balance: 'round-robin', servers: backends.map((b) => ({ address: b.address })) }, {}, { workers: 1 });
      const payload = randomBytes(1024 * 1024);
      const seen: string[] = [];
      for (let i = 0; i < 6; i++) {
        // Written in 64 KB pieces: the relay must keep order and apply backpressure.
        const pieces = Array.from({ length: 16 }, (_, k) => payload.subarray(k * 65536, (k + 1) * 65536));
        const r = await tcpExchange(sy!.port, pieces);
        assert.equal(r.error, undefined, `exchange ${i}: ${r.error}`);
        const name = signer(r.data);
        assert.ok(name === 'A' || name === 'B', `exchange ${i}: no signature`);
        seen.push(name);
        const body = r.data.subarray(0, r.data.length - `\n[${name}]`.length);
        assert.equal(body.length, payload.length, `exchange ${i}: echoed length`);
        assert.equal(sha(body), sha(payload), `exchange ${i}: echoed bytes differ`);
      }
      assert.equal(seen.filter((s) => s === 'A').length, 3, `round-robin over 6 connections: ${seen.join(',')}`);
      for (const b of backends) for (const got of b.received) assert.equal(sha(got), sha(payload), `${b.name} received other bytes than were sent`);
    }),
  );

  test('least-conn counts live connections across both workers', { timeout: 30_000 }, () =>
    diagnosed(async () => {
      backends = await Promise.all(['A', 'B', 'C'].map((n) => startTcpBackend(n)));
      await startTcp({ balance: 'least-conn', servers: backends.map((b) => ({ address: b.address })) });
      // Connections held open one after the other: each must go to a server holding the fewest.
      for (let i = 0; i < 9; i++) {
        const h = await holdConnection(sy!.port);
        held.push(h);
        assert.equal(await h.roundTrip(`hello ${i}`), `hello ${i}`);
        const counts = backends.map((b) => b.open());
        assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `after ${i + 1} connections: ${counts.join(',')}`);
      }
      assert.deepEqual(backends.map((b) => b.open()), [3, 3, 3]);
      const status = await getStatus(sy!.adminPort);
      assert.deepEqual(status.upstreams.db!.servers.map((s) => s.active), [3, 3, 3], 'shared-memory counts in /status');
    }),
  );

  test('a server refusing connections: the next one is tried before any byte was sent; none fail', { timeout: 30_000 }, () =>
    diagnosed(async () => {
      backends = [await startTcpBackend('A')];
      const closedPort = await freePort(new Set([backends[0]!.port]));
      await startTcp({
        balance: 'round-robin',
        retries: 1,
        // The default budget allows 5 retries a second; this test makes about 5 in a burst, so give it room.
        retry_budget: { min_per_second: 100 },
        // Passive ejection would hide the retries after 5 failures; this test wants to see every one.
        outlier: { consecutive_failures: 1000 },
        servers: [{ address: `127.0.0.1:${closedPort}` }, { address: backends[0]!.address }],
      });
      for (let i = 0; i < 10; i++) {
        const r = await tcpExchange(sy!.port, `msg ${i}`);
        assert.equal(r.error, undefined, `connection ${i}: ${r.error}`);
        assert.equal(r.data.toString(), `msg ${i}\n[A]`);
      }
      // Every byte went to A once, and nothing was lost before a retry.
      assert.deepEqual(backends[0]!.received.map((b) => b.toString()), Array.from({ length: 10 }, (_, i) => `msg ${i}`));
      const s = await getStatus(sy!.adminPort);
      assert.ok(s.upstreams.db!.servers[0]!.failures >= 3, `the closed server's failures: ${JSON.stringify(s.upstreams.db!.servers[0])}`);
    }),
  );

  test('no server accepts: the client connection is closed at once with a reset, not left hanging', { timeout: 20_000 }, () =>
    diagnosed(async () => {
      const closed = [await freePort(), await freePort()];
      await startTcp({ retries: 1, servers: closed.map((p) => ({ address: `127.0.0.1:${p}` })) });
      const r = await tcpExchange(sy!.port, 'hello', { timeoutMs: 5000 });
      assert.equal(r.data.length, 0);
      assert.equal(r.error, 'ECONNRESET');
      assert.ok(r.ms < 2000, `took ${r.ms} ms`);
    }),
  );

  test('idle_timeout closes a connection with no byte either way; traffic keeps it open', { timeout: 20_000 }, () =>
    diagnosed(async () => {
      backends = [await startTcpBackend('A')];
      await startTcp({ servers: [{ address: backends[0]!.address }] }, { idle_timeout: '600ms' });
      const busy = await holdConnection(sy!.port);
      const idle = await holdConnection(sy!.port);
      held.push(busy, idle);
      await idle.roundTrip('x');
      const t0 = Date.now();
      // The busy one talks every 200 ms for 1.5 s, longer than the idle timeout.
      for (let i = 0; i < 7; i++) {
        assert.equal(await busy.roundTrip(`tick ${i}`), `tick ${i}`);
        await sleep(200);
      }
      const gone = await Promise.race([idle.closed, sleep(3000).then(() => 'still open')]);
      assert.notEqual(gone, 'still open');
      assert.ok(Date.now() - t0 >= 500, 'closed before the idle timeout');
      assert.equal(busy.socket.destroyed, false, 'the busy connection was closed');
      await waitFor(() => backends[0]!.open() === 1, 'the idle connection closed at the server too');
    }),
  );

  test('max_connections caps the listener per worker: the next connection is closed at once', { timeout: 20_000 }, () =>
    diagnosed(async () => {
      backends = [await startTcpBackend('A')];
      await startTcp({ servers: [{ address: backends[0]!.address }] }, { max_connections: 2 }, { workers: 1 });
      for (let i = 0; i < 2; i++) {
        const h = await holdConnection(sy!.port);
        held.push(h);
        await h.roundTrip(`in ${i}`);
      }
      const refused = await tcpExchange(sy!.port, 'over the cap', { timeoutMs: 3000 });
      assert.equal(refused.data.toString().includes('over the cap'), false, 'a connection over the cap was relayed');
      assert.ok(refused.ms < 2000);
      held.pop()!.socket.destroy();
      await waitFor(() => backends[0]!.open() === 1, 'the freed connection closed');
      await sleep(100);
      const r = await tcpExchange(sy!.port, 'fits again');
      assert.equal(r.data.toString(), 'fits again\n[A]');
    }),
  );

  test('health failure: new connections avoid the failed server, live ones on the other server carry on', { timeout: 30_000 }, () =>
    diagnosed(async () => {
      backends = await Promise.all(['A', 'B'].map((n) => startTcpBackend(n)));
      const [a, b] = backends as [TcpBackend, TcpBackend];
      await startTcp({
        balance: 'round-robin',
        retries: 0,
        health: { type: 'tcp', interval: '200ms', timeout: '150ms', fall: 1, rise: 1 },
        servers: [{ address: a.address }, { address: b.address }],
      }, {}, { workers: 1 });
      // Live connections on both servers.
      for (let i = 0; i < 4; i++) {
        const h = await holdConnection(sy!.port);
        held.push(h);
        await h.roundTrip('up');
      }
      assert.deepEqual([a.open(), b.open()], [2, 2]);
      const aPort = a.port;
      await a.close();
      await waitForStatus(sy!.adminPort, 'A marked down', (s) => s.upstreams.db!.servers[0]!.healthy === false, 5000);
      // retries: 0, so a connection sent to A would fail: none may be.
      for (let i = 0; i < 10; i++) {
        const r = await tcpExchange(sy!.port, `after ${i}`);
        assert.equal(r.data.toString(), `after ${i}\n[B]`, `connection ${i} after A went down: ${r.error}`);
      }
      // The connections held on B never noticed.
      const onB = [];
      for (const h of held) if (!h.socket.destroyed) onB.push(await h.roundTrip('still'));
      assert.equal(onB.length, 2, 'the two connections on B are open');
      // A comes back on the same port: it gets new connections again.
      backends[0] = await startTcpBackend('A', { port: aPort });
      await waitForStatus(sy!.adminPort, 'A up again', (s) => s.upstreams.db!.servers[0]!.healthy === true, 5000);
      const names = new Set<string | undefined>();
      for (let i = 0; i < 4; i++) names.add(signer((await tcpExchange(sy!.port, 'x')).data));
      assert.deepEqual([...names].sort(), ['A', 'B']);
    }),
  );

  test('reload: held connections keep running on the old workers; new ones are served throughout; none lost', { timeout: 60_000 }, () =>
    diagnosed(async () => {
      backends = await Promise.all(['A', 'B'].map((n) => startTcpBackend(n)));
      await startTcp({ balance: 'round-robin', servers: backends.map((b) => ({ address: b.address })) }, {}, { shutdown_timeout: '20s' });
      for (let i = 0; i < 6; i++) {
        const h = await holdConnection(sy!.port);
        held.push(h);
        await h.roundTrip(`before ${i}`);
      }
      const oldPids = new Set((await getStatus(sy!.adminPort)).workers.flatMap((w) => (w.pid === null ? [] : [w.pid])));
      // New connections during the reload, one after another, must all succeed.
      let stop = false;
      const failures: string[] = [];
      let served = 0;
      const churn = (async () => {
        while (!stop) {
          const r = await tcpExchange(sy!.port, 'during');
          if (r.error !== undefined || !/^during\n\[[AB]\]$/.test(r.data.toString())) failures.push(`${r.error} ${JSON.stringify(r.data.toString())}`);
          else served++;
        }
      })();
      // A config change the new workers must run: B's weight.
      const config = structuredClone(sy!.config) as { upstreams: { db: { servers: Array<Record<string, unknown>> } } };
      config.upstreams.db.servers[1]!.weight = 2;
      writeFileSync(sy!.configFile, stringify(config));
      try {
        const res = await admin(sy!.adminPort, '/reload', 'POST');
        assert.equal(res.status, 200, res.body);
        const newReady = (s: BalancingStatus): boolean => s.workers.filter((w) => w.state === 'ready' && w.pid !== null && !oldPids.has(w.pid)).length === 2;
        const s = await waitForStatus(sy!.adminPort, 'new workers ready', (st) => newReady(st) && st.upstreams.db!.servers[1]!.weight === 2, 15_000);
        // Relayed streams count as tunnels: the replaced workers retire with them (draining only for the moment they take to see it).
        const oldStates = s.workers.filter((w) => w.pid !== null && oldPids.has(w.pid)).map((w) => w.state);
        assert.equal(oldStates.length, 2, 'both old workers are alive while their connections are open');
        assert.ok(oldStates.every((st) => st === 'retiring' || st === 'draining'), `old workers: ${oldStates.join(', ')}`);
        // The old workers are retiring, yet every held connection still relays both ways.
        for (let round = 0; round < 3; round++) {
          for (const [i, h] of held.entries()) assert.equal(await h.roundTrip(`after ${round}.${i}`), `after ${round}.${i}`);
          await sleep(300);
        }
        assert.ok([...oldPids].every((pid) => isAlive(pid)), 'an old worker exited while its connections were open');
      } finally {
        stop = true;
        await churn;
      }
      assert.deepEqual(failures, [], `new connections failed during the reload (${served} served)`);
      assert.ok(served > 5, `only ${served} connections during the reload`);
      // Connections end on their own: the old workers then exit, long before shutdown_timeout.
      for (const h of held) h.socket.end();
      const ends = await Promise.all(held.map((h) => h.closed));
      for (const e of ends) assert.equal(e.error, undefined);
      assert.ok(ends.every((e) => /\n\[[AB]\]$/.test(e.data)), 'every held connection got its server\'s final bytes');
      await waitFor(() => [...oldPids].every((pid) => !isAlive(pid)), 'old workers exited once their connections ended', 10_000);
    }),
  );
});

async function waitFor(ok: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await sleep(25);
  }
}
