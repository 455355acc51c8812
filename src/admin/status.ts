// The body of `GET /status`: the primary's view of its workers plus the
// counters of every worker, summed.
import type { Config } from '../config/types.js';
import type { WorkerInfo, WorkerStatsResult } from '../cluster/primary.js';
import { VERSION } from '../version.js';

export interface StatusInput {
  config: Config;
  startedAt: number;
  crashLoop: boolean;
  workers: WorkerInfo[];
  stats: WorkerStatsResult[];
}

export interface ServerStatus {
  address: string;
  weight: number;
  healthy: boolean;
  active: number;
  requests: number;
  failures: number;
}

export function buildStatus(input: StatusInput) {
  const { config, stats } = input;
  const answered = stats.flatMap((r) => (r.stats ? [r.stats] : []));
  const sum = (f: (s: (typeof answered)[number]) => number) => answered.reduce((n, s) => n + f(s), 0);

  const upstreams: Record<string, { balance: string; servers: ServerStatus[] }> = {};
  for (const [name, upstream] of Object.entries(config.upstreams)) {
    upstreams[name] = {
      balance: upstream.balance,
      servers: upstream.servers.map((server) => {
        const s: ServerStatus = { address: server.address, weight: server.weight, healthy: true, active: 0, requests: 0, failures: 0 };
        for (const w of answered) {
          const c = w.upstreams[name]?.[server.address];
          if (!c) continue;
          s.active += c.active;
          s.requests += c.requests;
          s.failures += c.failures;
        }
        return s;
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
  };
}
