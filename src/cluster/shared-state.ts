// The primary's side of the shared-memory region: creates it (after sweeping
// segments left by a killed primary), hands each worker process a counter
// slot of its own, zeroes a slot when its worker exits (so a dead worker can
// leak no counts), writes health bits, and replaces the region when a reload
// changes the server list.
//
// Slots belong to worker processes, not to worker indexes: during a rolling
// reload an old worker drains while its replacement already serves, and both
// must count without touching each other's slot.
import type { Logger } from '../log.js';
import type { Config } from '../config/types.js';
import { Counter, SharedRegion } from '../native.js';
import { regionLayout, type RegionLayout } from '../balancer/layout.js';
import type { HealthSink } from '../health/active-checker.js';
import { RateLimiter } from '../gateway/rate-limit.js';
import type { ServerCounts } from '../admin/types.js';
import { ErrorCode, SwitchyardError } from '../errors.js';

/** Enough for the largest cluster (64 workers) plus its replacements during a reload. */
export const COUNTER_SLOTS = 144;

export class SharedState implements HealthSink {
  private region: SharedRegion;
  private layout: RegionLayout;
  /** Earlier generations still mapped by draining workers, with the slots that use them. */
  private readonly retired = new Map<SharedRegion, Set<number>>();
  /** Slot → the region generation its worker attached. */
  private readonly slotRegion = new Map<number, SharedRegion>();

  /** Token buckets of every rate-limited route; sized once, at start. */
  private readonly limiter: RateLimiter;

  constructor(config: Config, private readonly log: Logger) {
    const stale = [...SharedRegion.sweepStale(), ...RateLimiter.sweepStale()];
    if (stale.length > 0) log.warn({ segments: stale }, 'removed shared-memory segments left by a primary that did not exit cleanly');
    this.layout = regionLayout(config);
    this.region = SharedRegion.create(this.layout.identities, { slots: COUNTER_SLOTS });
    this.limiter = RateLimiter.create(config.rateLimitSlots);
  }

  get regionName(): string {
    return this.region.name;
  }

  get rateLimitName(): string {
    return this.limiter.name;
  }

  /** A free slot for a new worker, in the current region. */
  allocateSlot(): number {
    for (let slot = 0; slot < COUNTER_SLOTS; slot++) {
      if (!this.slotRegion.has(slot)) {
        this.slotRegion.set(slot, this.region);
        return slot;
      }
    }
    throw new SwitchyardError(ErrorCode.SlotsExhausted, `no free counter slot: more than ${COUNTER_SLOTS} worker processes alive`);
  }

  /** The worker in `slot` exited: its counts go (in every generation it touched), the slot is free again. */
  releaseSlot(slot: number): void {
    const region = this.slotRegion.get(slot);
    if (region === undefined) return;
    this.slotRegion.delete(slot);
    this.region.zeroSlot(slot);
    if (region !== this.region) {
      region.zeroSlot(slot);
      const users = this.retired.get(region);
      users?.delete(slot);
      if (users !== undefined && users.size === 0) this.dropRetired(region);
    }
  }

  /** Reload: a new region generation if the server list changed; health and counts of staying servers carry over. */
  applyConfig(config: Config): void {
    // The table rounds its size up to whole probe groups of 8.
    if (Math.ceil(config.rateLimitSlots / 8) * 8 !== this.limiter.slots) {
      this.log.warn({ rateLimitSlots: this.limiter.slots }, 'rate_limit_slots changes take effect only after a restart');
    }
    const layout = regionLayout(config);
    if (sameList(layout.identities, this.layout.identities)) {
      this.layout = layout;
      return;
    }
    const previous = this.region;
    this.region = previous.createNext(layout.identities, { slots: COUNTER_SLOTS });
    this.layout = layout;
    const users = new Set<number>();
    for (const [slot, region] of this.slotRegion) if (region === previous) users.add(slot);
    if (users.size === 0) this.dropRetired(previous);
    else this.retired.set(previous, users);
    this.log.info({ region: this.region.name, servers: layout.identities.length }, 'server list changed: new shared region generation');
  }

  setHealthy(upstream: string, serverIndex: number, healthy: boolean): void {
    const index = this.index(upstream, serverIndex);
    if (index === undefined) return;
    // A server the health checks bring back is not also kept out by a passive
    // ejection from when it died (Envoy: successful_active_health_check_uneject_host).
    if (healthy && !this.region.healthy(index)) this.region.setEjectedUntil(index, 0);
    this.region.setHealthy(index, healthy);
  }

  /** Slow start (from the health checker): a recovering server's share of its weight. */
  setWeightFactor(upstream: string, serverIndex: number, factor: number): void {
    const index = this.index(upstream, serverIndex);
    if (index !== undefined) this.region.setWeightFactor(index, factor);
  }

  setDrained(upstream: string, serverIndex: number, drained: boolean): void {
    const index = this.index(upstream, serverIndex);
    if (index !== undefined) this.region.setDrained(index, drained);
  }

  /** Counts summed over every worker slot, read straight from shared memory. */
  counts(upstream: string, serverIndex: number): ServerCounts | undefined {
    const index = this.index(upstream, serverIndex);
    if (index === undefined) return undefined;
    const r = this.region;
    return {
      healthy: r.healthy(index),
      drained: r.drained(index),
      active: r.sum(Counter.ActiveRequests, index),
      activeConnections: r.sum(Counter.ActiveConnections, index),
      requests: r.sum(Counter.RequestsTotal, index),
      failures: r.sum(Counter.Failures, index),
      ejectedUntil: r.ejectedUntil(index) > Date.now() ? r.ejectedUntil(index) : 0,
    };
  }

  /** Unlinks every generation; mappings in exiting workers stay valid until they go. */
  close(): void {
    for (const region of this.retired.keys()) this.dropRetired(region);
    this.region.unlink();
    this.region.close();
    this.limiter.unlink();
    this.limiter.close();
  }

  private index(upstream: string, serverIndex: number): number | undefined {
    const base = this.layout.base.get(upstream);
    return base === undefined ? undefined : base + serverIndex;
  }

  private dropRetired(region: SharedRegion): void {
    this.retired.delete(region);
    region.unlink();
    region.close();
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
