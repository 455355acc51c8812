// The JSON schema of the YAML file (snake_case, as users write it), compiled
// once with ajv, and the translation of ajv's errors into Issues that name a
// key path and say what was expected. Defaults live here, next to each key.
//
// Every leaf schema carries `expected`: the phrase used in error messages
// ("expected <expected>, got <value>"), so messages read the same whatever
// keyword failed (type, pattern, minimum...).
//
// The schema is the one place a key's shape is written: RawConfig (the
// validated file) is derived from it by json-schema-to-ts's FromSchema
// (types only: nothing of it runs, and ajv still gets this very object), and
// the word lists below (LOG_LEVELS...) are what types.ts's enums are made of.
//
// How to add a key now:
//  1. Here: the key in its mapping, built with the helpers (duration(), int(),
//     oneOf(LIST, default), object({...}, { required, default }), list()...);
//     a new set of words is an exported `as const` list. RawConfig follows.
//  2. types.ts: the key in Config's shape, camelCase (a duration becomes
//     `...Ms`); enums as OneOf<typeof LIST>.
//  3. normalise.ts (fill it in), semantic.ts (checks the schema cannot
//     express), a line in descriptions.ts, then
//     `node dist/cli.js help config > docs/config.md`; new top-level or
//     mapping keys also change the "expected one of: ..." lists that
//     test/unit/config.test.ts asserts.
// test/unit/config-shapes.ts fails typecheck, naming the key, until step 2 is
// done; a key Config spells differently goes in that file's renames.

import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Ajv, ErrorObject, ValidateFunction } from 'ajv';
import type { FromSchema } from 'json-schema-to-ts';
import { closest, distance } from 'fastest-levenshtein';
import { DURATION_PATTERN, SIZE_PATTERN } from './duration.js';
import { describeValue } from './errors.js';
import type { Issue, PathSegment } from './errors.js';

type Schema = Record<string, unknown>;

// Each helper's return type is the part of its schema that decides the shape
// of the data (type, enum, items, properties, required, additionalProperties,
// and whether a default fills the key in), written as literal types, so
// FromSchema can derive RawConfig from `typeof configSchema`. The other
// keywords (pattern, minimum, expected...) are checked by ajv at run time and
// do not change the type. The run-time objects are exactly what they were
// before the types were derived (same keys, same order: same validator).
/** `default` appears in the type only when one is given: after validation such a key is always there. */
type WithDefault<S, D> = [D] extends [undefined] ? S : S & { readonly default: D };
type StringOrInteger = { readonly type: readonly ['string', 'integer'] };

const duration = <D extends string | undefined = undefined>(def?: D) =>
  ({
    type: ['string', 'integer'],
    pattern: DURATION_PATTERN,
    minimum: 1,
    ...(def === undefined ? {} : { default: def }),
    expected: 'a positive duration like 500ms, 2s, 1m, 1h or integer milliseconds',
  }) as unknown as WithDefault<StringOrInteger, D>;
const size = (def: number) =>
  ({
    type: ['string', 'integer'],
    pattern: SIZE_PATTERN,
    minimum: 1,
    default: def,
    expected: 'a positive size like 16kb, 10mb or integer bytes',
  }) as unknown as WithDefault<StringOrInteger, number>;
const int = <D extends number | undefined = undefined>(min: number, max: number, def?: D) =>
  ({
    type: 'integer',
    minimum: min,
    maximum: max,
    ...(def === undefined ? {} : { default: def }),
    expected: `an integer ${min}..${max}`,
  }) as unknown as WithDefault<{ readonly type: 'integer' }, D>;
const oneOf = <const V extends readonly string[], D extends V[number] | undefined = undefined>(values: V, def?: D) =>
  ({
    type: 'string',
    enum: values,
    ...(def === undefined ? {} : { default: def }),
    expected: `one of: ${values.join(', ')}`,
  }) as unknown as WithDefault<{ readonly type: 'string'; readonly enum: V }, D>;
const host = <D extends string | undefined = undefined>(def?: D) =>
  ({
    type: 'string',
    minLength: 1,
    ...(def === undefined ? {} : { default: def }),
    expected: 'a host name or IP address',
  }) as unknown as WithDefault<{ readonly type: 'string' }, D>;
const port = <D extends number | undefined = undefined>(def?: D) => ({ ...int(1, 65535, def), expected: 'a port 1..65535' });
const hostPort = { type: 'string', minLength: 1, expected: 'host:port' } as const;
/**
 * An integer, or the word "auto" (the default). Typed as what the pattern
 * lets through (a number or "auto"), which `type` alone cannot say.
 */
const intOrAuto = (min: number, max: number) =>
  ({
    type: ['integer', 'string'],
    minimum: min,
    maximum: max,
    pattern: '^auto$',
    default: 'auto',
    expected: `an integer ${min}..${max} or "auto"`,
  }) as unknown as { readonly anyOf: readonly [{ readonly type: 'integer' }, { readonly const: 'auto' }]; readonly default: 'auto' };

/** A mapping with a fixed set of keys; anything else is an unknown key. */
function object<const P extends Record<string, object>, const R extends readonly (keyof P & string)[] = readonly [], D = undefined>(
  properties: P,
  opts: { required?: R; default?: D } = {},
) {
  return {
    type: 'object',
    additionalProperties: false,
    properties,
    ...(opts.required ? { required: opts.required } : {}),
    ...('default' in opts ? { default: opts.default } : {}),
    expected: 'a mapping',
  } as unknown as WithDefault<{ readonly type: 'object'; readonly additionalProperties: false; readonly properties: P; readonly required: R }, D>;
}
const list = <const I extends object, D = undefined>(items: I, minItems: number, expected: string, def?: D) =>
  ({
    type: 'array',
    items,
    minItems,
    ...(def === undefined ? {} : { default: def }),
    expected,
  }) as unknown as WithDefault<{ readonly type: 'array'; readonly items: I }, D>;

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const LOG_FORMATS = ['auto', 'pretty', 'json'] as const;
export const HEALTH_CHECK_TYPES = ['http', 'tcp'] as const;
/** A request header name with "_": dropped (nginx's default), refused with 400, or forwarded. */
export const UNDERSCORE_POLICIES = ['drop', 'reject', 'allow'] as const;
export const BALANCE_ALGORITHMS = ['round-robin', 'least-conn', 'source', 'random'] as const;
export const SCHEDULING_POLICIES = ['kernel', 'round-robin'] as const;
export const MAX_WORKERS = 64;
export const ESCAPED_SLASHES = ['decode', 'reject'] as const;
export const LISTEN_MODES = ['http', 'tcp'] as const;
export const PROXY_PROTOCOL_VERSIONS = ['v1', 'v2'] as const;
export const DNS_RECORD_TYPES = ['A', 'AAAA', 'SRV'] as const;
export const DSR_METHODS = ['l2', 'l3'] as const;
/** Upstream names appear in logs, metrics labels and the admin API. */
const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]*$';
// header names are HTTP tokens (RFC 9110); cookie names likewise, minus nothing useful.
const HASH_KEY_PATTERN = "^(source-ip|header:[!#$%&'*+.^_`|~0-9A-Za-z-]+|cookie:[!#$%&'*+.^_`|~0-9A-Za-z-]+)$";
/** A status code, or a class of them written "2xx". */
const STATUS_ITEM = { type: ['integer', 'string'], minimum: 100, maximum: 599, pattern: '^[1-5]xx$' } as const;
const STATUS_EXPECTED = 'an HTTP status 100..599 or a class like "2xx"';

// ---- TLS (issue 12: TLS listeners, session tickets, TLS to upstreams, mTLS) ----
export const TLS_VERSIONS = ['TLSv1.2', 'TLSv1.3'] as const;
const pemFile = (what: string) => ({ type: 'string', minLength: 1, expected: `a ${what} PEM file path` }) as const;
// ---- ACME (issue 12, item 3): listen[].tls.acme -------------------------------
/** RFC 8555 directory URLs are HTTPS; a domain is a DNS name (HTTP-01 cannot prove a wildcard or an IP). */
const ACME_DOMAIN_PATTERN = '^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\\.)+[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$';
export const ACME_CHALLENGES = ['http-01', 'tls-alpn-01'] as const;
const acme = object(
  {
    directory: { type: 'string', pattern: '^https://[^\\s]+$', expected: 'the https:// URL of the ACME directory' },
    email: { type: 'string', pattern: '^[^@\\s]+@[^@\\s]+$', expected: 'a contact e-mail address' },
    domains: list({ type: 'string', pattern: ACME_DOMAIN_PATTERN, expected: 'a DNS name like example.com (no wildcard, no IP address)' }, 1, 'a list of at least one domain name'),
    // Keys and certificates are kept here (0700 directory, 0600 files); default: acme/ beside the config file.
    storage: { type: 'string', minLength: 1, expected: 'a directory path' },
    // Extra trust for the directory's own HTTPS (a test CA such as pebble's minica), besides the system roots.
    ca: { type: 'string', minLength: 1, expected: 'a PEM file of CA certificates' },
    // Backoff between failed attempts to obtain or renew: doubling from min to max.
    retry: object({ min: duration('1m'), max: duration('1h') }, { default: {} }),
    // How the CA checks control of each domain: HTTP-01 on a plain listener, or TLS-ALPN-01 (RFC 8737) on this TLS listener.
    challenge: oneOf(ACME_CHALLENGES, 'http-01'),
  },
  { required: ['directory', 'email', 'domains'] },
);

// ---- end ACME -----------------------------------------------------------------

const listenerTls = object(
  {
    // SNI picks among them by the names in each certificate (exact, then *.example.com); `default: true` (or the first) answers other names.
    // Absent or empty with `acme` (the semantic check asks for one of them).
    certificates: list(
      object({ cert: pemFile('certificate'), key: pemFile('private key'), default: { type: 'boolean', expected: 'true or false' } }, { required: ['cert', 'key'] }),
      0,
      'a list of { cert, key }',
      [],
    ),
    // Certificates the primary obtains and renews from an ACME CA (README, "Automatic certificates").
    acme,
    min_version: oneOf(TLS_VERSIONS, 'TLSv1.2'),
    // OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are fixed: all three are AEADs); absent: ECDHE with AES-GCM or ChaCha20-Poly1305 only.
    ciphers: { type: 'string', minLength: 1, pattern: '^[A-Za-z0-9:_+!@=-]+$', expected: 'an OpenSSL cipher list like ECDHE-RSA-AES128-GCM-SHA256:...' },
    hsts: object({ max_age: duration('8760h'), include_subdomains: { type: 'boolean', default: false, expected: 'true or false' }, preload: { type: 'boolean', default: false, expected: 'true or false' } }),
    // Request a client certificate verified against these CAs (mTLS); routes decide whether one is required (auth.mtls).
    client_ca: pemFile('CA certificate'),
    // How often the certificate files are checked for changes (a changed file is loaded without a restart).
    reload_interval: duration('5s'),
    handshake_timeout: duration('10s'),
  },
);
// A plain listener that answers every request with 308 to https://HOST:port/path?query, for allowed hosts only.
const redirectHttps = object(
  {
    port: port(443),
    // Hosts redirected; absent: the names of the TLS listeners' certificates. Any other Host gets 400 (never an open redirect).
    hosts: list({ type: 'string', minLength: 1, expected: 'a host name or "*.example.com"' }, 1, 'a list of host names'),
  },
);
const upstreamTls = object({
  // CA bundle that signs the servers' certificates; absent: Node's bundled roots.
  ca: pemFile('CA certificate'),
  // SNI and the name the certificate must carry; absent: the server's host.
  servername: { ...host(), expected: 'a host name' },
  verify: { type: 'boolean', default: true, expected: 'true or false' },
  // A client certificate presented to the upstream.
  cert: pemFile('certificate'),
  key: pemFile('private key'),
});
const mtls = object({
  // Accepted subjects, written as RFC 2253 names ("CN=client,O=Example"); accepted SANs ("DNS:a.example", "URI:spiffe://x", "email:a@b", "IP Address:10.0.0.1").
  subjects: list({ type: 'string', minLength: 1, expected: 'a subject like CN=client,O=Example' }, 0, 'a list of subjects'),
  sans: list({ type: 'string', pattern: '^(DNS|URI|email|IP Address):.+$', expected: 'a SAN like DNS:client.example, URI:spiffe://x, email:a@b or IP Address:10.0.0.1' }, 0, 'a list of SANs'),
});
// Session-ticket keys: made by the primary, shared by every worker, replaced on this schedule (the previous one still decrypts).
const tlsTickets = object({ rotate: duration('1h') }, { default: {} });
// ---- end TLS ----

const server = object(
  {
    address: hostPort,
    weight: int(1, 1000, 1),
    // DSR (issue 13): the server's MAC on the balancer's segment, where `dsr` entries send the VIP's frames.
    mac: { type: 'string', pattern: '^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$', expected: 'a MAC address like 02:77:00:00:00:11' },
  },
  { required: ['address'] },
);

const health = object({
  // L4 (issue 13): tcp checks only that a connection opens (servers that speak no HTTP).
  type: oneOf(HEALTH_CHECK_TYPES, 'http'),
  path: { type: 'string', pattern: '^/', default: '/healthz', expected: 'a path starting with "/"' },
  interval: duration('2s'),
  timeout: duration('1s'),
  rise: int(1, 100, 2),
  fall: int(1, 100, 3),
  expect_status: {
    ...STATUS_ITEM,
    type: ['integer', 'string', 'array'],
    items: { ...STATUS_ITEM, expected: STATUS_EXPECTED },
    minItems: 1,
    default: ['2xx', '3xx'],
    expected: `${STATUS_EXPECTED}, or a list of them`,
  },
  // No default: absent means a recovered server takes its full weight at once.
  slow_start: duration(),
});


const upstream = object(
  {
    balance: oneOf(BALANCE_ALGORITHMS, 'round-robin'),
    hash: object(
      {
        key: { type: 'string', pattern: HASH_KEY_PATTERN, default: 'source-ip', expected: 'source-ip, header:NAME or cookie:NAME' },
        balance_factor: { type: 'number', exclusiveMinimum: 1, expected: 'a number greater than 1' },
      },
      { default: {} },
    ),
    // A list, or (issue 14) servers found in DNS: { dns, port, type, interval, resolvers }.
    servers: {
      type: ['array', 'object'],
      items: server,
      minItems: 1,
      properties: {
        dns: { type: 'string', minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9])?\\.?$', expected: 'a DNS name like api.internal or _http._tcp.api.internal' },
        port: port(),
        type: oneOf(DNS_RECORD_TYPES, 'A'),
        // The longest a DNS change goes unseen; shorter record TTLs are honoured down to 1s.
        interval: duration('30s'),
        // DNS servers to ask (default: the system's, from /etc/resolv.conf).
        resolvers: list({ type: 'string', minLength: 1, expected: 'a DNS server address like 10.0.0.2 or 127.0.0.1:5353' }, 1, 'a list of DNS server addresses'),
      },
      additionalProperties: false,
      required: ['dns'],
      expected: 'a list of at least one server, or { dns, port, type, interval } to find them in DNS',
    },
    health,
    retries: int(0, 10, 1),
    // Retries may add at most `percent` of the upstream's requests (over the last 10 s, all workers), or `min_per_second`.
    retry_budget: object({ percent: int(0, 100, 20), min_per_second: int(0, 100000, 5) }, { default: {} }),
    // Request bodies up to this size are kept until the response starts, so a failed attempt can be replayed.
    retry_body_bytes: { ...size(65536), minimum: 0, expected: 'a size like 64kb, or integer bytes (0: never replay a body)' },
    // Issue 14: POST and PATCH carrying an Idempotency-Key header are retried like idempotent methods.
    retry_idempotency_key: { type: 'boolean', default: true, expected: 'true or false' },
    // Passive health: consecutive failures (connect errors, resets, timeouts, 5xx) from any worker eject a server.
    outlier: object(
      {
        consecutive_failures: int(1, 100000, 5),
        base_ejection: duration('10s'),
        max_ejection: duration('5m'),
        max_ejection_percent: int(0, 100, 50),
      },
      { default: {} },
    ),
    timeouts: object(
      // total: optional cap on a whole exchange, retries included (504 before the response starts, abort after).
      // tunnel_idle: an upgraded connection (WebSocket) with no byte either way for this long is closed.
      { connect: duration('2s'), response: duration('30s'), idle: duration('60s'), total: duration(), tunnel_idle: duration('10m') },
      { default: {} },
    ),
    // auto: no count cap; idle connections age out after timeouts.idle (the pool reuses the most recent first).
    max_idle_per_server: intOrAuto(0, 100000),
    // L4 (issue 13): a PROXY protocol header opens every connection to the servers (tcp and http listeners alike).
    proxy_protocol: oneOf(PROXY_PROTOCOL_VERSIONS),
    tls: upstreamTls,
  },
  { required: ['servers'] },
);

const stringList = <D extends string[] | undefined = undefined>(expected: string, def?: D) =>
  list({ type: 'string', minLength: 1, expected }, 0, `a list of ${expected}s`, def);
/** A mapping of arbitrary names to strings (header names, claims). */
const stringMap = (expected: string) => ({
  type: 'object',
  additionalProperties: { type: 'string', expected },
  expected: `a mapping of names to ${expected}s`,
}) as const;
const stringOrList = (expected: string) => ({
  type: ['string', 'array'],
  minLength: 1,
  items: { type: 'string', minLength: 1, expected },
  expected: `${expected}, or a list of them`,
}) as const;
export const HEADER_NAME_PATTERN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";
const headerName = { type: 'string', pattern: HEADER_NAME_PATTERN, expected: 'a header name' } as const;
const headerRules = object({
  set: stringMap('header value'),
  add: stringMap('header value'),
  remove: list(headerName, 0, 'a list of header names'),
});
export const JWT_ALGORITHMS = ['HS256', 'RS256', 'ES256', 'EdDSA'] as const;
const apiKey = object({
  keys: list(
    object(
      {
        name: { type: 'string', minLength: 1, expected: 'a key name' },
        key: { type: 'string', minLength: 8, expected: 'the key itself (at least 8 characters)' },
        sha256: { type: 'string', pattern: '^[0-9a-fA-F]{64}$', expected: 'the hex SHA-256 of the key' },
        scopes: stringList('scope'),
      },
      { required: ['name'] },
    ),
    0,
    'a list of { name, key or sha256, scopes }',
  ),
  // A YAML file holding the same list as `keys`, relative to this config file.
  keys_file: { type: 'string', minLength: 1, expected: 'a file path' },
  header: { ...headerName, default: 'x-api-key' },
  query: { type: 'string', minLength: 1, expected: 'a query parameter name' },
});
const jwt = object({
  algorithms: list(oneOf(JWT_ALGORITHMS), 1, `a list of: ${JWT_ALGORITHMS.join(', ')}`),
  secret: { type: 'string', minLength: 16, expected: 'an HS256 secret of at least 16 characters' },
  public_key_file: { type: 'string', minLength: 1, expected: 'a PEM file path' },
  jwks_file: { type: 'string', minLength: 1, expected: 'a JWKS file path' },
  jwks_url: { type: 'string', pattern: '^https?://', expected: 'an http(s) URL' },
  issuer: stringOrList('an issuer'),
  audience: stringOrList('an audience'),
  clock_skew: { ...duration('30s'), minimum: 0, expected: 'a duration like 30s, or integer milliseconds' },
  // A token without exp would be good forever: refused unless the route accepts that.
  require_exp: { type: 'boolean', default: true, expected: 'true or false' },
  from: {
    type: 'string',
    pattern: "^(authorization|(header|cookie|query):[!#$%&'*+.^_`|~0-9A-Za-z-]+)$",
    default: 'authorization',
    expected: 'authorization, header:NAME, cookie:NAME or query:NAME',
  },
});
const basic = object(
  {
    realm: { type: 'string', minLength: 1, pattern: '^[^"\\\\]*$', default: 'switchyard', expected: 'a realm without quotes' },
    users: list(
      object(
        {
          name: { type: 'string', minLength: 1, pattern: '^[^:]*$', expected: 'a user name without ":"' },
          hash: { type: 'string', pattern: '^(\\$2[aby]\\$\\d\\d\\$.{53}|scrypt\\$\\d+\\$\\d+\\$\\d+\\$[A-Za-z0-9+/=]+\\$[A-Za-z0-9+/=]+)$', expected: 'a bcrypt hash ($2b$...) or scrypt$N$r$p$salt$hash' },
        },
        { required: ['name', 'hash'] },
      ),
      1,
      'a list of { name, hash }',
    ),
  },
  { required: ['users'] },
);
const auth = object({
  api_key: apiKey,
  jwt,
  basic,
  mtls,
  forward: object({ subject: headerName, claims: stringMap('header name') }),
});
const authorize = object({
  scopes: stringList('scope'),
  claims: { type: 'object', additionalProperties: stringOrList('an accepted value'), expected: 'a mapping of claims to accepted values' },
  cidrs: stringList('CIDR'),
  methods: stringList('method'),
});
export const RATE_SCOPES = ['instance', 'global'] as const;
export const RATE_FAIL_MODES = ['open', 'closed', 'local'] as const;
const RATE_PATTERN = '^\\d+(\\.\\d+)?/(s|m|h)$';
const rateLimit = object(
  {
    rate: { type: ['number', 'string'], exclusiveMinimum: 0, pattern: RATE_PATTERN, expected: 'requests per second, or a rate like 50/s, 3000/m, 100/h' },
    burst: int(1, 1_000_000),
    key: {
      type: 'string',
      pattern: "^(client-ip|api-key|jwt-sub|header:[!#$%&'*+.^_`|~0-9A-Za-z-]+)$",
      default: 'client-ip',
      expected: 'client-ip, api-key, jwt-sub or header:NAME',
    },
    // ---- global limits (issue 14): scope, and what happens while Redis cannot answer.
    scope: oneOf(RATE_SCOPES, 'instance'),
    fail: oneOf(RATE_FAIL_MODES, 'local'),
  },
  { required: ['rate'] },
);
const cors = object(
  {
    origins: list({ type: 'string', minLength: 1, expected: 'an origin like https://app.example.com, https://*.example.com or "*"' }, 1, 'a list of origins'),
    methods: stringList('method', ['GET', 'HEAD', 'POST']),
    headers: stringList('header name', []),
    expose_headers: stringList('header name', []),
    credentials: { type: 'boolean', default: false, expected: 'true or false' },
    max_age: duration(),
  },
  { required: ['origins'] },
);

const route = object(
  {
    name: { type: 'string', minLength: 1, expected: 'a non-empty string' },
    match: object(
      {
        host: { ...host('*'), expected: 'a host name, "*.example.com" or "*"' },
        path: { type: 'string', pattern: '^/', expected: 'a path starting with "/"' },
        methods: list({ type: 'string', pattern: '^[A-Za-z]+$', expected: 'an HTTP method' }, 1, 'a list of methods'),
        headers: stringMap('header value'),
      },
      { required: ['path'] },
    ),
    upstream: { type: 'string', minLength: 1, expected: 'the name of an upstream' },
    strip_prefix: { type: 'boolean', default: false, expected: 'true or false' },
    rewrite: { type: 'string', pattern: '^/', expected: 'a path prefix starting with "/"' },
    request_headers: headerRules,
    response_headers: headerRules,
    timeouts: object({ connect: duration(), response: duration(), idle: duration(), total: duration(), tunnel_idle: duration() }),
    retries: int(0, 10),
    // Upgrade protocols the route tunnels; any other Upgrade request is forwarded as a plain request.
    upgrades: list({ type: 'string', pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", expected: 'an Upgrade protocol name' }, 0, 'a list of Upgrade protocol names', ['websocket']),
    auth,
    authorize,
    rate_limit: rateLimit,
    cors,
  },
  { required: ['match', 'upstream'] },
);

// ---- DSR (issue 13, item 2): Direct Server Return from a forwarder process ----
/** Linux interface names: at most 15 bytes (IFNAMSIZ - 1), no "/", ":" or white space, not "." or "..". */
const INTERFACE_PATTERN = '^(?!\\.\\.?$)[A-Za-z0-9_.@+-]{1,15}$';
const dsrEntry = object(
  {
    interface: { type: 'string', pattern: INTERFACE_PATTERN, expected: 'a network interface name like eth0 (at most 15 characters)' },
    // The balancer's kernel must not own it: the forwarder answers ARP for it and hands its packets to the servers.
    vip: { type: 'string', minLength: 1, expected: 'an IPv4 address like 10.77.0.100' },
    // Destination ports balanced on the VIP; the servers listen on the same ports (the port is not rewritten).
    ports: { ...list(port(), 1, 'a list of 1..64 TCP ports'), maxItems: 64 },
    upstream: { type: 'string', minLength: 1, expected: 'the name of an upstream' },
    method: oneOf(DSR_METHODS, 'l2'),
    // l3: the DSCP value marked on forwarded packets; the servers' nftables rule maps it back to this VIP.
    dscp: int(0, 63),
    // Packet threads on the interface (PACKET_FANOUT spreads flows over them).
    threads: int(1, 64, 1),
    // Tracked connections; beyond it new ones are forwarded by the hash alone (counted as untracked): a server change may move them.
    flow_table_size: int(1024, 16_777_216, 262_144),
    // A tracked connection with no packet for this long is forgotten (IPVS's default for established TCP: 15 minutes).
    flow_idle_timeout: duration('15m'),
  },
  { required: ['interface', 'vip', 'ports', 'upstream'] },
);
// ---- end DSR ----

export const configSchema = object(
  {
    workers: intOrAuto(1, MAX_WORKERS),
    scheduling: oneOf(SCHEDULING_POLICIES, 'kernel'),
    // backlog: the kernel's queue of connections not yet accepted (capped by net.core.somaxconn). 4096, not
    // Node's and nginx's 511: a worker busy with its clients accepts a burst over several loop iterations
    // (src/proxy/accept-burst.ts), and a handshake the full queue drops costs its client a SYN retry after
    // 1 s, then 3 s. 4096 is the kernel's own ceiling since Linux 5.4 (HAProxy likewise sizes the queue by
    // the connections it will take, maxconn, not by a small constant).
    listen: list(
      object(
        {
          host: host('127.0.0.1'),
          port: port(),
          backlog: int(1, 65535, 4096),
          // L4 (issue 13): mode tcp relays bytes to `upstream`; accept_proxy reads a PROXY v1/v2 header from trusted_proxies first.
          mode: oneOf(LISTEN_MODES, 'http'),
          upstream: { type: 'string', minLength: 1, expected: 'the name of an upstream' },
          accept_proxy: { type: 'boolean', default: false, expected: 'true or false' },
          proxy_timeout: duration('5s'),
          idle_timeout: duration(),
          max_connections: int(0, 1_000_000),
          // http2 (HTTP/2 to clients, see `http2` below): on a plain listener HTTP/1.1 and h2c with prior knowledge, told apart by the
          // connection preface; on a TLS listener ALPN offers h2 before http/1.1.
          http2: { type: 'boolean', default: false, expected: 'true or false' },
          tls: listenerTls,
          redirect_https: redirectHttps,
        },
        { required: ['port'] },
      ),
      1,
      'a list of at least one { host, port }',
      [
      { host: '127.0.0.1', port: 8080 },
    ]),
    admin: object(
      {
        host: host('127.0.0.1'),
        port: port(9090),
        token: { type: 'string', minLength: 1, expected: 'a non-empty bearer token' },
      },
      { required: ['token'] },
    ),
    // format auto: human-readable lines when standard output is a terminal, JSON lines otherwise.
    logging: object({ level: oneOf(LOG_LEVELS, 'info'), access: { type: 'boolean', default: true, expected: 'true or false' }, format: oneOf(LOG_FORMATS, 'auto') }, { default: {} }),
    limits: object(
      {
        max_header_bytes: size(16384),
        max_url_bytes: size(8192),
        max_body_bytes: size(10485760),
        headers_timeout: duration('10s'),
        request_timeout: duration('60s'),
        keepalive_timeout: duration('60s'),
        // Client connections per worker; beyond it new ones are accepted and closed at once. 0: no cap.
        max_connections: int(0, 1_000_000, 0),
      },
      { default: {} },
    ),
    // A request header name with "_": dropped (nginx's default), the request refused (400), or forwarded.
    headers_with_underscores: oneOf(UNDERSCORE_POLICIES, 'drop'),
    trusted_proxies: list({ type: 'string', minLength: 1, expected: 'a CIDR or IP address' }, 0, 'a list of CIDRs or IP addresses', []),
    shutdown_timeout: duration('30s'),
    // Reloads (issue 14): how long a replaced worker keeps its open tunnels (WebSocket and other Upgrades).
    tunnel_max_age: duration('1h'),
    // Shared-memory token buckets for every rate-limited route together; when full, the least recently used go.
    rate_limit_slots: int(1024, 16_777_216, 65536),
    // Failed authentication attempts per client address, over all routes: a bucket in the same table.
    auth_failures: object(
      {
        rate: { type: ['number', 'string'], exclusiveMinimum: 0, pattern: RATE_PATTERN, default: '10/m', expected: 'attempts per second, or a rate like 10/m' },
        burst: int(1, 1_000_000, 10),
      },
      { default: {} },
    ),
    upstreams: {
      type: 'object',
      minProperties: 1,
      propertyNames: { pattern: NAME_PATTERN },
      additionalProperties: upstream,
      expected: 'a mapping of upstream names to upstreams',
    },
    routes: list(route, 1, 'a list of at least one route'),
    // How request paths are read for matching (README, Security): %2F and %5C as "/" (decode) or refused with 400 (reject).
    normalize: object({ escaped_slashes: oneOf(ESCAPED_SLASHES, 'decode') }, { default: {} }),
    demo_backends: list(hostPort, 0, 'a list of host:port addresses', []),
    // ---- shared state across instances (issue 14): global rate limits on Redis.
    redis: object(
      {
        url: { type: 'string', pattern: '^rediss?://', expected: 'a URL like redis://[user:password@]host:6379[/db] or rediss:// for TLS' },
        ca_file: { type: 'string', minLength: 1, expected: 'a PEM file of CA certificates (rediss:// only)' },
        // Per Redis call; past it the call counts as failed and the route's `fail` mode answers.
        timeout: duration('50ms'),
        // Instances sharing this Redis: fail: local gives each rate / instances.
        instances: int(1, 1000, 1),
        key_prefix: { type: 'string', minLength: 1, maxLength: 64, default: 'switchyard:', expected: 'a key prefix of 1..64 characters' },
      },
      { required: ['url'] },
    ),
    // HTTP/2 sessions of listeners with `http2: true`: what one client connection may ask for.
    http2: object(
      {
        // SETTINGS_MAX_CONCURRENT_STREAMS; a stream beyond it is refused.
        max_concurrent_streams: int(1, 10_000, 100),
        // Per-stream receive window: how much request body a client may send before Switchyard reads it.
        initial_window_size: { ...size(65535), expected: 'a size like 64kb or integer bytes (at most 2147483647)' },
        // Requests the client cancels (RST_STREAM) within 10 s; beyond it GOAWAY ENHANCE_YOUR_CALM (rapid reset).
        max_resets: int(1, 1_000_000, 200),
        // PING and SETTINGS frames from the client within 10 s; beyond it GOAWAY ENHANCE_YOUR_CALM.
        max_control_frames: int(1, 1_000_000, 200),
        // Header fields in one request's header list (the byte limit is limits.max_header_bytes).
        max_header_pairs: int(4, 10_000, 128),
      },
      { default: {} },
    ),
    tls_tickets: tlsTickets,
    // L4 Direct Server Return (README, "Direct Server Return"): Linux and root only.
    dsr: list(dsrEntry, 0, 'a list of { interface, vip, ports, upstream, method }', []),
  },
  // Without admin there is no admin API (and no dashboard); SIGHUP still reloads.
  { required: ['upstreams', 'routes'] },
);

/**
 * The file's content once the schema passed and defaults were filled in,
 * derived from the schema (json-schema-to-ts reads `typeof configSchema`):
 * a key with a default is always present, any other key not `required` is
 * optional. The names below are the pieces normalise.ts and semantic.ts take.
 */
export type RawConfig = FromSchema<typeof configSchema>;
export type RawListen = RawConfig['listen'][number];
export type RawUpstream = RawConfig['upstreams'][string];
export type RawRoute = RawConfig['routes'][number];
export type RawListenerTls = NonNullable<RawListen['tls']>;
export type RawAcme = NonNullable<RawListenerTls['acme']>;
export type RawUpstreamTls = NonNullable<RawUpstream['tls']>;
export type RawHeaderRules = NonNullable<RawRoute['request_headers']>;
export type RawApiKey = NonNullable<NonNullable<NonNullable<RawRoute['auth']>['api_key']>['keys']>[number];
/** `servers: { dns: ... }` (issue 14): the servers are the records of `dns`. */
export type RawDnsServers = Exclude<RawUpstream['servers'], unknown[]>;
export type RawDsr = NonNullable<RawConfig['dsr']>[number];

/**
 * The validator is ajv's standalone code, written next to this module by the
 * build (write-validator.ts): compiling the schema at run time made the
 * primary ~15 MB bigger (ajv's code generator, and the compiler's garbage
 * growing V8's young generation), and the primary keeps it for reloads.
 * The generated file carries the hash of the schema it was made from; when
 * it is missing or stale (run from src/ by tsx, or a schema edit without a
 * build) the schema is compiled here instead, with the same options.
 */
const ajvOptions = { allErrors: true, useDefaults: true, verbose: true, allowUnionTypes: true, strict: true } as const;
export const VALIDATOR_FILE = 'config-validator.cjs';
const requireHere = createRequire(import.meta.url);

export function schemaHash(): string {
  return createHash('sha256').update(JSON.stringify(configSchema)).digest('hex');
}

/** An Ajv with the schema's custom keyword; `ajv` is loaded only when a validator must be compiled. */
function newAjv(code?: { source: true }): Ajv {
  const { Ajv: AjvClass } = requireHere('ajv') as typeof import('ajv');
  const ajv = new AjvClass({ ...ajvOptions, ...(code ? { code } : {}) });
  ajv.addKeyword({ keyword: 'expected', schemaType: 'string' });
  return ajv;
}

/** The CommonJS source of VALIDATOR_FILE: ajv's standalone code for the schema, and the schema's hash. */
export function standaloneValidatorSource(): string {
  const standaloneCode = (requireHere('ajv/dist/standalone') as typeof import('ajv/dist/standalone/index.js')).default;
  const ajv = newAjv({ source: true });
  return `${standaloneCode(ajv, ajv.compile(configSchema as Schema))}\nmodule.exports.schemaHash = ${JSON.stringify(schemaHash())};\n`;
}

let validator: ValidateFunction | undefined;
function validate(data: unknown): ValidateFunction {
  if (validator === undefined) {
    let built: (ValidateFunction & { schemaHash?: string }) | undefined;
    try {
      built = requireHere(`./${VALIDATOR_FILE}`) as typeof built;
    } catch {
      // not built: compiled below
    }
    validator = built?.schemaHash === schemaHash() ? built : newAjv().compile(configSchema as Schema);
  }
  validator(data);
  return validator;
}

/**
 * Checks `data` against the schema, filling in defaults in place (so pass a
 * fresh copy). Returns the issues; empty means `data` is a RawConfig.
 */
export function validateSchema(data: unknown): Issue[] {
  const checked = validate(data);
  if (!checked.errors) return [];
  const issues: Issue[] = [];
  const seen = new Set<string>();
  for (const err of checked.errors) {
    const issue = toIssue(err, data);
    if (!issue) continue;
    // One message per node: a value can fail several keywords at once.
    const id = JSON.stringify(issue.path);
    if (seen.has(id)) continue;
    seen.add(id);
    issues.push(issue);
  }
  return issues;
}

function toIssue(err: ErrorObject, root: unknown): Issue | undefined {
  const path = pointerToPath(err.instancePath, root);
  const schema = (err.parentSchema ?? {}) as Schema;
  switch (err.keyword) {
    case 'additionalProperties': {
      const known = Object.keys((schema.properties ?? {}) as Schema);
      const key = (err.params as { additionalProperty: string }).additionalProperty;
      const near = nearestKey(key, known);
      const hint = near === undefined ? '' : `; did you mean \`${near}\`?`;
      return { path: [...path, key], at: 'key', message: `unknown key${hint} (expected one of: ${known.join(', ')})` };
    }
    case 'required': {
      const key = (err.params as { missingProperty: string }).missingProperty;
      return { path: [...path, key], message: 'required key is missing' };
    }
    case 'propertyNames':
      // Reported by the nested `pattern` error, which carries the name.
      return undefined;
    case 'pattern':
      if (err.propertyName !== undefined) {
        return {
          path: [...path, err.propertyName],
          at: 'key',
          message: `expected a name of letters, digits, "_", "-" and ".", got ${JSON.stringify(err.propertyName)}`,
        };
      }
      break;
  }
  const expected = typeof schema.expected === 'string' ? schema.expected : (err.message ?? 'a valid value');
  return { path, message: `expected ${expected}, got ${describeValue(err.data)}` };
}

/**
 * The known key a misspelt one most likely meant: the closest by edit
 * distance, compared in lower case with "-" read as "_" (`Max-Body-Bytes`
 * finds `max_body_bytes`), and only when it is close enough to be a typo
 * (at most a third of the key's letters, and 3, differ).
 */
export function nearestKey(key: string, known: readonly string[]): string | undefined {
  if (known.length === 0) return undefined;
  const fold = (s: string) => s.toLowerCase().replace(/-/g, '_');
  const folded = fold(key);
  const near = closest(folded, known.map(fold));
  const index = known.map(fold).indexOf(near);
  const allowed = Math.min(3, Math.max(1, Math.floor(folded.length / 3)));
  return distance(folded, near) <= allowed ? known[index] : undefined;
}

/** "/upstreams/app/servers/1" → ["upstreams", "app", "servers", 1], using the data to tell list indexes. */
function pointerToPath(pointer: string, root: unknown): PathSegment[] {
  if (pointer === '') return [];
  const path: PathSegment[] = [];
  let node = root;
  for (const raw of pointer.slice(1).split('/')) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node)) {
      path.push(Number(seg));
      node = node[Number(seg)];
    } else {
      path.push(seg);
      node = node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[seg] : undefined;
    }
  }
  return path;
}
