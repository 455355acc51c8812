// `npm run bench:l4`: Switchyard's mode: tcp against nginx's stream module and
// HAProxy's mode tcp, each with 2 workers/threads in front of the same two
// nginx HTTP backends, driven by wrk. Scenarios: 100 B and 1 MB responses over
// keep-alive connections, and 100 B with a new connection per request. Systems
// are interleaved over rounds; the table gives medians and the ratios to nginx
// and HAProxy from the same run. Targets (issue 13): req/s >= 0.8x nginx, CPU
// per byte within 1.5x.
//
//   node --import tsx bench/l4-tcp.ts [--rounds N] [--duration S] [--warmup S] [--connections C]
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startBackends } from './lib/backends.js';
import { wrkDriver, type LoadSpec } from './lib/load.js';
import { treeCpuMicros } from './lib/proc.js';
import { freePort } from './lib/ports.js';
import { benchWorkspace, startProcess, type Managed } from './lib/process.js';
import { median } from './lib/report.js';
import { detectTools, type Tools } from './lib/tools.js';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

interface Scenario {
  name: string;
  path: string;
  bytes: number;
  newConnectionPerRequest: boolean;
}
const SCENARIOS: Scenario[] = [
  { name: '100b keep-alive', path: '/100b', bytes: 100, newConnectionPerRequest: false },
  { name: '1m keep-alive', path: '/1m', bytes: 1024 * 1024, newConnectionPerRequest: false },
  { name: '100b new connection', path: '/100b', bytes: 100, newConnectionPerRequest: true },
];

interface System {
  name: string;
  start(tmp: string, backends: number[], tools: Tools): Promise<{ port: number; proc: Managed }>;
}

const SYSTEMS: System[] = [
  {
    name: 'switchyard',
    async start(tmp, backends) {
      const port = await freePort();
      const file = join(tmp, 'switchyard-l4.yaml');
      writeFileSync(
        file,
        `workers: 2
listen:
  - { host: 127.0.0.1, port: ${port}, mode: tcp, upstream: app, backlog: 4096 }
admin: { host: 127.0.0.1, port: ${await freePort()}, token: bench }
logging: { level: warn, access: false }
upstreams:
  app: { balance: round-robin, servers: [${backends.map((p) => `{ address: "127.0.0.1:${p}" }`).join(', ')}] }
routes: [{ match: { path: / }, upstream: app }]
`,
      );
      return { port, proc: await startProcess('switchyard', process.execPath, [CLI, '--config', file], { port, path: '/100b' }) };
    },
  },
  {
    name: 'nginx-stream',
    async start(tmp, backends, tools) {
      const port = await freePort();
      const prefix = join(tmp, 'nginx-stream');
      const file = join(tmp, 'nginx-stream.conf');
      const user = process.getuid?.() === 0 ? 'user root;\n' : '';
      writeFileSync(
        file,
        `load_module ${NGINX_STREAM_MODULE};
${user}daemon off;
worker_processes 2;
pid ${tmp}/nginx-stream.pid;
error_log ${tmp}/nginx-stream-error.log warn;
events { worker_connections 4096; }
stream {
  upstream app {
${backends.map((p) => `    server 127.0.0.1:${p};`).join('\n')}
  }
  server { listen 127.0.0.1:${port} backlog=4096; proxy_pass app; }
}
`,
      );
      return { port, proc: await startProcess('nginx-stream', tools.nginx!, ['-p', prefix, '-e', `${tmp}/nginx-stream-error.log`, '-c', file], { port, path: '/100b' }) };
    },
  },
  {
    name: 'haproxy-tcp',
    async start(tmp, backends, tools) {
      const port = await freePort();
      const file = join(tmp, 'haproxy-tcp.cfg');
      writeFileSync(
        file,
        `global
  nbthread 2
  maxconn 8192
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:${port}
  default_backend be
backend be
  balance roundrobin
${backends.map((p, i) => `  server s${i} 127.0.0.1:${p}`).join('\n')}
`,
      );
      return { port, proc: await startProcess('haproxy-tcp', tools.haproxy!, ['-db', '-f', file], { port, path: '/100b' }) };
    },
  },
];

interface Cell {
  rps: number;
  cpuUsPerReq: number;
  errors: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { rounds: { type: 'string', default: '2' }, duration: { type: 'string', default: '8' }, warmup: { type: 'string', default: '2' }, connections: { type: 'string', default: '64' } },
  });
  const rounds = Number(values.rounds);
  const durationSec = Number(values.duration);
  const warmupSec = Number(values.warmup);
  const connections = Number(values.connections);
  const tools = detectTools();
  const missing = (['nginx', 'haproxy', 'wrk'] as const).filter((t) => !tools[t]);
  if (missing.length > 0) throw new Error(`missing ${missing.join(', ')}: run bench/install-peers.sh (as root)`);
  const { tmp, cleanup } = benchWorkspace('switchyard-l4-bench-');
  const driver = wrkDriver(tools.wrk!);
  const cells = new Map<string, Cell[]>();
  try {
    const backends = await startBackends(tools, tmp);
    console.log(`backends: ${backends.kind} on ${backends.ports.join(', ')}; ${rounds} rounds x ${durationSec}s, wrk -t1 -c${connections}`);
    for (let round = 0; round < rounds; round++) {
      // Rotated each round so no system always runs first.
      const order = SYSTEMS.map((_, i) => SYSTEMS[(i + round) % SYSTEMS.length]!);
      for (const system of order) {
        const { port, proc } = await system.start(tmp, backends.ports, tools);
        try {
          for (const scenario of SCENARIOS) {
            const spec: LoadSpec = { url: `http://127.0.0.1:${port}${scenario.path}`, method: 'GET', connections, durationSec, newConnectionPerRequest: scenario.newConnectionPerRequest };
            await driver({ ...spec, durationSec: warmupSec }, tmp);
            const cpu0 = treeCpuMicros(proc.pid);
            const load = await driver(spec, tmp);
            const cpu = treeCpuMicros(proc.pid) - cpu0;
            const key = `${scenario.name}|${system.name}`;
            const cell = { rps: load.rps, cpuUsPerReq: load.requests > 0 ? cpu / load.requests : NaN, errors: load.errors + load.non2xx };
            cells.set(key, [...(cells.get(key) ?? []), cell]);
            console.log(`round ${round + 1} ${system.name.padEnd(12)} ${scenario.name.padEnd(20)} ${Math.round(cell.rps).toString().padStart(7)} req/s  ${cell.cpuUsPerReq.toFixed(1).padStart(7)} µs CPU/req  errors ${cell.errors}`);
          }
        } finally {
          await proc.stop();
        }
      }
    }
    printTable(cells);
  } finally {
    await cleanup();
  }
}

function printTable(cells: Map<string, Cell[]>): void {
  const med = (scenario: string, system: string, f: (c: Cell) => number): number => median((cells.get(`${scenario}|${system}`) ?? []).map(f)) ?? NaN;
  console.log('\n| scenario | system | req/s | CPU µs/req | CPU µs/MB | errors | req/s ÷ nginx | req/s ÷ HAProxy | CPU/byte ÷ nginx | CPU/byte ÷ HAProxy |');
  console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const scenario of SCENARIOS) {
    for (const system of SYSTEMS) {
      const rps = med(scenario.name, system.name, (c) => c.rps);
      const cpu = med(scenario.name, system.name, (c) => c.cpuUsPerReq);
      const errors = (cells.get(`${scenario.name}|${system.name}`) ?? []).reduce((a, c) => a + c.errors, 0);
      const ratio = (other: string, f: (c: Cell) => number, v: number): string => (v / med(scenario.name, other, f)).toFixed(2);
      const perMB = (cpu * 1024 * 1024) / scenario.bytes;
      console.log(
        `| ${scenario.name} | ${system.name} | ${Math.round(rps)} | ${cpu.toFixed(1)} | ${perMB.toFixed(0)} | ${errors} | ${ratio('nginx-stream', (c) => c.rps, rps)} | ${ratio('haproxy-tcp', (c) => c.rps, rps)} | ${ratio('nginx-stream', (c) => c.cpuUsPerReq, cpu)} | ${ratio('haproxy-tcp', (c) => c.cpuUsPerReq, cpu)} |`,
      );
    }
  }
  console.log(`\nload average ${readLoad()} (other work on the machine skews every number)`);
}

function readLoad(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
