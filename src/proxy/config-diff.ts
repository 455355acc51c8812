// `switchyard --check NEW --against CURRENT`: what a config change does before
// it is made. Routes added, removed and changed (a route is its match: host,
// path, methods, header conditions); for every hashed upstream the share of
// clients the new server list moves (real Maglev tables, built aside); and
// every way the change weakens a route's checks: auth or limits removed or
// loosened on a route, requests of a removed route falling to a weaker one,
// a new route opening a way around an authenticated one (the route audit's
// comparison), new findings of the route audit itself, and global settings
// that loosen every route (trusted_proxies, auth_failures).
import { BlockList, isIPv4 } from 'node:net';
import type { AuthConfig, AuthorizeConfig, Config, RateLimitConfig, RouteConfig, UpstreamConfig } from '../config/types.js';
import { maglevChange, weightChange } from '../balancer/maglev-change.js';
import { auditRoutes, coversPath, formatFinding, hostMatches, routeConditions, weakerChecks } from './route-audit.js';
import { Router } from './router.js';

export interface RouteChange {
  route: string;
  /** Config keys whose values differ. */
  fields: string[];
}

export interface UpstreamChange {
  upstream: string;
  /** One line: servers added/removed/reweighted and what that does to clients. */
  summary: string;
  /** Hashed upstreams: share of clients mapped to another server. */
  moved?: number;
}

export interface ConfigDiff {
  routes: { added: string[]; removed: string[]; changed: RouteChange[] };
  upstreams: { added: string[]; removed: string[]; changed: UpstreamChange[] };
  /** Every way the change weakens checks; empty when none. */
  weakened: string[];
}

/** What the router tells routes apart by: two routes with the same key are the same route. */
function matchKey(r: RouteConfig): string {
  const headers = Object.entries(r.headers ?? {}).sort(([a], [b]) => a.localeCompare(b));
  return JSON.stringify([r.host.toLowerCase(), r.path, [...(r.methods ?? [])].sort(), headers]);
}

function label(r: RouteConfig): string {
  return `${r.name} (${routeConditions(r)})`;
}

/** Config keys of a route as the file names them, for "changed: upstream, rate_limit". */
const ROUTE_FIELDS: Array<[keyof RouteConfig, string]> = [
  ['name', 'name'],
  ['upstream', 'upstream'],
  ['stripPrefix', 'strip_prefix'],
  ['rewrite', 'rewrite'],
  ['requestHeaders', 'request_headers'],
  ['responseHeaders', 'response_headers'],
  ['timeouts', 'timeouts'],
  ['retries', 'retries'],
  ['upgrades', 'upgrades'],
  ['auth', 'auth'],
  ['authorize', 'authorize'],
  ['rateLimit', 'rate_limit'],
  ['cors', 'cors'],
];

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
const added = <T>(before: readonly T[] | undefined, after: readonly T[] | undefined): T[] => (after ?? []).filter((x) => !(before ?? []).includes(x));

export function diffConfigs(current: Config, next: Config): ConfigDiff {
  const weakened: string[] = [];
  const before = new Map(current.routes.map((r) => [matchKey(r), r]));
  const after = new Map(next.routes.map((r) => [matchKey(r), r]));
  const routes: ConfigDiff['routes'] = { added: [], removed: [], changed: [] };
  for (const [key, r] of after) if (!before.has(key)) routes.added.push(label(r));
  for (const [key, r] of before) if (!after.has(key)) routes.removed.push(label(r));
  for (const [key, was] of before) {
    const now = after.get(key);
    if (now === undefined) continue;
    const fields = ROUTE_FIELDS.filter(([k]) => !same(was[k], now[k])).map(([, name]) => name);
    if (fields.length > 0) routes.changed.push({ route: label(now), fields });
    for (const why of weakenedRoute(was, now)) weakened.push(`${label(now)}: ${why}`);
  }
  weakened.push(...removedRoutesFallThrough(current, next, after));
  weakened.push(...newRoutesAroundAuth(next, before));
  weakened.push(...newAuditFindings(current, next));
  weakened.push(...weakenedGlobals(current, next));

  const upstreams: ConfigDiff['upstreams'] = { added: [], removed: [], changed: [] };
  for (const name of Object.keys(next.upstreams)) if (!Object.hasOwn(current.upstreams, name)) upstreams.added.push(name);
  for (const name of Object.keys(current.upstreams)) if (!Object.hasOwn(next.upstreams, name)) upstreams.removed.push(name);
  for (const [name, now] of Object.entries(next.upstreams)) {
    if (!Object.hasOwn(current.upstreams, name)) continue;
    const change = upstreamChange(current.upstreams[name]!, now);
    if (change !== undefined) upstreams.changed.push(change);
  }
  return { routes, upstreams, weakened };
}

/** How `now` checks less than `was` (same match): auth, authorize and rate limit, each loosening named. */
function weakenedRoute(was: RouteConfig, now: RouteConfig): string[] {
  return [...weakenedAuth(was.auth, now.auth), ...weakenedAuthorize(was.authorize, now.authorize), ...weakenedRateLimit(was.rateLimit, now.rateLimit)];
}

function weakenedAuth(was: AuthConfig | undefined, now: AuthConfig | undefined): string[] {
  if (was === undefined) return [];
  if (now === undefined) return [`auth removed (was ${was.type})`];
  if (now.type !== was.type) return [`auth changed from ${was.type} to ${now.type}`];
  const out: string[] = [];
  if (was.type === 'api_key' && now.type === 'api_key') {
    const known = new Map(was.keys.map((k) => [k.sha256, k]));
    const fresh = now.keys.filter((k) => !known.has(k.sha256));
    if (fresh.length > 0) out.push(`api_key accepts new keys: ${fresh.map((k) => k.name).join(', ')}`);
    for (const k of now.keys) {
      const scopes = added(known.get(k.sha256)?.scopes, k.scopes);
      if (known.has(k.sha256) && scopes.length > 0) out.push(`api key ${k.name} gains scopes ${scopes.join(', ')}`);
    }
  } else if (was.type === 'basic' && now.type === 'basic') {
    const known = new Map(was.users.map((u) => [u.name, u.hash]));
    const fresh = now.users.filter((u) => known.get(u.name) !== u.hash);
    if (fresh.length > 0) out.push(`basic accepts new or changed users: ${fresh.map((u) => u.name).join(', ')}`);
  } else if (was.type === 'jwt' && now.type === 'jwt') {
    const a = was.jwt;
    const b = now.jwt;
    const algorithms = added(a.algorithms, b.algorithms);
    if (algorithms.length > 0) out.push(`jwt accepts more algorithms: ${algorithms.join(', ')}`);
    if (a.issuer !== undefined && (b.issuer === undefined || added(a.issuer, b.issuer).length > 0)) out.push(`jwt issuer check ${b.issuer === undefined ? 'removed' : `widened to ${b.issuer.join(', ')}`}`);
    if (a.audience !== undefined && (b.audience === undefined || added(a.audience, b.audience).length > 0)) out.push(`jwt audience check ${b.audience === undefined ? 'removed' : `widened to ${b.audience.join(', ')}`}`);
    if (b.clockSkewMs > a.clockSkewMs) out.push(`jwt clock_skew raised from ${a.clockSkewMs} ms to ${b.clockSkewMs} ms`);
    if (a.requireExp !== false && b.requireExp === false) out.push('jwt accepts tokens without exp (require_exp: false)');
    if (a.secret !== b.secret || a.publicKeyPem !== b.publicKeyPem || a.jwksFile !== b.jwksFile || a.jwksUrl !== b.jwksUrl) out.push('jwt verification keys changed');
    if (a.from !== b.from) out.push(`jwt read from ${b.from} instead of ${a.from}`);
  }
  return out;
}

function weakenedAuthorize(was: AuthorizeConfig | undefined, now: AuthorizeConfig | undefined): string[] {
  if (was === undefined) return [];
  if (now === undefined) return ['authorize rules removed'];
  const out: string[] = [];
  const droppedScopes = added(now.scopes, was.scopes);
  if (droppedScopes.length > 0) out.push(`authorize no longer requires scopes ${droppedScopes.join(', ')}`);
  for (const [claim, values] of Object.entries(was.claims ?? {})) {
    const nowValues = now.claims?.[claim];
    if (nowValues === undefined) out.push(`authorize no longer checks claim ${claim}`);
    else if (added(values, nowValues).length > 0) out.push(`authorize accepts more values of claim ${claim}: ${added(values, nowValues).join(', ')}`);
  }
  if (was.cidrs !== undefined) {
    const wider = now.cidrs?.filter((c) => !was.cidrs!.some((outer) => cidrWithin(c, outer)));
    if (wider === undefined) out.push('authorize client addresses no longer checked');
    else if (wider.length > 0) out.push(`authorize client addresses widened: ${wider.join(', ')}`);
  }
  if (was.methods !== undefined && (now.methods === undefined || added(was.methods, now.methods).length > 0)) out.push(`authorize methods ${now.methods === undefined ? 'no longer checked' : `widened: ${added(was.methods, now.methods).join(', ')}`}`);
  return out;
}

function weakenedRateLimit(was: RateLimitConfig | undefined, now: RateLimitConfig | undefined): string[] {
  if (was === undefined) return [];
  if (now === undefined) return [`rate limit removed (was ${was.ratePerSecond}/s, burst ${was.burst})`];
  const out: string[] = [];
  if (now.ratePerSecond > was.ratePerSecond) out.push(`rate limit raised from ${was.ratePerSecond}/s to ${now.ratePerSecond}/s`);
  if (now.burst > was.burst) out.push(`rate limit burst raised from ${was.burst} to ${now.burst}`);
  if (now.key !== was.key) out.push(`rate limit counted per ${now.key} instead of ${was.key}`);
  return out;
}

/** A sample request of a route (its host, first method, its path) and where the new routes send it. */
function removedRoutesFallThrough(current: Config, next: Config, after: Map<string, RouteConfig>): string[] {
  const out: string[] = [];
  const router = new Router(next.routes, (r) => r);
  for (const was of current.routes) {
    if (after.has(matchKey(was)) || (was.auth === undefined && was.rateLimit === undefined)) continue;
    const host = was.host === '*' ? 'diff-sample.invalid' : was.host.startsWith('*.') ? `diff-sample${was.host.slice(1)}` : was.host;
    const hit = router.match(host, was.methods?.[0] ?? 'GET', was.path, Object.entries(was.headers ?? {}).flat());
    if (hit === undefined || 'refused' in hit) continue;
    const to = hit.target;
    const why = [...weakenedAuth(was.auth, to.auth), ...weakenedAuthorize(was.authorize, to.authorize), ...weakenedRateLimit(was.rateLimit, to.rateLimit)];
    if (why.length > 0) out.push(`${label(was)} removed: its requests now reach ${label(to)} (upstream "${to.upstream}"): ${why.join('; ')}`);
  }
  return out;
}

/**
 * A new route under an authenticated route's path, to the same upstream with
 * weaker checks, carves a hole in it (the audit accepts such carve-outs as
 * deliberate in a config; a diff shows the moment one is added).
 */
function newRoutesAroundAuth(next: Config, before: Map<string, RouteConfig>): string[] {
  const out: string[] = [];
  for (const fresh of next.routes) {
    if (before.has(matchKey(fresh))) continue;
    for (const guarded of next.routes) {
      if (guarded === fresh || guarded.auth === undefined || guarded.upstream !== fresh.upstream) continue;
      if (!coversPath(guarded.path, fresh.path)) continue;
      const hostsMeet = hostMatches(guarded.host, fresh.host.toLowerCase()) || hostMatches(fresh.host, guarded.host.toLowerCase());
      const why = hostsMeet ? weakerChecks(guarded, fresh) : undefined;
      if (why !== undefined) out.push(`new route ${label(fresh)} takes requests under ${label(guarded)} to upstream "${fresh.upstream}" ${why}`);
    }
  }
  return out;
}

function newAuditFindings(current: Config, next: Config): string[] {
  const had = new Set(auditRoutes(current.routes).map((f) => formatFinding(f, current.routes).replace(/routes\[\d+\] /g, '')));
  return auditRoutes(next.routes)
    .map((f) => formatFinding(f, next.routes))
    .filter((line) => !had.has(line.replace(/routes\[\d+\] /g, '')))
    .map((line) => `route audit: ${line}`);
}

function weakenedGlobals(current: Config, next: Config): string[] {
  const out: string[] = [];
  const trusted = next.trustedProxies.filter((c) => !current.trustedProxies.some((outer) => cidrWithin(c, outer)));
  if (trusted.length > 0) {
    out.push(`trusted_proxies adds ${trusted.join(', ')}: X-Forwarded-For from there is believed (client-ip rate limits, authorize cidrs, source hashing)`);
  }
  const a = current.authFailures;
  const b = next.authFailures;
  if (b.ratePerSecond > a.ratePerSecond || b.burst > a.burst) out.push(`auth_failures allows more failed attempts (${a.ratePerSecond}/s burst ${a.burst} -> ${b.ratePerSecond}/s burst ${b.burst})`);
  return out;
}

/** Whether every address of `inner` (a CIDR or an address) is in `outer`: a prefix at least as long whose base lies in outer. */
function cidrWithin(inner: string, outer: string): boolean {
  const split = (c: string) => {
    const slash = c.indexOf('/');
    const address = slash < 0 ? c : c.slice(0, slash);
    const family = isIPv4(address) ? 'ipv4' : 'ipv6';
    return { address, family, bits: slash < 0 ? (family === 'ipv4' ? 32 : 128) : Number(c.slice(slash + 1)) } as const;
  };
  const i = split(inner);
  const o = split(outer);
  if (i.family !== o.family || i.bits < o.bits) return false;
  const list = new BlockList();
  list.addSubnet(o.address, o.bits, o.family);
  return list.check(i.address, i.family);
}

const percent = (x: number) => `${(x * 100).toFixed(2)}%`;

function upstreamChange(was: UpstreamConfig, now: UpstreamConfig): UpstreamChange | undefined {
  const servers = (u: UpstreamConfig) => u.servers.map(({ address, weight }) => ({ address, weight }));
  const a = servers(was);
  const b = servers(now);
  const serversSame = same(
    [...a].sort((x, y) => x.address.localeCompare(y.address)),
    [...b].sort((x, y) => x.address.localeCompare(y.address)),
  );
  const list = weightChange(a, b)
    .filter((s) => s.weight.before !== s.weight.after)
    .map((s) => (s.weight.before === 0 ? `+${s.address} (weight ${s.weight.after})` : s.weight.after === 0 ? `-${s.address}` : `${s.address} weight ${s.weight.before} -> ${s.weight.after}`));
  if (was.balance !== now.balance || !same(was.hash, now.hash)) {
    const moves = was.balance === 'source' || now.balance === 'source' ? ': clients are mapped afresh' : '';
    return { upstream: now.name, summary: `balance ${was.balance} ${JSON.stringify(was.hash)} -> ${now.balance} ${JSON.stringify(now.hash)}${moves}${list.length > 0 ? `; servers ${list.join(', ')}` : ''}` };
  }
  if (serversSame) return same(was, now) ? undefined : { upstream: now.name, summary: 'settings changed (servers and balancing unchanged)' };
  if (now.balance !== 'source') {
    const shares = weightChange(a, b)
      .filter((s) => s.share.before !== s.share.after)
      .map((s) => `${s.address} ${percent(s.share.before)} -> ${percent(s.share.after)}`);
    return { upstream: now.name, summary: `servers ${list.join(', ')}; request shares ${shares.join(', ')}` };
  }
  const change = maglevChange(a, b);
  const flows = change.flows.slice(0, 5).map((f) => `${f.from} -> ${f.to} ${percent(f.share)}`);
  const more = change.flows.length > 5 ? `, ${change.flows.length - 5} smaller` : '';
  return { upstream: now.name, moved: change.moved, summary: `servers ${list.join(', ')}: ${percent(change.moved)} of clients move (${flows.join(', ')}${more})` };
}

export function formatDiff(d: ConfigDiff, against: string): string {
  const lines = [`compared with ${against}:`];
  const { routes, upstreams, weakened } = d;
  lines.push(`routes: ${routes.added.length} added, ${routes.removed.length} removed, ${routes.changed.length} changed`);
  for (const r of routes.added) lines.push(`  + ${r}`);
  for (const r of routes.removed) lines.push(`  - ${r}`);
  for (const r of routes.changed) lines.push(`  ~ ${r.route}: ${r.fields.join(', ')}`);
  lines.push(`upstreams: ${upstreams.added.length} added, ${upstreams.removed.length} removed, ${upstreams.changed.length} changed`);
  for (const u of upstreams.added) lines.push(`  + ${u}`);
  for (const u of upstreams.removed) lines.push(`  - ${u}`);
  for (const u of upstreams.changed) lines.push(`  ~ ${u.upstream}: ${u.summary}`);
  lines.push(weakened.length === 0 ? 'weakened: nothing (no auth, authorization or limit is loosened)' : `weakened: ${weakened.length}`);
  for (const w of weakened) lines.push(`  weakened: ${w}`);
  return lines.join('\n');
}
