// Where each upstream server lives in the shared-memory region. Every server
// of every upstream gets one global index, in config order; the primary and
// all workers derive the same layout from the same config, and the region
// stores the identities so a worker can verify it maps what it expects.
import type { Config } from '../config/types.js';

export interface RegionLayout {
  /** "upstream/address" per global server index. */
  identities: string[];
  /** Global index of each upstream's first server. */
  base: Map<string, number>;
}

export function regionLayout(config: Pick<Config, 'upstreams'>): RegionLayout {
  const identities: string[] = [];
  const base = new Map<string, number>();
  for (const [name, upstream] of Object.entries(config.upstreams)) {
    base.set(name, identities.length);
    for (const server of upstream.servers) identities.push(`${name}/${server.address}`);
  }
  return { identities, base };
}
