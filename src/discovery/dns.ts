// Servers found in DNS (`servers: { dns, port, type, interval }`), resolved
// by the primary only: workers receive the resolved list in their config like
// any other, so every worker (and, with the same records, every instance)
// builds the same Maglev table.
//
// Each upstream is re-resolved after its records' TTL, bounded to
// [MIN_INTERVAL_MS, interval]; a failed or empty answer keeps the last good
// set (a DNS outage must not empty an upstream) and is reported in /status
// until an answer comes. When the set changes, `onChange` tells the primary,
// which applies it like a reload (src/cluster/primary.ts): new workers get
// the new servers, in-flight requests finish on the old ones, and servers
// that stay keep their health and counters (shared-state.ts).
//
// SRV: only the records of the lowest priority are used (RFC 2782: the
// others are fallbacks); each target is resolved to its A (else AAAA)
// addresses, and the record's weight becomes the server's weight, scaled into
// the config's 1..1000 when larger (0 becomes 1: such a server still gets a
// share, as small as the table allows).
import { Resolver } from 'node:dns/promises';
import type { Config, DnsDiscoveryConfig, ServerConfig, UpstreamConfig } from '../config/types.js';
import type { DiscoveryStatus } from '../admin/types.js';
import type { Logger } from '../log.js';

/** TTLs below this are read as this: a zero TTL must not make the primary ask in a loop. */
const MIN_INTERVAL_MS = 1_000;
/** After a failed answer, asked again this soon (at most the interval). */
const RETRY_MS = 2_000;
/** One answer may take this long per try, two tries. */
const QUERY_TIMEOUT_MS = 1_000;
const MAX_WEIGHT = 1_000;

interface Resolved {
  servers: ServerConfig[];
  /** Smallest TTL seen, seconds; undefined when the records did not say (SRV). */
  ttl: number | undefined;
}

interface Tracked {
  upstream: string;
  spec: DnsDiscoveryConfig;
  /** JSON of spec: a reload with the same spec keeps the state. */
  key: string;
  /** The last good set; empty until the first answer. */
  servers: ServerConfig[];
  resolvedAt: number | undefined;
  lastError: string | undefined;
  failedAt: number | undefined;
  nextAt: number;
  timer: NodeJS.Timeout | undefined;
  resolver: Resolver;
}

export class DnsDiscovery {
  private readonly tracked = new Map<string, Tracked>();
  private stopped = false;

  constructor(
    private readonly log: Logger,
    /** The set of an upstream changed: apply `fill(current config)`. */
    private readonly onChange: (upstream: string) => void,
  ) {}

  /**
   * Follows the DNS upstreams of `config` (start, reload): new or changed
   * ones are resolved now, and their first answer is awaited; removed ones
   * stop. Returns an error per upstream that has no servers yet (its first
   * resolution failed): the config cannot run without them.
   */
  async follow(config: Config): Promise<string[]> {
    const wanted = Object.values(config.upstreams).filter((u): u is UpstreamConfig & { discovery: DnsDiscoveryConfig } => u.discovery !== undefined);
    for (const [name, t] of this.tracked) {
      const next = config.upstreams[name]?.discovery;
      if (next === undefined || JSON.stringify(next) !== t.key) {
        clearTimeout(t.timer);
        this.tracked.delete(name);
      }
    }
    const fresh: Tracked[] = [];
    for (const up of wanted) {
      if (this.tracked.has(up.name)) continue;
      const resolver = new Resolver({ timeout: QUERY_TIMEOUT_MS, tries: 2 });
      if (up.discovery.resolvers) resolver.setServers(up.discovery.resolvers);
      const t: Tracked = { upstream: up.name, spec: up.discovery, key: JSON.stringify(up.discovery), servers: [], resolvedAt: undefined, lastError: undefined, failedAt: undefined, nextAt: 0, timer: undefined, resolver };
      this.tracked.set(up.name, t);
      fresh.push(t);
    }
    await Promise.all(fresh.map((t) => this.resolve(t, false)));
    return fresh
      .filter((t) => t.servers.length === 0)
      .map((t) => `upstreams.${t.upstream}.servers.dns: no servers from ${t.spec.type} ${t.spec.name}: ${t.lastError ?? 'no answer'}`);
  }

  /** `config` with every DNS upstream's servers set to its last good set. */
  fill(config: Config): Config {
    if (this.tracked.size === 0) return config;
    const upstreams = { ...config.upstreams };
    for (const [name, t] of this.tracked) {
      const up = upstreams[name];
      if (up?.discovery !== undefined) upstreams[name] = Object.freeze({ ...up, servers: t.servers });
    }
    return Object.freeze({ ...config, upstreams: Object.freeze(upstreams) });
  }

  status(): Record<string, DiscoveryStatus> {
    const out: Record<string, DiscoveryStatus> = {};
    const now = Date.now();
    for (const [name, t] of this.tracked) {
      out[name] = {
        dns: t.spec.name,
        type: t.spec.type,
        servers: t.servers.map((s) => s.address),
        resolvedAt: t.resolvedAt === undefined ? null : new Date(t.resolvedAt).toISOString(),
        // A failure since the last good answer: the servers above are the last good set, kept.
        stale: t.failedAt !== undefined,
        ...(t.failedAt !== undefined ? { lastError: t.lastError ?? 'unknown', failedAt: new Date(t.failedAt).toISOString() } : {}),
        nextResolveInMs: Math.max(0, t.nextAt - now),
      };
    }
    return out;
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.tracked.values()) {
      clearTimeout(t.timer);
      t.resolver.cancel();
    }
  }

  private async resolve(t: Tracked, notify: boolean): Promise<void> {
    let delay: number;
    try {
      const answer = await lookup(t.resolver, t.spec);
      if (this.tracked.get(t.upstream) !== t) return; // replaced by a reload meanwhile
      if (answer.servers.length === 0) throw new Error('empty answer');
      const changed = !sameServers(t.servers, answer.servers);
      const wasFailing = t.failedAt !== undefined;
      const first = t.resolvedAt === undefined;
      t.servers = answer.servers;
      t.resolvedAt = Date.now();
      t.failedAt = undefined;
      t.lastError = undefined;
      delay = Math.min(t.spec.intervalMs, Math.max(MIN_INTERVAL_MS, (answer.ttl ?? Infinity) * 1000));
      if (wasFailing) this.log.info({ upstream: t.upstream, dns: t.spec.name }, 'dns answers again');
      if (changed) {
        this.log.info({ upstream: t.upstream, dns: t.spec.name, type: t.spec.type, servers: t.servers.map((s) => (s.weight === 1 ? s.address : `${s.address}*${s.weight}`)) }, first ? 'dns servers resolved' : 'dns servers changed: applying');
        if (notify) this.onChange(t.upstream);
      }
    } catch (err) {
      if (this.tracked.get(t.upstream) !== t) return;
      const error = describe(err);
      if (t.failedAt === undefined || t.lastError !== error) {
        this.log.warn({ upstream: t.upstream, dns: t.spec.name, type: t.spec.type, error, kept: t.servers.map((s) => s.address) }, t.servers.length > 0 ? 'dns resolution failed: keeping the last good servers' : 'dns resolution failed: no servers yet');
      }
      t.failedAt ??= Date.now();
      t.lastError = error;
      delay = Math.min(t.spec.intervalMs, RETRY_MS);
    }
    if (this.stopped) return;
    t.nextAt = Date.now() + delay;
    t.timer = setTimeout(() => {
      this.resolve(t, true).catch((err: unknown) => this.log.error({ err, upstream: t.upstream }, 'dns discovery failed unexpectedly'));
    }, delay);
    t.timer.unref();
  }
}

async function lookup(resolver: Resolver, spec: DnsDiscoveryConfig): Promise<Resolved> {
  if (spec.type === 'A' || spec.type === 'AAAA') {
    const records = spec.type === 'A' ? await resolver.resolve4(spec.name, { ttl: true }) : await resolver.resolve6(spec.name, { ttl: true });
    return {
      servers: sortServers(records.map((r) => server(r.address, spec.port!, 1))),
      ttl: records.length === 0 ? undefined : Math.min(...records.map((r) => r.ttl)),
    };
  }
  const records = await resolver.resolveSrv(spec.name);
  if (records.length === 0) return { servers: [], ttl: undefined };
  const best = Math.min(...records.map((r) => r.priority));
  const chosen = records.filter((r) => r.priority === best);
  const heaviest = Math.max(...chosen.map((r) => r.weight));
  const scale = heaviest > MAX_WEIGHT ? MAX_WEIGHT / heaviest : 1;
  let ttl: number | undefined;
  const servers = new Map<string, ServerConfig>();
  for (const r of chosen) {
    const targets = await resolveTarget(resolver, r.name);
    for (const target of targets.addresses) {
      const s = server(target, r.port, Math.max(1, Math.round(r.weight * scale)));
      // Two records naming one address:port: one server, the larger weight.
      const seen = servers.get(s.address);
      if (seen === undefined || seen.weight < s.weight) servers.set(s.address, s);
    }
    ttl = Math.min(ttl ?? Infinity, targets.ttl);
  }
  return { servers: sortServers([...servers.values()]), ttl };
}

/** An SRV target's addresses: A records, else AAAA. */
async function resolveTarget(resolver: Resolver, name: string): Promise<{ addresses: string[]; ttl: number }> {
  try {
    const a = await resolver.resolve4(name, { ttl: true });
    if (a.length > 0) return { addresses: a.map((r) => r.address), ttl: Math.min(...a.map((r) => r.ttl)) };
  } catch {
    // no A records: try AAAA
  }
  const aaaa = await resolver.resolve6(name, { ttl: true });
  return { addresses: aaaa.map((r) => r.address), ttl: Math.min(...aaaa.map((r) => r.ttl)) };
}

function server(ip: string, port: number, weight: number): ServerConfig {
  const host = ip.includes(':') ? `[${ip}]` : ip;
  return { address: `${host}:${port}`, host: ip, port, weight };
}

/** In a fixed order, so an unchanged set compares equal whatever order DNS answered in. */
function sortServers(servers: ServerConfig[]): ServerConfig[] {
  return servers.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
}

function sameServers(a: readonly ServerConfig[], b: readonly ServerConfig[]): boolean {
  return a.length === b.length && a.every((s, i) => s.address === b[i]!.address && s.weight === b[i]!.weight);
}

function describe(err: unknown): string {
  const e = err as { code?: string; message?: string };
  return e.code !== undefined ? `${e.code}${e.message ? ` (${e.message})` : ''}` : String(e.message ?? err);
}
