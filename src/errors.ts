// The catalogue of internal and configuration errors: every error Switchyard
// throws outside the data path's client answers (src/proxy/errors.ts) carries
// one of these stable codes (like undici's UND_ERR_* and fastify's FST_ERR_*),
// so callers, logs and tests match on `err.code`, never on message text. The
// README's "Error codes" table lists the same codes; keep them in step.

export const ErrorCode = {
  /** The config file cannot be read. */
  ConfigUnreadable: 'SWY_ERR_CONFIG_UNREADABLE',
  /** YAML syntax, schema or semantic errors; ConfigError.errors lists every one. */
  ConfigInvalid: 'SWY_ERR_CONFIG_INVALID',
  /** A route's gateway policy (auth, CORS, authorize, hash key) cannot be built from its config. */
  ConfigPolicy: 'SWY_ERR_CONFIG_POLICY',
  /** The native addon is missing or does not load. */
  NativeMissing: 'SWY_ERR_NATIVE_MISSING',
  /** The native addon is older than the code (exports missing). */
  NativeStale: 'SWY_ERR_NATIVE_STALE',
  /** The native addon's shared-memory layout differs from src/native/layout.ts. */
  NativeLayout: 'SWY_ERR_NATIVE_LAYOUT',
  /** A shared region holds other servers than the worker's config names. */
  RegionMismatch: 'SWY_ERR_REGION_MISMATCH',
  /** More worker processes alive than the region has counter slots. */
  SlotsExhausted: 'SWY_ERR_SLOTS_EXHAUSTED',
  /** The admin API cannot listen on its address. */
  AdminListen: 'SWY_ERR_ADMIN_LISTEN',
  /** A worker exited or timed out before it was ready. */
  WorkerNotReady: 'SWY_ERR_WORKER_NOT_READY',
  /** Workers crashed repeatedly while starting. */
  WorkersCrashed: 'SWY_ERR_WORKERS_CRASHED',
  /** Shutdown was asked for while the workers were starting. */
  ShutdownDuringStart: 'SWY_ERR_SHUTDOWN_DURING_START',
  /** `dsr:` is configured where the forwarder cannot run (not Linux, or not root). */
  DsrUnavailable: 'SWY_ERR_DSR_UNAVAILABLE',
  /** The DSR forwarder process could not start or open an entry (no such interface, segment gone...). */
  DsrStart: 'SWY_ERR_DSR_START',
  /** An exchange was asked for a phase change its machine does not allow (a bug; answered 500). */
  ExchangePhase: 'SWY_ERR_EXCHANGE_PHASE',
  /** The DSR forwarder cannot open its interface (no such interface, not permitted, VIP owned by this host) or was given invalid servers. */
  DsrForwarder: 'SWY_ERR_DSR_FORWARDER',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class SwitchyardError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'SwitchyardError';
  }
}
