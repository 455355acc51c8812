// `npm run bench:soak`: Switchyard (2 workers, access log off) under a long
// 100 B keep-alive load; every second the RSS of the primary and of each
// worker from /proc and each worker's event-loop delay, folded into 10 s
// windows, with a verdict on memory growth after the warm-up window.
// Flags and method: bench/README.md, "Soak".
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { switchyardStatus, type SwitchyardStatus } from './lib/admin.js';
import { startBackends } from './lib/backends.js';
import { checkOnce } from './lib/check.js';
import { autocannonDriver, wrkDriver, type Driver } from './lib/load.js';
import { hasLoopDelay, LOOP_DELAY_METRIC, parseLoopDelay, scrapeMetrics, type LoopDelay } from './lib/metrics.js';
import { startProbe, type Probe } from './lib/probe.js';
import { readStat } from './lib/proc.js';
import { benchWorkspace, runMain } from './lib/process.js';
import { verdict, verdictLines, windows, windowTable, writeSoakResults, type SoakSample } from './lib/soak-report.js';
import { SYSTEMS } from './lib/systems.js';
import { detectTools } from './lib/tools.js';

const RESULTS_DIR = fileURLToPath(new URL('./results', import.meta.url));
const MB = 1024 * 1024;
const WINDOW_SEC = 10;
/**
 * Growth is judged after the first 20 s: V8 grows its heap to its working
 * size over the first ~15 s at full load (seen here: flat within 1 MB from
 * 20 s to 60 s), and that is warm-up, not a leak.
 */
const WARMUP_SEC = 20;
/** The issue's target: per-worker RSS under load. */
const TARGET_MB = 100;
const PATH = '/100b';

const USAGE = 'usage: npm run bench:soak -- [--duration S] [--connections C] [--driver wrk|autocannon]';

function options(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string', default: '60' },
      connections: { type: 'string', default: '256' },
      driver: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const durationSec = Math.round(Number(values.duration));
  const connections = Math.round(Number(values.connections));
  if (!(durationSec > WARMUP_SEC)) throw new Error(`--duration must exceed the ${WARMUP_SEC} s warm-up\n${USAGE}`);
  if (!(connections > 0)) throw new Error(`--connections must be a positive number\n${USAGE}`);
  if (values.driver !== undefined && values.driver !== 'wrk' && values.driver !== 'autocannon') {
    throw new Error(`--driver must be wrk or autocannon\n${USAGE}`);
  }
  return { durationSec, connections, driver: values.driver as 'wrk' | 'autocannon' | undefined };
}

const loadAvg = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
function rssMB(pid: number | null): number | undefined {
  const st = pid === null ? undefined : readStat(pid);
  return st && st.rssBytes / MB;
}

/** Per slot (the metric's `worker` label is the slot index). */
const bySlot = (delays: Map<string, LoopDelay>, slots: number): (LoopDelay | undefined)[] =>
  Array.from({ length: slots }, (_, slot) => delays.get(String(slot)));

async function main(): Promise<void> {
  const opts = options(process.argv.slice(2));
  const tools = detectTools();
  // wrk by default: it runs in its own process, so the load does not delay this
  // process's sampling (and the fallback probe) the way in-process autocannon would.
  const driverName = opts.driver ?? (tools.wrk ? 'wrk' : 'autocannon');
  if (driverName === 'wrk' && !tools.wrk) throw new Error('--driver wrk: wrk is not installed (bench/install-peers.sh)');
  const driver: Driver = driverName === 'wrk' ? wrkDriver(tools.wrk!) : autocannonDriver;
  const notes: string[] = [];

  const { tmp, cleanup } = benchWorkspace('switchyard-soak-');

  try {
    const backends = await startBackends(tools, tmp);
    const sys = SYSTEMS.find((s) => s.name === 'switchyard')!;
    const why = sys.unavailable(tools);
    if (why) throw new Error(`switchyard: ${why}`);
    const running = await sys.start({ tmp, backends: backends.ports, tools });
    const admin = running.admin!;
    const url = `http://127.0.0.1:${running.port}${PATH}`;
    const bad = await checkOnce(url, 'GET', undefined, 100);
    if (bad) throw new Error(`check of ${url}: ${bad}`);

    const first = await switchyardStatus(admin.port, admin.token);
    const slots = first.workers.length;
    const pidsOf = (s: SwitchyardStatus): (number | null)[] => s.workers.map((w) => (w.state === 'ready' ? w.pid : null));
    const useMetric = hasLoopDelay(await scrapeMetrics(admin.port, admin.token)); // this scrape also resets its window
    const delaySource = useMetric
      ? `${LOOP_DELAY_METRIC} from GET /metrics (each worker's monitorEventLoopDelay over the second between scrapes)`
      : `no ${LOOP_DELAY_METRIC} in this build: latency of a probe GET ${PATH} every 100 ms on its own keep-alive connection (end-to-end, queueing included: an upper bound on loop delay, not the delay itself)`;

    // Idle baseline, so the loaded numbers can be read against what the measure gives at rest.
    let idle: string;
    if (useMetric) {
      await sleep(2000);
      const d = bySlot(parseLoopDelay(await scrapeMetrics(admin.port, admin.token)), slots);
      idle = d.map((x, i) => `w${i} p50 ${x?.p50Ms.toFixed(2)} / p99 ${x?.p99Ms.toFixed(2)} ms`).join(', ');
    } else {
      const p = startProbe(url);
      await sleep(2000);
      await p.stop();
      const ms = p.samples.flatMap((s) => (s.ms === undefined ? [] : [s.ms])).sort((a, b) => a - b);
      idle = `probe p50 ${ms[ms.length >> 1]?.toFixed(2)} ms, max ${ms[ms.length - 1]?.toFixed(2)} ms`;
    }

    const known = pidsOf(first);
    const sample = async (t: number): Promise<SoakSample> => {
      const [status, metrics] = await Promise.all([
        switchyardStatus(admin.port, admin.token),
        useMetric ? scrapeMetrics(admin.port, admin.token) : undefined,
      ]);
      const pids = pidsOf(status);
      pids.forEach((pid, slot) => {
        // A replaced worker restarts its memory curve: the verdict must not read that as "flat".
        if (pid !== known[slot]) notes.push(`worker slot ${slot} changed pid (${known[slot]} -> ${pid}) by ${t.toFixed(0)} s`);
        known[slot] = pid;
      });
      return {
        t,
        primaryMB: rssMB(running.pid!) ?? 0,
        workerMB: pids.map(rssMB),
        requests: status.requests,
        loop: metrics === undefined ? undefined : bySlot(parseLoopDelay(metrics), slots),
      };
    };

    const loadAvgAtStart = loadAvg();
    console.log(`backends: ${backends.kind}; load average ${loadAvgAtStart}`);
    console.log(`switchyard: ${sys.description}; driver ${driverName}, ${opts.connections} connections, GET ${PATH}, ${opts.durationSec} s`);
    console.log(`loop delay: ${delaySource}\nidle: ${idle}`);

    const probe: Probe | undefined = useMetric ? undefined : startProbe(url);
    const t0 = performance.now();
    const start = await sample(0);
    let loadDone = false;
    const load = driver(
      { url, method: 'GET', connections: opts.connections, durationSec: opts.durationSec, newConnectionPerRequest: false },
      tmp,
    ).finally(() => {
      loadDone = true;
    });
    const samples: SoakSample[] = [];
    for (let i = 1; i <= opts.durationSec && !loadDone; i++) {
      await sleep(Math.max(0, t0 + i * 1000 - performance.now()));
      const s = await sample((performance.now() - t0) / 1000);
      samples.push(s);
      if (i % WINDOW_SEC === 0) {
        const w = s.workerMB.map((x) => x?.toFixed(1)).join(' / ');
        console.log(`  ${i} s: worker RSS ${w} MB, primary ${s.primaryMB.toFixed(1)} MB, ${s.requests} requests so far`);
      }
    }
    const result = await load;
    await probe?.stop();
    await running.stop();
    await backends.stop();
    const loadAvgAtEnd = loadAvg();

    const rows = windows(start, samples, WINDOW_SEC, probe?.samples);
    const v = verdict(samples, WARMUP_SEC, TARGET_MB);
    const said = running.stderr().trim();
    if (said) notes.push(`switchyard wrote on stderr: ${said.slice(0, 400).replace(/\s*\n\s*/g, ' | ')}`);
    notes.push(
      'RSS per window = highest 1-s sample in it; req/s from GET /status request counts; load generator, backends and proxy share the 2 cores',
      useMetric
        ? 'loop p50/p99 per window = median of the 1-s p50s / highest 1-s p99 (the metric resets at every scrape, so windows cannot be merged exactly); monitorEventLoopDelay values include its 10 ms timer interval when the metric does not subtract it: compare with the idle line'
        : 'probe p50/p99 per window over its ~100 requests; the probe shares the worker with the load, so it measures queueing too',
    );
    const summary =
      `load: ${result.rps.toFixed(0)} req/s, p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms, ` +
      `${result.errors} errors, ${result.non2xx} non-2xx (${driverName})`;
    const text = (md: boolean): string =>
      [
        windowTable(rows, md),
        '',
        summary,
        `loop delay source: ${delaySource}`,
        `idle (before load): ${idle}`,
        `load average (1/5/15 min): ${loadAvgAtStart} at start, ${loadAvgAtEnd} at end`,
        '',
        ...verdictLines(v).map((l) => (md ? `- ${l}` : l)),
        '',
        ...notes.map((n) => `- ${n}`),
      ].join('\n');
    console.log(`\n${text(false)}`);

    const meta = {
      date: new Date().toISOString(),
      loadAvgAtStart,
      loadAvgAtEnd,
      driver: driverName,
      connections: opts.connections,
      durationSec: opts.durationSec,
      path: PATH,
      backends: backends.kind,
      system: sys.description,
      versions: tools.versions,
      loopDelaySource: delaySource,
      idle,
    };
    const files = writeSoakResults(
      RESULTS_DIR,
      { meta, load: result, verdict: v, windows: rows, notes, samples, probe: probe?.samples },
      `# Switchyard soak, ${meta.date}\n\n${Object.entries(meta).map(([k, x]) => `- ${k}: ${typeof x === 'string' ? x : JSON.stringify(x)}`).join('\n')}\n\n${text(true)}\n`,
    );
    console.log(`\nwritten: ${files.json}\n         ${files.md}`);
  } finally {
    await cleanup();
  }
}

runMain(main);
