// The shared-memory region through src/native.ts, with a second real process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Counter, SharedRegion, regionName } from '../../src/native.js';
import { eligible } from '../helpers/native-probes.ts';

const NATIVE_TS = fileURLToPath(new URL('../../src/native.ts', import.meta.url));
const ids = ['127.0.0.1:9001', '127.0.0.1:9002', '127.0.0.1:9003'];
let seq = 0;
const testName = (): string => `/switchyard-test-${process.pid}-${++seq}`;

// Runs an ES module snippet in a fresh node process (with tsx, so it can
// import src/native.ts) and returns its stdout parsed as JSON.
async function inChild(code: string, nativeTs = NATIVE_TS): Promise<unknown> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', `import * as native from ${JSON.stringify(nativeTs)};\n${code}`],
    { timeout: 20_000 },
  );
  return JSON.parse(stdout);
}

// Disposes of a region whatever the test did.
function cleanup(...regions: SharedRegion[]): void {
  for (const r of regions) {
    r.close();
    r.unlink();
  }
}

test('a second process attaches by name and shares the counters', async () => {
  const region = SharedRegion.create(ids, { name: testName(), slots: 4 });
  try {
    region.add(Counter.ActiveConnections, 1, 0, 3);
    region.add(Counter.RequestsTotal, 2, 0, 10);
    const seen = await inChild(`
      const r = native.SharedRegion.attach(${JSON.stringify(region.name)}, ${JSON.stringify(ids)});
      const before = r.sum(native.Counter.ActiveConnections, 1);
      r.add(native.Counter.ActiveConnections, 1, 2, 4);
      r.add(native.Counter.RequestsTotal, 2, 2, 5);
      r.setHealthy(0, false);
      r.close();
      console.log(JSON.stringify({ before, slots: r.slots, identities: r.identities }));
    `);
    assert.deepEqual(seen, { before: 3, slots: 4, identities: ids });
    assert.equal(region.sum(Counter.ActiveConnections, 1), 7);
    assert.equal(region.read(Counter.ActiveConnections, 1, 2), 4);
    assert.equal(region.sum(Counter.RequestsTotal, 2), 15);
    assert.equal(region.healthy(0), false);
  } finally {
    cleanup(region);
  }
});

test('attach checks the expected identities and rejects unknown names', () => {
  const region = SharedRegion.create(ids, { name: testName(), slots: 2 });
  try {
    assert.throws(() => SharedRegion.attach(region.name, ['127.0.0.1:9001']), /expected/);
    assert.throws(() => SharedRegion.attach(`/switchyard-test-${process.pid}-missing`), /No such file/);
    assert.throws(() => SharedRegion.attach('no-slash'), /invalid shared-memory name/);
  } finally {
    cleanup(region);
  }
});

test('counters: per slot, summed over slots, negative deltas, zeroSlot', () => {
  const region = SharedRegion.create(ids, { name: testName(), slots: 8 });
  try {
    for (let slot = 0; slot < 8; slot++) {
      region.add(Counter.ActiveRequests, 0, slot, slot + 1);
      region.add(Counter.Failures, 0, slot, 1);
    }
    region.add(Counter.ActiveRequests, 0, 3, -2);
    assert.equal(region.sum(Counter.ActiveRequests, 0), 36 - 2);
    assert.equal(region.read(Counter.ActiveRequests, 0, 3), 2);
    assert.equal(region.sum(Counter.Failures, 0), 8);
    assert.equal(region.sum(Counter.ActiveRequests, 1), 0);

    region.zeroSlot(5);
    assert.equal(region.read(Counter.ActiveRequests, 0, 5), 0);
    assert.equal(region.sum(Counter.ActiveRequests, 0), 34 - 6);
    assert.equal(region.sum(Counter.Failures, 0), 7);

    region.close();
    assert.throws(() => region.sum(Counter.ActiveRequests, 0), /closed/);
  } finally {
    cleanup(region);
  }
});

test('health words: healthy, drained, ejection deadline, eligibility', () => {
  const region = SharedRegion.create(ids, { name: testName(), slots: 1 });
  try {
    assert.ok(ids.every((_, i) => region.healthy(i) && !region.drained(i) && eligible(region, i)));
    region.setHealthy(0, false);
    region.setDrained(1, true);
    region.setEjectedUntil(2, Date.now() + 60_000);
    assert.deepEqual([0, 1, 2].map((i) => eligible(region, i)), [false, false, false]);
    assert.equal(region.healthy(1), true);
    assert.equal(region.drained(0), false);
    region.setHealthy(0, true);
    region.setDrained(1, false);
    region.setEjectedUntil(2, Date.now() - 1);
    assert.deepEqual([0, 1, 2].map((i) => eligible(region, i)), [true, true, true]);
  } finally {
    cleanup(region);
  }
});

test('bad arguments throw TypeError / RangeError, never abort', () => {
  const region = SharedRegion.create(ids, { name: testName(), slots: 2 });
  try {
    assert.throws(() => region.add(Counter.ActiveConnections, 3, 0, 1), RangeError);
    assert.throws(() => region.add(Counter.ActiveConnections, 0, 2, 1), RangeError);
    assert.throws(() => region.add(Counter.ActiveConnections, 0, 0, 1.5), TypeError);
    assert.throws(() => region.add(7 as Counter, 0, 0, 1), TypeError);
    assert.throws(() => region.sum(Counter.Failures, -1), TypeError);
    assert.throws(() => region.setEjectedUntil(0, -5), TypeError);
    assert.throws(() => SharedRegion.create(ids, { name: testName(), slots: 0 }), /slots/);
    assert.throws(() => SharedRegion.create(ids, { name: region.name }), /File exists/);
  } finally {
    cleanup(region);
  }
});

test('unlink removes the name; existing mappings keep working', () => {
  const region = SharedRegion.create(ids, { name: testName(), slots: 1 });
  const other = SharedRegion.attach(region.name);
  try {
    assert.equal(region.unlink(), true);
    assert.equal(region.unlink(), false);
    assert.equal(existsSync(`/dev/shm${region.name}`), false);
    assert.throws(() => SharedRegion.attach(region.name), /No such file/);
    region.add(Counter.ActiveConnections, 0, 0, 1);
    assert.equal(other.sum(Counter.ActiveConnections, 0), 1);
  } finally {
    region.close();
    other.close();
  }
});

test('sweepStale removes segments of dead pids only', async () => {
  // A pid that certainly existed and has exited.
  const child = spawn(process.execPath, ['-e', '']);
  const deadPid = child.pid!;
  await new Promise((resolve) => child.on('exit', resolve));
  const dead = [regionName(deadPid), regionName(deadPid, 3)];
  const alive = regionName(process.pid, 999_999);
  const regions = [...dead, alive].map((name) => SharedRegion.create(ids, { name, slots: 1 }));
  try {
    const removed = SharedRegion.sweepStale();
    for (const name of dead) {
      assert.ok(removed.includes(name), `${name} swept`);
      assert.equal(existsSync(`/dev/shm${name}`), false);
    }
    assert.ok(!removed.includes(alive));
    assert.ok(existsSync(`/dev/shm${alive}`));
  } finally {
    for (const r of regions) cleanup(r);
  }
});

test('reload: createNext keeps counts and health of staying servers', () => {
  const old = SharedRegion.create(ids, { name: regionName(process.pid, 500_000), generation: 0, slots: 4 });
  let next: SharedRegion | undefined;
  try {
    old.add(Counter.ActiveConnections, 0, 1, 2); // 127.0.0.1:9001 stays
    old.add(Counter.ActiveConnections, 1, 1, 5); // 127.0.0.1:9002 goes
    old.add(Counter.RequestsTotal, 2, 3, 40); // 127.0.0.1:9003 stays
    old.setDrained(2, true);
    const newIds = ['127.0.0.1:9003', '127.0.0.1:9004', '127.0.0.1:9001'];
    next = old.createNext(newIds);
    assert.equal(next.name, regionName(process.pid, 1));
    assert.equal(next.generation, 1);
    assert.deepEqual(next.identities, newIds);
    assert.equal(next.sum(Counter.ActiveConnections, 2), 2);
    assert.equal(next.sum(Counter.RequestsTotal, 0), 40);
    assert.equal(next.drained(0), true);
    assert.equal(next.sum(Counter.ActiveConnections, 1), 0);
    assert.equal(next.healthy(1), true);
  } finally {
    cleanup(old);
    if (next) cleanup(next);
  }
});

test('create with the default name replaces a leftover of this pid', () => {
  const leftover = SharedRegion.create(['x:1'], { name: regionName(process.pid, 700_000), slots: 1 });
  leftover.close();
  const region = SharedRegion.create(ids, { generation: 700_000, slots: 1 });
  try {
    assert.equal(region.name, regionName(process.pid, 700_000));
    assert.deepEqual(SharedRegion.attach(region.name).identities, ids);
  } finally {
    cleanup(region);
  }
});

/** A copy of src/native.ts, src/native/ and src/errors.ts under a temporary root (package.json, no build/); `edit` may change the copy. */
function copyOfNative(edit?: (root: string) => void): string {
  const root = mkdtempSync(path.join(tmpdir(), 'switchyard-native-copy-'));
  const src = path.dirname(NATIVE_TS);
  mkdirSync(path.join(root, 'src', 'native'), { recursive: true });
  writeFileSync(path.join(root, 'package.json'), '{"type":"module"}');
  for (const file of ['native.ts', 'errors.ts', 'native/addon.ts', 'native/layout.ts', 'native/region.ts', 'native/maglev.ts', 'native/rate-table.ts', 'native/socket-peer.ts', 'native/listen-socket.ts', 'native/tcp-relay.ts', 'native/startup-pages.ts', 'native/dsr.ts']) {
    copyFileSync(path.join(src, file), path.join(root, 'src', file));
  }
  edit?.(root);
  return root;
}

const loadOutcome = `try { native.MaglevTable.build(['a:1'], [1]); console.log('null'); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`;

test('a missing addon fails with SWY_ERR_NATIVE_MISSING and a message saying to run npm install', async () => {
  // The loader looks for build/ two levels above its own directory: copy it where there is none.
  const root = copyOfNative();
  try {
    const seen = (await inChild(loadOutcome, path.join(root, 'src', 'native.ts'))) as { code: string; message: string };
    assert.equal(seen.code, 'SWY_ERR_NATIVE_MISSING');
    assert.match(seen.message, /addon is missing[\s\S]*npm install[\s\S]*npm rebuild/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('an addon whose shared-memory layout differs from src/native/layout.ts is refused at load (SWY_ERR_NATIVE_LAYOUT)', async () => {
  // The real build, and a layout.ts that says the healthy bit is another one.
  const root = copyOfNative((dir) => {
    symlinkSync(path.resolve(path.dirname(NATIVE_TS), '..', 'build'), path.join(dir, 'build'));
    const layout = path.join(dir, 'src', 'native', 'layout.ts');
    const text = readFileSync(layout, 'utf8');
    assert.ok(text.includes('export const HEALTHY = 1;'));
    writeFileSync(layout, text.replace('export const HEALTHY = 1;', 'export const HEALTHY = 4;'));
  });
  try {
    const seen = (await inChild(loadOutcome, path.join(root, 'src', 'native.ts'))) as { code: string; message: string };
    assert.equal(seen.code, 'SWY_ERR_NATIVE_LAYOUT');
    assert.match(seen.message, /"healthy":1.*"healthy":4/);
    // The unchanged copy loads the same build.
    const ok = copyOfNative((dir) => symlinkSync(path.resolve(path.dirname(NATIVE_TS), '..', 'build'), path.join(dir, 'build')));
    try {
      assert.equal(await inChild(loadOutcome, path.join(ok, 'src', 'native.ts')), null);
    } finally {
      rmSync(ok, { recursive: true, force: true });
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('releaseStartupPages unmaps the clean pages of the node binary; the process runs on, code not yet run included', async () => {
  // In a fresh process: this one's mappings are the test runner's business.
  const out = (await inChild(`
    import { readFileSync } from 'node:fs';
    const rssFileKb = () => Number(/RssFile:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1]);
    const before = rssFileKb();
    const released = native.releaseStartupPages();
    const after = rssFileKb();
    // Code and builtins this process had not run: their pages come back on demand.
    const zlib = await import('node:zlib');
    const { createHash } = await import('node:crypto');
    const roundTrip = zlib.gunzipSync(zlib.gzipSync(Buffer.from('x'.repeat(100000)))).length;
    const digest = createHash('sha256').update('abc').digest('hex');
    const date = new Intl.DateTimeFormat('en-GB', { timeZone: 'UTC', dateStyle: 'long' }).format(new Date(0));
    const again = native.releaseStartupPages();
    console.log(JSON.stringify({ before, after, released, again, roundTrip, digest, date }));
  `)) as {
    before: number;
    after: number;
    released: { mappings: number; residentBytes: number };
    again: { mappings: number; residentBytes: number };
    roundTrip: number;
    digest: string;
    date: string;
  };
  assert.ok(out.released.mappings > 0 && out.released.residentBytes > 8 * 1024 * 1024, `released ${JSON.stringify(out.released)}`);
  assert.ok(out.after < out.before - 8 * 1024, `file-backed RSS ${out.before} -> ${out.after} KiB`);
  assert.equal(out.roundTrip, 100000);
  assert.equal(out.digest, 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  assert.equal(out.date, '1 January 1970');
  // A second call finds only what ran since.
  assert.ok(out.again.residentBytes < out.released.residentBytes, `second release ${JSON.stringify(out.again)}`);
});
