// The IPC messages between the primary and its workers. Node's own cluster
// messages travel on the same channel but are never emitted as 'message', so
// anything without a known `type` is ignored.
import type { Config } from '../config/types.js';
import type { WorkerStats } from '../proxy/server.js';
import type { MetricJson } from '../metrics/worker-metrics.js';
import type { TicketKeysMessage } from '../tls/ticket-keys.js';

/**
 * The primary sends the validated config over IPC rather than letting each
 * worker re-read the file: a worker respawned after a crash then runs the
 * config the primary holds, even if the file was since edited into an invalid
 * one, and a reload cannot race an edit between validation and fork.
 */
export type PrimaryMessage =
  /** The config to run, and the shared region to attach with this worker's own counter slot. */
  | { type: 'config'; config: Config; region: { name: string; slot: number }; rateLimitTable: string }
  | { type: 'stats-request'; id: number }
  | { type: 'shutdown' }
  /** TLS session-ticket keys, current first: sent after 'config' and at every rotation. */
  | { type: 'tls-ticket-keys'; tickets: TicketKeysMessage }
  /**
   * Add or replace a certificate on TLS listeners (by index in config.listen; all when absent),
   * e.g. one the primary obtained by ACME. A bad PEM is logged by the worker and changes nothing.
   */
  | { type: 'tls-certificate'; id: string; cert: string; key: string; listeners?: number[] };

export type WorkerMessage =
  /** The worker listens for messages and asks for its config. */
  | { type: 'hello' }
  /** The data path is listening. */
  | { type: 'ready' }
  | { type: 'stats'; id: number; stats: WorkerStats }
  /** Sent once, after a drain and just before exiting: everything the worker counted. */
  | { type: 'metrics-final'; metrics: MetricJson[] };

const WORKER_TYPES: ReadonlySet<string> = new Set<WorkerMessage['type']>(['hello', 'ready', 'stats', 'metrics-final']);
const PRIMARY_TYPES: ReadonlySet<string> = new Set<PrimaryMessage['type']>(['config', 'stats-request', 'shutdown', 'tls-ticket-keys', 'tls-certificate']);

function typeOf(m: unknown): string | undefined {
  const type = typeof m === 'object' && m !== null ? (m as { type?: unknown }).type : undefined;
  return typeof type === 'string' ? type : undefined;
}

/** A message a worker sends (anything else on the channel, Node's own cluster messages included, is not). */
export function isWorkerMessage(m: unknown): m is WorkerMessage {
  return WORKER_TYPES.has(typeOf(m) ?? '');
}

export function isPrimaryMessage(m: unknown): m is PrimaryMessage {
  return PRIMARY_TYPES.has(typeOf(m) ?? '');
}

/** Environment variable carrying a worker's slot (0..workers-1), reused by its replacement. */
export const WORKER_INDEX_ENV = 'SWITCHYARD_WORKER_INDEX';
