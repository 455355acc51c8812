// What the admin API serves and takes, in one module that both the API and
// the primary (which implements it) import, so neither imports the other's
// internals. The shapes the data path and the shared state report (worker
// stats, server counts) are defined here too: the admin API is their
// consumer, and this file imports nothing, so any layer may use it.

/** A server's counts in shared memory, summed over all workers. */
export interface ServerCounts {
  healthy: boolean;
  drained: boolean;
  /** Upstream requests in flight, all workers. */
  active: number;
  /** Open upstream connections (pooled or busy), all workers. */
  activeConnections: number;
  /** Since the workers now alive started. */
  requests: number;
  failures: number;
}

/** One server's counts as one worker saw them. */
export interface ServerStats {
  active: number;
  requests: number;
  failures: number;
}

export interface WorkerStats {
  requests: number;
  activeConnections: number;
  activeRequests: number;
  upstreams: Record<string, Record<string, ServerStats>>;
}

export type ReloadResult = { ok: true } | { ok: false; errors: string[] };

export type WorkerState = 'starting' | 'ready' | 'draining' | 'backoff' | 'stopped';

export interface WorkerInfo {
  slot: number;
  pid: number | null;
  uptimeSeconds: number;
  restarts: number;
  state: WorkerState;
}

export interface WorkerStatsResult {
  slot: number;
  pid: number;
  /** Undefined when the worker did not answer in time. */
  stats?: WorkerStats;
}

/** A server's shared-memory counts (summed over all workers) with its config. */
export interface ServerStatus extends ServerCounts {
  address: string;
  weight: number;
}

/** The body of `GET /status`. */
export interface Status {
  version: string;
  pid: number;
  uptimeSeconds: number;
  configFile: string;
  scheduling: string;
  workers: WorkerInfo[];
  crashLoop: boolean;
  /** Workers that did not answer the stats request in time: their counts are missing below. */
  unresponsiveWorkers: number[];
  requests: number;
  activeConnections: number;
  activeRequests: number;
  upstreams: Record<string, { balance: string; servers: ServerStatus[] }>;
}
