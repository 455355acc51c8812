// `rate_limit: { scope: global }`: one token bucket per key in Redis for every
// instance, without a Redis round trip per request. Each worker leases small
// batches of tokens from the Redis bucket (redis-buckets.ts) and spends them
// locally; only an empty lease costs a round trip, and requests arriving
// meanwhile wait for that one call instead of making their own.
//
// Error bound. Every admitted request spends a token taken from the Redis
// bucket, and a lease holds at most L = leaseSize(rate, burst) tokens, so at
// any moment at most W x L tokens (W: workers over all instances) sit outside
// the bucket. Over any window of T seconds a key is admitted
// burst + rate x T requests give or take W x L: fewer when leases sit unused
// at the end of the window; more when the bucket refilled to its burst while
// leases were out and both are then spent. L is 1/20 of the burst and at most
// 50 ms of the rate (so at least one token): for 100/s burst 20, L = 1 and two
// instances of two workers stay within 4 of 1,020 over 10 s. Leases unused for
// LEASE_IDLE_MS are given back, so idle workers do not keep tokens from busy
// ones for long.
//
// While Redis cannot answer (timeout, error, open circuit) the route's fail
// mode decides: open admits, closed refuses, local falls back to this
// instance's shared-memory bucket at rate / redis.instances.
import type { RateLimitConfig, RedisConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import type { RateDecision, RateLimiter } from './rate-limit.js';
import { RedisBuckets, type BreakerState } from './redis-buckets.js';

/** A lease unused this long goes back to Redis. */
const LEASE_IDLE_MS = 1_000;
/** Leases (and the requests waiting for one) held per worker; past it the least recently used is given back. */
const MAX_LEASES = 10_000;

/** Tokens one worker leases at a time: 1/20 of the burst, at most 50 ms of the rate, at least 1. */
export function leaseSize(ratePerSecond: number, burst: number): number {
  return Math.max(1, Math.floor(Math.min(burst / 20, ratePerSecond / 20)));
}

/** How a global limit answered: from Redis (a lease), or by its fail mode. */
export type GlobalOutcome = 'redis' | 'fail-open' | 'fail-closed' | 'fail-local';

export interface GlobalLimitEvents {
  /** One request decided; `outcome` says by what. */
  decided(route: string, outcome: GlobalOutcome): void;
  /** A call to Redis (a lease or a give-back). */
  redisCall(): void;
  redisError(): void;
  breaker(state: BreakerState): void;
}

interface Waiter {
  resolve(d: RateDecision): void;
}

interface Lease {
  /** The bucket's name in Redis (a hash: computed once per lease, not per request). */
  bucket: string;
  tokens: number;
  /** Redis's count after our last call: for RateLimit-Remaining. */
  remaining: number;
  /** Redis said empty: refuse locally until then instead of asking again. */
  emptyUntil: number;
  retryAfterMs: number;
  lastUsed: number;
  /** Requests waiting for the call in flight. */
  waiters: Waiter[] | undefined;
  route: string;
  cfg: RateLimitConfig;
}

export class GlobalRateLimiter {
  private readonly redis: RedisBuckets;
  /** route NUL key → this worker's lease; Map order is least recently used first. */
  private readonly leases = new Map<string, Lease>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly config: RedisConfig,
    /** This instance's shared-memory buckets, for fail: local. */
    private readonly local: RateLimiter | undefined,
    private readonly log: Logger,
    private readonly events: GlobalLimitEvents,
  ) {
    this.redis = new RedisBuckets(config, log, { onState: (s) => events.breaker(s), onError: () => events.redisError() });
    this.sweeper = setInterval(() => this.returnIdle(Date.now() - LEASE_IDLE_MS), LEASE_IDLE_MS / 2);
    this.sweeper.unref();
  }

  /** Counts one request of `key` on `route`: at once when the lease has a token, else after one Redis call. */
  take(route: string, key: string, cfg: RateLimitConfig): RateDecision | Promise<RateDecision> {
    // NUL cannot occur in a route name from YAML nor in a header value, so no two (route, key) pairs meet.
    const id = `${route}\0${key}`;
    const now = Date.now();
    let lease = this.leases.get(id);
    if (lease === undefined) {
      if (this.leases.size >= MAX_LEASES) this.evictOldest();
      lease = { bucket: this.redis.bucketName(route, key), tokens: 0, remaining: cfg.burst, emptyUntil: 0, retryAfterMs: 0, lastUsed: now, waiters: undefined, route, cfg };
    } else this.leases.delete(id); // re-inserted below: most recently used last
    this.leases.set(id, lease);
    lease.lastUsed = now;
    if (lease.tokens > 0) {
      lease.tokens--;
      this.events.decided(route, 'redis');
      return this.decision(true, lease, cfg, 0);
    }
    if (lease.waiters !== undefined) return new Promise((resolve) => lease.waiters!.push({ resolve }));
    if (now < lease.emptyUntil) {
      this.events.decided(route, 'redis');
      return this.decision(false, lease, cfg, lease.emptyUntil - now);
    }
    if (!this.redis.callable()) return this.fallback(route, key, cfg);
    lease.waiters = [];
    return new Promise((resolve) => {
      lease.waiters!.push({ resolve });
      this.refill(lease, key).catch((err: unknown) => this.log.error({ err }, 'global rate limit: lease failed unexpectedly'));
    });
  }

  /** Gives every lease back (a draining worker), then closes the connection. */
  async close(): Promise<void> {
    clearInterval(this.sweeper);
    const returns: Promise<unknown>[] = [];
    for (const lease of this.leases.values()) if (lease.tokens > 0) returns.push(this.giveBack(lease));
    this.leases.clear();
    await Promise.allSettled(returns);
    await this.redis.close();
  }

  /** Asks Redis until the waiters are served or the bucket is empty. */
  private async refill(lease: Lease, key: string): Promise<void> {
    const { route, cfg } = lease;
    for (;;) {
      const waiting = lease.waiters!.length;
      // Enough for everyone waiting now, at least a lease: tokens asked for the waiters are spent at once.
      const want = Math.min(cfg.burst, Math.max(leaseSize(cfg.ratePerSecond, cfg.burst), waiting));
      this.events.redisCall();
      const reply = await this.redis.lease(lease.bucket, cfg.ratePerSecond, cfg.burst, want);
      const waiters = lease.waiters!;
      if (reply === undefined) {
        lease.waiters = undefined;
        for (const w of waiters) w.resolve(this.fallback(route, key, cfg));
        return;
      }
      lease.remaining = reply.remaining;
      lease.tokens += reply.granted;
      let served = 0;
      while (served < waiters.length && lease.tokens > 0) {
        lease.tokens--;
        this.events.decided(route, 'redis');
        waiters[served++]!.resolve(this.decision(true, lease, cfg, 0));
      }
      waiters.splice(0, served);
      if (waiters.length === 0) {
        lease.waiters = undefined;
        return;
      }
      if (reply.granted < want) {
        // The bucket is empty: everyone still waiting is refused, and so is everyone until it refills.
        lease.waiters = undefined;
        lease.emptyUntil = Date.now() + reply.retryAfterMs;
        for (const w of waiters) {
          this.events.decided(route, 'redis');
          w.resolve(this.decision(false, lease, cfg, reply.retryAfterMs));
        }
        return;
      }
    }
  }

  private fallback(route: string, key: string, cfg: RateLimitConfig): RateDecision {
    switch (cfg.fail) {
      case 'open':
        this.events.decided(route, 'fail-open');
        return { allowed: true, remaining: cfg.burst, retryAfterMs: 0, resetMs: 0 };
      case 'closed':
        this.events.decided(route, 'fail-closed');
        return { allowed: false, remaining: 0, retryAfterMs: 1_000, resetMs: 1_000, unavailable: true };
      case 'local': {
        this.events.decided(route, 'fail-local');
        const n = this.config.instances;
        const share = { ...cfg, ratePerSecond: cfg.ratePerSecond / n, burst: Math.max(1, Math.ceil(cfg.burst / n)) };
        return this.local!.take(`global:${route}`, key, share);
      }
    }
  }

  private decision(allowed: boolean, lease: Lease, cfg: RateLimitConfig, retryAfterMs: number): RateDecision {
    const remaining = Math.min(cfg.burst, lease.remaining + lease.tokens);
    return { allowed, remaining, retryAfterMs, resetMs: Math.ceil(((cfg.burst - remaining) / cfg.ratePerSecond) * 1000) };
  }

  private returnIdle(before: number): void {
    for (const [id, lease] of this.leases) {
      if (lease.lastUsed >= before) break; // LRU order: the rest were used later
      if (lease.waiters !== undefined) continue;
      this.leases.delete(id);
      if (lease.tokens > 0) this.giveBack(lease).catch(() => {});
    }
  }

  private evictOldest(): void {
    for (const [id, lease] of this.leases) {
      if (lease.waiters !== undefined) continue;
      this.leases.delete(id);
      if (lease.tokens > 0) this.giveBack(lease).catch(() => {});
      return;
    }
  }

  private async giveBack(lease: Lease): Promise<void> {
    const n = lease.tokens;
    lease.tokens = 0;
    this.events.redisCall();
    await this.redis.lease(lease.bucket, lease.cfg.ratePerSecond, lease.cfg.burst, -n);
  }
}
