// Config keys of issue 14 (running several instances): redis, rate_limit
// scope and fail. Every mistake names its key and what was expected.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfigText } from '../../src/config/load.js';
import { errorsOf, FILE, minimalConfig } from '../helpers/config-text.js';

const config = (redis: string, rateLimit: string): string => minimalConfig(redis, `    rate_limit: ${rateLimit}\n`);

describe('config: redis and global rate limits', () => {
  it('defaults: scope instance, fail local; redis timeout 50ms, one instance, prefix switchyard:', () => {
    const c = parseConfigText(config('redis: { url: "redis://127.0.0.1:6390" }', '{ rate: 10/s }'), FILE).config;
    assert.deepEqual(c.routes[0]!.rateLimit, { ratePerSecond: 10, burst: 10, key: 'client-ip', scope: 'instance', fail: 'local' });
    assert.deepEqual(c.redis, { url: 'redis://127.0.0.1:6390', timeoutMs: 50, instances: 1, keyPrefix: 'switchyard:' });
    const g = parseConfigText(config('redis: { url: "rediss://u:p@r.example:6380/2", timeout: 20ms, instances: 4 }', '{ rate: 10/s, scope: global, fail: closed }'), FILE).config;
    assert.equal(g.routes[0]!.rateLimit!.scope, 'global');
    assert.equal(g.routes[0]!.rateLimit!.fail, 'closed');
    assert.equal(g.redis!.instances, 4);
  });

  it('scope: global without redis names the key and the fix', () => {
    assert.deepEqual(errorsOf(config('', '{ rate: 10/s, scope: global }')), [
      `${FILE}:10:38 routes[0].rate_limit.scope: scope: global keeps the bucket in Redis: expected a top-level redis: { url } (or scope: instance)`,
    ]);
  });

  it('wrong values: scope, fail, url scheme, path, timeout, instances, ca_file without TLS', () => {
    const errors = [
      ...errorsOf(config('redis: { url: "redis://h:6379" }', '{ rate: 10/s, scope: everywhere, fail: maybe }')),
      ...errorsOf(config('redis: { url: "http://h:6379", timeout: 0, instances: 0 }', '{ rate: 10/s }')),
      ...errorsOf(config('redis: { url: "redis://h:6379/x/y" }', '{ rate: 10/s }')),
      ...errorsOf(config('redis: { url: "redis://h:6379", ca_file: /nonexistent/ca.pem }', '{ rate: 10/s }')),
      ...errorsOf(config('redis: { url: "redis://h:6379", colour: red }', '{ rate: 10/s }')),
    ];
    const expect = [
      /rate_limit\.scope: expected one of: instance, global, got "everywhere"/,
      /rate_limit\.fail: expected one of: open, closed, local, got "maybe"/,
      /redis\.url: expected a URL like redis:\/\/\[user:password@\]host:6379\[\/db\] or rediss:\/\/ for TLS, got "http:\/\/h:6379"/,
      /redis\.timeout: expected a positive duration/,
      /redis\.instances: expected an integer 1\.\.1000, got 0/,
      /redis\.url: expected a database number as the path \(redis:\/\/host:6379\/0\), got "\/x\/y"/,
      /redis\.ca_file: expected a rediss:\/\/ url/,
      /redis\.ca_file: cannot read \/nonexistent\/ca\.pem/,
      /redis\.colour: unknown key/,
    ];
    for (const re of expect) assert.ok(errors.some((e) => re.test(e)), `${re} in:\n${errors.join('\n')}`);
  });

  it('servers: { dns }: defaults, and each mistake named', () => {
    const dnsConfig = (servers: string): string => `admin: { token: t }
upstreams:
  app:
    servers: ${servers}
routes:
  - match: { path: / }
    upstream: app
`;
    const c = parseConfigText(dnsConfig('{ dns: api.internal, port: 8080 }'), FILE).config;
    assert.deepEqual(c.upstreams.app!.discovery, { name: 'api.internal', port: 8080, type: 'A', intervalMs: 30_000 });
    assert.deepEqual(c.upstreams.app!.servers, [], 'resolved by the primary, not at load');
    assert.equal(c.upstreams.app!.retryIdempotencyKey, true, 'retry_idempotency_key defaults to true');
    const srv = parseConfigText(dnsConfig('{ dns: _http._tcp.api.internal, type: SRV, interval: 5s, resolvers: ["10.0.0.2", "127.0.0.1:5353", "[::1]:53"] }'), FILE).config;
    assert.deepEqual(srv.upstreams.app!.discovery, { name: '_http._tcp.api.internal', type: 'SRV', intervalMs: 5000, resolvers: ['10.0.0.2', '127.0.0.1:5353', '[::1]:53'] });
    const errors = [
      ...errorsOf(dnsConfig('{ dns: api.internal }')),
      ...errorsOf(dnsConfig('{ dns: _x._tcp.api, type: SRV, port: 80 }')),
      ...errorsOf(dnsConfig('{ dns: "bad name!", port: 80, type: MX, interval: 500ms, resolvers: [dns.google, "1.2.3.4:99999"] }')),
      ...errorsOf(dnsConfig('{ port: 80 }')),
      ...errorsOf(dnsConfig('"api.internal"')),
    ];
    const expect = [
      /upstreams\.app\.servers: expected a port with type A/,
      /upstreams\.app\.servers\.port: expected no port with type SRV/,
      /servers\.dns: expected a DNS name/,
      /servers\.type: expected one of: A, AAAA, SRV, got "MX"/,
      /servers\.interval: expected at least 1s, got "500ms"/,
      /servers\.resolvers\[0\]: expected an IP address, optionally with :port/,
      /servers\.resolvers\[1\]: expected an IP address/,
      /upstreams\.app\.servers: missing required key "?dns"?|upstreams\.app\.servers\.dns: /,
      /upstreams\.app\.servers: expected a list of at least one server, or \{ dns, port, type, interval \}/,
    ];
    for (const re of expect) assert.ok(errors.some((e) => re.test(e)), `${re} in:\n${errors.join('\n')}`);
  });
});
