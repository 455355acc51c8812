// Active health checks against real HTTP servers on loopback: transitions
// after exactly `fall`/`rise` checks, reported and logged once; timeouts and
// connection errors count as failures; expect_status; slow start; stop()
// leaves nothing behind; replace() keeps the state of servers that stay.

import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { parseConfigText } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { ActiveHealthChecker, SLOW_START_FLOOR, startHealthChecks } from '../../src/health/active-checker.js';
import type { HealthSink } from '../../src/health/active-checker.js';
import { closedPort } from '../helpers/backend.js';

// Generous enough that a check never times out on a loaded machine: the tests count checks exactly.
const INTERVAL_MS = 150;

interface CheckBackend {
  address: string;
  /** Health check requests received so far. */
  hits: number;
  status: number;
  delayMs: number;
  /** Never answer (holding no timer of its own). */
  hang: boolean;
  close(): Promise<void>;
}

const backends: CheckBackend[] = [];
after(async () => {
  await Promise.all(backends.map((b) => b.close()));
});

async function backend(status = 200): Promise<CheckBackend> {
  const b: CheckBackend = { address: '', hits: 0, status, delayMs: 0, hang: false, close: async () => {} };
  const server = http.createServer((_req, res) => {
    b.hits++;
    const answer = () => res.writeHead(b.status, { 'content-length': 2 }).end('ok');
    if (b.hang) return;
    if (b.delayMs > 0) setTimeout(answer, b.delayMs);
    else answer();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  b.address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  b.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  backends.push(b);
  return b;
}

function config(upstreams: Record<string, { servers: string[]; health?: string }>): Config {
  const lines = ['admin: { token: t }', 'upstreams:'];
  for (const [name, up] of Object.entries(upstreams)) {
    lines.push(`  ${name}:`, `    servers: [${up.servers.map((a) => `{ address: "${a}" }`).join(', ')}]`);
    if (up.health) lines.push(`    health: ${up.health}`);
  }
  lines.push('routes:', `  - { match: { path: / }, upstream: ${Object.keys(upstreams)[0]} }`);
  return parseConfigText(lines.join('\n') + '\n', 'test.yaml').config;
}

const health = (extra = '', fall = 3) => `{ interval: ${INTERVAL_MS}ms, timeout: 140ms, rise: 2, fall: ${fall}${extra} }`;

type Call = { upstream: string; index: number; healthy: boolean; hits: number };

/** A sink recording every call, and a logger recording every line. */
function harness(watch?: CheckBackend) {
  const calls: Call[] = [];
  const factors: { index: number; factor: number }[] = [];
  const sink: HealthSink = {
    setHealthy: (upstream, index, healthy) => calls.push({ upstream, index, healthy, hits: watch?.hits ?? 0 }),
    setWeightFactor: (_upstream, index, factor) => factors.push({ index, factor }),
  };
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  const log = pino({ level: 'info' }, stream);
  const transitions = () => lines.filter((l) => l.msg === 'server is up' || l.msg === 'server is down');
  return { calls, factors, sink, log, transitions };
}

/** Polls `cond` every few ms, failing after `timeoutMs`. */
async function until(cond: () => boolean, what: string, timeoutMs = 6000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for: ${what}`);
    await sleep(5);
  }
}

describe('active health checks', () => {
  it('marks a failing server down after `fall` checks and up after `rise`, reporting and logging each once', async () => {
    const b = await backend(500);
    const ok = await backend(200);
    const h = harness(b);
    const checker = startHealthChecks(config({ app: { servers: [ok.address, b.address], health: health() } }), h.log, h.sink);
    try {
      await until(() => h.calls.length === 1, 'down');
      assert.deepEqual(h.calls[0], { upstream: 'app', index: 1, healthy: false, hits: 3 });
      assert.equal(checker.weightFactor('app', 1), 0);

      b.status = 200;
      await until(() => h.calls.length === 2, 'up');
      assert.deepEqual(h.calls[1], { upstream: 'app', index: 1, healthy: true, hits: 5 });
      assert.equal(checker.weightFactor('app', 1), 1, 'no slow_start: full weight at once');

      await sleep(INTERVAL_MS * 4);
      assert.equal(h.calls.length, 2, 'no repeated reports while the state holds');
      assert.ok(ok.hits >= 5, 'the healthy server is checked every interval too');
      const logged = h.transitions();
      assert.equal(logged.length, 2);
      assert.equal(logged[0]!.msg, 'server is down');
      assert.equal(logged[0]!.upstream, 'app');
      assert.equal(logged[0]!.address, b.address);
      assert.equal(logged[0]!.reason, 'status 500');
      assert.equal(typeof logged[0]!.durationMs, 'number');
      assert.equal(logged[1]!.msg, 'server is up');
      assert.equal(logged[1]!.reason, 'status 200');
    } finally {
      checker.stop();
    }
  });

  it('counts a check that exceeds the timeout as a failure', async () => {
    const b = await backend(200);
    b.delayMs = 400;
    const h = harness(b);
    const checker = startHealthChecks(config({ app: { servers: [b.address], health: health() } }), h.log, h.sink);
    try {
      await until(() => h.calls.length === 1, 'down by timeout');
      assert.equal(h.calls[0]!.healthy, false);
      assert.equal(h.transitions()[0]!.reason, 'timeout after 140 ms');
      assert.ok((h.transitions()[0]!.durationMs as number) >= 139);
    } finally {
      checker.stop();
    }
  });

  it('counts a refused connection as a failure', async () => {
    const address = `127.0.0.1:${await closedPort()}`;
    const h = harness();
    const checker = startHealthChecks(config({ app: { servers: [address], health: health() } }), h.log, h.sink);
    try {
      await until(() => h.calls.length === 1, 'down by refusal');
      assert.equal(h.transitions()[0]!.reason, 'error: ECONNREFUSED');
    } finally {
      checker.stop();
    }
  });

  it('honours expect_status', async () => {
    const b = await backend(204);
    const accepted = harness();
    const refused = harness();
    const a = startHealthChecks(config({ app: { servers: [b.address], health: health(', expect_status: [204]') } }), accepted.log, accepted.sink);
    const r = startHealthChecks(config({ app: { servers: [b.address], health: health(', expect_status: 200') } }), refused.log, refused.sink);
    try {
      await until(() => refused.calls.length === 1, 'a 204 refused by expect_status: 200');
      assert.equal(refused.transitions()[0]!.reason, 'status 204');
      assert.deepEqual(accepted.calls, [], 'a 204 accepted by expect_status: [204]');
    } finally {
      a.stop();
      r.stop();
    }
  });

  it('ramps a recovered server from the floor to full weight over slow_start', async () => {
    const b = await backend(500);
    const h = harness(b);
    const slowStartMs = 400;
    const checker = startHealthChecks(config({ app: { servers: [b.address], health: health(`, slow_start: ${slowStartMs}ms`) } }), h.log, h.sink);
    try {
      await until(() => h.calls.length === 1, 'down');
      b.status = 200;
      await until(() => h.calls.length === 2, 'up');
      const upAt = performance.now();
      const first = checker.weightFactor('app', 0, upAt);
      assert.ok(first >= SLOW_START_FLOOR && first < 0.2, `starts near the floor, got ${first}`);
      const half = checker.weightFactor('app', 0, upAt + slowStartMs / 2);
      assert.ok(Math.abs(half - 0.55) < 0.05, `halfway is about 0.55, got ${half}`);
      assert.equal(checker.weightFactor('app', 0, upAt + slowStartMs), 1);

      // The sink hears the floor at once, then rising factors every interval, ending with exactly 1.
      await until(() => h.factors.at(-1)?.factor === 1, 'ramp complete');
      const seen = h.factors.map((f) => f.factor);
      assert.equal(seen[0], SLOW_START_FLOOR);
      assert.ok(seen.length >= 4, `several steps, got ${seen.join(', ')}`);
      for (let i = 1; i < seen.length; i++) assert.ok(seen[i]! >= seen[i - 1]!, `non-decreasing: ${seen.join(', ')}`);
      const steps = seen.length;
      await sleep(INTERVAL_MS * 3);
      assert.equal(h.factors.length, steps, 'no more factor reports once at full weight');
    } finally {
      checker.stop();
    }
  });

  it('stop() clears every timer and aborts checks in flight', async () => {
    const b = await backend(200);
    b.hang = true; // a check is always in flight, timing out
    const h = harness(b);
    await sleep(20); // let sockets of earlier tests finish closing
    const timersBefore = countResources('Timeout');
    const socketsBefore = countResources('TCPSocketWrap');
    const checker = startHealthChecks(config({ app: { servers: [b.address], health: health('', 10) } }), h.log, h.sink);
    await until(() => b.hits >= 2, 'checks running');
    await sleep(5);
    assert.ok(countResources('Timeout') > timersBefore, 'the checker holds timers while running');
    checker.stop();
    assert.equal(countResources('Timeout'), timersBefore, 'no timer left');
    await sleep(20); // destroyed sockets close on the next turns of the loop
    assert.equal(countResources('TCPSocketWrap'), socketsBefore, 'no socket left');
    const hits = b.hits;
    await sleep(INTERVAL_MS * 3);
    assert.equal(b.hits, hits, 'no checks after stop()');
    assert.deepEqual(h.calls, [], 'aborted checks are not counted as failures');
  });

  it('replace() keeps the state of servers that stay, by address', async () => {
    const down = await backend(500);
    const up = await backend(200);
    const added = await backend(200);
    const h = harness(down);
    const checker = new ActiveHealthChecker(config({ app: { servers: [up.address, down.address], health: health() } }), h.log, h.sink);
    checker.start();
    try {
      await until(() => h.calls.length === 1, 'down');
      assert.deepEqual(h.calls[0], { upstream: 'app', index: 1, healthy: false, hits: 3 });

      // Reordered, with a new server: the down one moves to index 0 and stays down.
      checker.replace(config({ app: { servers: [down.address, added.address, up.address], health: health() } }));
      assert.deepEqual(
        h.calls.slice(1).map(({ index, healthy }) => ({ index, healthy })),
        [
          { index: 0, healthy: false },
          { index: 1, healthy: true },
          { index: 2, healthy: true },
        ],
      );
      assert.deepEqual(
        checker.servers().map((s) => [s.index, s.address, s.healthy]),
        [
          [0, down.address, false],
          [1, added.address, true],
          [2, up.address, true],
        ],
      );
      // It still needs `rise` passes, not more: the streak carried over.
      down.status = 200;
      await until(() => h.calls.length === 5, 'up after replace');
      assert.deepEqual(h.calls[4], { upstream: 'app', index: 0, healthy: true, hits: down.hits });
      assert.equal(h.transitions().length, 2, 'replace itself logs no transition');

      // Health checks removed: the servers are reported healthy and no longer checked.
      down.status = 500;
      checker.replace(config({ app: { servers: [down.address] } }));
      assert.deepEqual(h.calls.at(-1), { upstream: 'app', index: 0, healthy: true, hits: down.hits });
      const hits = down.hits;
      await sleep(INTERVAL_MS * 3);
      assert.equal(down.hits, hits);
    } finally {
      checker.stop();
    }
  });
});

function countResources(kind: string): number {
  return process.getActiveResourcesInfo().filter((r) => r === kind).length;
}
