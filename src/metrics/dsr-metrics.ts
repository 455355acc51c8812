// The DSR forwarder's counters as Prometheus series (switchyard_dsr_*), read
// from the forwarder process at scrape time. Its counters start at zero when
// the process (re)starts, which Prometheus reads as a counter reset; the
// restarts are counted too.
import type { Counter as PromCounter, Gauge as PromGauge, Registry } from 'prom-client';
import type { DsrCounters } from '../native.js';
import { promClient } from './cluster-metrics.js';

export interface DsrMetricsSnapshot {
  up: boolean;
  restarts: number;
  /** One per `dsr:` entry; counters null when it does not run (or the process did not answer). */
  entries: { interface: string; vip: string; upstream: string; counters: DsrCounters | null }[];
}

type Totals = Omit<DsrCounters, 'servers' | 'drops'>;

/** Per-entry totals: name, help, field, and whether it is a gauge (a level) rather than a counter. */
const TOTALS: [string, string, keyof Totals, boolean][] = [
  ['switchyard_dsr_rx_packets_total', 'Frames the forwarder read for the VIP (TCP to a balanced port, and ARP).', 'rxPackets', false],
  ['switchyard_dsr_forwarded_packets_total', 'Packets sent on to a server.', 'forwardedPackets', false],
  ['switchyard_dsr_forwarded_bytes_total', 'Bytes of the packets sent on to a server.', 'forwardedBytes', false],
  ['switchyard_dsr_arp_replies_total', 'ARP replies sent for the VIP.', 'arpReplies', false],
  ['switchyard_dsr_passed_packets_total', 'Frames not for the VIP, left to the kernel.', 'passed', false],
  ['switchyard_dsr_flows', 'Connections in the flow table now.', 'flows', true],
  ['switchyard_dsr_flows_created_total', 'Connections added to the flow table (a SYN to a server).', 'flowsCreated', false],
  ['switchyard_dsr_untracked_flows_total', 'New connections forwarded by the hash alone: the flow table was full (a server change may move them).', 'untracked', false],
  ['switchyard_dsr_flows_expired_total', 'Connections removed from the flow table (FIN, RST or idle).', 'flowsExpired', false],
];

/**
 * Registers the switchyard_dsr_* metrics, once the config has DSR entries (a
 * config without them shows none); `source` is asked by each metric of a
 * scrape (the supervisor memoises the forwarder's answer).
 */
export function registerDsrMetrics(registry: Registry, source: () => Promise<DsrMetricsSnapshot>): void {
  // prom-client is loaded by the primary's first scrape (cluster-metrics.ts); this runs after it.
  const { Counter, Gauge } = promClient();
  const labelNames = ['interface', 'vip'] as const;
  for (const [name, help, field, gauge] of TOTALS) {
    const collect = async function (this: PromGauge<'interface' | 'vip'> | PromCounter<'interface' | 'vip'>) {
      this.reset();
      for (const e of (await source()).entries) {
        if (e.counters === null) continue;
        const labels = { interface: e.interface, vip: e.vip };
        if (this instanceof Gauge) this.set(labels, e.counters[field]);
        else this.inc(labels, e.counters[field]);
      }
    };
    if (gauge) new Gauge({ name, help, labelNames, registers: [registry], collect });
    else new Counter({ name, help, labelNames, registers: [registry], collect });
  }
  new Counter({
    name: 'switchyard_dsr_dropped_packets_total',
    help: 'Packets for the VIP the forwarder dropped, by reason (fragment, no_server, table_full, malformed, tx_error, not_tcp...).',
    labelNames: ['interface', 'vip', 'reason'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const e of (await source()).entries) {
        for (const [reason, n] of Object.entries(e.counters?.drops ?? {})) this.inc({ interface: e.interface, vip: e.vip, reason }, n);
      }
    },
  });
  const serverLabels = ['interface', 'vip', 'upstream', 'server'] as const;
  const perServer = (e: DsrMetricsSnapshot['entries'][number]) =>
    (e.counters?.servers ?? []).map((s) => ({ labels: { interface: e.interface, vip: e.vip, upstream: e.upstream, server: s.identity }, s }));
  new Counter({
    name: 'switchyard_dsr_server_packets_total',
    help: 'Packets forwarded to each server.',
    labelNames: serverLabels,
    registers: [registry],
    async collect() {
      this.reset();
      for (const e of (await source()).entries) for (const { labels, s } of perServer(e)) this.inc(labels, s.packets);
    },
  });
  new Counter({
    name: 'switchyard_dsr_server_bytes_total',
    help: 'Bytes forwarded to each server.',
    labelNames: serverLabels,
    registers: [registry],
    async collect() {
      this.reset();
      for (const e of (await source()).entries) for (const { labels, s } of perServer(e)) this.inc(labels, s.bytes);
    },
  });
  new Gauge({
    name: 'switchyard_dsr_server_connections',
    help: 'Connections tracked to each server now.',
    labelNames: serverLabels,
    registers: [registry],
    async collect() {
      this.reset();
      for (const e of (await source()).entries) for (const { labels, s } of perServer(e)) this.set(labels, s.connections);
    },
  });
  new Gauge({
    name: 'switchyard_dsr_forwarder_up',
    help: '1 while the DSR forwarder process runs and answers, else 0.',
    registers: [registry],
    async collect() {
      this.set((await source()).up ? 1 : 0);
    },
  });
  new Counter({
    name: 'switchyard_dsr_forwarder_restarts_total',
    help: 'DSR forwarder processes respawned after dying.',
    registers: [registry],
    async collect() {
      this.reset();
      this.inc((await source()).restarts);
    },
  });
}
