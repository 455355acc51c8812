// A network-namespace lab for DSR tests and benches (issue 13): a client, a
// balancer and N servers, each in its own namespace with one veth `eth0`, all
// plugged into one bridge in a fourth "switch" namespace. Private 10.x/24
// addresses derived from the pid (unique per run), no route out. Every server
// is prepared with `switchyard dsr-server --vip VIP --l3dsr DSCP --apply`
// (VIP on lo, arp_ignore/arp_announce, the L3DSR nftables rule), so one lab
// serves both methods, and runs a small HTTP server on port 80 that answers
// with its own name. The balancer's kernel does not own the VIP: whatever
// forwards (the DsrForwarder) must answer ARP for it.
//
// Teardown always runs: DsrLab.teardown() kills what the lab started and
// deletes its namespaces; an exit hook does the same if the test process dies
// first, and labs left by dead processes (name carries the pid) are swept when
// a new one is built.
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { CLI_PATH } from './switchyard.js';

export interface LabHost {
  /** Namespace name (for `ip netns exec`). */
  ns: string;
  /** Its interface inside the namespace. */
  dev: 'eth0';
  ip: string;
  mac: string;
}

export interface LabServer extends LabHost {
  /** What its HTTP server answers with ("s0", "s1", ...). */
  name: string;
}

export interface FrameCounts {
  rxPackets: number;
  txPackets: number;
  rxBytes: number;
  txBytes: number;
}

export interface DsrDriver {
  call<T = unknown>(op: string, args?: object): Promise<T>;
  /** Closes the forwarder and ends the process. */
  stop(): Promise<void>;
  stderr(): string;
  /** The driver's node process (`ip netns exec` execs in place), whose threads include the forwarder's. */
  pid: number;
}

export interface DsrLabOptions {
  servers: number;
  /** DSCP the servers' L3DSR rule matches (default 10). */
  dscp?: number;
  /** Port of the servers' HTTP servers (default 80). */
  port?: number;
}

const PREFIX = 'sylab';
const DSR_DRIVER = fileURLToPath(new URL('./dsr-driver.ts', import.meta.url));
const live = new Set<DsrLab>();

/** Whether this process may build labs (root and `ip netns`): a reason string when it may not. */
export function labUnavailable(): string | false {
  if (process.getuid?.() !== 0) return 'needs root for ip netns';
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
  } catch {
    return 'ip netns does not work here';
  }
  return false;
}

/** Runs `cmd` in namespace `ns` and returns its stdout; throws with stderr on failure. */
export function nsExec(ns: string, cmd: string[], input?: string): string {
  return execFileSync('ip', ['netns', 'exec', ns, ...cmd], { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

// A tiny HTTP server per server namespace: GET / answers the name; POST
// answers "name bytes sha256" of the body; GET /big?n=N answers N bytes;
// GET /stream writes "name\n" every 100 ms until the client goes.
const HTTP_SERVER = `
const http = require('node:http');
const crypto = require('node:crypto');
const [name, port] = process.argv.slice(1);
http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (req.method === 'POST') {
    const h = crypto.createHash('sha256');
    let n = 0;
    req.on('data', (d) => { n += d.length; h.update(d); });
    req.on('end', () => res.end(name + ' ' + n + ' ' + h.digest('hex')));
    return;
  }
  if (url.pathname === '/big') {
    const n = Number(url.searchParams.get('n') ?? 1048576);
    res.setHeader('content-length', n);
    res.setHeader('x-server', name);
    const chunk = Buffer.alloc(65536, 120);
    let left = n;
    const pump = () => {
      while (left > 0) {
        const c = chunk.subarray(0, Math.min(left, chunk.length));
        left -= c.length;
        if (!res.write(c)) return res.once('drain', pump);
      }
      res.end();
    };
    return pump();
  }
  if (url.pathname === '/stream') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    const t = setInterval(() => res.write(name + '\\n'), 100);
    res.write(name + '\\n');
    res.on('close', () => clearInterval(t));
    return;
  }
  res.end(name);
}).listen(Number(port), '0.0.0.0', () => console.log('listening'));
`;

export class DsrLab {
  readonly id: string;
  readonly subnet: string;
  readonly vip: string;
  readonly dscp: number;
  readonly port: number;
  readonly client: LabHost;
  readonly balancer: LabHost;
  readonly servers: LabServer[];
  private readonly sw: string;
  private readonly children = new Set<ChildProcess>();
  private torn = false;

  private constructor(o: DsrLabOptions) {
    // 10.A.B.0/24 from the pid: A in 64..127, so it never meets the 10.77/10.88 the other netns tests use.
    const pid = process.pid;
    this.id = `${PREFIX}-${pid}-${Math.random().toString(36).slice(2, 6)}`;
    this.subnet = `10.${64 + ((pid >> 8) % 64)}.${pid % 256}`;
    this.vip = `${this.subnet}.100`;
    this.dscp = o.dscp ?? 10;
    this.port = o.port ?? 80;
    this.sw = `${this.id}-sw`;
    const mac = (n: number) => `02:5e:${((pid >> 8) & 0xff).toString(16).padStart(2, '0')}:${(pid & 0xff).toString(16).padStart(2, '0')}:00:${n.toString(16).padStart(2, '0')}`;
    const host = (suffix: string, n: number): LabHost => ({ ns: `${this.id}-${suffix}`, dev: 'eth0', ip: `${this.subnet}.${n}`, mac: mac(n) });
    this.client = host('c', 1);
    this.balancer = host('b', 2);
    this.servers = Array.from({ length: o.servers }, (_, i) => ({ ...host(`s${i}`, 11 + i), name: `s${i}` }));
  }

  /** Builds the lab, prepares the servers and starts their HTTP servers. Tears down what it built if any step fails. */
  static async create(o: DsrLabOptions): Promise<DsrLab> {
    sweepStale();
    const lab = new DsrLab(o);
    live.add(lab);
    try {
      await lab.build();
    } catch (err) {
      lab.teardown();
      throw err;
    }
    return lab;
  }

  get hosts(): LabHost[] {
    return [this.client, this.balancer, ...this.servers];
  }

  private async build(): Promise<void> {
    const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    ip('netns', 'add', this.sw);
    // A plain L2 switch: with br_netfilter loaded (Docker hosts) bridged IPv4 goes through iptables and frames
    // with bad IP headers are dropped on the bridge, so the tests' malformed frames would never reach the balancer.
    try {
      nsExec(this.sw, ['sysctl', '-q', '-w', 'net.bridge.bridge-nf-call-iptables=0', 'net.bridge.bridge-nf-call-ip6tables=0', 'net.bridge.bridge-nf-call-arptables=0']);
    } catch {
      // br_netfilter not loaded: the bridge filters nothing anyway
    }
    nsExec(this.sw, ['ip', 'link', 'add', 'br0', 'type', 'bridge']);
    nsExec(this.sw, ['ip', 'link', 'set', 'br0', 'up']);
    this.hosts.forEach((h, i) => {
      ip('netns', 'add', h.ns);
      // No IPv6: its router and neighbour solicitations would be noise in the frame counts.
      nsExec(h.ns, ['sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
      ip('link', 'add', 'eth0', 'netns', h.ns, 'address', h.mac, 'type', 'veth', 'peer', 'name', `p${i}`, 'netns', this.sw);
      nsExec(this.sw, ['ip', 'link', 'set', `p${i}`, 'master', 'br0', 'up']);
      nsExec(h.ns, ['ip', 'addr', 'add', `${h.ip}/24`, 'dev', 'eth0']);
      nsExec(h.ns, ['ip', 'link', 'set', 'eth0', 'up']);
      nsExec(h.ns, ['ip', 'link', 'set', 'lo', 'up']);
    });
    for (const s of this.servers) {
      nsExec(s.ns, [process.execPath, CLI_PATH, 'dsr-server', '--vip', this.vip, '--l3dsr', String(this.dscp), '--apply']);
    }
    await Promise.all(this.servers.map((s) => this.startHttp(s)));
  }

  private async startHttp(s: LabServer): Promise<void> {
    const child = this.spawnIn(s.ns, process.execPath, ['-e', HTTP_SERVER, s.name, String(this.port)]);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const deadline = Date.now() + 15_000;
    while (!out.includes('listening')) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`HTTP server in ${s.ns} did not start: ${out}`);
      await sleep(20);
    }
  }

  /** Runs `cmd` in a lab namespace to completion; returns stdout. */
  exec(host: LabHost | string, cmd: string[], input?: string): string {
    return nsExec(typeof host === 'string' ? host : host.ns, cmd, input);
  }

  /** Starts `cmd` in a lab namespace; the lab kills it on teardown. */
  spawnIn(host: LabHost | string, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    const ns = typeof host === 'string' ? host : host.ns;
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /**
   * Starts a TypeScript or JavaScript file with node (tsx loaded) in a lab
   * namespace, with an IPC channel (`ip netns exec` execs in place, so the
   * channel's fd reaches node): talk to it with send() / on('message').
   */
  node(host: LabHost | string, script: string, args: string[] = []): ChildProcess {
    return this.spawnIn(host, process.execPath, ['--import', 'tsx', script, ...args], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  }

  /**
   * A DsrForwarder driven from this process but running in `host`'s namespace
   * (test/helpers/dsr-driver.ts): call('open', { options, servers }),
   * call('setServers', { servers, region }), call('counters'), call('close'),
   * call('region', { identities }) -> region name, call('setState', { server, bits }).
   */
  async dsrDriver(host: LabHost = this.balancer): Promise<DsrDriver> {
    const child = this.node(host, DSR_DRIVER);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
    let next = 0;
    const ready = new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => {
        const err = new Error(`the DSR driver exited (${code}): ${stderr}`);
        reject(err);
        for (const p of pending.values()) p.reject(err);
      });
      child.on('message', (m: { ready?: boolean; id?: number; ok?: boolean; result?: unknown; error?: string; code?: string }) => {
        if (m.ready) return resolve();
        const p = pending.get(m.id!);
        pending.delete(m.id!);
        if (m.ok) p?.resolve(m.result);
        else p?.reject(Object.assign(new Error(m.error), { code: m.code }));
      });
    });
    await ready;
    return {
      call: <T = unknown>(op: string, args: object = {}) =>
        new Promise<T>((resolve, reject) => {
          const id = ++next;
          pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
          child.send({ id, op, ...args });
        }),
      stop: async () => {
        if (child.exitCode !== null) return;
        const gone = new Promise((r) => child.once('exit', r));
        child.disconnect();
        await Promise.race([gone, sleep(5000)]);
        child.kill('SIGKILL');
      },
      stderr: () => stderr,
      pid: child.pid!,
    };
  }

  /** Frame and byte counters of a host's eth0, as the kernel counts them. */
  frames(host: LabHost): FrameCounts {
    const [info] = JSON.parse(nsExec(host.ns, ['ip', '-j', '-s', 'link', 'show', 'dev', host.dev])) as { stats64: { rx: { packets: number; bytes: number }; tx: { packets: number; bytes: number } } }[];
    const { rx, tx } = info!.stats64;
    return { rxPackets: rx.packets, txPackets: tx.packets, rxBytes: rx.bytes, txBytes: tx.bytes };
  }

  /** Kills every process the lab started and deletes its namespaces; safe to call twice. */
  teardown(): void {
    if (this.torn) return;
    this.torn = true;
    live.delete(this);
    for (const child of this.children) child.kill('SIGKILL');
    // Processes still inside a namespace keep it alive after its name is gone: kill them all first.
    for (const ns of [...this.hosts.map((h) => h.ns), this.sw]) deleteNamespace(ns);
  }
}

function deleteNamespace(ns: string): void {
  if (!existsSync(`/run/netns/${ns}`)) return;
  try {
    const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split('\n').filter(Boolean);
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  } catch {
    // best effort: the sweep of the next lab retries
  }
}

/** Deletes namespaces of labs whose process is gone (a test run killed with SIGKILL). */
function sweepStale(): void {
  if (!existsSync('/run/netns')) return;
  for (const ns of readdirSync('/run/netns')) {
    const m = new RegExp(`^${PREFIX}-(\\d+)-`).exec(ns);
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch {
      alive = false;
    }
    if (!alive) deleteNamespace(ns);
  }
  // The sysctl values dsr-server saved for namespaces that are gone.
  execFileSync('sh', ['-c', 'find /run/switchyard-dsr -name "netns-*.json" -mmin +60 -delete 2>/dev/null || true']);
}

const teardownAll = (): void => {
  for (const lab of [...live]) lab.teardown();
};
process.once('exit', teardownAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    teardownAll();
    process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
  });
}
