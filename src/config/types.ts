// The validated, normalised configuration every module reads. YAML keys are
// snake_case; here they are camelCase, durations are milliseconds and sizes
// bytes. Produced only by config/load.ts, then deep-frozen.

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export type BalanceAlgorithm = 'round-robin' | 'least-conn' | 'source' | 'random';
/** How new connections are spread over workers (node:cluster scheduling policy). */
export type SchedulingPolicy = 'kernel' | 'round-robin';

export interface ListenConfig {
  host: string;
  port: number;
}

export interface AdminConfig {
  host: string;
  port: number;
  token: string;
}

export interface LoggingConfig {
  level: LogLevel;
  access: boolean;
}

export interface LimitsConfig {
  maxHeaderBytes: number;
  maxUrlBytes: number;
  maxBodyBytes: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  /** Idle time allowed on a client keep-alive connection between requests. */
  keepaliveTimeoutMs: number;
}

export interface ServerConfig {
  /** "host:port" exactly as written; also the server's identity for hashing. */
  address: string;
  host: string;
  port: number;
  weight: number;
}

export interface HealthConfig {
  path: string;
  intervalMs: number;
  timeoutMs: number;
  rise: number;
  fall: number;
  expectStatus: number[];
  /** Ramp time of a server's weight after it comes back up; absent = no ramp. */
  slowStartMs?: number;
}

export interface HashConfig {
  /** "source-ip" | "header:NAME" | "cookie:NAME" */
  key: string;
  balanceFactor?: number;
}

export interface UpstreamTimeouts {
  connectMs: number;
  responseMs: number;
  idleMs: number;
  /** Cap on a whole exchange, retries included; absent: none. */
  totalMs?: number;
}

/** Passive health (outlier detection), counted in shared memory across workers. */
export interface OutlierConfig {
  consecutiveFailures: number;
  /** Ejection time for the first ejection; doubles with each repeat up to maxEjectionMs. */
  baseEjectionMs: number;
  maxEjectionMs: number;
  /** Never eject a server if that would leave more than this share of the upstream ejected. */
  maxEjectionPercent: number;
}

export interface RetryBudgetConfig {
  /** Retries may add at most this percentage of the upstream's requests... */
  percent: number;
  /** ...or this many per second, whichever is larger. */
  minPerSecond: number;
}

export interface UpstreamConfig {
  name: string;
  balance: BalanceAlgorithm;
  hash: HashConfig;
  servers: ServerConfig[];
  health?: HealthConfig;
  retries: number;
  retryBudget: RetryBudgetConfig;
  /** Request bodies up to this size are kept so a failed attempt can be replayed. */
  retryBodyBytes: number;
  outlier: OutlierConfig;
  timeouts: UpstreamTimeouts;
  /** Idle keep-alive connections kept per server per worker. */
  maxIdlePerServer: number;
}

export interface RouteConfig {
  /** Stable name for logs and metrics: "host+path" unless given. */
  name: string;
  host: string;
  path: string;
  upstream: string;
}

export interface Config {
  /** Absolute path of the file this came from. */
  file: string;
  /** Resolved: "auto" becomes os.availableParallelism(). */
  workers: number;
  scheduling: SchedulingPolicy;
  listen: ListenConfig[];
  admin: AdminConfig;
  logging: LoggingConfig;
  limits: LimitsConfig;
  trustedProxies: string[];
  shutdownTimeoutMs: number;
  upstreams: Record<string, UpstreamConfig>;
  routes: RouteConfig[];
  /** Addresses on which the primary itself runs tiny demo backends. */
  demoBackends: ListenConfig[];
}
