// Config loading: every error form with its exact file:line:col text,
// defaults, units, the --workers override, and the shipped files.

import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseDuration, parseSize } from '../../src/config/duration.js';
import { ConfigError, loadConfig, parseConfigText } from '../../src/config/load.js';
import { summarizeConfig } from '../../src/config/summary.js';
import { errorsOf, FILE, minimalConfig } from '../helpers/config-text.js';

/** The repository's config/ directory, wherever the tests are run from. */
const CONFIG_DIR = fileURLToPath(new URL('../../config/', import.meta.url));

/** The smallest valid file; tests append to or edit it. */
const MINIMAL = minimalConfig();

describe('config: valid files', () => {
  it('fills every default', () => {
    const { config } = parseConfigText(MINIMAL, FILE);
    assert.equal(config.file, resolve(FILE));
    assert.equal(config.workers, Math.min(64, availableParallelism()));
    assert.equal(config.scheduling, 'kernel');
    assert.deepEqual(config.listen, [{ host: '127.0.0.1', port: 8080, backlog: 4096, mode: 'http', acceptProxy: false, proxyTimeoutMs: 5000, idleTimeoutMs: 600000, maxConnections: 0, http2: false }]);
    assert.deepEqual(config.admin, { host: '127.0.0.1', port: 9090, token: 't' });
    assert.deepEqual(config.logging, { level: 'info', access: true, format: 'auto' });
    assert.deepEqual(config.limits, {
      maxHeaderBytes: 16384,
      maxUrlBytes: 8192,
      maxBodyBytes: 10485760,
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 60_000,
      keepaliveTimeoutMs: 60_000,
      maxConnections: 0,
    });
    assert.deepEqual(config.trustedProxies, []);
    assert.equal(config.tunnelMaxAgeMs, 3_600_000);
    assert.equal(config.headersWithUnderscores, 'drop');
    assert.equal(config.shutdownTimeoutMs, 30_000);
    assert.deepEqual(config.demoBackends, []);
    assert.deepEqual(config.authFailures, { ratePerSecond: 10 / 60, burst: 10 }, 'auth_failures: 10/m, burst 10');
    assert.deepEqual(config.http2, { maxConcurrentStreams: 100, initialWindowSize: 65535, maxResets: 200, maxControlFrames: 200, maxHeaderPairs: 128 });
    assert.deepEqual(config.upstreams, {
      app: {
        name: 'app',
        balance: 'round-robin',
        hash: { key: 'source-ip' },
        servers: [{ address: '127.0.0.1:9001', host: '127.0.0.1', port: 9001, weight: 1 }],
        retries: 1,
        retryBudget: { percent: 20, minPerSecond: 5 },
        retryBodyBytes: 65_536,
        retryIdempotencyKey: true,
        outlier: { consecutiveFailures: 5, baseEjectionMs: 10_000, maxEjectionMs: 300_000, maxEjectionPercent: 50 },
        timeouts: { connectMs: 2000, responseMs: 30_000, idleMs: 60_000, tunnelIdleMs: 600_000 },
      },
    });
    assert.deepEqual(config.routes, [{ name: '*/', host: '*', path: '/', upstream: 'app', stripPrefix: false, upgrades: ['websocket'] }]);
  });

  it('health defaults, with expect_status as the list of accepted codes', () => {
    const { config } = parseConfigText(MINIMAL.replace('    servers:', '    health: {}\n    servers:'), FILE);
    const health = config.upstreams.app!.health!;
    assert.deepEqual({ ...health, expectStatus: undefined }, {
      type: 'http',
      path: '/healthz',
      intervalMs: 2000,
      timeoutMs: 1000,
      rise: 2,
      fall: 3,
      expectStatus: undefined,
    });
    assert.equal(health.expectStatus.length, 200);
    assert.equal(health.expectStatus[0], 200);
    assert.equal(health.expectStatus.at(-1), 399);

    const one = parseConfigText(MINIMAL.replace('    servers:', '    health: { expect_status: 204 }\n    servers:'), FILE);
    assert.deepEqual(one.config.upstreams.app!.health!.expectStatus, [204]);
    const mixed = parseConfigText(MINIMAL.replace('    servers:', '    health: { expect_status: [301, 200, "1xx"] }\n    servers:'), FILE);
    assert.deepEqual(mixed.config.upstreams.app!.health!.expectStatus.slice(-3), [199, 200, 301]);
    assert.equal(mixed.config.upstreams.app!.health!.expectStatus.length, 102);
  });

  it('slow_start: absent by default, a duration when given, never zero', () => {
    const withHealth = (h: string) => MINIMAL.replace('    servers:', `    health: ${h}\n    servers:`);
    assert.equal(parseConfigText(withHealth('{}'), FILE).config.upstreams.app!.health!.slowStartMs, undefined);
    assert.equal(parseConfigText(withHealth('{ slow_start: 10s }'), FILE).config.upstreams.app!.health!.slowStartMs, 10_000);
    assert.deepEqual(errorsOf(withHealth('{ slow_start: 0s }')), [
      `${FILE}:4:27 upstreams.app.health.slow_start: expected a positive duration like 500ms, 2s, 1m, 1h or integer milliseconds, got "0s"`,
    ]);
  });

  it('converts durations and sizes in every accepted form', () => {
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('2s'), 2000);
    assert.equal(parseDuration('1m'), 60_000);
    assert.equal(parseDuration('1h'), 3_600_000);
    assert.equal(parseDuration(750), 750);
    assert.equal(parseSize('16kb'), 16384);
    assert.equal(parseSize('10MB'), 10 * 1024 * 1024);
    assert.equal(parseSize('1gb'), 1024 ** 3);
    assert.equal(parseSize('512b'), 512);
    assert.equal(parseSize(100), 100);

    const text = `${MINIMAL}limits:
  max_header_bytes: 32kb
  max_url_bytes: 2048
  max_body_bytes: 1MB
  headers_timeout: 1500
  request_timeout: 2m
  keepalive_timeout: 500ms
shutdown_timeout: 1h
`;
    const { config } = parseConfigText(text, FILE);
    assert.deepEqual(config.limits, {
      maxHeaderBytes: 32768,
      maxUrlBytes: 2048,
      maxBodyBytes: 1048576,
      headersTimeoutMs: 1500,
      requestTimeoutMs: 120_000,
      keepaliveTimeoutMs: 500,
      maxConnections: 0,
    });
    assert.equal(config.shutdownTimeoutMs, 3_600_000);
  });

  it('accepts IPv6, host names, CIDRs, hash keys and named routes', () => {
    const text = `workers: 3
scheduling: round-robin
listen: [{ host: "::1", port: 8081 }, { host: 127.0.0.1, port: 8081 }]
admin: { host: localhost, port: 9091, token: t }
trusted_proxies: [10.0.0.0/8, "fd00::/8", 127.0.0.1, "::1"]
demo_backends: ["[::1]:9001", 127.0.0.1:9002]
upstreams:
  app:
    balance: source
    hash: { key: "header:X-User-Id" }
    servers:
      - { address: "[::1]:9001", weight: 1000 }
      - { address: backend-1.example.test:80 }
routes:
  - { name: api, match: { host: api.example.test, path: /v1 }, upstream: app }
`;
    const { config } = parseConfigText(text, FILE);
    assert.equal(config.workers, 3);
    assert.equal(config.scheduling, 'round-robin');
    assert.deepEqual(config.upstreams.app!.servers[0], { address: '[::1]:9001', host: '::1', port: 9001, weight: 1000 });
    assert.equal(config.upstreams.app!.servers[1]!.host, 'backend-1.example.test');
    assert.equal(config.upstreams.app!.hash.key, 'header:X-User-Id');
    assert.deepEqual(config.demoBackends, [{ host: '::1', port: 9001 }, { host: '127.0.0.1', port: 9002 }]);
    assert.deepEqual(config.routes, [{ name: 'api', host: 'api.example.test', path: '/v1', upstream: 'app', stripPrefix: false, upgrades: ['websocket'] }]);
  });

  it('deep-freezes the result', () => {
    const { config } = parseConfigText(MINIMAL, FILE);
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.upstreams.app!.servers[0]));
    assert.throws(() => {
      (config.limits as { maxBodyBytes: number }).maxBodyBytes = 1;
    }, TypeError);
  });

  it('lets --workers override the file, validated like workers:', () => {
    assert.equal(parseConfigText(`workers: 2\n${MINIMAL}`, FILE, { workers: 5 }).config.workers, 5);
    assert.equal(parseConfigText(`workers: 2\n${MINIMAL}`, FILE, { workers: 'auto' }).config.workers, Math.min(64, availableParallelism()));
    assert.deepEqual(errorsOf(MINIMAL, { workers: 0 }), ['--workers: expected an integer 1..64 or "auto", got 0']);
    assert.deepEqual(errorsOf(MINIMAL, { workers: 65 }), ['--workers: expected an integer 1..64 or "auto", got 65']);
    assert.deepEqual(errorsOf(MINIMAL, { workers: 1.5 }), ['--workers: expected an integer 1..64 or "auto", got 1.5']);
    // The override is reported together with the file's own errors.
    assert.deepEqual(errorsOf(`workers: 99\n${MINIMAL}`, { workers: Number.NaN }), [
      `${FILE}:1:10 workers: expected an integer 1..64 or "auto", got 99`,
      '--workers: expected an integer 1..64 or "auto", got null',
    ]);
  });
});

describe('config: errors', () => {
  it('unknown key, at the key, listing the known ones', () => {
    const text = MINIMAL.replace('    servers:', '    balanse: least-conn\n    servers:');
    assert.deepEqual(errorsOf(text), [
      `${FILE}:4:5 upstreams.app.balanse: unknown key; did you mean \`balance\`? (expected one of: balance, hash, servers, health, retries, retry_budget, retry_body_bytes, retry_idempotency_key, outlier, timeouts, max_idle_per_server, proxy_protocol, tls)`,
    ]);
    assert.deepEqual(errorsOf(`${MINIMAL}lmits: {}\n`), [
      `${FILE}:9:1 lmits: unknown key; did you mean \`limits\`? (expected one of: workers, scheduling, listen, admin, logging, limits, headers_with_underscores, trusted_proxies, shutdown_timeout, tunnel_max_age, rate_limit_slots, auth_failures, upstreams, routes, normalize, demo_backends, redis, http2, tls_tickets, dsr)`,
    ]);
  });

  it('wrong type', () => {
    assert.deepEqual(errorsOf(`listen: [{ port: "8080" }]\n${MINIMAL}`), [`${FILE}:1:18 listen[0].port: expected a port 1..65535, got "8080"`]);
    assert.deepEqual(errorsOf(`logging: { access: yes }\n${MINIMAL}`), [`${FILE}:1:20 logging.access: expected true or false, got "yes"`]);
    assert.deepEqual(errorsOf(`listen: 8080\n${MINIMAL}`), [`${FILE}:1:9 listen: expected a list of at least one { host, port }, got 8080`]);
    assert.deepEqual(errorsOf(`scheduling: fair\n${MINIMAL}`), [`${FILE}:1:13 scheduling: expected one of: kernel, round-robin, got "fair"`]);
    assert.deepEqual(errorsOf(''), [`${FILE}:1:1 (top level): expected a mapping, got null`]);
  });

  it('bad duration and size', () => {
    assert.deepEqual(errorsOf(`shutdown_timeout: 2x\n${MINIMAL}`), [
      `${FILE}:1:19 shutdown_timeout: expected a positive duration like 500ms, 2s, 1m, 1h or integer milliseconds, got "2x"`,
    ]);
    assert.deepEqual(errorsOf(`shutdown_timeout: 0s\n${MINIMAL}`), [
      `${FILE}:1:19 shutdown_timeout: expected a positive duration like 500ms, 2s, 1m, 1h or integer milliseconds, got "0s"`,
    ]);
    assert.deepEqual(errorsOf(`shutdown_timeout: 1000h\n${MINIMAL}`), [
      `${FILE}:1:19 shutdown_timeout: expected a duration of at most 2147483647ms (about 24 days), got "1000h"`,
    ]);
    assert.equal(parseConfigText(`limits: { max_body_bytes: 10 mb }\n${MINIMAL}`, FILE).config.limits.maxBodyBytes, 10 * 1024 * 1024);
  });

  it('tunnel_max_age: a positive duration a timer can hold', () => {
    assert.equal(parseConfigText(`tunnel_max_age: 10m\n${MINIMAL}`, FILE).config.tunnelMaxAgeMs, 600_000);
    assert.deepEqual(errorsOf(`tunnel_max_age: forever\n${MINIMAL}`), [
      `${FILE}:1:17 tunnel_max_age: expected a positive duration like 500ms, 2s, 1m, 1h or integer milliseconds, got "forever"`,
    ]);
    assert.deepEqual(errorsOf(`tunnel_max_age: 1000h\n${MINIMAL}`), [
      `${FILE}:1:17 tunnel_max_age: expected a duration of at most 2147483647ms (about 24 days), got "1000h"`,
    ]);
  });

  it('bad server addresses', () => {
    const withServer = (address: string): string =>
      MINIMAL.replace('      - address: 127.0.0.1:9001', `      - address: 127.0.0.1:9001\n      - address: "${address}"`);
    const bad = (address: string): string[] => errorsOf(withServer(address));
    const at = `${FILE}:6:18 upstreams.app.servers[1].address:`;
    assert.deepEqual(bad('localhost'), [`${at} expected host:port, got "localhost"`]);
    assert.deepEqual(bad('localhost:0'), [`${at} expected host:port with a port 1..65535, got "localhost:0"`]);
    assert.deepEqual(bad('127.0.0.1:65536'), [`${at} expected host:port with a port 1..65535, got "127.0.0.1:65536"`]);
    assert.deepEqual(bad('::1:80'), [`${at} expected [IPv6]:port with the address in brackets, got "::1:80"`]);
    assert.deepEqual(bad('::1'), [`${at} expected [IPv6]:port with the address in brackets, got "::1"`]);
    assert.deepEqual(bad('[127.0.0.1]:80'), [`${at} expected host:port with a valid IPv4 address, [IPv6] address or host name, got "[127.0.0.1]:80"`]);
    assert.deepEqual(bad('bad_host:80'), [`${at} expected host:port with a valid IPv4 address, [IPv6] address or host name, got "bad_host:80"`]);
    assert.deepEqual(bad('300.1.1.1:80'), [`${at} expected host:port with a valid IPv4 address, [IPv6] address or host name, got "300.1.1.1:80"`]);
    assert.deepEqual(bad('127.0.0.1:9001'), [`${at} duplicate server address (also servers[0])`]);
    assert.equal(parseConfigText(withServer('[::1]:9001'), FILE).config.upstreams.app!.servers.length, 2);
  });

  it('missing upstream, and references checked against the names defined', () => {
    assert.deepEqual(errorsOf(MINIMAL.replace('upstream: app', 'upstream: api')), [
      `${FILE}:8:15 routes[0].upstream: expected the name of an upstream (one of: app), got "api"`,
    ]);
  });

  it('duplicates: keys, routes, route names, listeners, port clashes', () => {
    assert.deepEqual(errorsOf(`${MINIMAL}admin: { token: u }\n`), [`${FILE}:9:1 admin: duplicate key (first defined at line 1)`]);
    assert.deepEqual(errorsOf(`${MINIMAL}  - match: { host: "*", path: / }\n    upstream: app\n`), [
      `${FILE}:9:12 routes[1].match: duplicate route (same host, path, methods and headers as routes[0])`,
    ]);
    assert.deepEqual(errorsOf(`${MINIMAL}  - { name: "*/", match: { path: /x }, upstream: app }\n`), [
      `${FILE}:9:13 routes[1].name: duplicate route name "*/" (also routes[0])`,
    ]);
    assert.deepEqual(errorsOf(`listen: [{ port: 80 }, { host: 0.0.0.0, port: 80 }]\n${MINIMAL}`), [
      `${FILE}:1:24 listen[1]: port 80 on 0.0.0.0 is already taken by listen[0] (127.0.0.1:80)`,
    ]);
    assert.deepEqual(errorsOf(MINIMAL.replace('admin: { token: t }', 'admin: { token: t, port: 8080 }')), [
      `${FILE}:1:26 admin.port: port 8080 on 127.0.0.1 is already taken by listen[0] (127.0.0.1:8080)`,
    ]);
    // Different hosts that cannot overlap may share a port.
    assert.equal(parseConfigText(`listen: [{ host: 127.0.0.1, port: 80 }, { host: 127.0.0.2, port: 80 }]\n${MINIMAL}`, FILE).config.listen.length, 2);
    assert.deepEqual(errorsOf(`demo_backends: [127.0.0.1:9090]\n${MINIMAL}`), [
      `${FILE}:1:17 demo_backends[0]: port 9090 on 127.0.0.1 is already taken by admin.port (127.0.0.1:9090)`,
    ]);
  });

  it('routes, hash keys, trusted proxies, empty lists and required keys', () => {
    assert.deepEqual(errorsOf(MINIMAL.replace('{ path: / }', '{ host: "a.test:80", path: api }')), [
      `${FILE}:7:20 routes[0].match.host: expected an exact host name, "*.example.com" or "*", got "a.test:80"`,
      `${FILE}:7:39 routes[0].match.path: expected a path starting with "/", got "api"`,
    ]);
    assert.deepEqual(errorsOf(MINIMAL.replace('    servers:', '    hash: { key: "ip" }\n    servers:')), [
      `${FILE}:4:18 upstreams.app.hash.key: expected source-ip, header:NAME or cookie:NAME, got "ip"`,
    ]);
    assert.deepEqual(errorsOf(MINIMAL.replace('    servers:', '    hash: { balance_factor: 1 }\n    servers:')), [
      `${FILE}:4:29 upstreams.app.hash.balance_factor: expected a number greater than 1, got 1`,
    ]);
    assert.deepEqual(errorsOf(`trusted_proxies: [10.0.0.0/33, "::1/128", 10.1.2.3, nope]\n${MINIMAL}`), [
      `${FILE}:1:19 trusted_proxies[0]: expected a CIDR like 10.0.0.0/8 or an IP address, got "10.0.0.0/33"`,
      `${FILE}:1:53 trusted_proxies[3]: expected a CIDR like 10.0.0.0/8 or an IP address, got "nope"`,
    ]);
    assert.deepEqual(errorsOf(`listen: []\nadmin: { token: "" }\nupstreams: { app: { servers: [] } }\nroutes: []\n`), [
      `${FILE}:1:9 listen: expected a list of at least one { host, port }, got an empty list`,
      `${FILE}:2:17 admin.token: expected a non-empty bearer token, got ""`,
      `${FILE}:3:30 upstreams.app.servers: expected a list of at least one server, or { dns, port, type, interval } to find them in DNS, got an empty list`,
      `${FILE}:4:9 routes: expected a list of at least one route, got an empty list`,
    ]);
    assert.deepEqual(errorsOf('admin: {}\n'), [
      `${FILE}:1:1 upstreams: required key is missing`,
      `${FILE}:1:1 routes: required key is missing`,
      `${FILE}:1:8 admin.token: required key is missing`,
    ]);
    assert.deepEqual(errorsOf(MINIMAL.replace('  app:', '  "my app":')), [
      `${FILE}:3:3 upstreams["my app"]: expected a name of letters, digits, "_", "-" and ".", got "my app"`,
      `${FILE}:8:15 routes[0].upstream: expected the name of an upstream (one of: my app), got "app"`,
    ]);
  });

  it('http2: listener flag and session limits, with the key and what was expected in each error', () => {
    const text = MINIMAL.replace(/^listen:.*$/m, '') ;
    const { config } = parseConfigText(`listen: [{ port: 8443, http2: true }]\nhttp2: { max_concurrent_streams: 10, initial_window_size: 1mb, max_resets: 50 }\n${text}`, FILE);
    assert.deepEqual(config.listen, [{ host: '127.0.0.1', port: 8443, backlog: 4096, mode: 'http', acceptProxy: false, proxyTimeoutMs: 5000, idleTimeoutMs: 600000, maxConnections: 0, http2: true }]);
    assert.deepEqual(config.http2, { maxConcurrentStreams: 10, initialWindowSize: 1048576, maxResets: 50, maxControlFrames: 200, maxHeaderPairs: 128 });
    assert.deepEqual(errorsOf(`listen: [{ port: 8443, http2: yes }]\nhttp2: { max_concurrent_streams: 0, initial_window_size: 3gb, streams: 1 }\n${text}`), [
      `${FILE}:1:31 listen[0].http2: expected true or false, got "yes"`,
      `${FILE}:2:34 http2.max_concurrent_streams: expected an integer 1..10000, got 0`,
      `${FILE}:2:58 http2.initial_window_size: expected a size of at most 2147483647 bytes, got "3gb"`,
      `${FILE}:2:63 http2.streams: unknown key (expected one of: max_concurrent_streams, initial_window_size, max_resets, max_control_frames, max_header_pairs)`,
    ]);
  });

  it('auth_failures: a positive rate and burst', () => {
    assert.deepEqual(parseConfigText(`auth_failures: { rate: 5/s, burst: 3 }\n${MINIMAL}`, FILE).config.authFailures, { ratePerSecond: 5, burst: 3 });
    assert.deepEqual(parseConfigText(`auth_failures: { rate: 30/h }\n${MINIMAL}`, FILE).config.authFailures, { ratePerSecond: 30 / 3600, burst: 10 });
    assert.deepEqual(errorsOf(`auth_failures: { rate: 0/m, burst: 0, per: ip }\n${MINIMAL}`), [
      `${FILE}:1:24 auth_failures.rate: expected a positive rate, got "0/m"`,
      `${FILE}:1:36 auth_failures.burst: expected an integer 1..1000000, got 0`,
      `${FILE}:1:39 auth_failures.per: unknown key (expected one of: rate, burst)`,
    ]);
  });

  it('header rules: names must be tokens, values cannot hold CR, LF, NUL or other controls, nor characters above U+00FF', () => {
    const rules = (side: string, body: string): string => MINIMAL.replace('    upstream: app\n', `    upstream: app\n    name: api\n    ${side}: ${body}\n`);
    assert.deepEqual(errorsOf(rules('request_headers', '{ set: { X-A: "ok\\r\\nX-Injected: 1" }, add: { X-B: "a\\u0000b", X-C: "tab\\tok" } }')), [
      `${FILE}:10:36 routes[0].request_headers.set.X-A: route "api", request_headers.set "X-A": a header value cannot hold a CR (CR, LF, NUL and other control characters end or corrupt the header)`,
      `${FILE}:10:73 routes[0].request_headers.add.X-B: route "api", request_headers.add "X-B": a header value cannot hold a NUL (CR, LF, NUL and other control characters end or corrupt the header)`,
    ]);
    assert.deepEqual(errorsOf(rules('response_headers', '{ add: { "X-D\\nE": v, X-F: "\\n", X-G: "\\u001b", X-H: "\\u20ac" } }')), [
      `${FILE}:10:42 routes[0].response_headers.add["X-D\\nE"]: route "api", response_headers.add "X-D\\nE": expected a header name (letters, digits and !#$%&'*+.^_\`|~-)`,
      `${FILE}:10:50 routes[0].response_headers.add.X-F: route "api", response_headers.add "X-F": a header value cannot hold an LF (CR, LF, NUL and other control characters end or corrupt the header)`,
      `${FILE}:10:61 routes[0].response_headers.add.X-G: route "api", response_headers.add "X-G": a header value cannot hold "\\u001b" (CR, LF, NUL and other control characters end or corrupt the header)`,
      `${FILE}:10:76 routes[0].response_headers.add.X-H: route "api", response_headers.add "X-H": expected a latin1 header value (characters up to U+00FF), got "€"`,
    ]);
    assert.equal(parseConfigText(rules('request_headers', '{ set: { X-A: "caf\\u00e9\\tok" } }'), FILE).config.routes[0]!.requestHeaders!.set[0]![1], 'café\tok');
  });

  it('YAML syntax errors, with line:col', () => {
    assert.deepEqual(errorsOf('admin: { token: t\nroutes: []\n'), [
      `${FILE}:2:1 syntax error: Flow map in block collection must be sufficiently indented and end with a }`,
    ]);
    assert.deepEqual(errorsOf(`${MINIMAL}---\n${MINIMAL}`), [`${FILE}:9:1 syntax error: expected one YAML document, found several`]);
    const errors = errorsOf(`${MINIMAL}  bad: [\n`);
    assert.ok(errors.length > 0);
    for (const e of errors) assert.match(e, /^config\/x\.yaml:\d+:\d+ syntax error: /);
  });

  it('reports every problem at once, in file order, each at its node', () => {
    const text = `workers: 0
listen:
  - { host: 127.0.0.1, port: 8080 }
admin: { port: 8080, token: x }
limits:
  headers_timeout: 2x
upstreams:
  app:
    balanse: round-robin
    servers:
      - address: 127.0.0.1:9001
      - address: localhost
      - { address: 127.0.0.1:9001, weight: 0 }
routes:
  - match: { path: / }
    upstream: nope
  - match: { path: / }
    upstream: app
`;
    assert.deepEqual(errorsOf(text), [
      `${FILE}:1:10 workers: expected an integer 1..64 or "auto", got 0`,
      `${FILE}:4:16 admin.port: port 8080 on 127.0.0.1 is already taken by listen[0] (127.0.0.1:8080)`,
      `${FILE}:6:20 limits.headers_timeout: expected a positive duration like 500ms, 2s, 1m, 1h or integer milliseconds, got "2x"`,
      `${FILE}:9:5 upstreams.app.balanse: unknown key; did you mean \`balance\`? (expected one of: balance, hash, servers, health, retries, retry_budget, retry_body_bytes, retry_idempotency_key, outlier, timeouts, max_idle_per_server, proxy_protocol, tls)`,
      `${FILE}:12:18 upstreams.app.servers[1].address: expected host:port, got "localhost"`,
      `${FILE}:13:20 upstreams.app.servers[2].address: duplicate server address (also servers[0])`,
      `${FILE}:13:44 upstreams.app.servers[2].weight: expected an integer 1..1000, got 0`,
      `${FILE}:16:15 routes[0].upstream: expected the name of an upstream (one of: app), got "nope"`,
      `${FILE}:17:12 routes[1].match: duplicate route (same host, path, methods and headers as routes[0])`,
    ]);
  });

  it('a file that cannot be read', () => {
    assert.throws(() => loadConfig('config/does-not-exist.yaml'), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.errors.length, 1);
      assert.match(err.errors[0]!, /^config\/does-not-exist\.yaml: cannot read: ENOENT/);
      return true;
    });
  });
});

describe('config: shipped files', () => {
  it('config/switchyard.yaml is the runnable demo', () => {
    const { config } = loadConfig(join(CONFIG_DIR, 'switchyard.yaml'));
    assert.deepEqual(config.listen, [{ host: '127.0.0.1', port: 8080, backlog: 4096, mode: 'http', acceptProxy: false, proxyTimeoutMs: 5000, idleTimeoutMs: 600000, maxConnections: 0, http2: false }]);
    assert.deepEqual(config.admin, { host: '127.0.0.1', port: 9090, token: 'change-me' });
    const demo = ['127.0.0.1:9001', '127.0.0.1:9002', '127.0.0.1:9003'];
    assert.deepEqual(config.demoBackends.map((d) => `${d.host}:${d.port}`), demo);
    assert.equal(config.upstreams.demo!.balance, 'round-robin');
    assert.deepEqual(config.upstreams.demo!.servers.map((s) => s.address), demo);
    assert.deepEqual(config.routes, [{ name: '*/', host: '*', path: '/', upstream: 'demo', stripPrefix: false, upgrades: ['websocket'] }]);
    const summary = summarizeConfig(config);
    assert.match(summary, /^listen: 127\.0\.0\.1:8080$/m);
    assert.match(summary, /^ {2}demo \(round-robin, retries 1\): 127\.0\.0\.1:9001, 127\.0\.0\.1:9002, 127\.0\.0\.1:9003$/m);
    assert.match(summary, /^ {2}\* \/ -> demo$/m);
  });

  // tls.yaml names certificate files the user brings: checked below with certificates made for the test.
  const examples = readdirSync(join(CONFIG_DIR, 'examples')).filter((f) => f.endsWith('.yaml') && f !== 'tls.yaml');
  it('there are examples to check', () => assert.ok(examples.length >= 2));
  for (const name of examples) {
    it(`config/examples/${name} loads`, () => {
      const { config } = loadConfig(join(CONFIG_DIR, 'examples', name));
      assert.ok(summarizeConfig(config).includes('routes:'));
    });
  }
});

describe('config: L4 keys (issue 13)', () => {
  const withListen = (listen: string, extra = ''): string => `listen:\n${listen}\n${extra}${MINIMAL}`;

  it('a tcp listener with every key, accept_proxy and proxy_protocol load as written', () => {
    const { config } = parseConfigText(
      withListen('  - { port: 5432, mode: tcp, upstream: app, idle_timeout: 1h, max_connections: 7, accept_proxy: true, proxy_timeout: 2s }\n  - { port: 8080, accept_proxy: true }', 'trusted_proxies: [10.0.0.0/8]\n').replace(
        '    servers:',
        '    proxy_protocol: v1\n    health: { type: tcp }\n    servers:',
      ),
      FILE,
    );
    assert.deepEqual(config.listen, [
      { host: '127.0.0.1', port: 5432, backlog: 4096, mode: 'tcp', upstream: 'app', acceptProxy: true, proxyTimeoutMs: 2000, idleTimeoutMs: 3_600_000, maxConnections: 7, http2: false },
      { host: '127.0.0.1', port: 8080, backlog: 4096, mode: 'http', acceptProxy: true, proxyTimeoutMs: 5000, idleTimeoutMs: 600_000, maxConnections: 0, http2: false },
    ]);
    assert.equal(config.upstreams.app!.proxyProtocol, 'v1');
    assert.equal(config.upstreams.app!.health!.type, 'tcp');
    assert.match(summarizeConfig(config), /^listen: 127\.0\.0\.1:5432 \(tcp -> app, accepts PROXY\), 127\.0\.0\.1:8080 \(accepts PROXY\)$/m);
  });

  it('each mistake is named with its key and what was expected', () => {
    assert.deepEqual(errorsOf(withListen('  - { port: 5432, mode: tcp }')), [`${FILE}:2:5 listen[0].upstream: required key is missing (a mode: tcp listener relays to an upstream)`]);
    assert.deepEqual(errorsOf(withListen('  - { port: 5432, mode: tcp, upstream: db }')), [`${FILE}:2:40 listen[0].upstream: expected the name of an upstream (one of: app), got "db"`]);
    assert.deepEqual(errorsOf(withListen('  - { port: 80, upstream: app, idle_timeout: 1m }')), [
      `${FILE}:2:27 listen[0].upstream: only for mode: tcp (an HTTP listener picks upstreams by routes)`,
      `${FILE}:2:46 listen[0].idle_timeout: only for mode: tcp (HTTP listeners use limits.keepalive_timeout)`,
    ]);
    assert.deepEqual(errorsOf(withListen('  - { port: 80, mode: udp }')), [`${FILE}:2:23 listen[0].mode: expected one of: http, tcp, got "udp"`]);
    assert.deepEqual(errorsOf(withListen('  - { port: 80, accept_proxy: true }')), [
      `${FILE}:2:31 listen[0].accept_proxy: needs trusted_proxies: a PROXY header is accepted only from those peers, and none are listed`,
    ]);
    assert.deepEqual(errorsOf(MINIMAL.replace('    servers:', '    proxy_protocol: v3\n    servers:')), [`${FILE}:4:21 upstreams.app.proxy_protocol: expected one of: v1, v2, got "v3"`]);
    assert.deepEqual(errorsOf(MINIMAL.replace('    servers:', '    health: { type: udp }\n    servers:')), [`${FILE}:4:21 upstreams.app.health.type: expected one of: http, tcp, got "udp"`]);
  });
});

describe('config: DSR keys (issue 13, item 2)', () => {
  const DSR_BASE = `admin: { token: t }
listen: [ { host: 0.0.0.0, port: 8080 } ]
upstreams:
  web:
    servers:
      - { address: 10.77.0.11:80, mac: "02:77:00:00:00:11" }
      - { address: 10.77.0.12:80, mac: "02:77:00:00:00:12" }
routes: [ { match: { path: / }, upstream: web } ]
dsr:
`;
  const withDsr = (...lines: string[]) => `${DSR_BASE}${lines.map((l) => `  - ${l}\n`).join('')}`;

  it('fills the defaults and keeps the MACs, lower-cased', () => {
    const { config } = parseConfigText(withDsr('{ interface: eth0, vip: 10.77.0.100, ports: [80], upstream: web }'), FILE);
    assert.deepEqual(config.dsr, [{ interface: 'eth0', vip: '10.77.0.100', ports: [80], upstream: 'web', method: 'l2', threads: 1, flowTableSize: 262144, flowIdleMs: 900_000 }]);
    assert.equal(config.upstreams.web!.servers[0]!.mac, '02:77:00:00:00:11');
    const l3 = parseConfigText(withDsr('{ interface: eth0, vip: 10.77.0.100, ports: [80, 443], upstream: web, method: l3, dscp: 10, threads: 2, flow_table_size: 4096, flow_idle_timeout: 30s }'), FILE);
    assert.deepEqual(l3.config.dsr[0], { interface: 'eth0', vip: '10.77.0.100', ports: [80, 443], upstream: 'web', method: 'l3', dscp: 10, threads: 2, flowTableSize: 4096, flowIdleMs: 30_000 });
    assert.deepEqual(parseConfigText(MINIMAL, FILE).config.dsr, []);
    assert.match(
      summarizeConfig(l3.config),
      /^dsr \(L4 Direct Server Return, forwarder process\):\n {2}eth0 10\.77\.0\.100:80,443 -> web \(l3, dscp 10, 2 threads, 4096 flows, idle 30s\): 10\.77\.0\.11 \(02:77:00:00:00:11\), 10\.77\.0\.12 \(02:77:00:00:00:12\)$/m,
    );
  });

  it('names each mistake with its key and what was expected', () => {
    assert.deepEqual(errorsOf(withDsr('{ interface: eth0, vip: "fd00::1", ports: [80], upstream: web }')), [
      `${FILE}:10:29 dsr[0].vip: expected an IPv4 address, got "fd00::1": DSR is IPv4 only (IPv6 is not supported)`,
    ]);
    assert.deepEqual(errorsOf(withDsr('{ interface: eth0, vip: 224.0.0.5, ports: [80], upstream: web }')), [
      `${FILE}:10:29 dsr[0].vip: expected a unicast IPv4 address, got "224.0.0.5" (a multicast address)`,
    ]);
    assert.deepEqual(errorsOf(withDsr('{ interface: eth0, vip: 10.77.0.100, ports: [80], upstream: web, method: l3 }')), [
      `${FILE}:10:5 dsr[0].dscp: required key is missing (method l3 marks forwarded packets with a DSCP value 0..63 that the servers map back to the VIP)`,
    ]);
    assert.deepEqual(errorsOf(withDsr('{ interface: eth0, vip: 10.77.0.100, ports: [80], upstream: web, method: l3, dscp: 64 }')), [
      `${FILE}:10:88 dsr[0].dscp: expected an integer 0..63, got 64`,
    ]);
    assert.deepEqual(errorsOf(withDsr('{ interface: eth0, vip: 10.77.0.100, ports: [80], upstream: web, dscp: 4 }')), [
      `${FILE}:10:76 dsr[0].dscp: only for method: l3 (method l2 rewrites MAC addresses and marks nothing)`,
    ]);
    assert.deepEqual(errorsOf(withDsr('{ interface: eth0, vip: 10.77.0.100, ports: [80], upstream: app }')), [
      `${FILE}:10:65 dsr[0].upstream: expected the name of an upstream (one of: web), got "app"`,
    ]);
    assert.deepEqual(errorsOf(withDsr('{ interface: "eth0/1", vip: 10.77.0.100, ports: [0], upstream: web, threads: 65 }')), [
      `${FILE}:10:18 dsr[0].interface: expected a network interface name like eth0 (at most 15 characters), got "eth0/1"`,
      `${FILE}:10:54 dsr[0].ports[0]: expected a port 1..65535, got 0`,
      `${FILE}:10:82 dsr[0].threads: expected an integer 1..64, got 65`,
    ]);
  });

  it('refuses a VIP the balancer binds, a port balanced twice and a DSCP value shared by two VIPs', () => {
    const owned = withDsr('{ interface: eth0, vip: 10.77.0.100, ports: [80], upstream: web }').replace('host: 0.0.0.0', 'host: 10.77.0.100');
    assert.deepEqual(errorsOf(owned), [
      `${FILE}:10:29 dsr[0].vip: the balancer must not own the VIP 10.77.0.100, but listen[0].host binds it (its kernel would answer the VIP's SYNs itself)`,
    ]);
    assert.deepEqual(
      errorsOf(
        withDsr(
          '{ interface: eth0, vip: 10.77.0.100, ports: [80, 443], upstream: web }',
          '{ interface: eth1, vip: 10.77.0.100, ports: [443], upstream: web, method: l3, dscp: 8 }',
          '{ interface: eth1, vip: 10.77.0.101, ports: [443], upstream: web, method: l3, dscp: 8 }',
        ),
      ),
      [
        `${FILE}:11:50 dsr[1].ports[0]: 10.77.0.100:443 is already balanced by dsr[0].ports[1]`,
        `${FILE}:12:89 dsr[2].dscp: DSCP 8 already marks VIP 10.77.0.100 (dsr[1].dscp): the servers tell VIPs apart by it, so each VIP needs its own value`,
      ],
    );
  });

  it("needs the upstream's servers as IPv4 addresses, with a unicast MAC each", () => {
    const text = withDsr('{ interface: eth0, vip: 10.77.0.100, ports: [80], upstream: web }')
      .replace('{ address: 10.77.0.11:80, mac: "02:77:00:00:00:11" }', '{ address: 10.77.0.11:80 }')
      .replace('{ address: 10.77.0.12:80, mac: "02:77:00:00:00:12" }', '{ address: "web.internal:80", mac: "ff:ff:ff:ff:ff:ff" }');
    assert.deepEqual(errorsOf(text), [
      `${FILE}:6:9 upstreams.web.servers[0]: required key mac is missing: dsr[0] sends the VIP's frames to each server's MAC address`,
      `${FILE}:7:20 upstreams.web.servers[1].address: dsr[0] forwards packets to this server by its IP: expected an IPv4 address with a port like 10.77.0.11:80 (DSR is IPv4 only), got "web.internal:80"`,
      `${FILE}:7:44 upstreams.web.servers[1].mac: expected a unicast MAC address, got "ff:ff:ff:ff:ff:ff" (a multicast or broadcast MAC)`,
    ]);
    // l3 sends to the MAC as well (the next hop on the segment).
    assert.deepEqual(errorsOf(text.replace('"web.internal:80", mac: "ff:ff:ff:ff:ff:ff"', '10.77.0.12:80, mac: "02:77:00:00:00:12"').replace('ports: [80], upstream: web }', 'ports: [80], upstream: web, method: l3, dscp: 1 }')), [
      `${FILE}:6:9 upstreams.web.servers[0]: required key mac is missing: dsr[0] sends the VIP's frames to each server's MAC address`,
    ]);
    const dns = `${DSR_BASE.replace(/    servers:\n.*\n.*\n/, '    servers: { dns: web.internal, port: 80 }\n')}  - { interface: eth0, vip: 10.77.0.100, ports: [80], upstream: web }\n`;
    assert.deepEqual(errorsOf(dns), [`${FILE}:8:65 dsr[0].upstream: upstream "web" finds its servers in DNS, which gives no MAC addresses: DSR needs its servers listed with address and mac`]);
  });
});
