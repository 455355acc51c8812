// The figures a canary reload is judged by, read from the workers' own metric
// snapshots (the same numbers /metrics sums): requests answered, 5xx answers,
// and the request-duration histogram, each taken at the start and at the end
// of the window so only the window counts; then the rule that decides.
import { DURATION_BUCKETS, type MetricJson } from './worker-metrics.js';

/** Cumulative counts of one group of workers at one moment. */
export interface TrafficCounts {
  requests: number;
  errors5xx: number;
  /** Non-cumulative counts per DURATION_BUCKETS bucket, +Inf last. */
  buckets: number[];
}

export interface WindowFigures {
  requests: number;
  errors5xx: number;
  /** 5xx answers / requests (0 without requests). */
  errorRate: number;
  /** From the histogram, interpolated within its bucket; null without requests. */
  p99Ms: number | null;
}

export interface CanaryVerdict {
  rollOut: boolean;
  reason: string;
}

/** The canary must do at least this much worse than the baseline to fail, so noise on a few requests does not. */
const ERROR_RATE_MARGIN = 0.01;
const P99_FACTOR = 2;
const P99_MARGIN_MS = 50;

export function emptyCounts(): TrafficCounts {
  return { requests: 0, errors5xx: 0, buckets: new Array<number>(DURATION_BUCKETS.length + 1).fill(0) };
}

/** Adds one worker's snapshot to `into`. */
export function addSnapshot(into: TrafficCounts, snapshot: readonly MetricJson[]): TrafficCounts {
  for (const metric of snapshot) {
    if (metric.name === 'switchyard_requests_total') {
      for (const v of metric.values) {
        into.requests += v.value;
        if (v.labels.status_class === '5xx') into.errors5xx += v.value;
      }
    } else if (metric.name === 'switchyard_request_duration_seconds') {
      // Buckets come cumulative per (route, upstream) series, in order, +Inf last: undo the sum per series.
      let previous = 0;
      let i = 0;
      for (const v of metric.values) {
        if (v.metricName !== 'switchyard_request_duration_seconds_bucket') continue;
        into.buckets[i]! += v.value - previous;
        previous = v.value;
        i++;
        if (v.labels.le === '+Inf') {
          previous = 0;
          i = 0;
        }
      }
    }
  }
  return into;
}

/** What happened between two readings of the same workers. */
export function windowFigures(start: TrafficCounts, end: TrafficCounts): WindowFigures {
  const requests = end.requests - start.requests;
  const errors5xx = end.errors5xx - start.errors5xx;
  const buckets = end.buckets.map((n, i) => n - start.buckets[i]!);
  return { requests, errors5xx, errorRate: requests > 0 ? errors5xx / requests : 0, p99Ms: percentileMs(buckets, 0.99) };
}

/** Linear interpolation inside the bucket that holds the quantile; the +Inf bucket reads as its lower bound. */
function percentileMs(buckets: readonly number[], q: number): number | null {
  const total = buckets.reduce((n, b) => n + b, 0);
  if (total === 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    const n = buckets[i]!;
    if (seen + n >= rank && n > 0) {
      const lower = i === 0 ? 0 : DURATION_BUCKETS[i - 1]!;
      if (i >= DURATION_BUCKETS.length) return lower * 1000;
      const upper = DURATION_BUCKETS[i]!;
      return (lower + ((rank - seen) / n) * (upper - lower)) * 1000;
    }
    seen += n;
  }
  return null;
}

/**
 * Roll back when the canary answered too few requests to judge, when its
 * 5xx rate exceeds the others' by more than max(1 point, the others' rate)
 * (i.e. at least doubled and at least one point worse), or when its p99 is
 * more than twice the others' and 50 ms above it.
 */
export function judge(canary: WindowFigures, others: WindowFigures, minRequests: number): CanaryVerdict {
  if (canary.requests < minRequests) {
    return { rollOut: false, reason: `the canary answered ${canary.requests} requests in the window, fewer than the ${minRequests} needed to judge it` };
  }
  const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
  if (canary.errorRate > others.errorRate + Math.max(ERROR_RATE_MARGIN, others.errorRate)) {
    return { rollOut: false, reason: `5xx rate ${pct(canary.errorRate)} on the canary against ${pct(others.errorRate)} on the others` };
  }
  if (canary.p99Ms !== null && others.p99Ms !== null && canary.p99Ms > P99_FACTOR * others.p99Ms && canary.p99Ms > others.p99Ms + P99_MARGIN_MS) {
    return { rollOut: false, reason: `p99 ${canary.p99Ms.toFixed(1)} ms on the canary against ${others.p99Ms.toFixed(1)} ms on the others` };
  }
  const p99 = (x: number | null) => (x === null ? 'n/a' : `${x.toFixed(1)} ms`);
  return {
    rollOut: true,
    reason: `5xx ${pct(canary.errorRate)} vs ${pct(others.errorRate)}, p99 ${p99(canary.p99Ms)} vs ${p99(others.p99Ms)}: within bounds`,
  };
}
