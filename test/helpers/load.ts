// A bounded HTTP load generator for resilience tests: `connections` keep-alive
// connections (undici Pool), each with one GET in flight at a time, as a
// browser or an upstream proxy would hold them. Every failure counts: a status
// outside 2xx, a refused or reset connection, a timeout. The first few are kept
// with their time so an assertion message says what went wrong and when.
import { Pool } from 'undici';

export interface LoadOptions {
  port: number;
  host?: string;
  /** Concurrent connections, one request in flight on each. */
  connections: number;
  /** Request path (default "/"), or one per request number. */
  path?: string | ((n: number) => string);
  /** Per request: to the response head, and between body chunks (default 5000). */
  timeoutMs?: number;
  /** Hard bound: the load stops on its own after this long, stop() or not. */
  maxDurationMs: number;
}

export interface LoadResult {
  /** Requests issued (each counted once, whatever became of it). */
  sent: number;
  ok: number;
  failed: number;
  /** Count per status code ("200", "502") or error code ("ECONNREFUSED", "UND_ERR_SOCKET"). */
  outcomes: Record<string, number>;
  /** The first failures, as "+MS: what". */
  firstFailures: string[];
  durationMs: number;
  latencyMs: { p50: number; p99: number; max: number };
}

export interface Load {
  /** Live counts while running. */
  readonly sent: number;
  readonly failed: number;
  /** Stops issuing requests; resolves once every request in flight settled. Idempotent. */
  stop(): Promise<LoadResult>;
}

const KEPT_FAILURES = 10;

export function errorCode(err: unknown): string {
  const e = err as { code?: string; cause?: { code?: string }; message?: string };
  return e.code ?? e.cause?.code ?? e.message ?? String(err);
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

/** One line for assertion messages. */
export function describeLoad(r: LoadResult): string {
  return (
    `${r.sent} sent, ${r.ok} ok, ${r.failed} failed in ${r.durationMs} ms; outcomes ${JSON.stringify(r.outcomes)}; ` +
    `latency p50 ${r.latencyMs.p50} p99 ${r.latencyMs.p99} max ${r.latencyMs.max} ms; first failures: ${JSON.stringify(r.firstFailures)}`
  );
}

export function startLoad(o: LoadOptions): Load {
  const host = o.host ?? '127.0.0.1';
  const timeoutMs = o.timeoutMs ?? 5000;
  const pool = new Pool(`http://${host}:${o.port}`, { connections: o.connections, pipelining: 1 });
  const started = Date.now();
  const outcomes: Record<string, number> = {};
  const firstFailures: string[] = [];
  const latencies: number[] = [];
  let sent = 0;
  let ok = 0;
  let failed = 0;
  let stopped = false;
  const hardStop = setTimeout(() => (stopped = true), o.maxDurationMs);

  const record = (key: string, success: boolean, t0: number, detail: string): void => {
    outcomes[key] = (outcomes[key] ?? 0) + 1;
    latencies.push(Date.now() - t0);
    if (success) ok++;
    else {
      failed++;
      if (firstFailures.length < KEPT_FAILURES) firstFailures.push(`+${t0 - started}ms: ${detail}`);
    }
  };

  const lane = async (): Promise<void> => {
    while (!stopped) {
      const n = sent++;
      const path = typeof o.path === 'function' ? o.path(n) : (o.path ?? '/');
      const t0 = Date.now();
      try {
        const res = await pool.request({ path, method: 'GET', headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
        const body = await res.body.text();
        const success = res.statusCode >= 200 && res.statusCode < 300;
        record(String(res.statusCode), success, t0, `GET ${path} -> ${res.statusCode} ${body.slice(0, 120)}`);
      } catch (err) {
        const code = errorCode(err);
        record(code, false, t0, `GET ${path} -> ${code}: ${(err as Error).message}`);
      }
    }
  };
  const lanes = Promise.all(Array.from({ length: o.connections }, lane));

  let result: Promise<LoadResult> | undefined;
  const finish = async (): Promise<LoadResult> => {
    stopped = true;
    await lanes;
    clearTimeout(hardStop);
    await pool.destroy();
    latencies.sort((a, b) => a - b);
    return {
      sent,
      ok,
      failed,
      outcomes,
      firstFailures,
      durationMs: Date.now() - started,
      latencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1) ?? 0 },
    };
  };

  return {
    get sent() {
      return sent;
    },
    get failed() {
      return failed;
    },
    stop() {
      // Idempotent: a test's finally may stop a load its body already stopped.
      return (result ??= finish());
    },
  };
}
