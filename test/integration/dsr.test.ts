// Issue 13, item 2, end to end: `mode: dsr` from a config file through the
// CLI, on a network-namespace lab (test/helpers/netns.ts: a client, the
// balancer and three servers on one bridge, torn down even on failure).
// Switchyard runs in the balancer's namespace; the test talks to its admin API
// and to the VIP with curl inside the namespaces. Shown: L2 and L3 forward
// (and the 1 MB responses do not cross the balancer), a server failing its
// health check and a drained server get no new flows, reloads that add and
// remove servers break none of the other live flows, the forwarder process
// killed is respawned and serves again, and the counters are in /status and
// /metrics. A start on a missing interface, or without root, fails with a clear error.
// Needs root and `ip netns`: under CI=true their absence fails the file.
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { DsrLab, labUnavailable, type LabServer } from '../helpers/netns.js';
import { CLI_PATH, freePort, runCli } from '../helpers/switchyard.js';

const unavailable = labUnavailable();
if (unavailable && process.env.CI === 'true') throw new Error(`dsr tests cannot run (${unavailable}): CI must run them as root`);
const skip = unavailable || false;

const ADMIN = 9090;
const TOKEN = 'dsr-test-token';

interface Balancer {
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

describe('dsr: forwarder process driven by the config', { skip }, () => {
  let lab: DsrLab;
  let dir: string;
  let balancer: Balancer | undefined;
  const file = () => path.join(dir, 'switchyard.yaml');

  const config = (method: 'l2' | 'l3', servers: LabServer[]) => ({
    workers: 1,
    listen: [{ host: '127.0.0.1', port: 8080 }],
    admin: { host: '127.0.0.1', port: ADMIN, token: TOKEN },
    logging: { level: 'info', access: false, format: 'json' },
    shutdown_timeout: '2s',
    upstreams: {
      web: {
        servers: servers.map((s) => ({ address: `${s.ip}:${lab.port}`, mac: s.mac })),
        health: { path: '/', interval: '200ms', timeout: '150ms', rise: 1, fall: 1 },
      },
    },
    routes: [{ match: { path: '/' }, upstream: 'web' }],
    dsr: [{ interface: 'eth0', vip: lab.vip, ports: [lab.port], upstream: 'web', method, ...(method === 'l3' ? { dscp: lab.dscp } : {}) }],
  });

  const adminCall = (p: string, method = 'GET'): string =>
    lab.exec(lab.balancer, ['curl', '-sS', '--max-time', '10', '-X', method, '-H', `authorization: Bearer ${TOKEN}`, `http://127.0.0.1:${ADMIN}${p}`]);
  const status = () => JSON.parse(adminCall('/status')) as DsrStatusBody;
  /** `n` requests from one curl, each on a new connection (Connection: close; a new source port each): answers by server. */
  const askMany = (n: number): Map<string, number> => {
    const url = `http://${lab.vip}:${lab.port}/`;
    const out = lab.exec(lab.client, ['curl', '-sS', '--max-time', '20', '-H', 'Connection: close', '-w', '\\n', ...Array<string>(n).fill(url)]);
    const names = out.split('\n').filter(Boolean);
    assert.equal(names.length, n, `expected ${n} answers, got ${JSON.stringify(out)}`);
    const seen = new Map<string, number>();
    for (const name of names) seen.set(name, (seen.get(name) ?? 0) + 1);
    return seen;
  };

  async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 15_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    for (;;) {
      try {
        const value = probe();
        if (value !== undefined && value !== false) return value;
      } catch (err) {
        last = err;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${String(last)}\n--- switchyard ---\n${balancer?.output() ?? ''}`);
      await sleep(100);
    }
  }

  async function startBalancer(cfg: object): Promise<Balancer> {
    writeFileSync(file(), stringify(cfg));
    const child = lab.spawnIn(lab.balancer, process.execPath, [CLI_PATH, '--config', file()]);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-200_000)));
    child.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-200_000)));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const b: Balancer = {
      child,
      output: () => out,
      stop: async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        await Promise.race([exited, sleep(10_000).then(() => child.kill('SIGKILL'))]);
        await exited;
      },
    };
    balancer = b;
    await waitFor('the admin API in the balancer namespace', () => {
      if (child.exitCode !== null) throw new Error(`switchyard exited (${child.exitCode})`);
      return status().dsr?.forwarder.state === 'running' ? true : undefined;
    });
    return b;
  }

  async function stopBalancer(): Promise<void> {
    await balancer?.stop();
    balancer = undefined;
  }

  before(async () => {
    lab = await DsrLab.create({ servers: 3 });
    dir = mkdtempSync(path.join(tmpdir(), 'switchyard-dsr-'));
  });
  after(async () => {
    await stopBalancer();
    lab?.teardown();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('L2: requests to the VIP reach every server, and 1 MB answers do not cross the balancer', async () => {
    await startBalancer(config('l2', lab.servers));
    try {
      const seen = askMany(30);
      assert.deepEqual([...seen.keys()].sort(), ['s0', 's1', 's2'], `answers by server: ${JSON.stringify([...seen])}`);
      const before = lab.frames(lab.balancer);
      for (let i = 0; i < 4; i++) {
        const bytes = lab.exec(lab.client, ['curl', '-sS', '--max-time', '10', '-o', '/dev/null', '-w', '%{size_download}', `http://${lab.vip}/big?n=1048576`]);
        assert.equal(bytes, '1048576');
      }
      const afterFrames = lab.frames(lab.balancer);
      // 4 MB went to the client; the balancer saw the requests and ACKs only, and sent their copies on.
      assert.ok(afterFrames.txBytes - before.txBytes < 1_000_000, `the balancer sent ${afterFrames.txBytes - before.txBytes} bytes for 4 MB of answers`);
    } finally {
      await stopBalancer();
    }
  });

  test('L3: the same through DSCP marks and destination rewrite', async () => {
    await startBalancer(config('l3', lab.servers));
    try {
      const seen = askMany(30);
      assert.deepEqual([...seen.keys()].sort(), ['s0', 's1', 's2'], `answers by server: ${JSON.stringify([...seen])}`);
      const body = lab.exec(lab.client, ['sh', '-c', `head -c 2000000 /dev/urandom | curl -sS --max-time 10 --data-binary @- http://${lab.vip}/`]);
      assert.match(body, /^s\d 2000000 [0-9a-f]{64}$/);
    } finally {
      await stopBalancer();
    }
  });

  describe('one balancer through health, drain, reloads (servers added and removed, l2 switched to l3) and a forwarder crash', () => {
    const streams: { child: ChildProcess; out: () => string }[] = [];
    const [s0, s1, s2] = [0, 1, 2].map((i) => () => lab.servers[i]!);
    const addr = (s: LabServer) => `${s.ip}:${lab.port}`;

    before(async () => {
      await startBalancer(config('l2', [s0(), s1()]));
    });
    after(async () => {
      for (const s of streams) s.child.kill('SIGKILL');
      await stopBalancer();
    });

    test('a server that fails its health check gets no new flows, and new flows again once it passes', async () => {
      // s1 stops answering the balancer's checks (clients still reach it).
      lab.exec(s1(), ['nft', '-f', '-'], `table ip sytest {\n chain input {\n  type filter hook input priority 0;\n  ip saddr ${lab.balancer.ip} tcp dport ${lab.port} drop\n }\n}\n`);
      try {
        await waitFor('s1 marked down', () => status().upstreams.web!.servers.find((s) => s.address === addr(s1()))?.healthy === false || undefined);
        const seen = askMany(20);
        assert.deepEqual([...seen.keys()], ['s0'], `answers by server: ${JSON.stringify([...seen])}`);
      } finally {
        lab.exec(s1(), ['nft', 'delete', 'table', 'ip', 'sytest']);
      }
      await waitFor('s1 healthy again', () => status().upstreams.web!.servers.every((s) => s.healthy) || undefined);
      assert.ok(askMany(20).has('s1'));
    });

    test('drain through the admin API stops new flows to a server; enable brings them back', () => {
      assert.match(adminCall(`/servers/web/${addr(s0())}/drain`, 'POST'), /drain/i);
      try {
        const seen = askMany(20);
        assert.deepEqual([...seen.keys()], ['s1'], `answers by server: ${JSON.stringify([...seen])}`);
      } finally {
        adminCall(`/servers/web/${addr(s0())}/enable`, 'POST');
      }
      assert.ok(askMany(20).has('s0'));
    });

    test('reloads adding and then removing a server break none of the other live flows', async () => {
      // Streams until each server holds at least two (the hash decides where each lands).
      const serverOf: string[] = [];
      while (streams.length < 24 && !(serverOf.filter((n) => n === 's0').length >= 2 && serverOf.filter((n) => n === 's1').length >= 2)) {
        const child = lab.spawnIn(lab.client, 'curl', ['-sSN', '--max-time', '60', `http://${lab.vip}:${lab.port}/stream`]);
        let out = '';
        child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
        const stream = { child, out: () => out };
        streams.push(stream);
        serverOf.push(await waitFor('a stream answering', () => (stream.out().includes('\n') ? stream.out().split('\n')[0]! : undefined)));
      }
      assert.ok(serverOf.every((n) => n === 's0' || n === 's1'), `streams on ${serverOf.join(',')}`);
      assert.ok(serverOf.filter((n) => n === 's0').length >= 2 && serverOf.filter((n) => n === 's1').length >= 2, `streams on ${serverOf.join(',')}`);

      const reload = async (servers: LabServer[]) => {
        writeFileSync(file(), stringify(config('l2', servers)));
        assert.match(adminCall('/reload', 'POST'), /"ok":\s*true/);
        await waitFor('the reload in /status', () => status().upstreams.web!.servers.length === servers.length || undefined);
        await sleep(1000);
      };
      /** Every stream to a server in `kept` is still open, still fed by its own server, and got lines since `marks`. */
      const check = (kept: string[], marks: number[], when: string) => {
        streams.forEach((s, i) => {
          if (!kept.includes(serverOf[i]!)) return;
          const lines = s.out().split('\n').filter(Boolean);
          assert.equal(s.child.exitCode, null, `${when}: stream ${i} (on ${serverOf[i]}) ended: ${s.out().slice(-200)}`);
          assert.ok(lines.length > marks[i]! + 3, `${when}: stream ${i} (on ${serverOf[i]}) stalled at ${lines.length} lines`);
          assert.ok(lines.every((l) => l === serverOf[i]), `${when}: stream ${i} moved: ${[...new Set(lines)].join(',')}`);
        });
      };
      const mark = () => streams.map((s) => s.out().split('\n').filter(Boolean).length);

      let marks = mark();
      await reload([s0(), s1(), s2()]);
      check(['s0', 's1'], marks, 'after adding s2');
      await waitFor('s2 gets new flows', () => askMany(15).has('s2') || undefined);

      marks = mark();
      await reload([s0(), s2()]);
      check(['s0'], marks, 'after removing s1');
      assert.ok(!askMany(15).has('s1'), 'a removed server got a new flow');
    });

    test('an invalid reload changes nothing; one that switches the method reopens the entry and serves', async () => {
      const pid = status().dsr!.forwarder.pid;
      const bad = config('l2', [s0(), s2()]);
      writeFileSync(file(), stringify({ ...bad, dsr: [{ ...bad.dsr[0], vip: 'fd00::100' }] }));
      assert.match(adminCall('/reload', 'POST'), /IPv4 only/);
      assert.equal(status().dsr!.forwarder.pid, pid);
      assert.ok(askMany(6).size >= 1);
      writeFileSync(file(), stringify(config('l3', [s0(), s2()])));
      assert.match(adminCall('/reload', 'POST'), /"ok":\s*true/);
      await waitFor('the l3 entry in /status', () => (status().dsr!.entries[0] as { method?: string }).method === 'l3' || undefined);
      const seen = askMany(15);
      assert.deepEqual([...seen.keys()].filter((n) => n !== 's0' && n !== 's2'), [], JSON.stringify([...seen]));
      assert.equal(status().dsr!.forwarder.pid, pid, 'the process is the same: only the entry was reopened');
    });

    test('the forwarder process killed is respawned and serves again; a connection open across it carries on', async () => {
      const child = lab.spawnIn(lab.client, 'curl', ['-sSN', '--max-time', '60', `http://${lab.vip}:${lab.port}/stream`]);
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      streams.push({ child, out: () => out });
      const name = await waitFor('the stream answering', () => (out.includes('\n') ? out.split('\n')[0]! : undefined));
      const before = status().dsr!.forwarder;
      assert.equal(typeof before.pid, 'number');
      process.kill(before.pid!, 'SIGKILL');
      await waitFor('a new forwarder', () => {
        const f = status().dsr!.forwarder;
        return f.pid !== before.pid && f.state === 'running' && f.restarts === before.restarts + 1 ? f : undefined;
      });
      assert.match(balancer!.output(), /dsr forwarder died unexpectedly: respawning/);
      const seen = askMany(10);
      assert.equal([...seen.values()].reduce((a, b) => a + b, 0), 10);
      // Same server set: the new forwarder's Maglev pick for the connection is its old server.
      const lines = out.split('\n').filter(Boolean).length;
      await waitFor('the stream going on after the respawn', () => out.split('\n').filter(Boolean).length > lines + 3 || undefined);
      assert.equal(child.exitCode, null, out.slice(-200));
      assert.ok(out.split('\n').filter(Boolean).every((l) => l === name), `the stream moved: ${[...new Set(out.split('\n'))].join(',')}`);
    });

    test('counters per entry and per server are in /status and /metrics', async () => {
      askMany(5);
      // Counters are published by the packet threads batch by batch: read until they show the requests.
      let entry = status().dsr!.entries[0]!;
      try {
        entry = await waitFor('counters showing the forwarded requests', () => {
          const e = status().dsr!.entries[0]!;
          return e.counters !== undefined && e.counters.forwardedPackets > 0 && e.counters.forwardedBytes > 0 && e.counters.flowsCreated >= 5 ? e : undefined;
        }, 5_000);
      } catch (err) {
        // What ran in the balancer's namespace, for the diagnosis.
        const procs = lab.exec(lab.balancer, ['sh', '-c', 'for p in $(ip netns pids $(ip netns identify $$)); do echo $p $(tr "\\0" " " < /proc/$p/cmdline); done']);
        throw new Error(`${(err as Error).message}\n${JSON.stringify(entry)}\n${procs}`);
      }
      assert.equal(entry.error, undefined);
      assert.ok(entry.servers.some((s) => s.packets > 0), JSON.stringify(entry.servers));
      const metrics = adminCall('/metrics');
      const value = (re: RegExp) => Number(re.exec(metrics)?.[1] ?? NaN);
      const labels = `interface="eth0",vip="${lab.vip}"`;
      assert.ok(value(new RegExp(`switchyard_dsr_forwarded_packets_total\\{${labels}\\} (\\d+)`)) > 0, metrics);
      assert.ok(value(new RegExp(`switchyard_dsr_flows_created_total\\{${labels}\\} (\\d+)`)) >= 5);
      assert.equal(value(/switchyard_dsr_forwarder_restarts_total (\d+)/), 1);
      assert.match(metrics, new RegExp(`switchyard_dsr_server_packets_total\\{${labels},upstream="web",server="${lab.servers[0]!.ip}:${lab.port}"\\} \\d+`));
    });

    test('the primary killed outright takes the forwarder with it (nothing answers ARP for an unsupervised VIP)', async () => {
      const pid = status().dsr!.forwarder.pid!;
      balancer!.child.kill('SIGKILL');
      await waitFor('the forwarder gone', () => {
        try {
          process.kill(pid, 0);
          return undefined;
        } catch {
          return true;
        }
      }, 10_000);
    });
  });
});

describe('dsr: start errors', () => {
  let dir: string;
  let file: string;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'switchyard-dsr-'));
    // Readable by the unprivileged user of the second test.
    chmodSync(dir, 0o755);
    file = path.join(dir, 'x.yaml');
    writeFileSync(
      file,
      stringify({
        workers: 1,
        listen: [{ host: '127.0.0.1', port: await freePort() }],
        logging: { level: 'warn' },
        upstreams: { web: { servers: [{ address: '10.99.0.11:80', mac: '02:99:00:00:00:11' }] } },
        routes: [{ match: { path: '/' }, upstream: 'web' }],
        dsr: [{ interface: 'sy-none0', vip: '10.99.0.100', ports: [80], upstream: 'web' }],
      }),
      { mode: 0o644 },
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a missing interface stops the start with the entry and the reason', { skip: process.getuid?.() !== 0 && 'needs root' }, async () => {
    const run = await runCli(['--config', file], 20_000);
    assert.equal(run.code, 1, run.stderr + run.stdout);
    assert.match(run.stderr, /the DSR forwarder cannot run: dsr\[0\] \(10\.99\.0\.100 on sy-none0\): .*no such interface: sy-none0/);
  });

  test('without root a config with dsr: refuses to start and says why', () => {
    // As root (CI), the same CLI run as nobody.
    const asUser = process.getuid?.() === 0 ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] : [];
    const run = spawnSync(asUser[0] ?? process.execPath, [...asUser.slice(1), ...(asUser.length > 0 ? [process.execPath] : []), CLI_PATH, '--config', file], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(run.status, 1, run.stderr + run.stdout);
    assert.match(run.stderr, /^switchyard: dsr: needs root \(raw packet sockets and ARP replies on the interface\); running as uid \d+$/m);
  });
});

interface DsrStatusBody {
  upstreams: Record<string, { servers: { address: string; healthy: boolean; drained: boolean }[] }>;
  dsr?: {
    forwarder: { pid: number | null; state: string; restarts: number };
    entries: {
      error?: string;
      counters?: { forwardedPackets: number; forwardedBytes: number; flowsCreated: number };
      servers: { address: string; packets: number; connections: number }[];
    }[];
  };
}
