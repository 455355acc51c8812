// Token buckets kept in Redis, shared by every instance that points at the
// same server: the store behind `rate_limit: { scope: global }`. One call
// takes up to N tokens (a lease) or gives unused ones back, atomically on the
// server (a Lua script) and on Redis's own clock (TIME), so the instances'
// clocks never matter. One bucket is one Redis hash, so it lives in one hash
// slot (Redis Cluster) by construction; its name is wrapped in a {hash tag}
// anyway, so fields added later stay in the same slot.
//
// Around the client: a per-call timeout and a circuit breaker. After
// BREAKER_FAILURES failures in a row the breaker opens and no call is made
// (callers get `undefined` at once and apply their fail mode); after a
// cool-down one probe is let through (half-open); its success closes the
// breaker. Every change of state is logged once and reported to `onState`.
// node-redis reconnects by itself, so Redis coming back is picked up by the
// next probe without a restart.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { createClient as CreateClient } from 'redis';
import type { RedisConfig } from '../config/types.js';
import type { Logger } from '../log.js';

/**
 * KEYS[1]: the bucket. ARGV: rate (tokens/s), burst, want (> 0: take up to
 * that many, whole tokens; < 0: give that many back, capped at the burst).
 * Returns { granted, retry-after ms (0 unless nothing was granted), whole
 * tokens left }. Time is Redis's TIME in microseconds; tokens are kept as
 * decimals (string.format, so no precision is lost to Lua's tostring).
 */
const LEASE_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if tokens > burst then tokens = burst end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate / 1000000)
  ts = now
end
local granted = 0
if want < 0 then
  tokens = math.min(burst, tokens - want)
else
  granted = math.min(want, math.floor(tokens))
  tokens = tokens - granted
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'ts', string.format('%d', ts))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
local retry = 0
if granted == 0 and want > 0 then retry = math.ceil((1 - tokens) / rate * 1000) end
return { granted, retry, math.floor(tokens) }
`;
const LEASE_SHA = createHash('sha1').update(LEASE_SCRIPT).digest('hex');

/** Failures in a row that open the breaker. */
const BREAKER_FAILURES = 3;
/** Open for this long before a probe; doubles while probes fail, up to the max. */
const BREAKER_COOLDOWN_MS = 250;
const BREAKER_COOLDOWN_MAX_MS = 2_000;

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface LeaseReply {
  granted: number;
  /** When a token will be there again (0 when something was granted). */
  retryAfterMs: number;
  /** Whole tokens left in the bucket after this call. */
  remaining: number;
}

export interface RedisBucketEvents {
  onState(state: BreakerState): void;
  /** A call to Redis failed or timed out. */
  onError(): void;
}

type Client = ReturnType<typeof CreateClient>;

/**
 * node-redis is loaded by the first RedisBuckets, in the workers of a config
 * with a global rate limit only: loaded by every worker it held ~20 MB of
 * RSS each for nothing (process.memoryUsage() after import, bench/README.md).
 */
const createClient = (...args: Parameters<typeof CreateClient>): Client =>
  (createRequire(import.meta.url)('redis') as { createClient: typeof CreateClient }).createClient(...args);

export class RedisBuckets {
  private readonly client: Client;
  private state: BreakerState = 'closed';
  private failures = 0;
  private cooldownMs = BREAKER_COOLDOWN_MS;
  private reopenAt = 0;
  private probing = false;
  private closed = false;

  constructor(
    private readonly config: RedisConfig,
    private readonly log: Logger,
    private readonly events: RedisBucketEvents,
  ) {
    const tls = config.url.startsWith('rediss://');
    this.client = createClient({
      url: config.url,
      // Commands while disconnected fail at once (the fail mode answers) instead of queueing until Redis is back.
      disableOfflineQueue: true,
      socket: {
        connectTimeout: Math.max(config.timeoutMs, 1_000),
        // Forever, backing off to 1 s: Redis coming back is picked up without a restart.
        reconnectStrategy: (retries: number) => Math.min(50 * 2 ** Math.min(retries, 5), 1_000),
        ...(tls ? { tls: true as const, ...(config.caPem === undefined ? {} : { ca: config.caPem }) } : {}),
      },
    });
    // Without a listener node-redis would throw connection errors; the breaker reports state changes instead.
    this.client.on('error', () => {});
    this.client.connect().catch(() => {
      // The reconnect strategy keeps trying; calls fail (and the breaker opens) meanwhile.
    });
  }

  /** The name of the bucket of `key` on `route`: a hash, so any key is a short, safe Redis name. */
  bucketName(route: string, key: string): string {
    const digest = createHash('sha256').update(route).update('\0').update(key).digest('base64url').slice(0, 22);
    return `${this.config.keyPrefix}rl:{${digest}}`;
  }

  get breaker(): BreakerState {
    return this.state;
  }

  /** Whether a call would go to Redis now: false while the breaker is open (or its one probe is out). */
  callable(): boolean {
    if (this.closed) return false;
    if (this.state === 'closed') return true;
    return !this.probing && (this.state === 'half-open' || Date.now() >= this.reopenAt);
  }

  /**
   * Takes up to `want` tokens (or gives back -want). Undefined when Redis
   * could not answer in time or the breaker is open: the caller's fail mode.
   */
  async lease(bucket: string, rate: number, burst: number, want: number): Promise<LeaseReply | undefined> {
    if (!this.admit()) return undefined;
    try {
      const reply = await this.call(bucket, [String(rate), String(burst), String(want)]);
      this.succeeded();
      return { granted: Number(reply[0]), retryAfterMs: Number(reply[1]), remaining: Number(reply[2]) };
    } catch (err) {
      this.failed(err);
      return undefined;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    try {
      await this.client.close();
    } catch {
      this.client.destroy();
    }
  }

  private async call(bucket: string, args: string[]): Promise<unknown[]> {
    const options = { keys: [bucket], arguments: args };
    try {
      return (await this.withTimeout(this.client.evalSha(LEASE_SHA, options))) as unknown[];
    } catch (err) {
      // A Redis that restarted (or a new one) has lost its script cache: send the script itself once.
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return (await this.withTimeout(this.client.eval(LEASE_SCRIPT, options))) as unknown[];
    }
  }

  /**
   * node-redis's own command timeout does not cover a command already written
   * to a server that stopped answering (measured: a SIGSTOPped redis-server
   * held it forever), so the deadline is kept here. The late reply, if any,
   * is dropped; the breaker stops further calls meanwhile.
   */
  private withTimeout<T>(call: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.config.timeoutMs} ms`)), this.config.timeoutMs);
    });
    call.catch(() => {}); // a rejection after the deadline has nobody left to tell
    return Promise.race([call, deadline]).finally(() => clearTimeout(timer));
  }

  /** Whether a call may go to Redis now (closed, or the one probe of a half-open breaker). */
  private admit(): boolean {
    if (this.closed) return false;
    if (this.state === 'closed') return true;
    if (this.state === 'open') {
      if (Date.now() < this.reopenAt) return false;
      this.setState('half-open');
    }
    if (this.probing) return false;
    this.probing = true;
    return true;
  }

  private succeeded(): void {
    this.failures = 0;
    this.probing = false;
    if (this.state !== 'closed') {
      this.cooldownMs = BREAKER_COOLDOWN_MS;
      this.setState('closed');
    }
  }

  private failed(err: unknown): void {
    this.events.onError();
    this.probing = false;
    this.failures++;
    if (this.state === 'half-open') {
      this.cooldownMs = Math.min(this.cooldownMs * 2, BREAKER_COOLDOWN_MAX_MS);
      this.open(err);
    } else if (this.state === 'closed' && this.failures >= BREAKER_FAILURES) {
      this.open(err);
    }
  }

  private open(err: unknown): void {
    this.reopenAt = Date.now() + this.cooldownMs;
    this.setState('open', err);
  }

  private setState(state: BreakerState, err?: unknown): void {
    if (this.state === state) return;
    const previous = this.state;
    this.state = state;
    this.events.onState(state);
    const redis = redactUrl(this.config.url);
    if (state === 'open' && previous === 'closed') {
      this.log.warn({ redis, error: errorText(err), failures: this.failures }, 'redis unavailable: circuit open, global rate limits use their fail mode');
    } else if (state === 'closed') {
      this.log.info({ redis }, 'redis available again: circuit closed, global rate limits use redis');
    } else {
      // Probes while Redis stays down: one every cool-down (up to 2 s), so at debug level.
      this.log.debug({ redis, error: errorText(err), nextProbeMs: state === 'open' ? this.cooldownMs : 0 }, state === 'open' ? 'redis probe failed: circuit open again' : 'redis circuit half-open: probing');
    }
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The URL without its password, for logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return 'redis';
  }
}
