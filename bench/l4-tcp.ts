// `npm run bench:l4`: Switchyard's mode: tcp against nginx's stream module and
// HAProxy's mode tcp, each with 2 workers/threads in front of the same two
// nginx HTTP backends, driven by wrk. Scenarios: 100 B and 1 MB responses over
// keep-alive connections, and 100 B with a new connection per request. The
// systems and their configs are in lib/systems.ts (L4_SYSTEMS) and
// lib/nginx.ts. Systems are interleaved over rounds; the table gives medians and the ratios to nginx
// and HAProxy from the same run. Targets (issue 13): req/s >= 0.8x nginx, CPU
// per byte within 1.5x.
//
//   node --import tsx bench/l4-tcp.ts [--rounds N] [--duration S] [--warmup S] [--connections C]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startBackends } from './lib/backends.js';
import { wrkDriver, type LoadSpec } from './lib/load.js';
import { treeCpuMicros } from './lib/proc.js';
import { benchWorkspace } from './lib/process.js';
import { median } from './lib/report.js';
import { L4_SYSTEMS as SYSTEMS } from './lib/systems.js';
import { detectTools } from './lib/tools.js';

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
        const { port, pid, stop } = await system.start({ tmp, backends: backends.ports, tools });
        try {
          for (const scenario of SCENARIOS) {
            const spec: LoadSpec = { url: `http://127.0.0.1:${port}${scenario.path}`, method: 'GET', connections, durationSec, newConnectionPerRequest: scenario.newConnectionPerRequest };
            await driver({ ...spec, durationSec: warmupSec }, tmp);
            const cpu0 = treeCpuMicros(pid!);
            const load = await driver(spec, tmp);
            const cpu = treeCpuMicros(pid!) - cpu0;
            const key = `${scenario.name}|${system.name}`;
            const cell = { rps: load.rps, cpuUsPerReq: load.requests > 0 ? cpu / load.requests : NaN, errors: load.errors + load.non2xx };
            cells.set(key, [...(cells.get(key) ?? []), cell]);
            console.log(`round ${round + 1} ${system.name.padEnd(12)} ${scenario.name.padEnd(20)} ${Math.round(cell.rps).toString().padStart(7)} req/s  ${cell.cpuUsPerReq.toFixed(1).padStart(7)} µs CPU/req  errors ${cell.errors}`);
          }
        } finally {
          await stop();
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
