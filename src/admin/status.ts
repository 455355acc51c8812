// The body of `GET /status`: the primary's view of its workers plus the
// counters of every worker, summed.
import type { Config, UpstreamConfig } from '../config/types.js';
import { MaglevTable, type DsrCounters } from '../native.js';
import { VERSION } from '../version.js';
import type { CanaryReport, DiscoveryStatus, DsrEntryStatus, DsrForwarderInfo, RouteTableEntry, ServerCounts, Status, WorkerInfo, WorkerStatsResult } from './types.js';
import type { AcmeCertificateStatus } from '../acme/service.js';

export interface StatusInput {
  config: Config;
  startedAt: number;
  crashLoop: boolean;
  workers: WorkerInfo[];
  stats: WorkerStatsResult[];
  /** Per-server counts summed over all workers, from shared memory. */
  serverCounts(upstream: string, index: number): ServerCounts | undefined;
  /** DNS-discovered upstreams (issue 14). */
  discovery?: Record<string, DiscoveryStatus>;
  canary?: CanaryReport;
  /** The routes in the order the router tries them (proxy/route-table.ts). */
  routes: RouteTableEntry[];
  acme: AcmeCertificateStatus[];
  /** The DSR forwarder (config.dsr not empty): the process, why entries do not run, their counters. */
  dsr?: { forwarder: DsrForwarderInfo; errors: (string | null)[]; counters: (DsrCounters | null)[] | undefined };
}

/** Per `source` upstream (config objects are frozen per load): each server's share of its Maglev table. */
const tableShares = new WeakMap<UpstreamConfig, number[]>();

/**
 * The fraction of the Maglev table each server owns: the share of hash keys
 * it takes while every server is eligible. Built like the balancer builds it
 * (addresses and weights), once per config.
 */
function maglevShares(upstream: UpstreamConfig): number[] {
  let shares = tableShares.get(upstream);
  if (shares === undefined) {
    const table = MaglevTable.build(
      upstream.servers.map((s) => s.address),
      upstream.servers.map((s) => s.weight),
    );
    const counts = new Array<number>(upstream.servers.length).fill(0);
    for (const server of table.entries()) if (server >= 0) counts[server]!++;
    shares = counts.map((n) => n / table.size);
    tableShares.set(upstream, shares);
  }
  return shares;
}

export function buildStatus(input: StatusInput): Status {
  const { config, stats } = input;
  const answered = stats.flatMap((r) => (r.stats ? [r.stats] : []));
  const sum = (f: (s: (typeof answered)[number]) => number) => answered.reduce((n, s) => n + f(s), 0);

  const upstreams: Status['upstreams'] = {};
  for (const [name, upstream] of Object.entries(config.upstreams)) {
    const shares = upstream.balance === 'source' ? maglevShares(upstream) : undefined;
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
          ejectedUntil: c?.ejectedUntil ?? 0,
          ...(shares ? { tableShare: shares[index]! } : {}),
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
    workers: input.workers.map((w) => {
      const tunnels = stats.find((r) => r.pid === w.pid)?.stats?.tunnels;
      return tunnels ? { ...w, tunnels } : w;
    }),
    crashLoop: input.crashLoop,
    // Workers that did not answer the stats request in time: their counts are missing below.
    unresponsiveWorkers: stats.filter((r) => !r.stats).map((r) => r.pid),
    requests: sum((s) => s.requests),
    activeConnections: sum((s) => s.activeConnections),
    activeRequests: sum((s) => s.activeRequests),
    tunnels: sum((s) => s.tunnels),
    retiringWorkers: input.workers.filter((w) => w.state === 'retiring').length,
    ...(input.canary === undefined ? {} : { canary: input.canary }),
    upstreams,
    routes: input.routes,
    ...(input.discovery !== undefined && Object.keys(input.discovery).length > 0 ? { discovery: input.discovery } : {}),
    acme: input.acme,
    ...(input.dsr !== undefined && config.dsr.length > 0 ? { dsr: { forwarder: input.dsr.forwarder, entries: dsrEntries(input, input.dsr) } } : {}),
  };
}

/** Each `dsr:` entry with its counters, and its upstream's servers with their bits in shared memory. */
function dsrEntries(input: StatusInput, dsr: NonNullable<StatusInput['dsr']>): DsrEntryStatus[] {
  return input.config.dsr.map((d, i) => {
    const counters = dsr.counters?.[i] ?? undefined;
    const byIdentity = new Map((counters?.servers ?? []).map((s) => [s.identity, s]));
    const error = dsr.errors[i] ?? (dsr.counters === undefined ? 'the forwarder process did not answer' : null);
    const servers = (input.config.upstreams[d.upstream]?.servers ?? []).map((s, index) => {
      const c = input.serverCounts(d.upstream, index);
      const f = byIdentity.get(s.address);
      return { address: s.address, weight: s.weight, healthy: c?.healthy ?? true, drained: c?.drained ?? false, packets: f?.packets ?? 0, bytes: f?.bytes ?? 0, connections: f?.connections ?? 0 };
    });
    let totals: DsrEntryStatus['counters'];
    if (counters) {
      const { servers: _servers, ...rest } = counters;
      totals = rest;
    }
    return {
      interface: d.interface,
      vip: d.vip,
      ports: d.ports,
      upstream: d.upstream,
      method: d.method,
      ...(d.dscp === undefined ? {} : { dscp: d.dscp }),
      ...(error === null ? {} : { error }),
      ...(totals ? { counters: totals } : {}),
      servers,
    };
  });
}
