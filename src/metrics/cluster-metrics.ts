// The primary's side of metrics: its own registry (server health from the
// active checker, worker count and restarts) and `clusterMetricsText`, which
// asks every worker for its snapshot and renders one Prometheus text with
// each series summed over the workers (prom-client's AggregatorRegistry).
//
// prom-client's own `clusterMetrics()` IPC is not used: it waits for every
// worker in `cluster.workers` and fails the whole scrape after 5 s if one of
// them exits or is still starting, which is routine during a rolling reload.
// Here each worker gets its own short deadline, a worker that exits counts as
// answered-without-data, and the scrape says how many answers were missing.
import cluster, { type Worker } from 'node:cluster';
import { createRequire } from 'node:module';
import type PromClient from 'prom-client';
import type { Registry } from 'prom-client';
import type { ServerHealth } from '../health/active-checker.js';
import type { AcmeCertificateStatus } from '../acme/service.js';
import {
  DURATION_BUCKETS,
  METRICS_REQUEST,
  METRICS_RESPONSE,
  SERVER_LATENCY_METRIC,
  type MetricJson,
  type MetricsRequest,
  type MetricsResponse,
} from './worker-metrics.js';

export interface ClusterMetricsSources {
  /** Every configured server with its active-health state (ActiveHealthChecker.servers()). */
  health(): Iterable<ServerHealth>;
  /** Workers serving now. */
  workers(): number;
  /** Workers respawned after dying, since start; must never decrease. */
  restarts(): number;
  /** ACME certificates and their order counts (AcmeService.status()). */
  acme(): AcmeCertificateStatus[];
}

/** The primary's own metrics, read from `sources` at scrape time (nothing to update elsewhere). */
/**
 * prom-client is loaded by the first scrape: a primary nobody scrapes never
 * holds it (~4 MB of RSS in a bare node; bench/README.md, "Memory of the
 * process tree"). Every metric of the primary's registry is computed in
 * `collect()`, so a registry made at the first scrape misses nothing.
 */
export const promClient = (): typeof PromClient => createRequire(import.meta.url)('prom-client') as typeof PromClient;

export function createPrimaryRegistry(sources: ClusterMetricsSources): Registry {
  const { Counter, Gauge, Registry } = promClient();
  const registry = new Registry();
  new Gauge({
    name: 'switchyard_upstream_server_healthy',
    help: '1 if the server passes its active health checks (or has none), else 0.',
    labelNames: ['upstream', 'server'],
    registers: [registry],
    collect() {
      // Reset first: servers removed by a reload must disappear.
      this.reset();
      for (const s of sources.health()) this.set({ upstream: s.upstream, server: s.address }, s.healthy ? 1 : 0);
    },
  });
  new Gauge({
    name: 'switchyard_workers',
    help: 'Worker processes serving.',
    registers: [registry],
    collect() {
      this.set(sources.workers());
    },
  });
  new Counter({
    name: 'switchyard_worker_restarts_total',
    help: 'Workers respawned after dying unexpectedly.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(sources.restarts());
    },
  });
  registerAcmeMetrics(registry, sources);
  return registry;
}

function registerAcmeMetrics(registry: Registry, sources: ClusterMetricsSources): void {
  const { Counter, Gauge } = promClient();
  new Gauge({
    name: 'switchyard_acme_certificate_expiry_timestamp_seconds',
    help: 'notAfter of the ACME certificate in service (unix time), by its first domain.',
    labelNames: ['certificate'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of sources.acme()) if (s.certificate) this.set({ certificate: s.domains[0] }, Date.parse(s.certificate.notAfter) / 1000);
    },
  });
  new Gauge({
    name: 'switchyard_acme_consecutive_failures',
    help: 'ACME orders failed in a row for the certificate (0 once one succeeds).',
    labelNames: ['certificate'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of sources.acme()) this.set({ certificate: s.domains[0] }, s.consecutiveFailures);
    },
  });
  new Counter({
    name: 'switchyard_acme_orders_total',
    help: 'ACME certificate orders (first and renewals) by result.',
    labelNames: ['certificate', 'result'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of sources.acme()) {
        this.inc({ certificate: s.domains[0], result: 'success' }, s.ordersSucceeded);
        this.inc({ certificate: s.domains[0], result: 'failure' }, s.ordersFailed);
      }
    },
  });
}

export const WORKER_ANSWER_TIMEOUT_MS = 1_000;

/**
 * The running totals of workers that have exited after a drain. Counters and
 * histograms only (they are cumulative); gauges describe live workers and
 * leave with them. A worker killed outright sends nothing: its counts are
 * lost, and Prometheus sees that as a counter reset.
 */
export class RetiredCounters {
  /** metric → series key → value, in prom-client's JSON form. */
  private readonly metrics = new Map<string, MetricJson & { byKey: Map<string, MetricJson['values'][number]> }>();

  add(snapshot: readonly MetricJson[]): void {
    for (const metric of snapshot) {
      if (metric.type === 'gauge') continue;
      let kept = this.metrics.get(metric.name);
      if (kept === undefined) this.metrics.set(metric.name, (kept = { ...metric, values: [], byKey: new Map() }));
      for (const v of metric.values) {
        const key = `${v.metricName ?? ''}${JSON.stringify(v.labels)}`;
        const seen = kept.byKey.get(key);
        if (seen === undefined) kept.byKey.set(key, { ...v, labels: { ...v.labels } });
        else seen.value += v.value;
      }
    }
  }

  snapshot(): MetricJson[] {
    return [...this.metrics.values()].map(({ byKey, ...metric }) => ({ ...metric, values: [...byKey.values()] }));
  }
}

let nextRequestId = 1;

/**
 * One Prometheus text: every worker's metrics summed per series, plus the
 * primary's registry. `workers` defaults to every connected cluster worker;
 * pass only the ready ones to skip workers still starting (they have nothing
 * to report and would only run into the deadline).
 */
export async function clusterMetricsText(
  primaryRegistry: Registry,
  workers: readonly Worker[] = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w),
  retired?: RetiredCounters,
  timeoutMs = WORKER_ANSWER_TIMEOUT_MS,
): Promise<string> {
  const [answers, own] = await Promise.all([collectFromWorkers(workers, timeoutMs), primaryRegistry.getMetricsAsJSON()]);
  const missing = answers.filter((a) => a === undefined).length;
  const scrape: MetricJson = {
    name: 'switchyard_metrics_workers_missing',
    help: 'Workers that did not answer this scrape in time: their counts are absent from the sums.',
    type: 'gauge',
    aggregator: 'sum',
    values: [{ value: missing, labels: {} }],
  };
  const all = [...answers.filter((a): a is MetricJson[] => a !== undefined), own, [scrape]];
  if (retired !== undefined) all.push(retired.snapshot());
  return promClient().AggregatorRegistry.aggregate(all).metrics();
}

/** One server's latency histogram summed over workers: cumulative counts per bucket of `bucketsSeconds`, then +Inf. */
export interface ServerLatency {
  upstream: string;
  address: string;
  cumulative: number[];
  sumSeconds: number;
}

export interface ServerLatencies {
  bucketsSeconds: readonly number[];
  servers: ServerLatency[];
  /** Workers that did not answer in time: their counts are absent. */
  workersMissing: number;
}

/**
 * Every server's latency histogram summed over the workers (and the retired
 * ones, so the counts never go back): the dashboard's p50/p99 come from the
 * difference between two of these. Asks the workers for that one metric only,
 * so it costs them little and leaves the loop-delay gauge of /metrics alone.
 */
export async function clusterServerLatency(workers: readonly Worker[], retired?: RetiredCounters, timeoutMs = WORKER_ANSWER_TIMEOUT_MS): Promise<ServerLatencies> {
  const answers = await collectFromWorkers(workers, timeoutMs, 'server-latency');
  const all = answers.filter((a): a is MetricJson[] => a !== undefined);
  if (retired !== undefined) all.push(retired.snapshot());
  // Summed here rather than by prom-client's aggregator: one pass over plain numbers (hundreds of servers × 18 values).
  const byServer = new Map<string, ServerLatency>();
  const bucketIndex = new Map<string, number>(DURATION_BUCKETS.map((le, i) => [String(le), i]));
  bucketIndex.set('+Inf', DURATION_BUCKETS.length);
  for (const snapshot of all) {
    for (const metric of snapshot) {
      if (metric.name !== SERVER_LATENCY_METRIC) continue;
      for (const v of metric.values) {
        const upstream = String(v.labels.upstream);
        const address = String(v.labels.server);
        const key = `${upstream}\0${address}`;
        let entry = byServer.get(key);
        if (entry === undefined) byServer.set(key, (entry = { upstream, address, cumulative: new Array<number>(DURATION_BUCKETS.length + 1).fill(0), sumSeconds: 0 }));
        if (v.metricName === `${SERVER_LATENCY_METRIC}_bucket`) {
          const i = bucketIndex.get(String(v.labels.le));
          if (i !== undefined) entry.cumulative[i]! += v.value;
        } else if (v.metricName === `${SERVER_LATENCY_METRIC}_sum`) {
          entry.sumSeconds += v.value;
        }
      }
    }
  }
  return { bucketsSeconds: DURATION_BUCKETS, servers: [...byServer.values()], workersMissing: answers.filter((a) => a === undefined).length };
}

/** Each worker's snapshot, or undefined for one that exited, was not connected or missed the deadline. */
export function collectFromWorkers(workers: readonly Worker[], timeoutMs: number, only?: MetricsRequest['only']): Promise<(MetricJson[] | undefined)[]> {
  return Promise.all(
    workers.map(
      (worker) =>
        new Promise<MetricJson[] | undefined>((resolve) => {
          if (!worker.isConnected()) return resolve(undefined);
          const id = nextRequestId++;
          const done = (metrics?: MetricJson[]) => {
            clearTimeout(timer);
            worker.off('message', onMessage);
            worker.off('exit', onExit);
            resolve(metrics);
          };
          const onMessage = (m: unknown) => {
            const r = m as Partial<MetricsResponse> | null;
            if (r?.type === METRICS_RESPONSE && r.id === id) done(r.metrics);
          };
          const onExit = () => done();
          const timer = setTimeout(done, timeoutMs);
          worker.on('message', onMessage);
          worker.on('exit', onExit);
          const request: MetricsRequest = { type: METRICS_REQUEST, id, ...(only ? { only } : {}) };
          worker.send(request);
        }),
    ),
  );
}
