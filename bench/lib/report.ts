// Turns per-round cells into medians and same-run ratios, prints one table and
// writes JSON + markdown copies to bench/results/.
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { VARIANT_BASIS, VARIANTS } from './scenarios.js';
import { benchChart } from './chart.js';

export interface Cell {
  round: number;
  scenario: string;
  system: string;
  rps?: number;
  p50Ms?: number;
  p99Ms?: number;
  requests?: number;
  errors?: number;
  non2xx?: number;
  /** Proxy tree CPU (user + system) per completed request. */
  cpuUsPerReq?: number;
  rssSumMB?: number;
  rssMaxMB?: number;
  /** Highest PSS sum of the tree: shared pages (the node binary, libraries) counted once, not once per process. */
  pssSumMB?: number;
  /** Cluster systems: the primary's own share of the tree's CPU, percent. */
  primaryCpuPct?: number;
  /** Cluster systems: each worker's share of the workers' CPU, percent, busiest first. */
  workerCpuPct?: number[];
  /** Switchyard: share of upstream requests sent on a reused connection, percent. */
  upstreamReusePct?: number;
  /** Why the cell has no numbers. */
  failed?: string;
}

export interface Row {
  scenario: string;
  system: string;
  rounds: number;
  rps?: number;
  /** (max - min) / median of req/s over the rounds, in percent. */
  rpsSpreadPct?: number;
  p50Ms?: number;
  p99Ms?: number;
  /** Summed over all rounds, so that any failure shows. */
  errors: number;
  non2xx: number;
  cpuUsPerReq?: number;
  rssSumMB?: number;
  rssMaxMB?: number;
  /** Highest PSS sum of the tree: shared pages (the node binary, libraries) counted once, not once per process. */
  pssSumMB?: number;
  primaryCpuPct?: number;
  /** Worker CPU split of the round with the median busiest-worker share. */
  workerSplit?: number[];
  /** Worker CPU split of the round whose busiest worker had the most. */
  worstSplit?: number[];
  /** "switchyard ÷ row" for peers, "row ÷ switchyard" for variants. */
  ratioBasis?: string;
  rpsRatio?: number;
  cpuRatio?: number;
  failed?: string;
}

export function median(xs: (number | undefined)[]): number | undefined {
  const v = xs.filter((x): x is number => x !== undefined && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1]! + v[mid]!) / 2;
}

/** The split of the round at the median busiest-worker share (lower middle for even counts), and the worst one. */
function splits(cells: Cell[]): { median?: number[]; worst?: number[] } {
  const all = cells.flatMap((c) => (c.workerCpuPct?.length ? [c.workerCpuPct] : [])).sort((a, b) => a[0]! - b[0]!);
  return { median: all[(all.length - 1) >> 1], worst: all[all.length - 1] };
}

const div = (a?: number, b?: number): number | undefined => (a !== undefined && b ? a / b : undefined);

export function summarise(cells: Cell[], order: { scenarios: string[]; systems: string[] }): Row[] {
  const rows: Row[] = [];
  for (const scenario of order.scenarios) {
    const inScenario: Row[] = [];
    for (const system of order.systems) {
      const mine = cells.filter((c) => c.scenario === scenario && c.system === system);
      if (mine.length === 0) continue;
      const ok = mine.filter((c) => !c.failed);
      const rps = median(ok.map((c) => c.rps));
      const rpsList = ok.map((c) => c.rps ?? 0);
      const split = splits(ok);
      inScenario.push({
        scenario,
        system,
        rounds: ok.length,
        rps,
        rpsSpreadPct: rps && ok.length > 1 ? ((Math.max(...rpsList) - Math.min(...rpsList)) / rps) * 100 : undefined,
        p50Ms: median(ok.map((c) => c.p50Ms)),
        p99Ms: median(ok.map((c) => c.p99Ms)),
        errors: ok.reduce((a, c) => a + (c.errors ?? 0), 0),
        non2xx: ok.reduce((a, c) => a + (c.non2xx ?? 0), 0),
        cpuUsPerReq: median(ok.map((c) => c.cpuUsPerReq)),
        rssSumMB: median(ok.map((c) => c.rssSumMB)),
        rssMaxMB: median(ok.map((c) => c.rssMaxMB)),
        pssSumMB: median(ok.map((c) => c.pssSumMB)),
        primaryCpuPct: median(ok.map((c) => c.primaryCpuPct)),
        workerSplit: split.median,
        worstSplit: split.worst,
        failed: ok.length === 0 ? mine[0]!.failed : undefined,
      });
    }
    const sy = inScenario.find((r) => r.system === 'switchyard' && !r.failed);
    if (sy) {
      for (const r of inScenario) {
        if (r === sy || r.failed) continue;
        const basis = VARIANT_BASIS[r.system] === undefined ? undefined : inScenario.find((b) => b.system === VARIANT_BASIS[r.system] && !b.failed);
        if (basis !== undefined) {
          Object.assign(r, { ratioBasis: `row÷${basis.system}`, rpsRatio: div(r.rps, basis.rps), cpuRatio: div(r.cpuUsPerReq, basis.cpuUsPerReq) });
        } else if (VARIANTS.includes(r.system)) {
          Object.assign(r, { ratioBasis: 'row÷SY', rpsRatio: div(r.rps, sy.rps), cpuRatio: div(r.cpuUsPerReq, sy.cpuUsPerReq) });
        } else {
          Object.assign(r, { ratioBasis: 'SY÷row', rpsRatio: div(sy.rps, r.rps), cpuRatio: div(sy.cpuUsPerReq, r.cpuUsPerReq) });
        }
      }
    }
    rows.push(...inScenario);
  }
  return rows;
}

const fmt = (v: number | undefined, digits: number): string => (v === undefined ? '-' : v.toFixed(digits));

const fmtSplit = (v: number[] | undefined): string => (v ? v.map((x) => x.toFixed(0)).join('/') : '-');

const COLUMNS: [string, (r: Row) => string][] = [
  ['scenario', (r) => r.scenario],
  ['system', (r) => r.system],
  ['req/s', (r) => (r.failed ? 'FAILED' : fmt(r.rps, 0))],
  ['±%', (r) => fmt(r.rpsSpreadPct, 0)],
  ['p50 ms', (r) => fmt(r.p50Ms, 2)],
  ['p99 ms', (r) => fmt(r.p99Ms, 2)],
  ['err', (r) => String(r.errors)],
  ['non2xx', (r) => String(r.non2xx)],
  ['CPU µs/req', (r) => fmt(r.cpuUsPerReq, 1)],
  ['RSS sum MB', (r) => fmt(r.rssSumMB, 1)],
  ['RSS max MB', (r) => fmt(r.rssMaxMB, 1)],
  ['PSS sum MB', (r) => fmt(r.pssSumMB, 1)],
  ['primary CPU %', (r) => fmt(r.primaryCpuPct, 1)],
  ['worker split', (r) => fmtSplit(r.workerSplit)],
  ['worst split', (r) => fmtSplit(r.worstSplit)],
  ['ratio', (r) => r.ratioBasis ?? ''],
  ['req/s ×', (r) => fmt(r.rpsRatio, 2)],
  ['CPU ×', (r) => fmt(r.cpuRatio, 2)],
];

export const LEGEND = `req/s counts 2xx responses only; req/s, latency, CPU and RSS are medians over rounds; ±% = (max-min)/median of req/s; err/non2xx summed over rounds.
CPU µs/req = utime+stime of the proxy's whole process tree (from /proc) / completed requests; RSS sampled every 100 ms; PSS (each shared page divided among the processes that map it) every 500 ms.
ratio SY÷row: "switchyard" (balance round-robin, scheduling kernel) divided by that row, same scenario, same run (req/s × > 1: Switchyard faster; CPU × < 1: Switchyard cheaper).
primary CPU % (Switchyard) = the cluster primary's own utime+stime / primary + workers, over the measured run.
worker split (Switchyard) = each worker's share of the workers' CPU, busiest first, of the round with the median busiest share; worst split = the round with the most uneven one.
ratio row÷SY: that variant (balance source / least-conn, scheduling round-robin) divided by "switchyard".
ratio row÷switchyard-gateway: the gateway route with its rate limit in Redis (scope: global) divided by the same route with scope: instance.`;

export function table(rows: Row[], markdown: boolean): string {
  const cells = rows.map((r) => COLUMNS.map(([, get]) => get(r)));
  const heads = COLUMNS.map(([h]) => h);
  if (markdown) {
    const line = (xs: string[]): string => `| ${xs.join(' | ')} |`;
    return [line(heads), line(heads.map((_, i) => (i < 2 ? '---' : '---:'))), ...cells.map(line)].join('\n');
  }
  const widths = heads.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (xs: string[]): string => xs.map((x, i) => (i < 2 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join('  ');
  const out = [line(heads), widths.map((w) => '-'.repeat(w)).join('  ')];
  let last = '';
  for (const [i, c] of cells.entries()) {
    if (last && rows[i]!.scenario !== last) out.push('');
    last = rows[i]!.scenario;
    out.push(line(c));
  }
  return out.join('\n');
}

export function writeResults(
  dir: string,
  meta: Record<string, unknown>,
  cells: Cell[],
  rows: Row[],
  notes: string[],
  chartSubtitle: string,
): { json: string; md: string; svg: string } {
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const json = join(dir, `bench-${stamp}.json`);
  const md = join(dir, `bench-${stamp}.md`);
  const svg = join(dir, `bench-${stamp}.svg`);
  writeFileSync(svg, benchChart(rows, chartSubtitle));
  writeFileSync(json, JSON.stringify({ meta, notes, rows, cells }, null, 2) + '\n');
  const metaLines = Object.entries(meta).map(([k, v]) => `- ${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  writeFileSync(
    md,
    `# Switchyard bench, ${new Date().toISOString()}\n\n${metaLines.join('\n')}\n\n${table(rows, true)}\n\n![req/s and CPU per request](${basename(svg)})\n\n${LEGEND}\n\n${notes.map((n) => `- ${n}`).join('\n')}\n`,
  );
  return { json, md, svg };
}
