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
// share, as small as the table allows). A record with port 0 is left out; a
// target that does not resolve is left out (the others still count).
//
// DNS is input like any other: an answer is bounded and screened before it
// becomes servers (`screen`). At most MAX_SERVERS (the first in address
// order, so every instance keeps the same ones) and MAX_SRV_RECORDS records
// are used. Addresses no backend can have are dropped, each logged:
// unspecified (0.0.0.0/8, ::), multicast, broadcast, link-local (cloud
// metadata at 169.254.169.254 is no backend), and the proxy's own listeners
// and admin port (proxying to itself would loop every request until the
// connection limit). Loopback and private addresses stay: sidecars and
// internal networks are what DNS discovery is for.
import { BlockList, isIP } from 'node:net';
import os from 'node:os';
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
/** The servers one answer may give an upstream (more: the first, in address order). */
export const MAX_SERVERS = 256;
/** SRV records looked at per answer (their targets are resolved, SRV_CONCURRENCY at a time). */
const MAX_SRV_RECORDS = 256;
const SRV_CONCURRENCY = 16;

/** Addresses no backend has. */
const NO_BACKEND = new BlockList();
NO_BACKEND.addSubnet('0.0.0.0', 8, 'ipv4');
NO_BACKEND.addSubnet('224.0.0.0', 4, 'ipv4'); // multicast
NO_BACKEND.addAddress('255.255.255.255', 'ipv4');
NO_BACKEND.addSubnet('169.254.0.0', 16, 'ipv4'); // link-local
NO_BACKEND.addAddress('::', 'ipv6');
NO_BACKEND.addSubnet('ff00::', 8, 'ipv6'); // multicast
NO_BACKEND.addSubnet('fe80::', 10, 'ipv6'); // link-local
NO_BACKEND.addSubnet('::ffff:0.0.0.0', 104, 'ipv6'); // the IPv4 ones, mapped
NO_BACKEND.addSubnet('::ffff:224.0.0.0', 100, 'ipv6');
NO_BACKEND.addSubnet('::ffff:169.254.0.0', 112, 'ipv6');

interface Resolved {
  servers: ServerConfig[];
  /** Smallest TTL seen, seconds; undefined when the records did not say (SRV). */
  ttl: number | undefined;
  /** Records or targets left out, and why (logged when they change). */
  dropped: string[];
}

/** The proxy's own sockets: host and port of each listener and of the admin API. */
type OwnSockets = readonly { host: string; port: number }[];

interface Tracked {
  upstream: string;
  spec: DnsDiscoveryConfig;
  /** JSON of spec: a reload with the same spec keeps the state. */
  key: string;
  /** The last good set; empty until the first answer. */
  servers: ServerConfig[];
  /** What the last answer left out (logged again only when it changes). */
  dropped: string;
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
  private own: OwnSockets = [];

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
    this.own = config.admin === undefined ? config.listen : [...config.listen, config.admin];
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
      const t: Tracked = { upstream: up.name, spec: up.discovery, key: JSON.stringify(up.discovery), servers: [], dropped: '', resolvedAt: undefined, lastError: undefined, failedAt: undefined, nextAt: 0, timer: undefined, resolver };
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
      const answer = screen(await lookup(t.resolver, t.spec), this.own);
      if (this.tracked.get(t.upstream) !== t) return; // replaced by a reload meanwhile
      const dropped = answer.dropped.join('; ');
      if (dropped !== t.dropped && dropped !== '') this.log.warn({ upstream: t.upstream, dns: t.spec.name, type: t.spec.type, dropped: answer.dropped }, 'dns answer: records left out');
      t.dropped = dropped;
      if (answer.servers.length === 0) throw new Error(answer.dropped.length > 0 ? `no usable records (${dropped})` : 'empty answer');
      const changed = !sameServers(t.servers, answer.servers);
      const wasFailing = t.failedAt !== undefined;
      const first = t.resolvedAt === undefined;
      t.servers = answer.servers;
      t.resolvedAt = Date.now();
      t.failedAt = undefined;
      t.lastError = undefined;
      const ttlMs = answer.ttl !== undefined && Number.isFinite(answer.ttl) ? answer.ttl * 1000 : Infinity;
      delay = Math.min(t.spec.intervalMs, Math.max(MIN_INTERVAL_MS, ttlMs));
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
      servers: records.map((r) => server(r.address, spec.port!, 1)),
      ttl: records.length === 0 ? undefined : Math.min(...records.map((r) => r.ttl)),
      dropped: [],
    };
  }
  const dropped: string[] = [];
  const all = await resolver.resolveSrv(spec.name);
  if (all.length > MAX_SRV_RECORDS) dropped.push(`${all.length - MAX_SRV_RECORDS} of ${all.length} SRV records (at most ${MAX_SRV_RECORDS})`);
  // Port 0 is no port to connect to.
  const records = all.slice(0, MAX_SRV_RECORDS).filter((r) => {
    if (r.port === 0) dropped.push(`${r.name}: port 0`);
    return r.port !== 0;
  });
  if (records.length === 0) return { servers: [], ttl: undefined, dropped };
  const best = Math.min(...records.map((r) => r.priority));
  const chosen = records.filter((r) => r.priority === best);
  const heaviest = Math.max(...chosen.map((r) => r.weight));
  const scale = heaviest > MAX_WEIGHT ? MAX_WEIGHT / heaviest : 1;
  // Each distinct target once, a few at a time: a long list of targets that time out must not take (records x timeout).
  const names = [...new Set(chosen.map((r) => r.name.toLowerCase()))];
  const targets = new Map<string, { addresses: string[]; ttl: number }>();
  for (let i = 0; i < names.length; i += SRV_CONCURRENCY) {
    await Promise.all(
      names.slice(i, i + SRV_CONCURRENCY).map(async (name) => {
        try {
          targets.set(name, await resolveTarget(resolver, name));
        } catch (err) {
          dropped.push(`${name}: ${describe(err)}`);
        }
      }),
    );
  }
  let ttl: number | undefined;
  const servers = new Map<string, ServerConfig>();
  for (const r of chosen) {
    const target = targets.get(r.name.toLowerCase());
    if (target === undefined) continue;
    for (const address of target.addresses) {
      const s = server(address, r.port, Math.max(1, Math.round(r.weight * scale)));
      // Two records naming one address:port: one server, the larger weight.
      const seen = servers.get(s.address);
      if (seen === undefined || seen.weight < s.weight) servers.set(s.address, s);
    }
    ttl = Math.min(ttl ?? Infinity, target.ttl);
  }
  return { servers: [...servers.values()], ttl, dropped };
}

/** `answer` without the addresses no backend has or that are the proxy itself, in address order, at most MAX_SERVERS. */
function screen(answer: Resolved, own: OwnSockets): Resolved {
  const dropped = [...answer.dropped];
  const servers = sortServers(
    answer.servers.filter((s) => {
      const why = NO_BACKEND.check(s.host, isIP(s.host) === 6 ? 'ipv6' : 'ipv4') ? 'no backend has this address' : isOwn(s, own) ? "the proxy's own listener" : undefined;
      if (why !== undefined) dropped.push(`${s.address}: ${why}`);
      return why === undefined;
    }),
  );
  if (servers.length > MAX_SERVERS) dropped.push(`${servers.length - MAX_SERVERS} of ${servers.length} addresses (at most ${MAX_SERVERS})`);
  return { servers: servers.slice(0, MAX_SERVERS), ttl: answer.ttl, dropped };
}

/** `s` is one of the proxy's own sockets: same port, and the same address (a wildcard listener: any of this machine's). */
function isOwn(s: ServerConfig, own: OwnSockets): boolean {
  return own.some((o) => o.port === s.port && (o.host === s.host || ((o.host === '0.0.0.0' || o.host === '::') && (s.host.startsWith('127.') || localAddresses().has(s.host)))));
}

function localAddresses(): Set<string> {
  const out = new Set(['127.0.0.1', '::1']);
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) out.add(a.address);
  return out;
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
