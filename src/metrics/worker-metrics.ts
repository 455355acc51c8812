// The metrics one worker's data path records. The hot path only bumps plain
// numbers in series built ahead of time from the config: prom-client's own
// `labels(...).inc()` hashes the label object on every call and measured
// ~2.3 µs per request (counter + histogram) against ~10 ns for this. The
// series are turned into prom-client's JSON form only when the primary asks
// (`snapshot()`), where prom-client's AggregatorRegistry sums every worker's.
import cluster from 'node:cluster';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { Config } from '../config/types.js';

/** One metric in the form of prom-client's `registry.getMetricsAsJSON()`, which `AggregatorRegistry.aggregate` reads. */
export interface MetricJson {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  aggregator: 'sum';
  values: { value: number; labels: Record<string, string | number>; metricName?: string }[];
}

/** IPC between the primary (cluster-metrics.ts) and each worker; other listeners ignore these types. */
export const METRICS_REQUEST = 'switchyard:metrics-request';
export const METRICS_RESPONSE = 'switchyard:metrics';
/** `only: 'server-latency'`: just the per-server latency histogram (the dashboard's p50/p99), with no side effect on the loop-delay gauge. */
export type MetricsRequest = { type: typeof METRICS_REQUEST; id: number; only?: 'server-latency' };
export const SERVER_LATENCY_METRIC = 'switchyard_server_request_duration_seconds';
export type MetricsResponse = { type: typeof METRICS_RESPONSE; id: number; metrics: MetricJson[] };

/** Seconds: from a cache hit on loopback (1 ms) to the default response timeout (30 s) and beyond. */
export const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] as const;

/**
 * Label values per status: index 0..4 are 1xx..5xx; "other" counts requests
 * that ended without a valid status (e.g. the client left before the answer).
 */
const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'other'] as const;
const OTHER = 5;
/**
 * A server's counts array: the status classes, then its own latency buckets
 * (non-cumulative, like UpstreamSeries.buckets) and their sum. Kept in the
 * same array so the per-server histogram (the dashboard's p50/p99) costs the
 * hot path two increments and no lookup.
 */
const SERVER_BUCKETS = STATUS_CLASSES.length;
const SERVER_SUM = SERVER_BUCKETS + DURATION_BUCKETS.length + 1;
const SERVER_COUNTS_LENGTH = SERVER_SUM + 1;

/** Label value for "none": no route matched, no upstream or no server was picked. */
const NONE = '';

/** Requests of one (route, upstream) pair: counts per server and status class, and one latency histogram. */
interface UpstreamSeries {
  readonly servers: Map<string, Float64Array>;
  /** Non-cumulative: buckets[i] counts durations in (le[i-1], le[i]]; the last slot is +Inf. */
  readonly buckets: Float64Array;
  sum: number;
  count: number;
}

export class WorkerMetrics {
  /** route name → upstream name → series. */
  private readonly routes = new Map<string, Map<string, UpstreamSeries>>();
  private readonly retries = new Map<string, number>();
  /** upstream → server address → ejections. */
  private readonly ejections = new Map<string, Map<string, number>>();
  private activeConnections = 0;
  private refusedConnections = 0;
  /** Event-loop delay since the last scrape, labelled by worker (quantiles do not sum). */
  private readonly loopDelay: IntervalHistogram | undefined;
  private readonly worker: string;
  /** route → [auth failures, authorization denials, rate-limited]. */
  private readonly gateway = new Map<string, Float64Array>();
  /** upstream → server → [connections opened, requests sent on a reused connection]. */
  private readonly upstreamConnections = new Map<string, Map<string, Float64Array>>();
  /** upstream → server → close reason → connections closed. */
  private readonly upstreamCloses = new Map<string, Map<string, Map<string, number>>>();
  /** Global rate limits (issue 14): route → outcome → requests decided; Redis calls, errors, breaker. */
  private readonly globalDecisions = new Map<string, Map<string, number>>();
  private redisCalls = 0;
  private redisErrors = 0;
  private redisCircuitOpen = 0;
  private readonly redisTransitions = new Map<string, number>();
  /** Issue 14: per upstream, retries of POST/PATCH with an Idempotency-Key, and picks the balance_factor bound moved. */
  private readonly keyedRetries = new Map<string, number>();
  private readonly boundDiversions = new Map<string, number>();

  /**
   * Pre-creates every series the config can produce, so they are exported
   * (at 0) from the start and the hot path only finds them. In a cluster
   * worker it also answers the primary's metrics requests, unless told not to.
   */
  constructor(config: Config, opts: { answerPrimary?: boolean; worker?: number } = {}) {
    this.worker = String(opts.worker ?? 0);
    this.series(NONE, NONE, NONE);
    for (const route of config.routes) {
      const servers = config.upstreams[route.upstream]?.servers ?? [];
      this.series(route.name, route.upstream, NONE);
      for (const s of servers) this.series(route.name, route.upstream, s.address);
    }
    for (const route of config.routes) {
      if (route.auth || route.authorize || route.rateLimit) this.gateway.set(route.name, new Float64Array(3));
    }
    for (const [name, upstream] of Object.entries(config.upstreams)) {
      this.retries.set(name, 0);
      this.keyedRetries.set(name, 0);
      if (upstream.balance === 'source' && upstream.hash.balanceFactor !== undefined) this.boundDiversions.set(name, 0);
      this.ejections.set(name, new Map(upstream.servers.map((s) => [s.address, 0])));
      this.upstreamConnections.set(name, new Map(upstream.servers.map((s) => [s.address, new Float64Array(2)])));
    }
    if (opts.answerPrimary ?? cluster.isWorker) {
      // 10 ms resolution: a timer firing 100 times a second costs nothing measurable.
      this.loopDelay = monitorEventLoopDelay({ resolution: 10 });
      this.loopDelay.enable();
      this.answerPrimary();
    }
  }

  /**
   * One finished request. Pass undefined for what does not apply (no route
   * matched, no server picked); `status` is what the client got, 0 if nothing.
   */
  requestDone(route: string | undefined, upstream: string | undefined, server: string | undefined, status: number, durationSeconds: number): void {
    const r = route ?? NONE;
    const u = upstream ?? NONE;
    const s = server ?? NONE;
    const series = this.routes.get(r)?.get(u) ?? this.series(r, u, s);
    const counts = series.servers.get(s) ?? this.series(r, u, s).servers.get(s)!;
    const cls = (status / 100) | 0;
    counts[cls >= 1 && cls <= 5 ? cls - 1 : OTHER]!++;

    const d = durationSeconds >= 0 ? durationSeconds : 0;
    let i = 0;
    while (i < DURATION_BUCKETS.length && d > DURATION_BUCKETS[i]!) i++;
    series.buckets[i]!++;
    series.sum += d;
    series.count++;
    counts[SERVER_BUCKETS + i]!++;
    counts[SERVER_SUM]! += d;
  }

  /** A retry of a request to another server of `upstream`. */
  retry(upstream: string): void {
    this.retries.set(upstream, (this.retries.get(upstream) ?? 0) + 1);
  }

  /** This worker ejected `server` (passive health). */
  ejection(upstream: string, server: string): void {
    let servers = this.ejections.get(upstream);
    if (!servers) this.ejections.set(upstream, (servers = new Map()));
    servers.set(server, (servers.get(server) ?? 0) + 1);
  }

  /** An upstream connection was opened, or a request went out on one that served an earlier request. */
  upstreamConnection(upstream: string, server: string, what: 'opened' | 'reused'): void {
    let servers = this.upstreamConnections.get(upstream);
    if (!servers) this.upstreamConnections.set(upstream, (servers = new Map()));
    let counts = servers.get(server);
    if (!counts) servers.set(server, (counts = new Float64Array(2)));
    counts[what === 'opened' ? 0 : 1]!++;
  }

  /** An upstream connection was closed, and why (upstream-pool.ts, CloseReason). */
  upstreamConnectionClosed(upstream: string, server: string, reason: string): void {
    let servers = this.upstreamCloses.get(upstream);
    if (!servers) this.upstreamCloses.set(upstream, (servers = new Map()));
    let reasons = servers.get(server);
    if (!reasons) servers.set(server, (reasons = new Map()));
    reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
  }

  /** A request refused by the gateway: 401 (auth), 403 (authorization) or 429 (rate limit). */
  gatewayRefusal(route: string, kind: 'auth' | 'authorize' | 'rate-limit'): void {
    let counts = this.gateway.get(route);
    if (!counts) this.gateway.set(route, (counts = new Float64Array(3)));
    counts[kind === 'auth' ? 0 : kind === 'authorize' ? 1 : 2]!++;
  }

  /** A retry of a POST or PATCH allowed by its Idempotency-Key (also counted in retry()). */
  keyedRetry(upstream: string): void {
    this.keyedRetries.set(upstream, (this.keyedRetries.get(upstream) ?? 0) + 1);
  }

  /** Source hashing with balance_factor picked another server than the key's first choice: the bound moved it. */
  boundDiversion(upstream: string): void {
    this.boundDiversions.set(upstream, (this.boundDiversions.get(upstream) ?? 0) + 1);
  }

  // ---- global rate limits (issue 14): GlobalLimitEvents ----

  /** A request on a scope: global route was decided: by a Redis lease, or by the route's fail mode. */
  decided(route: string, outcome: string): void {
    let outcomes = this.globalDecisions.get(route);
    if (!outcomes) this.globalDecisions.set(route, (outcomes = new Map()));
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
  }

  redisCall(): void {
    this.redisCalls++;
  }

  redisError(): void {
    this.redisErrors++;
  }

  /** The worker's Redis circuit breaker changed state. */
  breaker(state: string): void {
    this.redisCircuitOpen = state === 'closed' ? 0 : 1;
    this.redisTransitions.set(state, (this.redisTransitions.get(state) ?? 0) + 1);
  }

  /** A client connection closed at once because of limits.max_connections. */
  connectionRefused(): void {
    this.refusedConnections++;
  }

  /** Client connections open in this worker now. */
  setActiveConnections(n: number): void {
    this.activeConnections = n;
  }

  /** Everything recorded so far, in prom-client's JSON form. */
  snapshot(): MetricJson[] {
    const requests: MetricJson['values'] = [];
    const durations: MetricJson['values'] = [];
    for (const [route, upstreams] of this.routes) {
      for (const [upstream, series] of upstreams) {
        for (const [server, counts] of series.servers) {
          for (let i = 0; i < STATUS_CLASSES.length; i++) {
            const value = counts[i]!;
            // The five real classes always (so series exist from the start), "other" once it happened.
            if (i < OTHER || value > 0) requests.push({ value, labels: { route, upstream, server, status_class: STATUS_CLASSES[i]! } });
          }
        }
        let cumulative = 0;
        series.buckets.forEach((n, i) => {
          cumulative += n;
          const le = i < DURATION_BUCKETS.length ? DURATION_BUCKETS[i]! : '+Inf';
          durations.push({ value: cumulative, labels: { route, upstream, le }, metricName: 'switchyard_request_duration_seconds_bucket' });
        });
        durations.push({ value: series.sum, labels: { route, upstream }, metricName: 'switchyard_request_duration_seconds_sum' });
        durations.push({ value: series.count, labels: { route, upstream }, metricName: 'switchyard_request_duration_seconds_count' });
      }
    }
    const ejections: MetricJson['values'] = [];
    for (const [upstream, servers] of this.ejections) {
      for (const [server, value] of servers) ejections.push({ value, labels: { upstream, server } });
    }
    const opened: MetricJson['values'] = [];
    const reused: MetricJson['values'] = [];
    for (const [upstream, servers] of this.upstreamConnections) {
      for (const [server, counts] of servers) {
        opened.push({ value: counts[0]!, labels: { upstream, server } });
        reused.push({ value: counts[1]!, labels: { upstream, server } });
      }
    }
    const closed: MetricJson['values'] = [];
    for (const [upstream, servers] of this.upstreamCloses) {
      for (const [server, reasons] of servers) for (const [reason, value] of reasons) closed.push({ value, labels: { upstream, server, reason } });
    }
    return [
      metric('switchyard_upstream_connections_opened_total', 'counter', 'Upstream connections opened.', opened),
      metric('switchyard_upstream_connection_reuses_total', 'counter', 'Upstream requests sent on a connection that served an earlier one.', reused),
      metric('switchyard_upstream_connections_closed_total', 'counter', 'Upstream connections closed, by reason.', closed),
      metric('switchyard_requests_total', 'counter', 'Requests answered, by route, upstream, server and status class ("" = none).', requests),
      metric('switchyard_request_duration_seconds', 'histogram', 'Time from request head to the end of the response.', durations),
      this.serverLatency(),
      metric('switchyard_active_connections', 'gauge', 'Open client connections.', [{ value: this.activeConnections, labels: {} }]),
      metric('switchyard_refused_connections_total', 'counter', 'Client connections closed at once: limits.max_connections reached.', [{ value: this.refusedConnections, labels: {} }]),
      metric(
        'switchyard_upstream_retries_total',
        'counter',
        'Requests retried on another server.',
        [...this.retries].map(([upstream, value]) => ({ value, labels: { upstream } })),
      ),
      metric('switchyard_upstream_ejections_total', 'counter', 'Servers ejected by passive health checks.', ejections),
      metric('switchyard_event_loop_delay_seconds', 'gauge', 'Event-loop delay per worker since the previous scrape (p50, p99, max).', this.loopDelayValues()),
      metric('switchyard_auth_failures_total', 'counter', 'Requests refused with 401, by route.', this.gatewayValues(0)),
      metric('switchyard_authorization_denials_total', 'counter', 'Requests refused with 403, by route.', this.gatewayValues(1)),
      metric('switchyard_rate_limited_total', 'counter', 'Requests refused with 429, by route.', this.gatewayValues(2)),
      ...this.globalLimitMetrics(),
      metric(
        'switchyard_upstream_idempotency_key_retries_total',
        'counter',
        'Retries of POST and PATCH requests allowed by their Idempotency-Key header (also in switchyard_upstream_retries_total).',
        [...this.keyedRetries].map(([upstream, value]) => ({ value, labels: { upstream } })),
      ),
      metric(
        'switchyard_balance_factor_diversions_total',
        'counter',
        'Requests that hash.balance_factor sent to another server than their first choice (source hashing with bounded loads).',
        [...this.boundDiversions].map(([upstream, value]) => ({ value, labels: { upstream } })),
      ),
    ];
  }

  private globalLimitMetrics(): MetricJson[] {
    const decisions: MetricJson['values'] = [];
    for (const [route, outcomes] of this.globalDecisions) for (const [outcome, value] of outcomes) decisions.push({ value, labels: { route, outcome } });
    return [
      metric('switchyard_global_rate_limit_decisions_total', 'counter', 'Requests on scope: global limits, by route and what decided (redis, fail-open, fail-closed, fail-local).', decisions),
      metric('switchyard_redis_calls_total', 'counter', 'Calls to Redis (token leases and give-backs).', [{ value: this.redisCalls, labels: {} }]),
      metric('switchyard_redis_errors_total', 'counter', 'Calls to Redis that failed or timed out.', [{ value: this.redisErrors, labels: {} }]),
      metric('switchyard_redis_circuit_open', 'gauge', 'Workers whose Redis circuit breaker is open or probing.', [{ value: this.redisCircuitOpen, labels: {} }]),
      metric(
        'switchyard_redis_circuit_transitions_total',
        'counter',
        'Changes of state of the Redis circuit breakers, by the state entered.',
        [...this.redisTransitions].map(([state, value]) => ({ value, labels: { state } })),
      ),
    ];
  }

  /** Each server's latency histogram, summed over the routes that reach it. */
  serverLatency(): MetricJson {
    const byServer = new Map<string, { upstream: string; server: string; latency: Float64Array }>();
    for (const upstreams of this.routes.values()) {
      for (const [upstream, series] of upstreams) {
        if (upstream === NONE) continue;
        for (const [server, counts] of series.servers) {
          if (server === NONE) continue;
          const key = `${upstream}\0${server}`;
          let entry = byServer.get(key);
          if (entry === undefined) byServer.set(key, (entry = { upstream, server, latency: new Float64Array(SERVER_COUNTS_LENGTH - SERVER_BUCKETS) }));
          for (let i = SERVER_BUCKETS; i < SERVER_COUNTS_LENGTH; i++) entry.latency[i - SERVER_BUCKETS]! += counts[i]!;
        }
      }
    }
    const values: MetricJson['values'] = [];
    for (const { upstream, server, latency } of byServer.values()) {
      let cumulative = 0;
      for (let i = 0; i <= DURATION_BUCKETS.length; i++) {
        cumulative += latency[i]!;
        const le = i < DURATION_BUCKETS.length ? DURATION_BUCKETS[i]! : '+Inf';
        values.push({ value: cumulative, labels: { upstream, server, le }, metricName: `${SERVER_LATENCY_METRIC}_bucket` });
      }
      values.push({ value: latency[DURATION_BUCKETS.length + 1]!, labels: { upstream, server }, metricName: `${SERVER_LATENCY_METRIC}_sum` });
      values.push({ value: cumulative, labels: { upstream, server }, metricName: `${SERVER_LATENCY_METRIC}_count` });
    }
    return metric(SERVER_LATENCY_METRIC, 'histogram', 'Time from request head to the end of the response, by upstream server.', values);
  }

  private loopDelayValues(): MetricJson['values'] {
    const h = this.loopDelay;
    if (h === undefined || h.count === 0) return [];
    const worker = this.worker;
    const values = [
      { value: h.percentile(50) / 1e9, labels: { worker, quantile: '0.5' } },
      { value: h.percentile(99) / 1e9, labels: { worker, quantile: '0.99' } },
      { value: h.max / 1e9, labels: { worker, quantile: '1' } },
    ];
    h.reset();
    return values;
  }

  private gatewayValues(i: number): MetricJson['values'] {
    return [...this.gateway].map(([route, counts]) => ({ value: counts[i]!, labels: { route } }));
  }

  /** Finds or creates the series of (route, upstream) and the counts of `server` in it. */
  private series(route: string, upstream: string, server: string): UpstreamSeries {
    let upstreams = this.routes.get(route);
    if (!upstreams) this.routes.set(route, (upstreams = new Map()));
    let series = upstreams.get(upstream);
    if (!series) {
      series = { servers: new Map(), buckets: new Float64Array(DURATION_BUCKETS.length + 1), sum: 0, count: 0 };
      upstreams.set(upstream, series);
    }
    if (!series.servers.has(server)) series.servers.set(server, new Float64Array(SERVER_COUNTS_LENGTH));
    return series;
  }

  private answerPrimary(): void {
    process.on('message', (m: unknown) => {
      if ((m as Partial<MetricsRequest> | null)?.type !== METRICS_REQUEST || !process.connected) return;
      const request = m as MetricsRequest;
      const metrics = request.only === 'server-latency' ? [this.serverLatency()] : this.snapshot();
      const response: MetricsResponse = { type: METRICS_RESPONSE, id: request.id, metrics };
      process.send?.(response);
    });
  }
}

function metric(name: string, type: MetricJson['type'], help: string, values: MetricJson['values']): MetricJson {
  return { name, help, type, aggregator: 'sum', values };
}
