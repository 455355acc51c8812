// The soak's numbers: per-second samples folded into fixed windows, the
// memory verdict (growth after the warm-up window, peak against the target),
// a text/markdown table and the JSON + markdown copies in bench/results/.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { median } from './report.js';
import type { LoopDelay } from './metrics.js';
import type { ProbeSample } from './probe.js';

/** One per-second sample of the running cluster. */
export interface SoakSample {
  /** Seconds since the load started. */
  t: number;
  primaryMB: number;
  /** RSS per worker slot (index = slot), MB; undefined when that slot had no live process. */
  workerMB: (number | undefined)[];
  /** Requests answered so far (GET /status, summed over the live workers). */
  requests: number;
  /** Event-loop delay per slot over the second before the sample, when Switchyard exports it. */
  loop?: (LoopDelay | undefined)[];
}

export interface SoakWindow {
  fromSec: number;
  toSec: number;
  rps: number;
  primaryMB: number;
  /** Highest RSS per worker slot in the window. */
  workerMB: (number | undefined)[];
  /** Metric: per slot, median of the 1-s p50s and highest 1-s p99 in the window. */
  loop?: ({ p50Ms: number; p99Ms: number } | undefined)[];
  /** Fallback probe: latency percentiles over the window's probe requests, and how many failed. */
  probe?: { p50Ms: number; p99Ms: number; failed: number };
}

export interface SoakVerdict {
  targetMB: number;
  warmupSec: number;
  /** Highest RSS of any worker over the whole run. */
  maxWorkerMB: number;
  withinTarget: boolean;
  /** Per worker slot: RSS at the end of the warm-up window and at the end, and the least-squares slope after warm-up. */
  workers: { slot: number; afterWarmupMB: number; endMB: number; growthMB: number; growthPct: number; slopeMBPerMin: number }[];
  /** No worker grew by more than `flatPct` after the warm-up. */
  flat: boolean;
  flatPct: number;
}

const max = (xs: number[]): number => xs.reduce((a, b) => Math.max(a, b), -Infinity);

/** Exact percentile of a small list (nearest rank). */
function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/**
 * Folds samples into `windowSec` windows. `start` is the sample taken just
 * before the load began (t = 0), the base of the first window's request count.
 */
export function windows(start: SoakSample, samples: SoakSample[], windowSec: number, probe?: ProbeSample[]): SoakWindow[] {
  const out: SoakWindow[] = [];
  let prev = start;
  const slots = start.workerMB.length;
  const endT = samples[samples.length - 1]?.t ?? 0;
  for (let from = 0; from < endT; from += windowSec) {
    // By the nominal second (sample i is taken just after i s), so a window holds samples from+1 .. from+windowSec.
    const inside = samples.filter((s) => Math.round(s.t) > from && Math.round(s.t) <= from + windowSec);
    if (inside.length === 0) continue;
    const last = inside[inside.length - 1]!;
    const slotValues = <T>(get: (s: SoakSample, slot: number) => T | undefined): T[][] =>
      Array.from({ length: slots }, (_, slot) => inside.flatMap((s) => (get(s, slot) === undefined ? [] : [get(s, slot)!])));
    const w: SoakWindow = {
      fromSec: from,
      toSec: Math.min(from + windowSec, Math.round(last.t)),
      rps: (last.requests - prev.requests) / (last.t - prev.t),
      primaryMB: max(inside.map((s) => s.primaryMB)),
      workerMB: slotValues((s, slot) => s.workerMB[slot]).map((xs) => (xs.length ? max(xs) : undefined)),
    };
    if (start.loop) {
      w.loop = slotValues((s, slot) => s.loop?.[slot]).map((ds) =>
        ds.length ? { p50Ms: median(ds.map((d) => d.p50Ms))!, p99Ms: max(ds.map((d) => d.p99Ms)) } : undefined,
      );
    }
    if (probe) {
      const mine = probe.filter((p) => p.atMs / 1000 > prev.t && p.atMs / 1000 <= last.t);
      const ok = mine.flatMap((p) => (p.ms === undefined ? [] : [p.ms]));
      w.probe = { p50Ms: percentile(ok, 50), p99Ms: percentile(ok, 99), failed: mine.length - ok.length };
    }
    out.push(w);
    prev = last;
  }
  return out;
}

/** Least-squares slope of y over t, per minute. */
function slopePerMin(points: { t: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return NaN;
  const mt = points.reduce((a, p) => a + p.t, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  const num = points.reduce((a, p) => a + (p.t - mt) * (p.y - my), 0);
  const den = points.reduce((a, p) => a + (p.t - mt) ** 2, 0);
  return den ? (num / den) * 60 : NaN;
}

export function verdict(samples: SoakSample[], warmupSec: number, targetMB: number, flatPct = 5): SoakVerdict {
  const slots = samples[0]?.workerMB.length ?? 0;
  const workers = Array.from({ length: slots }, (_, slot) => {
    const series = samples.flatMap((s) => (s.workerMB[slot] === undefined ? [] : [{ t: s.t, y: s.workerMB[slot]! }]));
    const after = series.filter((p) => p.t >= warmupSec - 0.5);
    const base = after[0]?.y ?? NaN;
    const end = series[series.length - 1]?.y ?? NaN;
    return {
      slot,
      afterWarmupMB: base,
      endMB: end,
      growthMB: end - base,
      growthPct: ((end - base) / base) * 100,
      slopeMBPerMin: slopePerMin(after),
    };
  });
  const maxWorkerMB = max(samples.flatMap((s) => s.workerMB.filter((x): x is number => x !== undefined)));
  return {
    targetMB,
    warmupSec,
    maxWorkerMB,
    withinTarget: maxWorkerMB < targetMB,
    workers,
    flat: workers.every((w) => w.growthPct <= flatPct),
    flatPct,
  };
}

const f = (v: number | undefined, digits = 1): string => (v === undefined || Number.isNaN(v) ? '-' : v.toFixed(digits));

export function windowTable(rows: SoakWindow[], markdown: boolean): string {
  const slots = rows[0]?.workerMB.length ?? 0;
  const heads = ['window s', 'req/s', 'primary MB', ...Array.from({ length: slots }, (_, i) => `w${i} MB`)];
  if (rows[0]?.loop) heads.push(...Array.from({ length: slots }, (_, i) => `w${i} loop p50/p99 ms`));
  if (rows[0]?.probe) heads.push('probe p50 ms', 'probe p99 ms', 'probe failed');
  const cells = rows.map((r) => [
    `${r.fromSec}-${r.toSec}`,
    f(r.rps, 0),
    f(r.primaryMB),
    ...r.workerMB.map((x) => f(x)),
    ...(r.loop ?? []).map((d) => (d ? `${f(d.p50Ms, 2)} / ${f(d.p99Ms, 2)}` : '-')),
    ...(r.probe ? [f(r.probe.p50Ms, 2), f(r.probe.p99Ms, 2), String(r.probe.failed)] : []),
  ]);
  if (markdown) {
    const line = (xs: string[]): string => `| ${xs.join(' | ')} |`;
    return [line(heads), line(heads.map((_, i) => (i === 0 ? '---' : '---:'))), ...cells.map(line)].join('\n');
  }
  const widths = heads.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (xs: string[]): string => xs.map((x, i) => x.padStart(widths[i]!)).join('  ');
  return [line(heads), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}

export function verdictLines(v: SoakVerdict): string[] {
  const lines = v.workers.map(
    (w) =>
      `worker ${w.slot}: ${f(w.afterWarmupMB)} MB at ${v.warmupSec} s -> ${f(w.endMB)} MB at the end: ` +
      `${w.growthMB >= 0 ? '+' : ''}${f(w.growthMB)} MB (${w.growthPct >= 0 ? '+' : ''}${f(w.growthPct)}%), slope ${f(w.slopeMBPerMin, 2)} MB/min after warm-up`,
  );
  lines.push(
    `growth after warm-up: ${v.flat ? `none beyond ${v.flatPct}%` : `GROWS (over ${v.flatPct}% in at least one worker)`}`,
    `max per-worker RSS: ${f(v.maxWorkerMB)} MB vs target < ${v.targetMB} MB: ${v.withinTarget ? 'met' : 'NOT met'}`,
  );
  return lines;
}

export function writeSoakResults(dir: string, report: Record<string, unknown>, markdown: string): { json: string; md: string } {
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const json = join(dir, `soak-${stamp}.json`);
  const md = join(dir, `soak-${stamp}.md`);
  writeFileSync(json, JSON.stringify(report, null, 2) + '\n');
  writeFileSync(md, markdown);
  return { json, md };
}
