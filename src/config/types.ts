// The validated, normalised configuration every module reads. YAML keys are
// snake_case; here they are camelCase, durations are milliseconds and sizes
// bytes. Produced only by config/load.ts, then deep-frozen.
//
// The shapes are written by hand where normalising changes them (names,
// units, defaults resolved) and taken from the schema where it does not;
// every set of allowed words comes from the schema's lists (schema.ts).
// test/unit/config-shapes.ts fails to typecheck when a schema key has no
// counterpart here.

import type {
  ACME_CHALLENGES,
  BALANCE_ALGORITHMS,
  DNS_RECORD_TYPES,
  ESCAPED_SLASHES,
  HEALTH_CHECK_TYPES,
  JWT_ALGORITHMS,
  LISTEN_MODES,
  PROXY_PROTOCOL_VERSIONS,
  RATE_FAIL_MODES,
  RATE_SCOPES,
  RawConfig,
  SCHEDULING_POLICIES,
  TLS_VERSIONS,
  UNDERSCORE_POLICIES,
} from './schema.js';

/** One of the words of a schema list. */
type OneOf<List extends readonly string[]> = List[number];

export type BalanceAlgorithm = OneOf<typeof BALANCE_ALGORITHMS>;
/** How new connections are spread over workers (node:cluster scheduling policy). */
export type SchedulingPolicy = OneOf<typeof SCHEDULING_POLICIES>;

export interface ListenConfig {
  host: string;
  port: number;
}

/** A proxy listener: where, and how many connections the kernel queues before they are accepted. */
export interface ProxyListenConfig extends ListenConfig {
  backlog: number;
  // L4 (issue 13) ---------------------------------------------------------
  /** http: the HTTP data path; tcp: bytes relayed to `upstream` (L4). */
  mode: OneOf<typeof LISTEN_MODES>;
  /** mode tcp: where connections go. */
  upstream?: string;
  /** A PROXY v1/v2 header from a trusted_proxies peer opens every connection; it names the client. */
  acceptProxy: boolean;
  /** The whole PROXY header must arrive within this long. */
  proxyTimeoutMs: number;
  /** mode tcp: a connection with no byte either way for this long is closed. */
  idleTimeoutMs: number;
  /** Connections this listener holds per worker (0: none); defaults to limits.max_connections. */
  maxConnections: number;
  /** HTTP/2 to clients as well: h2c with prior knowledge on a plain listener, ALPN h2 on a TLS one. */
  http2: boolean;
  /** Terminate TLS on this listener. */
  tls?: ListenerTlsConfig;
  /** Not a proxy: answers every request with a 308 to https. */
  redirectHttps?: RedirectHttpsConfig;
}

/** Limits of one client's HTTP/2 session (listeners with http2: true). */
export interface Http2Config {
  maxConcurrentStreams: number;
  initialWindowSize: number;
  /** Streams the client may reset within 10 s (rapid reset, CVE-2023-44487). */
  maxResets: number;
  /** PING and SETTINGS frames the client may send within 10 s. */
  maxControlFrames: number;
  maxHeaderPairs: number;
}

// ---- TLS (issue 12) ----
export type TlsVersion = OneOf<typeof TLS_VERSIONS>;

/** A certificate chain and its key, as absolute file paths (re-read when they change). */
export interface CertificateFiles {
  cert: string;
  key: string;
}

export interface HstsConfig {
  maxAgeSeconds: number;
  includeSubdomains: boolean;
  preload: boolean;
}

export interface ListenerTlsConfig {
  /** certificates[0] is the default, for names no certificate carries (and clients without SNI). */
  certificates: CertificateFiles[];
  minVersion: TlsVersion;
  /** OpenSSL cipher string (TLS 1.3 suites and TLS 1.2 ciphers). */
  ciphers: string;
  hsts?: HstsConfig;
  /** CA file: client certificates are requested and verified against it. */
  clientCa?: string;
  reloadIntervalMs: number;
  handshakeTimeoutMs: number;
  /** Certificates obtained and renewed by the primary (ACME), served beside `certificates`. */
  acme?: AcmeConfig;
}

export interface RedirectHttpsConfig {
  /** The https port redirected to (omitted from the URL when 443). */
  port: number;
  /** Hosts redirected (exact or "*.example.com"); absent: the TLS listeners' certificate names. */
  hosts?: string[];
}

/** How a worker talks TLS to an upstream's servers (and health checks do too). */
export interface UpstreamTlsConfig {
  /** Absolute paths. */
  ca?: string;
  servername?: string;
  verify: boolean;
  cert?: string;
  key?: string;
}

export interface TlsTicketsConfig {
  /** Ticket keys are replaced this often; the previous key still decrypts for one more period. */
  rotateMs: number;
}
// ---- end TLS ----

// ---- ACME (issue 12, item 3) ----------------------------------------------
/** Certificates obtained and renewed by the primary from an RFC 8555 CA. */
export interface AcmeConfig {
  directory: string;
  email: string;
  /** Lower-cased, in config order; the first names the certificate. */
  domains: string[];
  /** Absolute directory for the account key and the certificates (0700). */
  storage: string;
  /** PEM text of extra CAs trusted for the directory's HTTPS (read from `ca`). */
  caPem?: string;
  retryMinMs: number;
  retryMaxMs: number;
  /** The challenge the CA is asked to validate. */
  challenge: OneOf<typeof ACME_CHALLENGES>;
}
// ---- end ACME ---------------------------------------------------------------

/** The file's `admin` mapping as it is (host, port, token): normalising changes nothing in it. */
export type AdminConfig = NonNullable<RawConfig['admin']>;

/** The file's `logging` mapping as it is (level, access, format). Format auto: pretty when standard output is a terminal, JSON lines otherwise. */
export type LoggingConfig = RawConfig['logging'];

export interface LimitsConfig {
  maxHeaderBytes: number;
  maxUrlBytes: number;
  maxBodyBytes: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  /** Idle time allowed on a client keep-alive connection between requests. */
  keepaliveTimeoutMs: number;
  /** Client connections per worker; 0: no cap. */
  maxConnections: number;
}

export interface ServerConfig {
  /** "host:port" exactly as written; also the server's identity for hashing. */
  address: string;
  host: string;
  port: number;
  weight: number;
  /** DSR method l2: the server's MAC (lower case), where frames for the VIP are rewritten to. */
  mac?: string;
}

export interface HealthConfig {
  /** http: GET path, status checked; tcp (L4, issue 13): the connection opens. */
  type: OneOf<typeof HEALTH_CHECK_TYPES>;
  path: string;
  intervalMs: number;
  timeoutMs: number;
  rise: number;
  fall: number;
  expectStatus: number[];
  /** Ramp time of a server's weight after it comes back up; absent = no ramp. */
  slowStartMs?: number;
}

export interface HashConfig {
  /** "source-ip" | "header:NAME" | "cookie:NAME" */
  key: string;
  balanceFactor?: number;
}

export interface UpstreamTimeouts {
  connectMs: number;
  responseMs: number;
  idleMs: number;
  /** Idle time allowed on an upgraded connection (a tunnel) in either direction. */
  tunnelIdleMs: number;
  /** Cap on a whole exchange, retries included; absent: none. */
  totalMs?: number;
}

/** Passive health (outlier detection), counted in shared memory across workers. */
export interface OutlierConfig {
  consecutiveFailures: number;
  /** Ejection time for the first ejection; doubles with each repeat up to maxEjectionMs. */
  baseEjectionMs: number;
  maxEjectionMs: number;
  /** Never eject a server if that would leave more than this share of the upstream ejected. */
  maxEjectionPercent: number;
}

export interface RetryBudgetConfig {
  /** Retries may add at most this percentage of the upstream's requests... */
  percent: number;
  /** ...or this many per second, whichever is larger. */
  minPerSecond: number;
}

/** Servers found in DNS (issue 14), re-resolved by the primary (src/discovery/dns.ts). */
export interface DnsDiscoveryConfig {
  name: string;
  /** A and AAAA: the servers' port; SRV records carry their own. */
  port?: number;
  type: OneOf<typeof DNS_RECORD_TYPES>;
  /** The longest a change goes unseen; shorter TTLs are honoured down to 1 s. */
  intervalMs: number;
  /** DNS servers to ask ("host" or "host:port"); absent: the system's. */
  resolvers?: string[];
}

export interface UpstreamConfig {
  name: string;
  balance: BalanceAlgorithm;
  hash: HashConfig;
  /** With `discovery`: the last good set the primary resolved (empty in a config just loaded from the file). */
  servers: ServerConfig[];
  discovery?: DnsDiscoveryConfig;
  health?: HealthConfig;
  retries: number;
  retryBudget: RetryBudgetConfig;
  /** Request bodies up to this size are kept so a failed attempt can be replayed. */
  retryBodyBytes: number;
  /** POST and PATCH with an Idempotency-Key header may be retried (issue 14). */
  retryIdempotencyKey: boolean;
  outlier: OutlierConfig;
  timeouts: UpstreamTimeouts;
  /** Idle keep-alive connections kept per server per worker; absent ("auto"): no count cap, only timeouts.idle. */
  maxIdlePerServer?: number;
  /** L4 (issue 13): a PROXY protocol header of this version opens every connection to a server. */
  proxyProtocol?: OneOf<typeof PROXY_PROTOCOL_VERSIONS>;
  tls?: UpstreamTlsConfig;
}

export interface RouteConfig {
  /** Stable name for logs and metrics: "host+path" unless given. */
  name: string;
  /** Exact host, "*.example.com" (any subdomain), or "*". */
  host: string;
  path: string;
  /** Upper-case methods the route takes; absent: any. */
  methods?: string[];
  /** Headers that must be present with exactly these values (names lower-cased). */
  headers?: Record<string, string>;
  upstream: string;
  /** Remove the matched path prefix before forwarding ("/api/x" → "/x"). */
  stripPrefix: boolean;
  /** Replace the matched path prefix with this one. */
  rewrite?: string;
  requestHeaders?: HeaderRules;
  responseHeaders?: HeaderRules;
  /** Per-route overrides of the upstream's settings. */
  timeouts?: Partial<UpstreamTimeouts>;
  retries?: number;
  /** Lower-case Upgrade protocols this route tunnels (default: websocket). */
  upgrades: string[];
  auth?: AuthConfig;
  authorize?: AuthorizeConfig;
  rateLimit?: RateLimitConfig;
  cors?: CorsConfig;
}

/** Header rewriting: remove, then set (replace), then add (append). Names as written. */
export interface HeaderRules {
  set: Array<[string, string]>;
  add: Array<[string, string]>;
  remove: string[];
}

export type AuthConfig =
  | { type: 'api_key'; keys: ApiKeyEntry[]; header?: string; query?: string; forward: IdentityForwarding }
  | { type: 'jwt'; jwt: JwtConfig; forward: IdentityForwarding }
  | { type: 'basic'; realm: string; users: BasicUser[]; forward: IdentityForwarding }
  /** A verified client certificate (listener tls.client_ca), optionally one of these subjects or SANs. */
  | { type: 'mtls'; subjects: string[]; sans: string[]; forward: IdentityForwarding };

/** An API key by name; the key itself is kept only as its SHA-256 (hex). */
export interface ApiKeyEntry {
  name: string;
  sha256: string;
  scopes: string[];
}

export interface JwtConfig {
  algorithms: Array<OneOf<typeof JWT_ALGORITHMS>>;
  /** HS256 shared secret. */
  secret?: string;
  /** PEM public key (RS256, ES256, EdDSA). */
  publicKeyPem?: string;
  /** A JWKS document on disk. */
  jwksFile?: string;
  /** A JWKS URL, fetched, cached and refreshed with a bounded wait. */
  jwksUrl?: string;
  issuer?: string[];
  audience?: string[];
  clockSkewMs: number;
  /** Tokens without `exp` are refused unless this is false; absent means true. */
  requireExp?: boolean;
  /** Where the token is read: "authorization" (Bearer) by default, or header:NAME / cookie:NAME / query:NAME. */
  from: string;
}

/** A user for Basic auth: a bcrypt hash ($2a$/$2b$/$2y$) or scrypt in "scrypt$N$r$p$salt-b64$hash-b64" form. */
export interface BasicUser {
  name: string;
  hash: string;
}

/** Headers that carry the authenticated identity upstream; incoming copies are always removed. */
export interface IdentityForwarding {
  /** Key name, JWT `sub` or user name. */
  subjectHeader?: string;
  /** JWT claim → header name. */
  claimHeaders: Array<[string, string]>;
}

export interface AuthorizeConfig {
  /** All required (from the JWT `scope`/`scp` claim or the API key's scopes). */
  scopes?: string[];
  /** Claim → accepted values (a claim holding a list passes if any element is accepted). */
  claims?: Record<string, string[]>;
  /** Client address must be in one of these CIDRs / addresses. */
  cidrs?: string[];
  methods?: string[];
}

export interface RateLimitConfig {
  /** Tokens per second. */
  ratePerSecond: number;
  burst: number;
  /** "client-ip" | "api-key" | "jwt-sub" | "header:NAME" */
  key: string;
  /** instance: this instance's shared-memory buckets; global: one bucket in Redis for every instance. */
  scope: OneOf<typeof RATE_SCOPES>;
  /** scope global, while Redis cannot answer: admit, refuse, or this instance's bucket at rate / redis.instances. */
  fail: OneOf<typeof RATE_FAIL_MODES>;
}

/** Redis, for state shared by several instances (global rate limits). */
export interface RedisConfig {
  /** redis:// or rediss:// (TLS), with user and password when Redis wants them. */
  url: string;
  /** PEM CA certificates for rediss://, read at load. */
  caPem?: string;
  /** Per call: past it the call has failed. */
  timeoutMs: number;
  /** Instances sharing the limits: fail: local allows each rate / instances. */
  instances: number;
  keyPrefix: string;
}

/** Failed authentication attempts allowed per client address, over every route. */
export interface AuthFailuresConfig {
  ratePerSecond: number;
  burst: number;
}

export interface CorsConfig {
  /** Exact origins, "https://*.example.com" wildcards, or "*". */
  origins: string[];
  methods: string[];
  headers: string[];
  exposeHeaders: string[];
  credentials: boolean;
  maxAgeSeconds?: number;
}

/** A request header name with "_": dropped, refused with 400, or forwarded. */
export type UnderscorePolicy = OneOf<typeof UNDERSCORE_POLICIES>;

export interface Config {
  /** Absolute path of the file this came from. */
  file: string;
  /** Resolved: "auto" becomes os.availableParallelism(). */
  workers: number;
  scheduling: SchedulingPolicy;
  listen: ProxyListenConfig[];
  /** Absent: no admin API and no dashboard (SIGHUP still reloads). */
  admin?: AdminConfig;
  logging: LoggingConfig;
  limits: LimitsConfig;
  trustedProxies: string[];
  headersWithUnderscores: UnderscorePolicy;
  shutdownTimeoutMs: number;
  /** After a reload, how long a replaced worker keeps serving its open tunnels before it closes them and exits. */
  tunnelMaxAgeMs: number;
  upstreams: Record<string, UpstreamConfig>;
  routes: RouteConfig[];
  /** How request paths are read for matching: %2F and %5C as "/", or refused. */
  normalize: { escapedSlashes: OneOf<typeof ESCAPED_SLASHES> };
  /** Addresses on which the primary itself runs tiny demo backends. */
  demoBackends: ListenConfig[];
  /** Shared-memory token buckets for rate limits: a fixed table, oldest evicted. */
  rateLimitSlots: number;
  authFailures: AuthFailuresConfig;
  redis?: RedisConfig;
  http2: Http2Config;
  tlsTickets: TlsTicketsConfig;
  /** L4 Direct Server Return entries, served by the forwarder process (empty: none runs). */
  dsr: DsrConfig[];
}

// ---- DSR (issue 13, item 2) ----------------------------------------------------
/** One VIP balanced by Direct Server Return: the forwarder sees client-to-server packets only. */
export interface DsrConfig {
  interface: string;
  /** IPv4 only. */
  vip: string;
  ports: number[];
  upstream: string;
  /** l2: the frame's destination MAC becomes the server's; l3: its destination IP, with `dscp` marked. */
  method: 'l2' | 'l3';
  dscp?: number;
  threads: number;
  flowTableSize: number;
  flowIdleMs: number;
}
// ---- end DSR -------------------------------------------------------------------
