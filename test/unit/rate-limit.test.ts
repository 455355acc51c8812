// Shared-memory token buckets (native/rate_limit.h through src/native.ts and
// src/gateway/rate-limit.ts), with real segments and real second processes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { RateTable, rateTableName } from '../../src/native.js';
import { RateLimiter } from '../../src/gateway/rate-limit.js';

const RATE_LIMIT_TS = fileURLToPath(new URL('../../src/gateway/rate-limit.ts', import.meta.url));
let seq = 0;
const testName = (): string => `/switchyard-test-${process.pid}-rl-${++seq}`;
const shmFile = (name: string): string => `/dev/shm${name}`;

// Runs an ES module snippet in a fresh node process (tsx, so it can import
// src/gateway/rate-limit.ts as `rl`) and returns its stdout parsed as JSON.
async function inChild(code: string, timeout = 20_000): Promise<unknown> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', `import * as rl from ${JSON.stringify(RATE_LIMIT_TS)};\n${code}`],
    { timeout },
  );
  return JSON.parse(stdout);
}

function withTable(slots: number, fn: (t: RateTable) => void | Promise<void>): Promise<void> {
  const table = RateTable.create(slots, { name: testName() });
  return (async () => {
    try {
      await fn(table);
    } finally {
      table.close();
      table.unlink();
    }
  })();
}

test('token arithmetic: burst, refill at the rate, retry-after and reset', () =>
  withTable(64, (t) => {
    const T = 1_000_000; // injected CLOCK_MONOTONIC ms: deterministic
    for (let i = 0; i < 10; i++) {
      assert.equal(t.take('r', 'k', 50, 10, 1, T), true);
      assert.equal(t.out[1], 9 - i, 'remaining whole tokens');
    }
    assert.equal(t.take('r', 'k', 50, 10, 1, T), false);
    assert.deepEqual([...t.out], [0, 0, 20, 200], 'one token in 20 ms, full in 200 ms');
    assert.equal(t.take('r', 'k', 50, 10, 1, T + 19), false);
    assert.equal(t.out[2], 1);
    assert.equal(t.take('r', 'k', 50, 10, 1, T + 20), true, 'refilled at 50/s');
    t.take('r', 'k', 50, 10, 0, T + 20); // cost 0 looks without taking
    assert.equal(t.out[1], 0, 'nothing left');
    assert.equal(t.take('r', 'k', 50, 10, 0, T + 10_000), true);
    assert.equal(t.out[1], 10, 'refill stops at the burst');
    assert.equal(t.out[3], 0);
    // A clock reading older than the bucket's (another worker got there
    // first) refills nothing and is not an error.
    assert.equal(t.take('r', 'k', 50, 10, 10, T + 9_000), true);
    assert.equal(t.take('r', 'k', 50, 10, 1, T + 9_000), false);
    // Keys are per route; a bucket of a fresh key starts full.
    assert.equal(t.take('other-route', 'k', 50, 10, 10, T), true);
    assert.equal(t.take('r', 'k2', 1, 3, 3, T), true);
    assert.equal(t.take('r', 'k2', 1, 3, 1, T), false);
    assert.equal(t.out[2], 1000);
  }));

test('keys are hashed whole and exactly: no two distinct keys share a bucket', () =>
  withTable(1 << 16, (t) => {
    const T = 1_000_000;
    // Each key drains its own bucket (burst 1); a key that shared a bucket with
    // an earlier one would find it empty.
    const drains = (route: string, key: string, what: string) => {
      assert.equal(t.take(route, key, 0.001, 1, 1, T), true, `${what}: a bucket of its own`);
    };
    const prefix = 'hdr:' + 'a'.repeat(250);
    // A header value is a latin1 string: bytes >= 0x80 are one character each.
    // Before the fix, a key whose UTF-8 character straddled byte 255 of the
    // read buffer was hashed as the prefix before it.
    drains('r', `${prefix}\u00e9`, 'é straddling byte 255');
    drains('r', `${prefix}\u00ea`, 'ê straddling byte 255');
    drains('r', `${prefix}\u00e9\u00e9`, 'longer');
    for (const n of [120, 126, 127, 128, 129, 250, 251, 252, 253, 254, 255, 256, 300, 5000]) {
      const base = 'x'.repeat(n);
      drains('r', `${base}A`, `${n}+1 chars, differing in the last`);
      drains('r', `${base}B`, `${n}+1 chars, differing in the last`);
      drains('r', `${base}\u00ff`, `${n} chars + latin1 ÿ`);
      drains('r', `${base}\u20ac`, `${n} chars + €`);
      drains('r', `${base}\u{1f600}`, `${n} chars + an astral character`);
    }
    // Lone surrogates are not U+FFFD (UTF-8 conversion would make them so),
    // and a latin1 string never meets a UTF-16 one.
    drains('r', 'sub:\ud800', 'lone high surrogate');
    drains('r', 'sub:\udc00', 'lone low surrogate');
    drains('r', 'sub:\ufffd', 'U+FFFD');
    drains('r', '\u00e9', 'é (one latin1 byte)');
    drains('r', '\u00c3\u00a9', 'Ã© (é\'s UTF-8 bytes as latin1)');
    drains('r', '\u0000', 'NUL');
    drains('r', '', 'empty');
    drains('r', '\u0000\u0000', 'two NULs');
    // Route names are read the same way.
    drains(`${'r'.repeat(300)}1`, 'k', 'long route 1');
    drains(`${'r'.repeat(300)}2`, 'k', 'long route 2');
  }));

test('a negative cost gives tokens back, never above the burst', () =>
  withTable(64, (t) => {
    const T = 1_000_000;
    for (let i = 0; i < 3; i++) assert.equal(t.take('r', 'k', 0.001, 3, 1, T), true);
    assert.equal(t.take('r', 'k', 0.001, 3, 1, T), false);
    assert.equal(t.take('r', 'k', 0.001, 3, -1, T), true, 'a give-back is always allowed');
    assert.equal(t.out[1], 1);
    assert.equal(t.take('r', 'k', 0.001, 3, 1, T), true, 'the token given back is there');
    t.take('r', 'k', 0.001, 3, -3, T);
    t.take('r', 'k', 0.001, 3, -3, T);
    assert.equal(t.out[1], 3, 'capped at the burst');
    assert.throws(() => t.take('r', 'k', 10, 5, -6), TypeError, 'more than the burst back is a caller bug');
  }));

test('argument checks throw TypeError; a closed table throws', () =>
  withTable(8, (t) => {
    assert.throws(() => t.take('r', 'k', 0, 10), TypeError);
    assert.throws(() => t.take('r', 'k', 10, 0), TypeError);
    assert.throws(() => t.take('r', 'k', 10, 5, 6), TypeError, 'cost above the burst can never pass');
    assert.throws(() => t.take('r', 'k', Number.NaN, 5), TypeError);
    assert.throws(() => t.take('r', 'k', Number.POSITIVE_INFINITY, 5), TypeError);
    assert.equal(t.take('r', 'fast', 1e12, 5, 5, 1000), true, 'any finite rate');
    assert.equal(t.take('r', 'fast', 1e12, 5, 5, 1000.001), true, 'refilled within a microsecond');
    assert.throws(() => t.take('r', 1 as unknown as string, 10, 5), TypeError);
    assert.throws(() => RateTable.create(0, { name: testName() }), /slots/);
    assert.throws(() => RateTable.create(2 ** 24 + 1, { name: testName() }), /slots/);
    assert.throws(() => RateTable.attach('no-slash'), /invalid shared-memory name/);
    assert.throws(() => RateTable.attach(`/switchyard-test-${process.pid}-rl-missing`), /No such file/);
    const other = RateTable.attach(t.name);
    other.close();
    assert.throws(() => other.take('r', 'k', 10, 5), /closed/);
    assert.equal(t.take('r', 'k', 10, 5), true, 'closing one handle leaves the others');
  }));

test('segment: mode 0600, fixed size, slots rounded to groups of 8, attached from a second process', () =>
  withTable(1000, async (t) => {
    assert.equal(t.slots, 1000);
    const st = statSync(shmFile(t.name));
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(st.size, t.bytes);
    const odd = RateTable.create(13, { name: testName() });
    assert.equal(odd.slots, 16);
    odd.close();
    odd.unlink();

    const seen = await inChild(`
      const lim = rl.RateLimiter.attach(${JSON.stringify(t.name)});
      const d = lim.take('r', 'from-child', { ratePerSecond: 0.001, burst: 5, key: 'client-ip' }, 2);
      console.log(JSON.stringify({ slots: lim.slots, bytes: lim.bytes, remaining: d.remaining }));
      lim.close();
    `);
    assert.deepEqual(seen, { slots: 1000, bytes: t.bytes, remaining: 3 });
    assert.equal(t.take('r', 'from-child', 0.001, 5, 0), true);
    assert.equal(t.out[1], 3, 'the child took 2 of 5');
  }));

test('a drained bucket is drained for another process', () =>
  withTable(64, async (t) => {
    // rate 0.001/s: no refill within the test
    for (let i = 0; i < 3; i++) assert.equal(t.take('r', 'k', 0.001, 3), true);
    const seen = await inChild(`
      const lim = rl.RateLimiter.attach(${JSON.stringify(t.name)});
      const d = lim.take('r', 'k', { ratePerSecond: 0.001, burst: 3, key: 'client-ip' });
      lim.close();
      console.log(JSON.stringify(d));
    `);
    assert.equal((seen as { allowed: boolean }).allowed, false);
    assert.equal((seen as { remaining: number }).remaining, 0);
    assert.ok((seen as { retryAfterMs: number }).retryAfterMs > 900_000);
  }));

test('exact across processes: 2 processes on one key at 50/s, burst 10, for 2 s get 10 + 50 x 2', (ctx) =>
  withTable(1024, async (t) => {
    // A file barrier, not a fixed start time: loading tsx in a child can take
    // seconds on a busy machine, and a window that passed before it loaded
    // measured nothing.
    const barrier = mkdtempSync(join(tmpdir(), 'rl-barrier-'));
    const hammer = (i: number) => `
      const fs = await import('node:fs');
      const lim = rl.RateLimiter.attach(${JSON.stringify(t.name)});
      const cfg = { ratePerSecond: 50, burst: 10, key: 'client-ip' };
      fs.writeFileSync(${JSON.stringify(barrier)} + '/ready-${i}', '');
      const nap = new Int32Array(new SharedArrayBuffer(4));
      let startAt;
      while ((startAt = Number(fs.existsSync(${JSON.stringify(barrier)} + '/go') && fs.readFileSync(${JSON.stringify(barrier)} + '/go', 'utf8'))) === 0) Atomics.wait(nap, 0, 0, 10);
      while (Date.now() < startAt) {}
      let allowed = 0, takes = 0;
      const first = Date.now();
      let last = first;
      while ((last = Date.now()) < startAt + 2000) {
        takes++;
        if (lim.take('route', '10.0.0.1', cfg).allowed) allowed++;
      }
      lim.close();
      console.log(JSON.stringify({ allowed, takes, first, last }));
    `;
    type R = { allowed: number; takes: number; first: number; last: number };
    try {
      const children = [inChild(hammer(0)), inChild(hammer(1))];
      while (!existsSync(join(barrier, 'ready-0')) || !existsSync(join(barrier, 'ready-1'))) await sleep(20);
      writeFileSync(join(barrier, 'go.tmp'), String(Date.now() + 200));
      renameSync(join(barrier, 'go.tmp'), join(barrier, 'go'));
      const results = (await Promise.all(children)) as R[];
      const total = results[0]!.allowed + results[1]!.allowed;
      const span = (Math.max(...results.map((r) => r.last)) - Math.min(...results.map((r) => r.first))) / 1000;
      const expected = 10 + 50 * span;
      const t2 = results.map((r) => r.takes);
      ctx.diagnostic(`exactness: ${total} allowed of ${t2[0]! + t2[1]!} takes over ${span.toFixed(3)} s, expected ${expected.toFixed(1)}`);
      assert.ok(results.every((r) => r.allowed > 0 && r.takes > 1000), 'both processes hammered');
      assert.ok(Math.abs(total - expected) <= expected * 0.05, `${total} allowed, expected ${expected} +-5%`);
      assert.equal(t.stats().lockTimeouts, 0);
    } finally {
      rmSync(barrier, { recursive: true, force: true });
    }
  }));

test('eviction: a flood of 10 x slots distinct keys keeps memory fixed and evicts refilled or idle keys first', () =>
  withTable(1024, (t) => {
    const size = statSync(shmFile(t.name)).size;
    const T = 2_000_000;
    const drain = (key: string, at: number): void => {
      for (let i = 0; i < 3; i++) t.take('r', key, 0.001, 3, 1, at);
    };
    const stillDrained = (key: string, at: number): boolean => {
      t.take('r', key, 0.001, 3, 0, at); // cost 0: a look
      return t.out[1] === 0;
    };
    drain('idle-but-drained', T);
    drain('active', T);
    drain('control', T);
    let now = T;
    for (let i = 0; i < 10 * t.slots; i++) {
      now += 0.001; // 1 us per take
      // Fast-refilling keys: full again 1 us after their take, so evicting
      // them loses nothing and they go before any drained bucket.
      t.take('r', `flood-${i}`, 1e6, 1, 1, now);
      if (i % 100 === 0) stillDrained('active', now);
    }
    const s = t.stats();
    assert.ok(s.used <= t.slots, `used ${s.used} <= ${t.slots}`);
    assert.ok(s.evictions >= 9 * t.slots, `evictions ${s.evictions}`);
    assert.equal(statSync(shmFile(t.name)).size, size);
    assert.ok(stillDrained('idle-but-drained', now), 'refilled keys were evicted, not the drained one');
    assert.ok(stillDrained('active', now));

    // Keys that never refill: now the least recently used bucket of a group goes.
    for (let i = 0; i < 10 * t.slots; i++) {
      now += 0.001;
      t.take('r', `slow-${i}`, 0.001, 3, 1, now);
      if (i % 100 === 0) stillDrained('active', now);
    }
    assert.ok(t.stats().used <= t.slots);
    assert.ok(stillDrained('active', now), 'an active key keeps its state');
    assert.ok(!stillDrained('control', now), 'an idle key was evicted (its bucket starts full again)');
  }));

test('RateLimiter.create uses /switchyard-<pid>-rl; sweepStale removes only dead primaries\' segments', async () => {
  const lim = RateLimiter.create(64);
  try {
    assert.equal(lim.name, rateTableName(process.pid));
    assert.equal(lim.name, `/switchyard-${process.pid}-rl`);
    const again = RateLimiter.create(64); // a leftover of this pid is replaced, not an error
    again.close();
    const deadPid = (await inChild('console.log(JSON.stringify(process.pid))')) as number;
    const stale = RateTable.create(8, { name: rateTableName(deadPid) });
    stale.close();
    assert.ok(existsSync(shmFile(stale.name)));
    const removed = RateLimiter.sweepStale();
    assert.ok(removed.includes(stale.name), `removed ${removed.join(', ')}`);
    assert.ok(!existsSync(shmFile(stale.name)));
    assert.ok(existsSync(shmFile(lim.name)), 'a live primary keeps its segment');
  } finally {
    lim.close();
    lim.unlink();
  }
});
