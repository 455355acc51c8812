// The process lifecycle of the real CLI: command line, workers, respawn,
// crash loop and graceful shutdown.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { getStatus, waitForStatus } from '../helpers/admin-status.js';
import { startNamedBackend, type Backend } from '../helpers/backend.js';
import { isAlive, request, sleep, tempDir, type TempDir } from '../helpers/process.js';
import { baseConfig, freePort, runCli, startCli, withOutput, type RunningCli } from '../helpers/switchyard.js';

describe('command line', () => {
  let tmp: TempDir;
  before(async () => (tmp = await tempDir()));
  after(() => tmp.remove());

  test('--version prints the package version', async () => {
    const r = await runCli(['--version']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^switchyard \d+\.\d+\.\d+\n$/);
  });

  test('--help lists every option', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0);
    for (const flag of ['--config', '--check', '--workers', '--version', '--help']) assert.ok(r.stdout.includes(flag), flag);
  });

  test('an unknown flag exits 2 with a clear message', async () => {
    const r = await runCli(['--bogus']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--bogus/);
    assert.equal(r.stdout, '');
  });

  test('a non-numeric --workers exits 2', async () => {
    const r = await runCli(['--workers', 'many', '--check', 'x.yaml']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--workers/);
  });

  test('--check on a valid file prints the summary and exits 0', async () => {
    const file = await tmp.writeConfig(baseConfig({ proxyPort: 18080, adminPort: 19090, servers: ['127.0.0.1:9001'], workers: 3 }));
    const r = await runCli(['--check', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /workers: 3/);
    assert.match(r.stdout, /127\.0\.0\.1:18080/);
  });

  test('--check applies --workers', async () => {
    const file = await tmp.writeConfig(baseConfig({ proxyPort: 18080, adminPort: 19090, servers: ['127.0.0.1:9001'] }));
    const r = await runCli(['--check', file, '--workers', '5']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /workers: 5/);
  });

  test('--check on an invalid file prints every error with file:line:col and exits 1', async () => {
    const file = await tmp.writeText('workers: 0\nbogus: 1\n', 'bad.yaml');
    const r = await runCli(['--check', file]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trim().split('\n');
    assert.ok(lines.length >= 2, r.stderr);
    assert.ok(lines.some((l) => l.startsWith(`${file}:1:`) && l.includes('workers')), r.stderr);
    assert.ok(lines.some((l) => l.startsWith(`${file}:2:1`) && l.includes('bogus')), r.stderr);
  });

  test('--check on a missing file exits 1', async () => {
    const r = await runCli(['--check', `${tmp.dir}/nope.yaml`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /nope\.yaml/);
  });

  test('running with an invalid config prints the errors and exits 1', async () => {
    const file = await tmp.writeText('bogus: 1\n', 'bad-run.yaml');
    const r = await runCli(['--config', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /bogus/);
  });

  test('a proxy port already taken fails the start-up with exit 1', async () => {
    const blocker = await startNamedBackend();
    try {
      const adminPort = await freePort();
      const file = await tmp.writeConfig(
        baseConfig({ proxyPort: blocker.port, adminPort, servers: ['127.0.0.1:9001'], workers: 1 }),
        'taken.yaml',
      );
      const r = await runCli(['--config', file], 20_000);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /crash/);
    } finally {
      await blocker.close();
    }
  });
});

describe('workers', () => {
  let tmp: TempDir;
  let backend: Backend;
  before(async () => {
    tmp = await tempDir();
    backend = await startNamedBackend();
  });
  after(async () => {
    await backend.close();
    await tmp.remove();
  });

  async function start(workers: number, scheduling: 'kernel' | 'round-robin' = 'kernel') {
    const proxyPort = await freePort();
    const adminPort = await freePort();
    const file = await tmp.writeConfig(baseConfig({ proxyPort, adminPort, servers: [backend.address], workers, scheduling }));
    const cli = await startCli(file, { waitFor: [proxyPort, adminPort] });
    return { cli, proxyPort, adminPort };
  }

  test('N workers are forked and visible in /status; demo-free config serves through them', async () => {
    const { cli, proxyPort, adminPort } = await start(2);
    try {
      await withOutput(cli, async () => {
        const s = await waitForStatus(adminPort, 'two ready workers', (s) => s.workers.filter((w) => w.state === 'ready').length === 2);
        assert.equal(s.pid, cli.pid);
        assert.deepEqual(s.workers.map((w) => w.slot).sort(), [0, 1]);
        for (const w of s.workers) {
          assert.ok(w.pid !== null && w.pid !== cli.pid && isAlive(w.pid));
          assert.equal(w.restarts, 0);
          // Without an HTTP/2 listener, the 1 MB young generation (primary.ts, workerV8Flags).
          assert.ok(readFileSync(`/proc/${w.pid}/cmdline`, 'latin1').split('\0').includes('--max-semi-space-size=1'));
        }
        const res = await request({ port: proxyPort, path: '/hello' });
        assert.equal(res.status, 200);
        assert.equal(res.body, `backend ${backend.port}\n`);
      });
    } finally {
      assert.deepEqual(await cli.stop(), { code: 0, signal: null });
    }
  });

  test('--workers overrides the config', async () => {
    const proxyPort = await freePort();
    const adminPort = await freePort();
    const file = await tmp.writeConfig(baseConfig({ proxyPort, adminPort, servers: [backend.address], workers: 2 }), 'override.yaml');
    const cli = await startCli(file, { args: ['--workers', '1'], waitFor: [proxyPort, adminPort] });
    try {
      await withOutput(cli, async () => {
        const s = await waitForStatus(adminPort, 'a ready worker', (s) => s.workers.some((w) => w.state === 'ready'));
        assert.equal(s.workers.length, 1);
      });
    } finally {
      await cli.stop();
    }
  });

  test('a SIGKILLed worker is replaced while the others keep serving', async () => {
    const { cli, proxyPort, adminPort } = await start(2);
    try {
      await withOutput(cli, async () => {
        const before = await waitForStatus(adminPort, 'every worker ready', (s) => s.workers.every((w) => w.state === 'ready'));
        const victim = before.workers.find((w) => w.slot === 0)!;
        const other = before.workers.find((w) => w.slot === 1)!;

        // Sequential requests, each on a new connection, before, during and
        // after the kill: only a request the victim had accepted may fail.
        let ok = 0;
        const failures: string[] = [];
        let killed = false;
        let replaced = false;
        let afterReplaced = 0;
        const deadline = Date.now() + 15_000;
        while (afterReplaced < 50 && Date.now() < deadline) {
          try {
            const res = await request({ port: proxyPort, path: '/', timeoutMs: 2000 });
            if (res.status === 200) ok++;
            else failures.push(`status ${res.status}`);
          } catch (err) {
            failures.push((err as Error).message);
          }
          if (!killed && ok >= 20) {
            process.kill(victim.pid!, 'SIGKILL');
            killed = true;
          } else if (killed && !replaced) {
            const s = await getStatus(adminPort);
            const slot0 = s.workers.find((w) => w.slot === 0);
            replaced = slot0?.state === 'ready' && slot0.pid !== victim.pid;
          } else if (replaced) afterReplaced++;
        }
        assert.ok(replaced, 'the killed worker was replaced');
        assert.ok(failures.length <= 1, `failures: ${failures.join(', ')}`);
        assert.ok(ok >= 70, `only ${ok} requests succeeded`);

        const s = await getStatus(adminPort);
        const slot0 = s.workers.find((w) => w.slot === 0)!;
        const slot1 = s.workers.find((w) => w.slot === 1)!;
        assert.notEqual(slot0.pid, victim.pid);
        assert.equal(slot0.restarts, 1);
        assert.equal(slot1.pid, other.pid, 'the other worker was left alone');
        assert.equal(slot1.restarts, 0);
        assert.equal(s.crashLoop, false);
        assert.equal(isAlive(victim.pid!), false);
      });
    } finally {
      assert.deepEqual(await cli.stop(), { code: 0, signal: null });
    }
  });

  test('a worker sent SIGTERM directly drains, exits 0 and is replaced', async () => {
    const { cli, proxyPort, adminPort } = await start(2);
    try {
      await withOutput(cli, async () => {
        const before = await waitForStatus(adminPort, 'every worker ready', (s) => s.workers.every((w) => w.state === 'ready'));
        const victim = before.workers.find((w) => w.slot === 1)!;
        process.kill(victim.pid!, 'SIGTERM');
        const after = await waitForStatus(adminPort, 'slot 1 respawned and ready', (s) => {
          const w = s.workers.find((w) => w.slot === 1);
          return w?.state === 'ready' && w.pid !== victim.pid;
        });
        assert.equal(after.workers.find((w) => w.slot === 1)!.restarts, 1);
        assert.match(cli.output(), new RegExp(`"workerPid":${victim.pid},"code":0,"signal":null`));
        assert.equal((await request({ port: proxyPort })).status, 200);
      });
    } finally {
      assert.deepEqual(await cli.stop(), { code: 0, signal: null });
    }
  });

  test('a crash loop stops respawning, keeps the survivors and the primary up', async () => {
    const { cli, proxyPort, adminPort } = await start(2, 'round-robin');
    try {
      await withOutput(cli, async () => {
        const killed = new Set<number>();
        // Kill 2, 2, then 1 workers, each time once both slots run fresh ready
        // workers: the fifth death within 10 s is a crash loop, and the worker
        // of the other slot survives it.
        for (const n of [2, 2, 1]) {
          const s = await waitForStatus(adminPort, 'every worker respawned and ready', (s) =>
            s.workers.every((w) => w.state === 'ready' && w.pid !== null && !killed.has(w.pid)),
          );
          for (const w of s.workers.slice(0, n)) {
            process.kill(w.pid!, 'SIGKILL');
            killed.add(w.pid!);
          }
        }
        const s = await waitForStatus(adminPort, 'the crash loop flagged', (s) => s.crashLoop);
        const survivors = s.workers.filter((w) => w.state === 'ready');
        assert.equal(survivors.length, 1, JSON.stringify(s.workers));
        assert.ok(s.workers.some((w) => w.state === 'stopped' && w.pid === null));

        // Nothing is respawned afterwards (beyond the largest backoff used so far).
        await sleep(1000);
        const later = await getStatus(adminPort);
        assert.equal(later.crashLoop, true);
        assert.deepEqual(
          later.workers.map((w) => [w.slot, w.pid, w.state]),
          s.workers.map((w) => [w.slot, w.pid, w.state]),
        );
        assert.ok(isAlive(cli.pid));
        assert.ok(isAlive(survivors[0]!.pid!));
        assert.match(cli.output(), /crash-looping/);
        // The survivor still serves.
        assert.equal((await request({ port: proxyPort })).status, 200);
      });
    } finally {
      assert.deepEqual(await cli.stop(), { code: 0, signal: null });
    }
  });
});

describe('graceful shutdown', () => {
  let tmp: TempDir;
  before(async () => (tmp = await tempDir()));
  after(() => tmp.remove());

  for (const how of ['SIGTERM to the primary', 'SIGINT to the process group'] as const) {
    test(`${how}: an in-flight slow request completes, then the primary exits 0`, async () => {
      let arrived!: () => void;
      const slowArrived = new Promise<void>((resolve) => (arrived = resolve));
      const backend = await startNamedBackend({ slowMs: 1500, onSlow: () => arrived() });
      const proxyPort = await freePort();
      const adminPort = await freePort();
      const file = await tmp.writeConfig(baseConfig({ proxyPort, adminPort, servers: [backend.address], workers: 2 }));
      const detached = how === 'SIGINT to the process group';
      const cli = await startCli(file, { waitFor: [proxyPort, adminPort], detached });
      try {
        await withOutput(cli, async () => {
          const { workers } = await waitForStatus(adminPort, 'every worker ready', (s) => s.workers.every((w) => w.state === 'ready'));
          const inflight = request({ port: proxyPort, path: '/slow', timeoutMs: 10_000 });
          await slowArrived;
          const sentAt = Date.now();
          if (detached) process.kill(-cli.pid, 'SIGINT');
          else process.kill(cli.pid, 'SIGTERM');

          const res = await inflight;
          assert.equal(res.status, 200);
          assert.equal(res.body, `backend ${backend.port} slow\n`);
          const exit = await cli.exited;
          assert.deepEqual(exit, { code: 0, signal: null }, cli.output());
          assert.ok(Date.now() - sentAt < 5000, 'shutdown did not wait for the hard-kill deadline');
          for (const w of workers) assert.equal(isAlive(w.pid!), false);
          await assert.rejects(request({ port: proxyPort, timeoutMs: 1000 }), 'the proxy port is closed');
        });
      } finally {
        await cli.stop('SIGKILL');
        await backend.close();
      }
    });
  }

  test('a request that outlives shutdown_timeout is cut and the primary still exits 0', async () => {
    let arrived!: () => void;
    const slowArrived = new Promise<void>((resolve) => (arrived = resolve));
    const backend = await startNamedBackend({ slowMs: 5000, onSlow: () => arrived() });
    const proxyPort = await freePort();
    const adminPort = await freePort();
    const file = await tmp.writeConfig(
      baseConfig({ proxyPort, adminPort, servers: [backend.address], workers: 1, shutdownTimeout: '500ms' }),
    );
    const cli = await startCli(file, { waitFor: [proxyPort, adminPort] });
    try {
      await withOutput(cli, async () => {
        const inflight = request({ port: proxyPort, path: '/slow', timeoutMs: 10_000 }).then(
          (r) => r.status,
          () => 'cut',
        );
        await slowArrived;
        const sentAt = Date.now();
        process.kill(cli.pid, 'SIGTERM');
        assert.deepEqual(await cli.exited, { code: 0, signal: null }, cli.output());
        const tookMs = Date.now() - sentAt;
        assert.ok(tookMs < 3000, `shutdown took ${tookMs} ms`);
        assert.notEqual(await inflight, 200);
      });
    } finally {
      await cli.stop('SIGKILL');
      await backend.close();
    }
  });
});

describe('demo backends', () => {
  let tmp: TempDir;
  before(async () => (tmp = await tempDir()));
  after(() => tmp.remove());

  test('the primary serves demo backends the proxy can reach; a taken port is logged by address', async () => {
    const blocker = await startNamedBackend();
    const demoPort = await freePort();
    const proxyPort = await freePort();
    const adminPort = await freePort();
    const demo = `127.0.0.1:${demoPort}`;
    const file = await tmp.writeConfig({
      ...baseConfig({ proxyPort, adminPort, servers: [demo], workers: 1 }),
      demo_backends: [demo, blocker.address],
    });
    // A failed start must still close the blocker: a listening server left behind keeps the test process alive.
    let cli: RunningCli | undefined;
    try {
      cli = await startCli(file, { waitFor: [proxyPort, adminPort] });
      const running = cli;
      await withOutput(running, async () => {
        const res = await request({ port: proxyPort, path: '/anything' });
        assert.equal(res.status, 200);
        assert.equal(res.body, `Hello from Switchyard demo backend ${demo}\n`);
        assert.equal((await request({ port: demoPort, path: '/healthz' })).status, 200);
        assert.ok(running.output().includes(`demo backend could not listen on ${blocker.address}`));
      });
      assert.deepEqual(await running.stop(), { code: 0, signal: null });
      await assert.rejects(request({ port: demoPort, timeoutMs: 1000 }), 'demo backends stop with the primary');
    } finally {
      await cli?.stop('SIGKILL');
      await blocker.close();
    }
  });
});
