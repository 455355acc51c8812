// The body of `GET /status`: the primary's view of its workers plus the
// counters of every worker, summed.
import type { Config } from '../config/types.js';
import { VERSION } from '../version.js';
import type { ServerCounts } from '../cluster/shared-state.js';
import type { ServerStatus, Status, WorkerInfo, WorkerStatsResult } from './types.js';
import type { AcmeCertificateStatus } from '../acme/service.js';

export interface StatusInput {
  config: Config;
  startedAt: number;
  crashLoop: boolean;
  workers: WorkerInfo[];
  stats: WorkerStatsResult[];
  /** Per-server counts summed over all workers, from shared memory. */
  serverCounts(upstream: string, index: number): ServerCounts | undefined;
  acme: AcmeCertificateStatus[];
}

export function buildStatus(input: StatusInput): Status {
  const { config, stats } = input;
  const answered = stats.flatMap((r) => (r.stats ? [r.stats] : []));
  const sum = (f: (s: (typeof answered)[number]) => number) => answered.reduce((n, s) => n + f(s), 0);

  const upstreams: Record<string, { balance: string; servers: ServerStatus[] }> = {};
  for (const [name, upstream] of Object.entries(config.upstreams)) {
    upstreams[name] = {
      balance: upstream.balance,
      servers: upstream.servers.map((server, index) => {
        const c = input.serverCounts(name, index);
        return {
          address: server.address,
          weight: server.weight,
          healthy: c?.healthy ?? true,
          drained: c?.drained ?? false,
          active: c?.active ?? 0,
          activeConnections: c?.activeConnections ?? 0,
          requests: c?.requests ?? 0,
          failures: c?.failures ?? 0,
        };
      }),
    };
  }

  return {
    version: VERSION,
    pid: process.pid,
    uptimeSeconds: Math.round((Date.now() - input.startedAt) / 1000),
    configFile: config.file,
    scheduling: config.scheduling,
    workers: input.workers,
    crashLoop: input.crashLoop,
    // Workers that did not answer the stats request in time: their counts are missing below.
    unresponsiveWorkers: stats.filter((r) => !r.stats).map((r) => r.pid),
    requests: sum((s) => s.requests),
    activeConnections: sum((s) => s.activeConnections),
    activeRequests: sum((s) => s.activeRequests),
    upstreams,
    acme: input.acme,
  };
}
