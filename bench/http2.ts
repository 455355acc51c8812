// `npm run bench:h2`: HTTP/2 100 B, 10 streams per connection (h2c with prior
// knowledge), Switchyard against nginx and HAProxy set up for the same work:
// 2 workers or threads, the same two HTTP/1.1 backends, h2load as the client.
// Rounds are interleaved (systems rotate) and each system is started fresh
// for its cell; the table gives medians with ratios from the same run.
//   node --import tsx bench/http2.ts [--rounds N] [--duration S] [--clients C] [--streams M]
import { writeFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startBackends } from './lib/backends.js';
import { freePort } from './lib/ports.js';
import { treeCpuMicros } from './lib/proc.js';
import { benchWorkspace, startProcess, stopAll, type Managed } from './lib/process.js';
import { detectTools, type Tools } from './lib/tools.js';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('..', import.meta.url));
const PATH = '/100b';

interface Options {
  rounds: number;
  durationSec: number;
  warmupSec: number;
  clients: number;
  streams: number;
}

function options(argv: string[]): Options {
  const o: Options = { rounds: 3, durationSec: 10, warmupSec: 2, clients: 16, streams: 10 };
  for (let i = 0; i < argv.length; i += 2) {
    const value = Number(argv[i + 1]);
    if (!Number.isFinite(value) || value <= 0) throw new Error(`${argv[i]} needs a positive number`);
    if (argv[i] === '--rounds') o.rounds = value;
    else if (argv[i] === '--duration') o.durationSec = value;
    else if (argv[i] === '--warmup') o.warmupSec = value;
    else if (argv[i] === '--clients') o.clients = value;
    else if (argv[i] === '--streams') o.streams = value;
    else throw new Error(`unknown option ${argv[i]} (known: --rounds --duration --warmup --clients --streams)`);
  }
  return o;
}

/** A system serving h2c on `port`; `readyPort` answers HTTP/1.1 for the start-up check. */
interface System {
  name: string;
  start(tmp: string, backends: number[], tools: Tools): Promise<{ port: number; proc: Managed }>;
}

const servers = (backends: number[], line: (p: number, i: number) => string): string => backends.map(line).join('\n');

const SYSTEMS: System[] = [
  {
    name: 'switchyard',
    async start(tmp, backends) {
      const port = await freePort();
      const adminPort = await freePort();
      const file = join(tmp, 'switchyard-h2.yaml');
      writeFileSync(
        file,
        `workers: 2
listen: [{ host: 127.0.0.1, port: ${port}, http2: true }]
admin: { host: 127.0.0.1, port: ${adminPort}, token: bench }
logging: { level: warn, access: false }
shutdown_timeout: 2s
upstreams:
  app:
    servers:
${servers(backends, (p) => `      - { address: 127.0.0.1:${p} }`)}
routes: [{ match: { host: "*", path: / }, upstream: app }]
`,
      );
      // The listener also speaks HTTP/1.1: the start-up check uses it.
      const proc = await startProcess('switchyard', process.execPath, [join(REPO, 'dist/cli.js'), '--config', file], { port, path: PATH }, REPO);
      return { port, proc };
    },
  },
  {
    name: 'nginx',
    async start(tmp, backends, tools) {
      if (!tools.nginx) throw new Error('nginx not installed (npm run bench:peers)');
      const port = await freePort();
      const readyPort = await freePort();
      const prefix = join(tmp, 'nginx-h2');
      for (const d of ['logs', 'tmp']) await run('mkdir', ['-p', join(prefix, d)]);
      const user = process.getuid?.() === 0 ? 'user root;\n' : '';
      const file = join(tmp, 'nginx-h2.conf');
      writeFileSync(
        file,
        `${user}daemon off;
worker_processes 2;
pid ${join(prefix, 'nginx.pid')};
error_log ${join(prefix, 'logs/error.log')} warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${prefix}/tmp/body;
  proxy_temp_path ${prefix}/tmp/proxy;
  fastcgi_temp_path ${prefix}/tmp/fastcgi;
  uwsgi_temp_path ${prefix}/tmp/uwsgi;
  scgi_temp_path ${prefix}/tmp/scgi;
  keepalive_requests 1000000;
  http2_max_requests 1000000;
  upstream app {
${servers(backends, (p) => `    server 127.0.0.1:${p};`)}
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port} http2;
    listen 127.0.0.1:${readyPort};
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`,
      );
      const proc = await startProcess('nginx', tools.nginx, ['-p', prefix, '-e', join(prefix, 'logs/error.log'), '-c', file], { port: readyPort, path: PATH });
      return { port, proc };
    },
  },
  {
    name: 'haproxy',
    async start(tmp, backends, tools) {
      if (!tools.haproxy) throw new Error('haproxy not installed (npm run bench:peers)');
      const port = await freePort();
      const readyPort = await freePort();
      const file = join(tmp, 'haproxy-h2.cfg');
      writeFileSync(
        file,
        `global
  nbthread 2
  maxconn 4096
defaults
  mode http
  http-reuse always
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:${port} proto h2
  bind 127.0.0.1:${readyPort}
  default_backend be
backend be
  balance roundrobin
${servers(backends, (p, i) => `  server s${i} 127.0.0.1:${p}`)}
`,
      );
      const proc = await startProcess('haproxy', tools.haproxy, ['-db', '-f', file], { port: readyPort, path: PATH });
      return { port, proc };
    },
  },
];

interface Result {
  rps: number;
  cpuUsPerReq: number;
  failed: number;
}

/** h2load for `seconds` against `port`; req/s of 2xx answers, and the failures. */
async function h2load(port: number, o: Options, seconds: number): Promise<{ rps: number; ok: number; failed: number }> {
  const args = ['-c', String(o.clients), '-m', String(o.streams), '-t', '1', '-D', String(seconds), `http://127.0.0.1:${port}${PATH}`];
  const { stdout } = await run('h2load', args, { maxBuffer: 1 << 20 });
  const status = /status codes: (\d+) 2xx/.exec(stdout);
  const reqs = /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed/.exec(stdout);
  if (status === null || reqs === null) throw new Error(`cannot read h2load's output:\n${stdout}`);
  const ok = Number(status[1]);
  return { rps: ok / seconds, ok, failed: Number(reqs[2]) };
}

async function cell(sys: System, tmp: string, backends: number[], tools: Tools, o: Options): Promise<Result> {
  const { port, proc } = await sys.start(tmp, backends, tools);
  try {
    await h2load(port, o, o.warmupSec);
    const cpu0 = treeCpuMicros(proc.pid);
    const m = await h2load(port, o, o.durationSec);
    const cpu = treeCpuMicros(proc.pid) - cpu0;
    return { rps: m.rps, cpuUsPerReq: m.ok > 0 ? cpu / m.ok : NaN, failed: m.failed };
  } finally {
    await proc.stop();
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  const o = options(process.argv.slice(2));
  const tools = detectTools();
  await run('h2load', ['--version']).catch(() => {
    throw new Error('h2load is missing (Debian: nghttp2-client; npm run bench:peers installs it)');
  });
  const { tmp, cleanup } = benchWorkspace('switchyard-bench-h2-');
  try {
    const backends = await startBackends(tools, tmp);
    console.log(`backends: ${backends.kind}; h2load -c ${o.clients} -m ${o.streams}, ${o.durationSec} s after ${o.warmupSec} s warm-up, ${o.rounds} rounds`);
    console.log(`load average: ${(await run('cat', ['/proc/loadavg'])).stdout.trim()}`);
    const results = new Map<string, Result[]>();
    for (let round = 0; round < o.rounds; round++) {
      for (let i = 0; i < SYSTEMS.length; i++) {
        const sys = SYSTEMS[(i + round) % SYSTEMS.length]!;
        try {
          const r = await cell(sys, tmp, backends.ports, tools, o);
          (results.get(sys.name) ?? results.set(sys.name, []).get(sys.name)!).push(r);
          console.log(`[round ${round + 1}] ${sys.name.padEnd(10)} ${r.rps.toFixed(0).padStart(7)} req/s, ${r.cpuUsPerReq.toFixed(1)} µs CPU/req, ${r.failed} failed`);
        } catch (err) {
          console.log(`[round ${round + 1}] ${sys.name.padEnd(10)} FAILED ${(err as Error).message.split('\n')[0]}`);
        }
      }
    }
    await backends.stop();
    const med = (name: string, k: keyof Result): number => median((results.get(name) ?? []).map((r) => r[k]));
    console.log('\n| system | req/s | CPU µs/req | × nginx req/s | × HAProxy req/s | CPU ÷ nginx |');
    console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
    for (const sys of SYSTEMS) {
      if (!results.has(sys.name)) continue;
      const rps = med(sys.name, 'rps');
      const cpu = med(sys.name, 'cpuUsPerReq');
      const ratio = (other: string): string => (results.has(other) ? (rps / med(other, 'rps')).toFixed(2) : 'n/a');
      const cpuRatio = results.has('nginx') ? (cpu / med('nginx', 'cpuUsPerReq')).toFixed(2) : 'n/a';
      console.log(`| ${sys.name} | ${rps.toFixed(0)} | ${cpu.toFixed(1)} | ${ratio('nginx')} | ${ratio('haproxy')} | ${cpuRatio} |`);
    }
    console.log(`\nload average at end: ${(await run('cat', ['/proc/loadavg'])).stdout.trim()}`);
  } finally {
    await cleanup();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  stopAll().finally(() => process.exit(1)).catch(() => {});
});
