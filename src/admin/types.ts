// What the admin API serves and takes, in one module that both the API and
// the primary (which implements it) import, so neither imports the other's
// internals.
import type { ServerCounts } from '../cluster/shared-state.js';
import type { WorkerStats } from '../proxy/server.js';
import type { AcmeCertificateStatus } from '../acme/service.js';

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
  /** One entry per listener with tls.acme: its certificate, the next renewal or retry, the last error. */
  acme: AcmeCertificateStatus[];
}
