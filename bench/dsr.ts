// `npm run bench:dsr`: what Direct Server Return saves the balancer, on the
// network-namespace topology of the DSR tests (test/helpers/netns.ts: a
// client, the balancer and two servers on one bridge). wrk in the client's
// namespace fetches 1 MB responses through each system in the balancer's
// namespace, one system at a time, rotated over rounds:
//   dsr            Switchyard's forwarder (method l2): the balancer sees requests and ACKs only
//   dsr-l3         the same with method l3 (DSCP + destination rewrite)
//   switchyard-l7  Switchyard's HTTP proxy path (the same servers)
//   switchyard-l4  Switchyard's mode tcp relay
//   nginx-http     nginx proxy_pass with upstream keep-alive
//   nginx-stream   nginx's stream module (L4)
// Every proxy gets one worker (Switchyard workers: 1, nginx worker_processes 1,
// the forwarder one packet thread): the throughput column is what one
// balancer core sustains. Balancer CPU is the user+system time of every
// process in the balancer's namespace over the measured run, per response;
// softirq work the kernel does for the interface is not charged to a process
// and is in none of the figures (for any system). The balancer's own
// interface counters say how many bytes crossed it per response.
//
//   node --import tsx bench/dsr.ts [--rounds N] [--duration S] [--warmup S] [--connections C]
// Needs root (ip netns), wrk and nginx (bench/install-peers.sh).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { DsrLab, labUnavailable } from '../test/helpers/netns.js';
import { CLI_PATH } from '../test/helpers/switchyard.js';
import { parseWrk } from './lib/load.js';
import { readStat } from './lib/proc.js';
import { benchWorkspace } from './lib/process.js';
import { median } from './lib/report.js';
import { detectTools } from './lib/tools.js';

const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';
const BYTES = 1024 * 1024;
const L7_PORT = 8080;
const L4_PORT = 8081;
const NGINX_HTTP_PORT = 8090;
const NGINX_STREAM_PORT = 8091;

interface Running {
  /** What wrk fetches, from the client's namespace. */
  url: string;
  stop(): Promise<void>;
}

interface System {
  name: string;
  start(lab: DsrLab, tmp: string, nginx: string): Promise<Running>;
}

/** Switchyard in the balancer's namespace with `extra` config; resolves once `url` answers from the client. */
async function switchyard(lab: DsrLab, tmp: string, name: string, extra: object, url: string): Promise<Running> {
  const file = join(tmp, `${name}.yaml`);
  const servers = lab.servers.map((s) => ({ address: `${s.ip}:${lab.port}`, mac: s.mac }));
  writeFileSync(
    file,
    stringify({
      workers: 1,
      logging: { level: 'warn', access: false },
      listen: [{ host: '127.0.0.1', port: 9999 }],
      upstreams: { web: { servers } },
      routes: [{ match: { path: '/' }, upstream: 'web' }],
      ...extra,
    }),
  );
  const child = lab.spawnIn(lab.balancer, process.execPath, [CLI_PATH, '--config', file]);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  await answers(lab, url, () => (child.exitCode === null ? undefined : `switchyard exited: ${out}`));
  return {
    url,
    stop: async () => {
      child.kill('SIGTERM');
      await Promise.race([new Promise((r) => child.once('exit', r)), sleep(10_000)]);
      child.kill('SIGKILL');
    },
  };
}

const big = (host: string, port: number) => `http://${host}:${port}/big?n=${BYTES}`;

const SYSTEMS: System[] = [
  {
    name: 'dsr',
    start: (lab, tmp) => switchyard(lab, tmp, 'dsr', { dsr: [{ interface: 'eth0', vip: lab.vip, ports: [lab.port], upstream: 'web', method: 'l2' }] }, big(lab.vip, lab.port)),
  },
  {
    name: 'dsr-l3',
    start: (lab, tmp) =>
      switchyard(lab, tmp, 'dsr-l3', { dsr: [{ interface: 'eth0', vip: lab.vip, ports: [lab.port], upstream: 'web', method: 'l3', dscp: lab.dscp }] }, big(lab.vip, lab.port)),
  },
  {
    name: 'switchyard-l7',
    start: (lab, tmp) => switchyard(lab, tmp, 'l7', { listen: [{ host: '0.0.0.0', port: L7_PORT }] }, big(lab.balancer.ip, L7_PORT)),
  },
  {
    name: 'switchyard-l4',
    start: (lab, tmp) => switchyard(lab, tmp, 'l4', { listen: [{ host: '127.0.0.1', port: 9999 }, { host: '0.0.0.0', port: L4_PORT, mode: 'tcp', upstream: 'web' }] }, big(lab.balancer.ip, L4_PORT)),
  },
  {
    name: 'nginx-http',
    start: (lab, tmp, nginx) => startNginx(lab, tmp, nginx, 'http', big(lab.balancer.ip, NGINX_HTTP_PORT)),
  },
  {
    name: 'nginx-stream',
    start: (lab, tmp, nginx) => startNginx(lab, tmp, nginx, 'stream', big(lab.balancer.ip, NGINX_STREAM_PORT)),
  },
];

async function startNginx(lab: DsrLab, tmp: string, nginx: string, kind: 'http' | 'stream', url: string): Promise<Running> {
  const prefix = join(tmp, `nginx-${kind}`);
  mkdirSync(prefix, { recursive: true });
  const servers = lab.servers.map((s) => `    server ${s.ip}:${lab.port};`).join('\n');
  const body =
    kind === 'http'
      ? `http {
  access_log off;
  upstream web {
${servers}
    keepalive 32;
  }
  server {
    listen ${NGINX_HTTP_PORT};
    location / {
      proxy_pass http://web;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # In memory: a 1 MB answer never goes to a temporary file.
      proxy_buffers 16 64k;
      proxy_max_temp_file_size 0;
    }
  }
}`
      : `stream {
  upstream web {
${servers}
  }
  server { listen ${NGINX_STREAM_PORT}; proxy_pass web; }
}`;
  const file = join(prefix, 'nginx.conf');
  writeFileSync(
    file,
    `${kind === 'stream' ? `load_module ${NGINX_STREAM_MODULE};\n` : ''}user root;
daemon off;
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 4096; }
${body}
`,
  );
  const child = lab.spawnIn(lab.balancer, nginx, ['-p', prefix, '-e', `${prefix}/error.log`, '-c', file]);
  await answers(lab, url, () => (child.exitCode === null ? undefined : `nginx exited (${child.exitCode}): ${readFileSync(`${prefix}/error.log`, 'utf8')}`));
  return {
    url,
    stop: async () => {
      child.kill('SIGTERM');
      await Promise.race([new Promise((r) => child.once('exit', r)), sleep(5_000)]);
      child.kill('SIGKILL');
    },
  };
}

/** Waits until `url` serves the whole answer from the client's namespace. */
async function answers(lab: DsrLab, url: string, dead: () => string | undefined): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const why = dead();
    if (why !== undefined) throw new Error(why);
    try {
      if (lab.exec(lab.client, ['curl', '-sS', '--max-time', '3', '-o', '/dev/null', '-w', '%{size_download}', url]) === String(BYTES)) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer within 30 s`);
    await sleep(200);
  }
}

/** CPU of every process in the balancer's namespace, in microseconds (their reaped children included). */
function balancerCpuMicros(lab: DsrLab): number {
  const pids = execFileSync('ip', ['netns', 'pids', lab.balancer.ns], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  const ticks = pids.reduce((sum, pid) => sum + (readStat(pid)?.ticks ?? 0), 0);
  const tck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return (ticks * 1e6) / tck;
}

interface Cell {
  rps: number;
  cpuUsPerResponse: number;
  /** Bytes the balancer's interface sent per response. */
  txPerResponse: number;
  errors: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { rounds: { type: 'string', default: '2' }, duration: { type: 'string', default: '6' }, warmup: { type: 'string', default: '2' }, connections: { type: 'string', default: '8' } },
  });
  const rounds = Number(values.rounds);
  const durationSec = Number(values.duration);
  const warmupSec = Number(values.warmup);
  const connections = Number(values.connections);
  const unavailable = labUnavailable();
  if (unavailable) throw new Error(`bench/dsr.ts builds network namespaces: ${unavailable}`);
  const tools = detectTools();
  if (!tools.wrk || !tools.nginx) throw new Error('missing wrk or nginx: run bench/install-peers.sh (as root)');
  const { tmp, cleanup } = benchWorkspace('switchyard-dsr-bench-');
  const lab = await DsrLab.create({ servers: 2 });
  const cells = new Map<string, Cell[]>();
  const wrk = (url: string, seconds: number) =>
    parseWrk(lab.exec(lab.client, [tools.wrk!, '-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '--timeout', '10s', url]), seconds);
  try {
    console.log(`netns lab ${lab.id}: client ${lab.client.ip}, balancer ${lab.balancer.ip}, servers ${lab.servers.map((s) => s.ip).join(', ')}, VIP ${lab.vip}`);
    console.log(`${rounds} rounds x ${durationSec}s, wrk -t1 -c${connections}, 1 MB responses; load average ${readLoad()}`);
    for (let round = 0; round < rounds; round++) {
      const order = SYSTEMS.map((_, i) => SYSTEMS[(i + round) % SYSTEMS.length]!);
      for (const system of order) {
        const running = await system.start(lab, tmp, tools.nginx);
        try {
          wrk(running.url, warmupSec);
          const cpu0 = balancerCpuMicros(lab);
          const frames0 = lab.frames(lab.balancer);
          const load = wrk(running.url, durationSec);
          const cpu = balancerCpuMicros(lab) - cpu0;
          const tx = lab.frames(lab.balancer).txBytes - frames0.txBytes;
          const n = Math.max(1, load.requests);
          const cell = { rps: load.rps, cpuUsPerResponse: cpu / n, txPerResponse: tx / n, errors: load.errors + load.non2xx };
          cells.set(system.name, [...(cells.get(system.name) ?? []), cell]);
          console.log(
            `round ${round + 1} ${system.name.padEnd(14)} ${cell.rps.toFixed(0).padStart(6)} resp/s  ${cell.cpuUsPerResponse.toFixed(0).padStart(6)} µs balancer CPU/resp  ${(cell.txPerResponse / 1024).toFixed(0).padStart(6)} KB sent by the balancer/resp  errors ${cell.errors}`,
          );
        } finally {
          await running.stop();
        }
      }
    }
    printTable(cells);
  } finally {
    lab.teardown();
    await cleanup();
  }
}

function printTable(cells: Map<string, Cell[]>): void {
  const med = (system: string, f: (c: Cell) => number): number => median((cells.get(system) ?? []).map(f)) ?? NaN;
  console.log('\n| system | 1 MB resp/s | MB/s | balancer CPU µs/resp | KB sent by the balancer/resp | errors | CPU/resp ÷ dsr | CPU/resp ÷ nginx-http | resp/s ÷ nginx-http |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const { name } of SYSTEMS) {
    const rps = med(name, (c) => c.rps);
    const cpu = med(name, (c) => c.cpuUsPerResponse);
    const errors = (cells.get(name) ?? []).reduce((a, c) => a + c.errors, 0);
    console.log(
      `| ${name} | ${rps.toFixed(0)} | ${((rps * BYTES) / 1e6).toFixed(0)} | ${cpu.toFixed(0)} | ${(med(name, (c) => c.txPerResponse) / 1024).toFixed(0)} | ${errors} | ${(cpu / med('dsr', (c) => c.cpuUsPerResponse)).toFixed(1)} | ${(cpu / med('nginx-http', (c) => c.cpuUsPerResponse)).toFixed(2)} | ${(rps / med('nginx-http', (c) => c.rps)).toFixed(2)} |`,
    );
  }
  console.log(`\nload average ${readLoad()} (other work on the machine skews every number; the ratios come from the same run)`);
}

function readLoad(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
