// `npm run bench:h2`: HTTP/2 100 B, 10 streams per connection (h2c with prior
// knowledge, or ALPN h2 over TLS with --tls), Switchyard against nginx and
// HAProxy set up for the same work (bench/lib/systems.ts, frontSystems): 2
// workers or threads, the same two HTTP/1.1 backends, h2load as the client.
// Rounds are interleaved (systems rotate) and each system is started fresh
// for its cell; the table gives medians with ratios from the same run.
// SWITCHYARD_BASELINE_CLI=/other/dist/cli.js adds that build as
// `switchyard-baseline`, for a before/after in one run.
//   node --import tsx bench/http2.ts [--rounds N] [--duration S] [--clients C] [--streams M] [--tls]
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startBackends } from './lib/backends.js';
import { benchCertificate } from './lib/front.js';
import { treeCpuMicros } from './lib/proc.js';
import { median } from './lib/report.js';
import { benchWorkspace, runMain } from './lib/process.js';
import { frontSystems, type StartContext, type SystemDef } from './lib/systems.js';
import { detectTools } from './lib/tools.js';

const run = promisify(execFile);
const PATH = '/100b';

interface Options {
  rounds: number;
  durationSec: number;
  warmupSec: number;
  clients: number;
  streams: number;
  tls: boolean;
}

function options(argv: string[]): Options {
  const o: Options = { rounds: 3, durationSec: 10, warmupSec: 2, clients: 16, streams: 10, tls: false };
  for (let i = 0; i < argv.length; i += 2) {
    if (argv[i] === '--tls') {
      o.tls = true;
      i--;
      continue;
    }
    const value = Number(argv[i + 1]);
    if (!Number.isFinite(value) || value <= 0) throw new Error(`${argv[i]} needs a positive number`);
    if (argv[i] === '--rounds') o.rounds = value;
    else if (argv[i] === '--duration') o.durationSec = value;
    else if (argv[i] === '--warmup') o.warmupSec = value;
    else if (argv[i] === '--clients') o.clients = value;
    else if (argv[i] === '--streams') o.streams = value;
    else throw new Error(`unknown option ${argv[i]} (known: --rounds --duration --warmup --clients --streams --tls)`);
  }
  return o;
}

interface Result {
  rps: number;
  cpuUsPerReq: number;
  failed: number;
}

/** h2load for `seconds` against `port`; req/s of 2xx answers, and the failures. */
async function h2load(port: number, o: Options, seconds: number): Promise<{ rps: number; ok: number; failed: number }> {
  const args = ['-c', String(o.clients), '-m', String(o.streams), '-t', '1', '-D', String(seconds), `${o.tls ? 'https' : 'http'}://127.0.0.1:${port}${PATH}`];
  const { stdout } = await run('h2load', args, { maxBuffer: 1 << 20 });
  const status = /status codes: (\d+) 2xx/.exec(stdout);
  const reqs = /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed/.exec(stdout);
  if (status === null || reqs === null) throw new Error(`cannot read h2load's output:\n${stdout}`);
  const ok = Number(status[1]);
  return { rps: ok / seconds, ok, failed: Number(reqs[2]) };
}

async function cell(sys: SystemDef, ctx: StartContext, o: Options): Promise<Result> {
  const running = await sys.start(ctx);
  try {
    await h2load(running.port, o, o.warmupSec);
    const cpu0 = treeCpuMicros(running.pid!);
    const m = await h2load(running.port, o, o.durationSec);
    const cpu = treeCpuMicros(running.pid!) - cpu0;
    return { rps: m.rps, cpuUsPerReq: m.ok > 0 ? cpu / m.ok : NaN, failed: m.failed };
  } finally {
    await running.stop();
  }
}

async function main(): Promise<void> {
  const o = options(process.argv.slice(2));
  const tools = detectTools();
  await run('h2load', ['--version']).catch(() => {
    throw new Error('h2load is missing (Debian: nghttp2-client; npm run bench:peers installs it)');
  });
  const { tmp, cleanup } = benchWorkspace('switchyard-bench-h2-');
  try {
    const all = frontSystems(o.tls ? { tls: benchCertificate(tmp), http2: true } : { http2: true });
    for (const sys of all.filter((x) => x.unavailable(tools) !== undefined)) console.log(`skipped ${sys.name}: ${sys.unavailable(tools)}`);
    const SYSTEMS = all.filter((x) => x.unavailable(tools) === undefined);
    const backends = await startBackends(tools, tmp);
    const ctx: StartContext = { tmp, backends: backends.ports, tools };
    console.log(`backends: ${backends.kind}; h2load -c ${o.clients} -m ${o.streams} ${o.tls ? 'over TLS (ALPN h2)' : 'h2c (prior knowledge)'}, ${o.durationSec} s after ${o.warmupSec} s warm-up, ${o.rounds} rounds`);
    console.log(`load average: ${(await run('cat', ['/proc/loadavg'])).stdout.trim()}`);
    const results = new Map<string, Result[]>();
    for (let round = 0; round < o.rounds; round++) {
      for (let i = 0; i < SYSTEMS.length; i++) {
        const sys = SYSTEMS[(i + round) % SYSTEMS.length]!;
        try {
          const r = await cell(sys, ctx, o);
          (results.get(sys.name) ?? results.set(sys.name, []).get(sys.name)!).push(r);
          console.log(`[round ${round + 1}] ${sys.name.padEnd(19)} ${r.rps.toFixed(0).padStart(7)} req/s, ${r.cpuUsPerReq.toFixed(1)} µs CPU/req, ${r.failed} failed`);
        } catch (err) {
          console.log(`[round ${round + 1}] ${sys.name.padEnd(19)} FAILED ${(err as Error).message.split('\n')[0]}`);
        }
      }
    }
    await backends.stop();
    const med = (name: string, k: keyof Result): number => median((results.get(name) ?? []).map((r) => r[k])) ?? NaN;
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

runMain(main);
