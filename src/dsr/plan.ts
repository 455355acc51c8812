// What the DSR forwarder process runs for a config: one forwarder per `dsr:`
// entry, with its options and its servers (Maglev identity, IP, MAC, weight,
// and the index of the server's health and drain bits in the shared region).
// Pure: the primary builds it, the forwarder process applies it.
import type { Config } from '../config/types.js';
import { regionLayout } from '../balancer/layout.js';
import type { DsrForwarderOptions, DsrServerSpec } from '../native.js';

export interface DsrPlanEntry {
  /**
   * Everything but the servers and the region: an entry whose key a reload
   * keeps is updated in place (setServers, live flows kept); another key
   * means a new forwarder.
   */
  key: string;
  options: DsrForwarderOptions;
  servers: DsrServerSpec[];
}

/** `region`: the shared region laid out for `config` (its health and drain bits gate new flows). */
export function dsrPlan(config: Pick<Config, 'dsr' | 'upstreams'>, region: string | null): DsrPlanEntry[] {
  const layout = regionLayout(config);
  return config.dsr.map((d) => {
    const base = layout.base.get(d.upstream) ?? 0;
    const servers: DsrServerSpec[] = (config.upstreams[d.upstream]?.servers ?? []).map((s, i) => ({
      identity: s.address,
      ip: s.host,
      ...(s.mac === undefined ? {} : { mac: s.mac }),
      weight: s.weight,
      regionIndex: base + i,
    }));
    const options: DsrForwarderOptions = {
      interface: d.interface,
      vip: d.vip,
      ports: [...d.ports],
      method: d.method,
      ...(d.dscp === undefined ? {} : { dscp: d.dscp }),
      threads: d.threads,
      flowTableSize: d.flowTableSize,
      flowIdleMs: d.flowIdleMs,
      region,
    };
    const { region: _region, ...identity } = options;
    return { key: JSON.stringify(identity), options, servers };
  });
}
