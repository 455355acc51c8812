// What the admin API serves and takes, in one module that both the API and
// the primary (which implements it) import, so neither imports the other's
// internals. The shapes the data path and the shared state report (worker
// stats, server counts) are defined here too: the admin API is their
// consumer, and this file imports only types (the canary's figures), so any
// layer may use it.
import type { WindowFigures } from '../metrics/canary-figures.js';
import type { AcmeCertificateStatus } from '../acme/service.js';
import type { DsrCounters } from '../native.js';
import type { DsrConfig } from '../config/types.js';

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
  /** Passive ejection deadline (Unix ms); 0: not ejected. */
  ejectedUntil: number;
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
  /** Open tunnels (WebSocket or another Upgrade): an HTTP/1.1 connection after its 101, each tunnel stream of an HTTP/2 session. */
  tunnels: number;
  upstreams: Record<string, Record<string, ServerStats>>;
}


/** A canary reload's result travels with the reload's. */
/** busy: refused, a canary reload is running or waiting (409). */
export type ReloadResult = { ok: true; canary?: CanaryReport } | { ok: false; errors: string[]; canary?: CanaryReport; busy?: true };

/** `POST /reload?canary=30s&min_requests=N`: the new config on one worker first, judged over the window. */
export interface ReloadOptions {
  canary?: { windowMs: number; minRequests: number };
}

/** The current or last canary reload, as /status, the log and the reload answer show it. */
export interface CanaryReport {
  state: 'running' | 'rolled-out' | 'rolled-back';
  startedAt: string;
  windowMs: number;
  minRequests: number;
  canaryPid: number;
  /** Set once decided. */
  reason?: string;
  /** The window's figures of the canary and of the other workers (absent when it was cut short). */
  canary?: WindowFigures;
  others?: WindowFigures;
}

/** retiring: replaced by a reload, HTTP requests finished, kept alive for its open tunnels (up to tunnel_max_age). */
export type WorkerState = 'starting' | 'ready' | 'draining' | 'retiring' | 'backoff' | 'stopped';

export interface WorkerInfo {
  slot: number;
  pid: number | null;
  uptimeSeconds: number;
  restarts: number;
  state: WorkerState;
  /** Open tunnels, when there are any (from the worker's answer to the stats request). */
  tunnels?: number;
  /** draining or retiring: seconds since it was replaced or told to stop. */
  retiredSeconds?: number;
  /** Runs a canary reload's new config. */
  canary?: true;
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
  /** `source` upstreams: the fraction of the Maglev table (of hash keys) the server owns. */
  tableShare?: number;
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
  /** Open tunnels, all workers. */
  tunnels: number;
  /** Replaced workers still alive for their tunnels (each one is a process). */
  retiringWorkers: number;
  /** The current or last canary reload. */
  canary?: CanaryReport;
  upstreams: Record<string, { balance: string; servers: ServerStatus[] }>;
  /** The routes in the order the router tries them. */
  routes: RouteTableEntry[];
  /** Upstreams whose servers come from DNS (issue 14); absent when none do. */
  discovery?: Record<string, DiscoveryStatus>;
  /** One entry per listener with tls.acme: its certificate, the next renewal or retry, the last error. */
  acme: AcmeCertificateStatus[];
  /** The DSR tier (issue 13): absent when the config has no `dsr:` entries. */
  dsr?: DsrStatus;
}

// ---- DSR (issue 13, item 2) ----------------------------------------------------
/** The forwarder process, as the primary supervises it. */
export interface DsrForwarderInfo {
  pid: number | null;
  /** backoff: died, respawning soon; stopped: shut down. */
  state: 'starting' | 'running' | 'backoff' | 'stopped';
  uptimeSeconds: number;
  /** Respawns after it died, since start. */
  restarts: number;
}

/** One `dsr:` entry in `GET /status`. */
export interface DsrEntryStatus extends Pick<DsrConfig, 'interface' | 'vip' | 'ports' | 'upstream' | 'method' | 'dscp'> {
  /** Why it does not forward now (could not open, the process is down); absent while it runs. */
  error?: string;
  /** Since the forwarder process started; absent when it did not answer. */
  counters?: Omit<DsrCounters, 'servers'>;
  /** Each server with its health and drain bits (which gate new flows) and what was forwarded to it. */
  servers: DsrServerStatus[];
}

export interface DsrServerStatus {
  address: string;
  weight: number;
  healthy: boolean;
  drained: boolean;
  packets: number;
  bytes: number;
  /** Tracked connections to it now. */
  connections: number;
}

export interface DsrStatus {
  forwarder: DsrForwarderInfo;
  entries: DsrEntryStatus[];
}
// ---- end DSR -------------------------------------------------------------------

/** GET /upstreams/{name}/what-if: the answer, or every problem with the query. */
export type WhatIfResult = { ok: true; body: Record<string, unknown> } | { ok: false; errors: string[] };

/** One row of the route table as the router matches it (proxy/route-table.ts builds it). */
export interface RouteTableEntry {
  /** 1-based position in match order, over all groups. */
  order: number;
  /** The host group: an exact host, "*.suffix" or "*". */
  group: string;
  name: string;
  path: string;
  /** Absent: any method. */
  methods?: string[];
  /** Required header values, "name: value". */
  headers?: string[];
  upstream: string;
  /** The gateway steps and rewrites the route applies, e.g. "jwt auth", "rate limit 50/s". */
  checks: string[];
}


/** A DNS-discovered upstream in `GET /status`. */
export interface DiscoveryStatus {
  dns: string;
  type: string;
  /** The set in use: the last good answer. */
  servers: string[];
  /** ISO time of the last good answer. */
  resolvedAt: string | null;
  /** True while resolutions fail (error, timeout, empty answer): the servers are the last good set, kept. */
  stale: boolean;
  lastError?: string;
  /** ISO time of the first failure since the last good answer. */
  failedAt?: string;
  nextResolveInMs: number;
}
