// Per-route rate limits: token buckets in shared memory (native RateTable),
// so a limit holds for the whole instance, not per worker; the key a request
// is counted under; and the RateLimit-* / Retry-After response headers.
//
// Lifecycle: the primary calls RateLimiter.sweepStale() then
// RateLimiter.create(config.rateLimitSlots) at start, hands `limiter.name` to
// workers, and calls close() + unlink() on exit. Each worker calls
// RateLimiter.attach(name) once. The table's size is fixed for the life of
// the segment: a reload that changes rate_limit_slots takes effect on restart
// (a reload that changes a route's rate or burst applies at once; existing
// buckets keep their tokens, capped at the new burst).
import type { AuthFailuresConfig, RateLimitConfig } from '../config/types.js';
import { RateTable, type RateTableStats } from '../native.js';
import { headerNameEquals } from './header-rules.js';

export interface RateDecision {
  allowed: boolean;
  /** Whole tokens left after this request. */
  remaining: number;
  /** When a refused request would pass (0 when allowed). */
  retryAfterMs: number;
  /** Until the bucket is full again. */
  resetMs: number;
  /** A global limit refused because Redis could not answer (fail: closed), not because the bucket is empty. */
  unavailable?: true;
}

export class RateLimiter {
  private constructor(private readonly table: RateTable) {}

  /** The primary: a new segment "/switchyard-<pid>-rl" (or `name`) of `slots` buckets. */
  static create(slots: number, opts: { name?: string } = {}): RateLimiter {
    return new RateLimiter(RateTable.create(slots, opts));
  }

  /** A worker: maps the primary's segment. */
  static attach(name: string): RateLimiter {
    return new RateLimiter(RateTable.attach(name));
  }

  /** Removes the segments of dead primaries; returns their names. */
  static sweepStale(): string[] {
    return RateTable.sweepStale();
  }

  get name(): string {
    return this.table.name;
  }

  get slots(): number {
    return this.table.slots;
  }

  /** Segment size in bytes: fixed, whatever the number of keys. */
  get bytes(): number {
    return this.table.bytes;
  }

  /**
   * Counts one request (or `cost` tokens; negative gives them back) of `key`
   * on `route` against `cfg`. Never throws for a validated config (rate and
   * burst > 0, |cost| <= burst).
   */
  take(route: string, key: string, cfg: RateLimitConfig | AuthFailuresConfig, cost = 1): RateDecision {
    const allowed = this.table.take(route, key, cfg.ratePerSecond, cfg.burst, cost);
    const out = this.table.out;
    return { allowed, remaining: out[1]!, retryAfterMs: out[2]!, resetMs: out[3]! };
  }

  stats(): RateTableStats {
    return this.table.stats();
  }

  close(): void {
    this.table.close();
  }

  /** The primary, on exit. */
  unlink(): boolean {
    return this.table.unlink();
  }
}

/** What a request is known by when its rate-limit key is chosen. */
export interface RateKeyContext {
  /** The client address (after trusted-proxy resolution); undefined once the socket is gone. */
  clientIp: string | undefined;
  /** Request headers as node's flat [name, value, ...] list. */
  rawHeaders: readonly string[];
  /** Set by authentication: kind "api_key" (subject = key name) or "jwt" (subject = `sub`). */
  identity?: { kind: string; subject: string } | undefined;
}

/**
 * The bucket key of a request for `spec` ("client-ip" | "api-key" | "jwt-sub"
 * | "header:NAME"). A request without the identity or header the spec names
 * falls back to its client address, so it is still limited (per address)
 * rather than not at all. Non-address keys carry a prefix ("key:", "sub:",
 * "hdr:") that no IP literal can start with, so a header value can never
 * share a bucket with an address. Undefined only when nothing identifies the
 * client (no address: the connection is already gone).
 */
export function rateLimitKey(spec: string, ctx: RateKeyContext): string | undefined {
  const identity = ctx.identity;
  if (spec === 'api-key') {
    if (identity !== undefined && identity.kind === 'api_key') return `key:${identity.subject}`;
  } else if (spec === 'jwt-sub') {
    if (identity !== undefined && identity.kind === 'jwt') return `sub:${identity.subject}`;
  } else if (spec.startsWith('header:')) {
    const value = headerValue(ctx.rawHeaders, spec.slice(7));
    if (value !== undefined) return `hdr:${value}`;
  }
  return ctx.clientIp;
}

/** First non-empty value of header `name` (case-insensitive). */
function headerValue(raw: readonly string[], name: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    if (headerNameEquals(raw[i]!, name) && raw[i + 1] !== '') return raw[i + 1];
  }
  return undefined;
}

const policies = new WeakMap<RateLimitConfig, string>();

/**
 * RateLimit-Limit / -Remaining / -Reset / -Policy (draft-ietf-httpapi-
 * ratelimit-headers: the quota is the burst, Reset the whole seconds until
 * the bucket is full again), and Retry-After (whole seconds, rounded up,
 * at least 1) on a refusal. The policy's window w is the time a drained
 * bucket takes to refill (burst / rate), rounded up to whole seconds as the
 * draft's w is an integer: for buckets that refill within a second this
 * understates the sustained rate, the safe side for a client.
 */
export function rateLimitHeaders(decision: RateDecision, cfg: RateLimitConfig): Array<[string, string]> {
  let policy = policies.get(cfg);
  if (policy === undefined) {
    policy = `${cfg.burst};w=${Math.max(1, Math.ceil(cfg.burst / cfg.ratePerSecond))}`;
    policies.set(cfg, policy);
  }
  const headers: Array<[string, string]> = [
    ['RateLimit-Limit', String(cfg.burst)],
    ['RateLimit-Remaining', String(decision.remaining)],
    ['RateLimit-Reset', String(Math.ceil(decision.resetMs / 1000))],
    ['RateLimit-Policy', policy],
  ];
  if (!decision.allowed) headers.push(['Retry-After', String(Math.max(1, Math.ceil(decision.retryAfterMs / 1000)))]);
  return headers;
}
