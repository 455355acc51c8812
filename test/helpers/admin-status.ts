// Typed reads of a running Switchyard's `GET /status` for balancing tests:
// the per-server counters and health, and waits for "the workers run this
// config now" after a reload or a respawn. Every wait is bounded and its
// error carries the last status seen.
import { setTimeout as sleep } from 'node:timers/promises';
import { admin } from './process.js';

export interface ServerStatus {
  address: string;
  weight: number;
  healthy: boolean;
  /** Upstream requests in flight, summed over all workers. */
  active: number;
  requests: number;
  failures: number;
}

export interface WorkerStatus {
  slot: number;
  pid: number | null;
  state: string;
  restarts: number;
  /** Open tunnels on this worker. */
  tunnels?: number;
}

export interface BalancingStatus {
  workers: WorkerStatus[];
  unresponsiveWorkers: number[];
  /** Replaced workers still alive for their open tunnels. */
  retiringWorkers: number;
  tunnels: number;
  upstreams: Record<string, { balance: string; servers: ServerStatus[] }>;
}

export async function getStatus(adminPort: number): Promise<BalancingStatus> {
  const res = await admin(adminPort, '/status');
  if (res.status !== 200) throw new Error(`GET /status answered ${res.status}: ${res.body}`);
  return JSON.parse(res.body) as BalancingStatus;
}

/**
 * Polls /status every 50 ms until `ok` holds; throws after timeoutMs with
 * `what` and the last status. A refused connection is retried: the admin API
 * starts listening only once the first workers are ready.
 */
export async function waitForStatus(
  adminPort: number,
  what: string,
  ok: (s: BalancingStatus) => boolean,
  timeoutMs = 10_000,
): Promise<BalancingStatus> {
  const deadline = Date.now() + timeoutMs;
  let last: BalancingStatus | string = 'none';
  for (;;) {
    try {
      last = await getStatus(adminPort);
      if (ok(last)) return last;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ECONNREFUSED') throw err;
      last = 'admin port refused the connection';
    }
    if (Date.now() > deadline) throw new Error(`${what}: not seen within ${timeoutMs} ms; last /status: ${JSON.stringify(last)}`);
    await sleep(50);
  }
}

/** Exactly `count` workers, all ready, none of them in `oldPids` (the ones before a reload or kill). */
export function workersReady(s: BalancingStatus, count: number, oldPids: ReadonlySet<number> = new Set()): boolean {
  return s.workers.length === count && s.workers.every((w) => w.state === 'ready' && w.pid !== null && !oldPids.has(w.pid));
}

/** The server addresses /status lists for `upstream`, in its order. */
export function serverAddresses(s: BalancingStatus, upstream: string): string[] {
  return (s.upstreams[upstream]?.servers ?? []).map((server) => server.address);
}

/** Per-server active counts of `upstream`, keyed by address. */
export function activeByServer(s: BalancingStatus, upstream: string): Map<string, number> {
  return new Map((s.upstreams[upstream]?.servers ?? []).map((server) => [server.address, server.active]));
}
