// `npm run bench`: Switchyard against direct, nginx, HAProxy and Node proxies,
// interleaved over rounds, one table of medians with same-run ratios.
// Flags and method: bench/README.md.
import { copyFileSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseOptions, type Options } from './lib/args.js';
import { startBackends } from './lib/backends.js';
import { checkOnce } from './lib/check.js';
import { autocannonDriver, wrkDriver, type Driver, type LoadSpec } from './lib/load.js';
import { sampleRss, treeCpuMicros } from './lib/proc.js';
import { scrapeMetrics, upstreamReusePct } from './lib/metrics.js';
import { startCpuSplit } from './lib/split.js';
import { benchWorkspace, runMain } from './lib/process.js';
import { LEGEND, summarise, table, writeResults, type Cell } from './lib/report.js';
import { runsIn, SCENARIOS, type Scenario } from './lib/scenarios.js';
import { SYSTEMS, type Running, type SystemDef } from './lib/systems.js';
import { detectTools, type Tools } from './lib/tools.js';
import { Progress } from './lib/progress.js';

const RESULTS_DIR = fileURLToPath(new URL('./results', import.meta.url));
const MB = 1024 * 1024;

function pick<T extends { name: string }>(all: T[], wanted: string[] | undefined, what: string): T[] {
  if (!wanted) return all;
  const unknown = wanted.filter((w) => !all.some((x) => x.name === w));
  if (unknown.length) throw new Error(`unknown ${what}: ${unknown.join(', ')} (known: ${all.map((x) => x.name).join(', ')})`);
  return all.filter((x) => wanted.includes(x.name));
}

/** Rotates the order of systems each round so none always runs first or last. */
const rotate = <T>(xs: T[], by: number): T[] => xs.map((_, i) => xs[(i + by) % xs.length]!);

/** 1, 5 and 15 minute load averages: other work on the machine skews every number. */
const loadAvg = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

/**
 * Warm-up, then the measured run with the proxy tree's CPU delta and RSS peak
 * over it, and for a cluster how that CPU divided between primary and workers.
 */
async function measure(driver: Driver, spec: LoadSpec, warmupSec: number, running: Running, tmp: string) {
  const { pid } = running;
  await driver({ ...spec, durationSec: warmupSec }, tmp);
  // Asked after the warm-up, so a worker replaced during it is not missed.
  const workers = pid !== undefined && running.workerPids ? await running.workerPids() : undefined;
  const stopSplit = workers && startCpuSplit(pid!, workers);
  const cpu0 = pid === undefined ? 0 : treeCpuMicros(pid);
  const stopRss = pid === undefined ? undefined : sampleRss(pid);
  const load = await driver(spec, tmp);
  const rss = stopRss?.();
  const cpu = pid === undefined ? undefined : treeCpuMicros(pid) - cpu0;
  const split = stopSplit?.();
  return {
    rps: load.rps,
    p50Ms: load.p50Ms,
    p99Ms: load.p99Ms,
    requests: load.requests,
    errors: load.errors,
    non2xx: load.non2xx,
    cpuUsPerReq: cpu !== undefined && load.requests > 0 ? cpu / load.requests : undefined,
    rssSumMB: rss && rss.sumBytes / MB,
    rssMaxMB: rss && rss.maxBytes / MB,
    pssSumMB: rss?.pssSumBytes === undefined ? undefined : rss.pssSumBytes / MB,
    primaryCpuPct: split?.primaryCpuPct,
    workerCpuPct: split?.workerCpuPct,
  };
}

interface CellContext {
  tmp: string;
  backends: number[];
  driver: Driver;
  opts: Options;
  tools: Tools;
  /** What systems wrote on stderr (warnings), one note per system. */
  said: Map<string, string>;
}

/**
 * One cell on a freshly started system, so that no cell inherits another's
 * heap (RSS) or state, and a crash costs one cell only.
 */
async function runCell(sys: SystemDef, s: Scenario, round: number, ctx: CellContext): Promise<Cell> {
  const tag = `[round ${round}] ${s.name.padEnd(8)} ${sys.name.padEnd(22)}`;
  const failed = (why: string): Cell => {
    console.log(`${tag} FAILED ${why}`);
    return { round, scenario: s.name, system: sys.name, failed: why.split('\n').slice(0, 3).join(' | ') };
  };
  let running: Running;
  try {
    running = await sys.start({ tmp: ctx.tmp, backends: ctx.backends, tools: ctx.tools });
  } catch (err) {
    return failed(`to start: ${(err as Error).message}`);
  }
  try {
    const url = `http://127.0.0.1:${running.port}${s.path}${running.query ? `?${running.query}` : ''}`;
    const body = s.bodyBytes ? Buffer.alloc(s.bodyBytes, 'x') : undefined;
    const bad = await checkOnce(url, s.method, body, s.expectBytes);
    if (bad) return failed(`check: ${bad}`);
    const spec: LoadSpec = {
      url,
      method: s.method,
      body,
      connections: s.connections ?? ctx.opts.connections,
      durationSec: ctx.opts.durationSec,
      newConnectionPerRequest: s.newConnectionPerRequest ?? false,
    };
    const m = await measure(ctx.driver, spec, ctx.opts.warmupSec, running, ctx.tmp);
    const cost = m.cpuUsPerReq === undefined ? '' : `, ${m.cpuUsPerReq.toFixed(1)} µs CPU/req, RSS ${m.rssSumMB?.toFixed(0)} MB`;
    const split = m.workerCpuPct
      ? `, primary ${m.primaryCpuPct!.toFixed(1)}% CPU, workers ${m.workerCpuPct.map((x) => x.toFixed(0)).join('/')}`
      : '';
    const errs = m.errors || m.non2xx ? `, ${m.errors} errors, ${m.non2xx} non-2xx` : '';
    const reusePct = running.admin && upstreamReusePct(await scrapeMetrics(running.admin.port, running.admin.token));
    const reuse = reusePct === undefined ? '' : `, upstream reuse ${reusePct.toFixed(2)}%`;
    console.log(`${tag} ${m.rps.toFixed(0).padStart(7)} req/s, p99 ${m.p99Ms.toFixed(2)} ms${cost}${split}${errs}${reuse}`);
    return { round, scenario: s.name, system: sys.name, ...m, ...(reusePct === undefined ? {} : { upstreamReusePct: reusePct }) };
  } catch (err) {
    return failed((err as Error).message);
  } finally {
    await running.stop();
    const said = running.stderr().trim();
    if (said && !ctx.said.has(sys.name)) ctx.said.set(sys.name, said.slice(0, 400));
  }
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const tools = detectTools();
  const notes: string[] = [];

  let driver: Driver = autocannonDriver;
  if (opts.driver === 'wrk') {
    if (!tools.wrk) throw new Error('--driver wrk: wrk is not installed (bench/install-peers.sh)');
    driver = wrkDriver(tools.wrk);
  }
  const scenarios = pick(SCENARIOS, opts.scenarios, 'scenarios');
  const systems: SystemDef[] = [];
  for (const sys of pick(SYSTEMS, opts.systems, 'systems')) {
    if (!scenarios.some((s) => runsIn(s, sys.name))) continue;
    const why = sys.unavailable(tools);
    if (why) notes.push(`skipped ${sys.name}: ${why}`);
    else systems.push(sys);
  }
  for (const missing of ['nginx', 'haproxy', 'wrk'] as const) {
    if (!tools[missing]) notes.push(`${missing} is not installed: run bench/install-peers.sh (as root) to add it`);
  }
  if (opts.driver === 'autocannon') {
    notes.push(
      'driver autocannon runs inside the bench process; "close" reconnects per request via a setupClient hook (see lib/load.ts)',
    );
  } else {
    notes.push('driver wrk -t1; "close" sends Connection: close and wrk reconnects after each response');
  }
  notes.push('2-core machine: load generator, backends and proxy share the cores, so absolute numbers are noisy; compare ratios');

  const { tmp, cleanup } = benchWorkspace('switchyard-bench-');

  try {
    const backends = await startBackends(tools, tmp);
    const meta: Record<string, unknown> = {
      date: new Date().toISOString(),
      loadAvgAtStart: loadAvg(),
      driver: opts.driver,
      connections: opts.connections,
      durationSec: opts.durationSec,
      warmupSec: opts.warmupSec,
      rounds: opts.rounds,
      backends: backends.kind,
      versions: tools.versions,
      systems: systems.map((s) => `${s.name}: ${s.description}`),
      scenarios: scenarios.map((s) => `${s.name}: ${s.description}`),
    };
    console.log(`backends: ${backends.kind} on ports ${backends.ports.join(', ')}; load average ${meta.loadAvgAtStart}`);
    console.log(`driver: ${opts.driver}, ${opts.connections} connections, ${opts.durationSec} s per cell after ${opts.warmupSec} s warm-up, ${opts.rounds} rounds`);
    console.log(`systems: ${systems.map((s) => s.name).join(', ')}`);
    for (const n of notes.filter((n) => n.startsWith('skipped') || n.includes('not installed'))) console.log(n);

    const cells: Cell[] = [];
    const ctx: CellContext = { tmp, backends: backends.ports, driver, opts, tools, said: new Map() };
    const plan: { round: number; s: Scenario; sys: SystemDef }[] = [];
    for (let round = 1; round <= opts.rounds; round++) {
      for (const s of scenarios) {
        for (const sys of rotate(systems, round - 1)) if (runsIn(s, sys.name)) plan.push({ round, s, sys });
      }
    }
    const progress = new Progress(plan.length, opts.warmupSec + opts.durationSec + 2);
    for (const { round, s, sys } of plan) {
      progress.next(`round ${round}/${opts.rounds}, scenario ${s.name}, system ${sys.name}`);
      cells.push(await runCell(sys, s, round, ctx));
    }
    progress.done();
    await backends.stop();
    meta.loadAvgAtEnd = loadAvg();
    console.log(`load average (1/5/15 min): ${meta.loadAvgAtStart} at start, ${meta.loadAvgAtEnd} at end`);
    for (const [name, text] of ctx.said) notes.push(`${name} wrote on stderr: ${text.replace(/\s*\n\s*/g, ' | ')}`);

    const rows = summarise(cells, { scenarios: scenarios.map((s) => s.name), systems: systems.map((s) => s.name) });
    console.log(`\n${table(rows, false)}\n\n${LEGEND}\n${notes.map((n) => `- ${n}`).join('\n')}`);
    const subtitle = `${meta.date as string}; ${opts.driver}, ${opts.connections} connections, ${opts.durationSec} s cells, ${opts.rounds} rounds; load average ${meta.loadAvgAtStart as string} at start`;
    const files = writeResults(RESULTS_DIR, meta, cells, rows, notes, subtitle);
    console.log(`\nwritten: ${files.json}\n         ${files.md}\n         ${files.svg}`);
    if (opts.chart) {
      copyFileSync(files.svg, opts.chart);
      console.log(`         ${opts.chart}`);
    }
  } finally {
    await cleanup();
  }
}

runMain(main);
