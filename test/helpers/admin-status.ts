// The admin API of a running Switchyard, for tests: authenticated requests,
// typed reads of `GET /status` (workers, per-server counters and health, ACME
// certificates), and waits for "the workers run this config now" after a
// reload or a respawn. Every wait is bounded and its error carries the last
// status seen.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AcmeCertificateStatus } from '../../src/acme/service.js';
import { request, type Response } from './process.js';
import { ADMIN_TOKEN } from './switchyard.js';

/** A request to the admin API with the test token (or `token`, or none when null). */
export function admin(port: number, path: string, method = 'GET', token: string | null = ADMIN_TOKEN): Promise<Response> {
  // A reload replaces every worker, one at a time: on a loaded 2-core machine that can take several seconds.
  return request({ port, path, method, headers: token === null ? {} : { authorization: `Bearer ${token}` }, timeoutMs: 30_000 });
}

export interface ServerStatus {
  address: string;
  weight: number;
  healthy: boolean;
  /** Upstream requests in flight, summed over all workers. */
  active: number;
  /** Open connections to the server (pooled HTTP ones, mode: tcp sessions), summed over all workers. */
  activeConnections: number;
  requests: number;
  failures: number;
}

export interface WorkerStatus {
  slot: number;
  pid: number | null;
  uptimeSeconds: number;
  state: string;
  restarts: number;
  /** Open tunnels on this worker. */
  tunnels?: number;
}

export interface Status {
  pid: number;
  crashLoop: boolean;
  workers: WorkerStatus[];
  unresponsiveWorkers: number[];
  requests: number;
  /** Replaced workers still alive for their open tunnels. */
  retiringWorkers: number;
  tunnels: number;
  upstreams: Record<string, { balance: string; servers: ServerStatus[] }>;
  /** One entry per listener with tls.acme, in listener order. */
  acme: AcmeCertificateStatus[];
  [key: string]: unknown;
}

export async function getStatus(adminPort: number): Promise<Status> {
  const res = await admin(adminPort, '/status');
  if (res.status !== 200) throw new Error(`GET /status answered ${res.status}: ${res.body}`);
  return JSON.parse(res.body) as Status;
}

/**
 * Polls /status every 50 ms until `ok` holds; throws after timeoutMs with
 * `what` and the last status. A refused connection is retried: the admin API
 * starts listening only once the first workers are ready.
 */
export async function waitForStatus(adminPort: number, what: string, ok: (s: Status) => boolean, timeoutMs = 10_000, intervalMs = 50): Promise<Status> {
  const deadline = Date.now() + timeoutMs;
  let last: Status | string = 'none';
  for (;;) {
    try {
      last = await getStatus(adminPort);
      if (ok(last)) return last;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ECONNREFUSED') throw err;
      last = 'admin port refused the connection';
    }
    if (Date.now() > deadline) throw new Error(`${what}: not seen within ${timeoutMs} ms; last /status: ${JSON.stringify(last)}`);
    await sleep(intervalMs);
  }
}

/** The ACME certificate of a config with exactly one tls.acme listener. */
export function onlyAcme(s: Status): AcmeCertificateStatus {
  assert.equal(s.acme.length, 1);
  return s.acme[0]!;
}

export async function acmeStatus(adminPort: number): Promise<AcmeCertificateStatus> {
  return onlyAcme(await getStatus(adminPort));
}

/** Polls the one ACME certificate every 200 ms (an order takes seconds) until `ok` holds. */
export async function waitForAcme(adminPort: number, what: string, ok: (a: AcmeCertificateStatus) => boolean, timeoutMs: number): Promise<AcmeCertificateStatus> {
  return onlyAcme(await waitForStatus(adminPort, what, (s) => ok(onlyAcme(s)), timeoutMs, 200));
}

/** Exactly `count` workers, all ready, none of them in `oldPids` (the ones before a reload or kill). */
export function workersReady(s: Status, count: number, oldPids: ReadonlySet<number> = new Set()): boolean {
  return s.workers.length === count && s.workers.every((w) => w.state === 'ready' && w.pid !== null && !oldPids.has(w.pid));
}

/** The server addresses /status lists for `upstream`, in its order. */
export function serverAddresses(s: Status, upstream: string): string[] {
  return (s.upstreams[upstream]?.servers ?? []).map((server) => server.address);
}

/** Per-server active counts of `upstream`, keyed by address. */
export function activeByServer(s: Status, upstream: string): Map<string, number> {
  return new Map((s.upstreams[upstream]?.servers ?? []).map((server) => [server.address, server.active]));
}
