// Turns schema- and semantics-checked YAML data into the Config every module
// reads: camelCase, durations in ms, sizes in bytes, "auto" resolved, frozen.

import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { parseHostPort } from './address.js';
import type { HostPort } from './address.js';
import { parseDuration, parseSize } from './duration.js';
import { MAX_WORKERS } from './schema.js';
import { CLIENT_CERT_HEADERS } from './client-cert-headers.js';
import type { RawAcme, RawApiKey, RawConfig, RawHeaderRules, RawListen, RawRoute, RawUpstream, RawUpstreamTls } from './schema.js';
import type {
  AcmeConfig,
  AuthConfig,
  Config,
  HeaderRules,
  HealthConfig,
  IdentityForwarding,
  ListenerTlsConfig,
  ProxyListenConfig,
  RedisConfig,
  RouteConfig,
  UpstreamConfig,
  UpstreamTlsConfig,
} from './types.js';
import { ErrorCode, SwitchyardError } from '../errors.js';

/** Worker count for "auto": one per core the process may use, capped like explicit counts. */
export function autoWorkers(): number {
  return Math.min(MAX_WORKERS, availableParallelism());
}

export function normalise(raw: RawConfig, file: string): Config {
  const config: Config = {
    file: resolve(file),
    workers: raw.workers === 'auto' ? autoWorkers() : raw.workers,
    scheduling: raw.scheduling,
    listen: raw.listen.map((l) => listener(l, raw.limits.max_connections, dirname(resolve(file)))),
    ...(raw.admin ? { admin: { ...raw.admin } } : {}),
    logging: { ...raw.logging },
    limits: {
      maxHeaderBytes: parseSize(raw.limits.max_header_bytes),
      maxUrlBytes: parseSize(raw.limits.max_url_bytes),
      maxBodyBytes: parseSize(raw.limits.max_body_bytes),
      headersTimeoutMs: parseDuration(raw.limits.headers_timeout),
      requestTimeoutMs: parseDuration(raw.limits.request_timeout),
      keepaliveTimeoutMs: parseDuration(raw.limits.keepalive_timeout),
      maxConnections: raw.limits.max_connections,
    },
    trustedProxies: [...raw.trusted_proxies],
    headersWithUnderscores: raw.headers_with_underscores,
    shutdownTimeoutMs: parseDuration(raw.shutdown_timeout),
    tunnelMaxAgeMs: parseDuration(raw.tunnel_max_age),
    upstreams: Object.fromEntries(Object.entries(raw.upstreams).map(([name, up]) => [name, upstream(name, up, dirname(resolve(file)))])),
    routes: raw.routes.map((r) => route(r, dirname(resolve(file)))),
    normalize: { escapedSlashes: raw.normalize.escaped_slashes },
    demoBackends: raw.demo_backends.map(hostPort),
    rateLimitSlots: raw.rate_limit_slots,
    authFailures: { ratePerSecond: parseRate(raw.auth_failures.rate), burst: raw.auth_failures.burst },
    http2: {
      maxConcurrentStreams: raw.http2.max_concurrent_streams,
      initialWindowSize: parseSize(raw.http2.initial_window_size),
      maxResets: raw.http2.max_resets,
      maxControlFrames: raw.http2.max_control_frames,
      maxHeaderPairs: raw.http2.max_header_pairs,
    },
    tlsTickets: { rotateMs: parseDuration(raw.tls_tickets.rotate) },
    dsr: raw.dsr.map((d) => ({
      interface: d.interface,
      vip: d.vip,
      ports: [...d.ports],
      upstream: d.upstream,
      method: d.method,
      ...(d.dscp === undefined ? {} : { dscp: d.dscp }),
      threads: d.threads,
      flowTableSize: d.flow_table_size,
      flowIdleMs: parseDuration(d.flow_idle_timeout),
    })),
  };
  if (raw.redis) config.redis = redis(raw.redis, dirname(resolve(file)));
  return deepFreeze(config);
}

/** mode tcp connections stay open as long as nginx's stream module keeps them by default without a byte. */
const TCP_IDLE_DEFAULT = '10m';

function redis(raw: NonNullable<RawConfig['redis']>, baseDir: string): RedisConfig {
  return {
    url: raw.url,
    ...(raw.ca_file === undefined ? {} : { caPem: readFileSync(resolve(baseDir, raw.ca_file), 'utf8') }),
    timeoutMs: parseDuration(raw.timeout),
    instances: raw.instances,
    keyPrefix: raw.key_prefix,
  };
}

// ---- ACME (issue 12, item 3) ----------------------------------------------
function acme(raw: RawAcme, baseDir: string): AcmeConfig {
  return {
    directory: raw.directory,
    email: raw.email,
    domains: raw.domains.map((d) => d.toLowerCase()),
    storage: resolve(baseDir, raw.storage ?? 'acme'),
    // Readability and content were checked by checkSemantics.
    ...(raw.ca === undefined ? {} : { caPem: readFileSync(resolve(baseDir, raw.ca), 'utf8') }),
    retryMinMs: parseDuration(raw.retry.min),
    retryMaxMs: parseDuration(raw.retry.max),
    challenge: raw.challenge,
  };
}
// ---- end ACME ---------------------------------------------------------------

function upstream(name: string, up: RawUpstream, baseDir: string): UpstreamConfig {
  const out: UpstreamConfig = {
    name,
    balance: up.balance,
    hash: up.hash.balance_factor === undefined ? { key: up.hash.key } : { key: up.hash.key, balanceFactor: up.hash.balance_factor },
    servers: Array.isArray(up.servers)
      ? up.servers.map((s) => ({ address: s.address, ...hostPort(s.address), weight: s.weight, ...(s.mac === undefined ? {} : { mac: s.mac.toLowerCase() }) }))
      : [],
    ...(up.tls ? { tls: upstreamTls(up.tls, baseDir) } : {}),
    retries: up.retries,
    retryBudget: { percent: up.retry_budget.percent, minPerSecond: up.retry_budget.min_per_second },
    retryBodyBytes: parseSize(up.retry_body_bytes),
    retryIdempotencyKey: up.retry_idempotency_key,
    outlier: {
      consecutiveFailures: up.outlier.consecutive_failures,
      baseEjectionMs: parseDuration(up.outlier.base_ejection),
      maxEjectionMs: parseDuration(up.outlier.max_ejection),
      maxEjectionPercent: up.outlier.max_ejection_percent,
    },
    timeouts: {
      connectMs: parseDuration(up.timeouts.connect),
      responseMs: parseDuration(up.timeouts.response),
      idleMs: parseDuration(up.timeouts.idle),
      tunnelIdleMs: parseDuration(up.timeouts.tunnel_idle),
      ...(up.timeouts.total === undefined ? {} : { totalMs: parseDuration(up.timeouts.total) }),
    },
  };
  if (!Array.isArray(up.servers)) {
    const d = up.servers;
    out.discovery = {
      name: d.dns,
      ...(d.port === undefined ? {} : { port: d.port }),
      type: d.type,
      intervalMs: parseDuration(d.interval),
      ...(d.resolvers === undefined ? {} : { resolvers: d.resolvers }),
    };
  }
  if (up.max_idle_per_server !== 'auto') out.maxIdlePerServer = up.max_idle_per_server;
  if (up.proxy_protocol !== undefined) out.proxyProtocol = up.proxy_protocol;
  if (up.health) {
    const h = up.health;
    const health: HealthConfig = {
      type: h.type,
      path: h.path,
      intervalMs: parseDuration(h.interval),
      timeoutMs: parseDuration(h.timeout),
      rise: h.rise,
      fall: h.fall,
      expectStatus: expandStatuses(h.expect_status),
    };
    if (h.slow_start !== undefined) health.slowStartMs = parseDuration(h.slow_start);
    out.health = health;
  }
  return out;
}

// ---- TLS (issue 12) ----

/**
 * TLS 1.3 suites first (all AEAD), then TLS 1.2 ciphers with forward secrecy
 * (ECDHE) and AEAD only: Mozilla's "intermediate" list without DHE (slow, and
 * weak with small groups). No CBC, no RSA key exchange, no SHA-1 MACs.
 */
export const DEFAULT_CIPHERS =
  'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:' +
  'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:' +
  'ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305';

function listener(l: RawListen, maxConnections: number, baseDir: string): ProxyListenConfig {
  const out: ProxyListenConfig = {
    host: l.host,
    port: l.port,
    backlog: l.backlog,
    mode: l.mode,
    ...(l.upstream === undefined ? {} : { upstream: l.upstream }),
    acceptProxy: l.accept_proxy,
    proxyTimeoutMs: parseDuration(l.proxy_timeout),
    idleTimeoutMs: parseDuration(l.idle_timeout ?? TCP_IDLE_DEFAULT),
    maxConnections: l.max_connections ?? maxConnections,
    http2: l.http2,
  };
  if (l.redirect_https) out.redirectHttps = { port: l.redirect_https.port, ...(l.redirect_https.hosts ? { hosts: l.redirect_https.hosts.map((h) => h.toLowerCase()) } : {}) };
  const t = l.tls;
  if (t) {
    // The default certificate goes first: the store answers unknown names with certificates[0].
    const certs = t.certificates.map((c) => ({ cert: resolve(baseDir, c.cert), key: resolve(baseDir, c.key), isDefault: c.default === true }));
    const first = Math.max(0, certs.findIndex((c) => c.isDefault));
    const ordered = certs.length === 0 ? [] : [certs[first]!, ...certs.filter((_, i) => i !== first)];
    const tls: ListenerTlsConfig = {
      certificates: ordered.map(({ cert, key }) => ({ cert, key })),
      minVersion: t.min_version,
      ciphers: t.ciphers ?? DEFAULT_CIPHERS,
      reloadIntervalMs: parseDuration(t.reload_interval),
      handshakeTimeoutMs: parseDuration(t.handshake_timeout),
    };
    if (t.hsts) tls.hsts = { maxAgeSeconds: Math.floor(parseDuration(t.hsts.max_age) / 1000), includeSubdomains: t.hsts.include_subdomains, preload: t.hsts.preload };
    if (t.client_ca) tls.clientCa = resolve(baseDir, t.client_ca);
    if (t.acme) tls.acme = acme(t.acme, baseDir);
    out.tls = tls;
  }
  return out;
}

function upstreamTls(t: RawUpstreamTls, baseDir: string): UpstreamTlsConfig {
  return {
    verify: t.verify,
    ...(t.ca ? { ca: resolve(baseDir, t.ca) } : {}),
    ...(t.servername ? { servername: t.servername } : {}),
    ...(t.cert ? { cert: resolve(baseDir, t.cert) } : {}),
    ...(t.key ? { key: resolve(baseDir, t.key) } : {}),
  };
}
// ---- end TLS ----

/** The default route name: host and path, plus the conditions that tell routes with the same path apart. */
export function defaultRouteName(r: RawRoute): string {
  let name = `${r.match.host}${r.match.path}`;
  if (r.match.methods) name += ` ${r.match.methods.map((m) => m.toUpperCase()).join(',')}`;
  if (r.match.headers) name += ` ${Object.entries(r.match.headers).map(([k, v]) => `${k.toLowerCase()}=${v}`).join(',')}`;
  return name;
}

function route(r: RawRoute, baseDir: string): RouteConfig {
  const out: RouteConfig = {
    name: r.name ?? defaultRouteName(r),
    host: r.match.host.toLowerCase(),
    path: r.match.path,
    upstream: r.upstream,
    stripPrefix: r.strip_prefix,
    upgrades: r.upgrades.map((u) => u.toLowerCase()),
  };
  if (r.match.methods) out.methods = r.match.methods.map((m) => m.toUpperCase());
  if (r.match.headers) out.headers = Object.fromEntries(Object.entries(r.match.headers).map(([k, v]) => [k.toLowerCase(), v]));
  if (r.rewrite !== undefined) out.rewrite = r.rewrite;
  if (r.request_headers) out.requestHeaders = headerRules(r.request_headers);
  if (r.response_headers) out.responseHeaders = headerRules(r.response_headers);
  if (r.timeouts) {
    const t = r.timeouts;
    out.timeouts = {
      ...(t.connect === undefined ? {} : { connectMs: parseDuration(t.connect) }),
      ...(t.response === undefined ? {} : { responseMs: parseDuration(t.response) }),
      ...(t.idle === undefined ? {} : { idleMs: parseDuration(t.idle) }),
      ...(t.total === undefined ? {} : { totalMs: parseDuration(t.total) }),
      ...(t.tunnel_idle === undefined ? {} : { tunnelIdleMs: parseDuration(t.tunnel_idle) }),
    };
  }
  if (r.retries !== undefined) out.retries = r.retries;
  if (r.auth) out.auth = auth(r.auth, baseDir);
  if (r.authorize) {
    const a = r.authorize;
    out.authorize = {
      ...(a.scopes ? { scopes: a.scopes } : {}),
      ...(a.claims ? { claims: Object.fromEntries(Object.entries(a.claims).map(([k, v]) => [k, typeof v === 'string' ? [v] : v])) } : {}),
      ...(a.cidrs ? { cidrs: a.cidrs } : {}),
      ...(a.methods ? { methods: a.methods.map((m) => m.toUpperCase()) } : {}),
    };
  }
  if (r.rate_limit) {
    const ratePerSecond = parseRate(r.rate_limit.rate);
    const { key, scope, fail } = r.rate_limit;
    out.rateLimit = { ratePerSecond, burst: r.rate_limit.burst ?? Math.max(1, Math.ceil(ratePerSecond)), key, scope, fail };
  }
  if (r.cors) {
    const c = r.cors;
    out.cors = {
      origins: c.origins,
      methods: c.methods.map((m) => m.toUpperCase()),
      headers: c.headers,
      exposeHeaders: c.expose_headers,
      credentials: c.credentials,
      ...(c.max_age === undefined ? {} : { maxAgeSeconds: Math.round(parseDuration(c.max_age) / 1000) }),
    };
  }
  return out;
}

function headerRules(raw: RawHeaderRules): HeaderRules {
  return { set: Object.entries(raw.set ?? {}), add: Object.entries(raw.add ?? {}), remove: raw.remove ?? [] };
}

/** "50/s", "3000/m", "100/h" or a plain number per second. Checked by checkSemantics. */
export function parseRate(rate: number | string): number {
  if (typeof rate === 'number') return rate;
  const [count, unit] = rate.split('/') as [string, 's' | 'm' | 'h'];
  return Number(count) / { s: 1, m: 60, h: 3600 }[unit];
}

const sha256 = (key: string): string => createHash('sha256').update(key).digest('hex');

/** The keys of `keys_file` (a YAML list like `keys`); readability was checked by checkSemantics. */
export function readKeysFile(path: string): RawApiKey[] {
  return parseYaml(readFileSync(path, 'utf8')) as RawApiKey[];
}

function auth(raw: NonNullable<RawRoute['auth']>, baseDir: string): AuthConfig {
  const forward: IdentityForwarding = {
    ...(raw.forward?.subject ? { subjectHeader: raw.forward.subject } : {}),
    claimHeaders: Object.entries(raw.forward?.claims ?? {}),
  };
  if (raw.api_key) {
    const k = raw.api_key;
    const listed = [...(k.keys ?? []), ...(k.keys_file ? readKeysFile(resolve(baseDir, k.keys_file)) : [])];
    return {
      type: 'api_key',
      keys: listed.map((e) => ({ name: e.name, sha256: (e.sha256 ?? sha256(e.key!)).toLowerCase(), scopes: e.scopes ?? [] })),
      header: k.header,
      ...(k.query ? { query: k.query } : {}),
      forward,
    };
  }
  if (raw.jwt) {
    const j = raw.jwt;
    const list = (v: string | string[] | undefined) => (v === undefined ? undefined : typeof v === 'string' ? [v] : v);
    const issuer = list(j.issuer);
    const audience = list(j.audience);
    return {
      type: 'jwt',
      jwt: {
        algorithms: j.algorithms ?? (j.secret !== undefined ? ['HS256'] : ['RS256', 'ES256', 'EdDSA']),
        ...(j.secret !== undefined ? { secret: j.secret } : {}),
        ...(j.public_key_file ? { publicKeyPem: readFileSync(resolve(baseDir, j.public_key_file), 'utf8') } : {}),
        ...(j.jwks_file ? { jwksFile: resolve(baseDir, j.jwks_file) } : {}),
        ...(j.jwks_url ? { jwksUrl: j.jwks_url } : {}),
        ...(issuer ? { issuer } : {}),
        ...(audience ? { audience } : {}),
        clockSkewMs: parseDuration(j.clock_skew),
        requireExp: j.require_exp,
        from: j.from,
      },
      forward,
    };
  }
  if (raw.mtls) {
    // The verified certificate goes upstream in these headers unless the route names its own.
    const mtlsForward = raw.forward ? forward : { subjectHeader: CLIENT_CERT_HEADERS.subject, claimHeaders: [['san', CLIENT_CERT_HEADERS.san]] as Array<[string, string]> };
    return { type: 'mtls', subjects: raw.mtls.subjects ?? [], sans: raw.mtls.sans ?? [], forward: mtlsForward };
  }
  const b = raw.basic!;
  return { type: 'basic', realm: b.realm, users: b.users.map((u) => ({ name: u.name, hash: u.hash })), forward };
}

/** Addresses were checked by checkSemantics; a failure here is a bug. */
function hostPort(text: string): HostPort {
  const parsed = parseHostPort(text);
  if (typeof parsed === 'string') throw new SwitchyardError(ErrorCode.ConfigInvalid, `unchecked address ${text}: ${parsed}`);
  return parsed;
}

/**
 * Status classes ("2xx") become every code in them, so health checks need a
 * single `includes` test: the default ["2xx", "3xx"] is 200..399.
 */
export function expandStatuses(spec: NonNullable<RawUpstream['health']>['expect_status']): number[] {
  const codes = new Set<number>();
  for (const item of Array.isArray(spec) ? spec : [spec]) {
    if (typeof item === 'number') {
      codes.add(item);
    } else {
      const base = Number(item[0]) * 100;
      for (let code = base; code < base + 100; code++) codes.add(code);
    }
  }
  return [...codes].sort((a, b) => a - b);
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
