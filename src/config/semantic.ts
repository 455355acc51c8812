// Checks the schema cannot express: address syntax, references between
// sections, duplicates and port clashes. Runs after the schema, and checks
// only the parts the schema passed, so that every problem is reported in one
// go without a wrongly typed value causing noise or a crash here.

import { hostsOverlap, isValidCidr, isValidHost, parseHostPort } from './address.js';
import type { HostPort } from './address.js';
import { MAX_TIMER_MS, parseDuration, parseSize } from './duration.js';
import { describeValue, formatPath } from './errors.js';
import type { Issue, PathSegment } from './errors.js';
import { HEADER_NAME_PATTERN } from './schema.js';

import { isIP } from 'node:net';
import type { RawConfig, RawDnsServers, RawDsr, RawListen, RawRoute, RawUpstreamTls } from './schema.js';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { resolve } from 'node:path';
import { defaultRouteName, parseRate, readKeysFile } from './normalise.js';
// A leaf module (no imports): route paths are checked with the same function requests are read with.
import { resolve as resolvePath } from '../proxy/request-target.js';

interface Checks {
  ok(path: PathSegment[]): boolean;
  typed(path: PathSegment[]): boolean;
  add(path: PathSegment[], message: string): void;
  expectTimer(path: PathSegment[], value: string | number): void;
}

/** L4 (issue 13): what a listener's mode, upstream and PROXY settings must agree on. */
function checkL4Listeners(raw: RawConfig, { ok, typed, add, expectTimer }: Checks): void {
  if (!typed(['listen'])) return;
  const upstreamNames = typed(['upstreams']) ? Object.keys(raw.upstreams) : undefined;
  raw.listen.forEach((l, i) => {
    const at = (...rest: PathSegment[]): PathSegment[] => ['listen', i, ...rest];
    if (!ok(at())) return;
    if (l.mode === 'tcp') {
      if (l.upstream === undefined) add(at('upstream'), 'required key is missing (a mode: tcp listener relays to an upstream)');
      else if (upstreamNames !== undefined && !upstreamNames.includes(l.upstream)) {
        add(at('upstream'), `expected the name of an upstream (one of: ${upstreamNames.join(', ')}), got ${describeValue(l.upstream)}`);
      }
    } else {
      if (l.upstream !== undefined) add(at('upstream'), 'only for mode: tcp (an HTTP listener picks upstreams by routes)');
      if (l.idle_timeout !== undefined) add(at('idle_timeout'), 'only for mode: tcp (HTTP listeners use limits.keepalive_timeout)');
    }
    if (l.idle_timeout !== undefined) expectTimer(at('idle_timeout'), l.idle_timeout);
    expectTimer(at('proxy_timeout'), l.proxy_timeout);
    if (l.accept_proxy && typed(['trusted_proxies']) && raw.trusted_proxies.length === 0) {
      add(at('accept_proxy'), 'needs trusted_proxies: a PROXY header is accepted only from those peers, and none are listed');
    }
  });
}

// ---- DSR (issue 13, item 2) ----------------------------------------------------
/** Why an IPv4 address cannot be a VIP (no unicast host would ever send to it), or undefined. */
function unusableVip(ip: string): string | undefined {
  const [a, b, c, d] = ip.split('.').map(Number) as [number, number, number, number];
  if (a === 0) return 'an address of "this network" (0.0.0.0/8)';
  if (a === 127) return 'a loopback address';
  if (a >= 224 && a <= 239) return 'a multicast address';
  if (a >= 240) return a === 255 && b === 255 && c === 255 && d === 255 ? 'the broadcast address' : 'a reserved address (240.0.0.0/4)';
  return undefined;
}

/** A MAC a unicast frame can be sent to: not multicast or broadcast (low bit of the first octet), not all zeros. */
function unusableMac(mac: string): string | undefined {
  if (/^(00:){5}00$/i.test(mac)) return 'the all-zero MAC';
  if ((parseInt(mac.slice(0, 2), 16) & 1) === 1) return 'a multicast or broadcast MAC';
  return undefined;
}

/**
 * DSR entries: the VIP is an IPv4 address the balancer does not own, each
 * (VIP, port) is balanced once, the upstream's servers are IPv4 addresses
 * with MACs (both methods send frames to them on one segment), and an l3 DSCP value names one VIP only (the servers'
 * nftables rule maps it back to that VIP).
 */
function checkDsr(raw: RawConfig, { ok, typed, add, expectTimer }: Checks): void {
  if (!typed(['dsr'])) return;
  const upstreams = typed(['upstreams']) ? raw.upstreams : undefined;
  // Addresses the process binds: the VIP must not be one of them (the kernel would answer its SYNs with RST).
  const owned: { host: string; path: PathSegment[] }[] = [];
  if (typed(['listen'])) raw.listen.forEach((l, i) => ok(['listen', i, 'host']) && owned.push({ host: l.host, path: ['listen', i, 'host'] }));
  if (raw.admin && ok(['admin', 'host'])) owned.push({ host: raw.admin.host, path: ['admin', 'host'] });
  if (typed(['demo_backends'])) {
    raw.demo_backends.forEach((text, i) => {
      const at = parseHostPort(text);
      if (typeof at !== 'string') owned.push({ host: at.host, path: ['demo_backends', i] });
    });
  }
  const balanced = new Map<string, PathSegment[]>();
  const dscpVip = new Map<number, { vip: string; path: PathSegment[] }>();
  // An upstream two entries share is checked once.
  const checkedUpstreams = new Set<string>();
  raw.dsr.forEach((d: RawDsr, i) => {
    const at = (...rest: PathSegment[]): PathSegment[] => ['dsr', i, ...rest];
    if (!typed(at())) return;
    let vipOk = false;
    if (ok(at('vip'))) {
      const family = isIP(d.vip);
      if (family === 6) add(at('vip'), `expected an IPv4 address, got ${describeValue(d.vip)}: DSR is IPv4 only (IPv6 is not supported)`);
      else if (family !== 4) add(at('vip'), `expected an IPv4 address like 10.77.0.100, got ${describeValue(d.vip)}`);
      else {
        const why = unusableVip(d.vip);
        if (why !== undefined) add(at('vip'), `expected a unicast IPv4 address, got ${describeValue(d.vip)} (${why})`);
        else vipOk = true;
      }
      const clash = owned.find((o) => o.host === d.vip);
      if (clash !== undefined) {
        add(at('vip'), `the balancer must not own the VIP ${d.vip}, but ${formatPath(clash.path)} binds it (its kernel would answer the VIP's SYNs itself)`);
      }
    }
    if (ok(at('ports')) && vipOk) {
      d.ports.forEach((port, j) => {
        const key = `${d.vip}:${port}`;
        const first = balanced.get(key);
        if (first !== undefined) add(at('ports', j), `${key} is already balanced by ${formatPath(first)}`);
        else balanced.set(key, at('ports', j));
      });
    }
    if (ok(at('method')) && ok(at('dscp'))) {
      if (d.method === 'l3' && d.dscp === undefined) add(at('dscp'), 'required key is missing (method l3 marks forwarded packets with a DSCP value 0..63 that the servers map back to the VIP)');
      if (d.method === 'l2' && d.dscp !== undefined) add(at('dscp'), 'only for method: l3 (method l2 rewrites MAC addresses and marks nothing)');
      if (d.method === 'l3' && d.dscp !== undefined && vipOk) {
        const other = dscpVip.get(d.dscp);
        if (other !== undefined && other.vip !== d.vip) {
          add(at('dscp'), `DSCP ${d.dscp} already marks VIP ${other.vip} (${formatPath(other.path)}): the servers tell VIPs apart by it, so each VIP needs its own value`);
        } else if (other === undefined) dscpVip.set(d.dscp, { vip: d.vip, path: at('dscp') });
      }
    }
    if (ok(at('flow_idle_timeout'))) expectTimer(at('flow_idle_timeout'), d.flow_idle_timeout);
    if (!ok(at('upstream')) || upstreams === undefined) return;
    const names = Object.keys(upstreams);
    if (!names.includes(d.upstream)) {
      add(at('upstream'), `expected the name of an upstream (one of: ${names.join(', ')}), got ${describeValue(d.upstream)}`);
      return;
    }
    if (checkedUpstreams.has(d.upstream)) return;
    checkedUpstreams.add(d.upstream);
    const up = upstreams[d.upstream]!;
    const upPath: PathSegment[] = ['upstreams', d.upstream, 'servers'];
    if (!typed(upPath) || !ok(at('method'))) return;
    if (!Array.isArray(up.servers)) {
      // DNS gives addresses only, and the forwarder sends every frame to a server's MAC.
      add(at('upstream'), `upstream ${describeValue(d.upstream)} finds its servers in DNS, which gives no MAC addresses: DSR needs its servers listed with address and mac`);
      return;
    }
    up.servers.forEach((s, j) => {
      if (!ok([...upPath, j])) return;
      const parsed = parseHostPort(s.address);
      if (typeof parsed !== 'string' && isIP(parsed.host) !== 4) {
        add([...upPath, j, 'address'], `dsr[${i}] forwards packets to this server by its IP: expected an IPv4 address with a port like 10.77.0.11:80 (DSR is IPv4 only), got ${describeValue(s.address)}`);
      }
      // l2 rewrites the frame to the server's MAC; l3 sends it there too, as the next hop on the segment.
      if (s.mac === undefined) add([...upPath, j], `required key mac is missing: dsr[${i}] sends the VIP's frames to each server's MAC address`);
      else {
        const why = unusableMac(s.mac);
        if (why !== undefined) add([...upPath, j, 'mac'], `expected a unicast MAC address, got ${describeValue(s.mac)} (${why})`);
      }
    });
  });
}
// ---- end DSR -------------------------------------------------------------------

function isPrefix(prefix: readonly PathSegment[], path: readonly PathSegment[]): boolean {
  return prefix.length <= path.length && prefix.every((seg, i) => seg === path[i]);
}

/** `raw` has had defaults applied; the parts touched by `schemaIssues` are skipped. Files are relative to `baseDir`. */
export function checkSemantics(raw: RawConfig, schemaIssues: readonly Issue[], baseDir: string): Issue[] {
  // ok: the schema found nothing wrong at, above or below `path`.
  const ok = (path: PathSegment[]): boolean => !schemaIssues.some((i) => isPrefix(i.path, path) || isPrefix(path, i.path));
  // typed: the value at `path` has its schema type (its children may still be wrong).
  const typed = (path: PathSegment[]): boolean => !schemaIssues.some((i) => isPrefix(i.path, path));
  const each = <T>(path: PathSegment[], list: T[], fn: (item: T, i: number) => void): void => {
    if (typed(path)) list.forEach((item, i) => typed([...path, i]) && fn(item, i));
  };
  const issues: Issue[] = [];
  const add = (path: PathSegment[], message: string): void => void issues.push({ path, message });
  const expectHost = (path: PathSegment[], host: string): void => {
    if (!isValidHost(host)) add(path, `expected a host name or IP address, got ${describeValue(host)}`);
  };
  const expectHostPort = (path: PathSegment[], text: string): HostPort | undefined => {
    const parsed = parseHostPort(text);
    if (typeof parsed === 'string') add(path, `${parsed}, got ${describeValue(text)}`);
    return typeof parsed === 'string' ? undefined : parsed;
  };
  const expectTimer = (path: PathSegment[], value: string | number): void => {
    if (parseDuration(value) > MAX_TIMER_MS) add(path, `expected a duration of at most ${MAX_TIMER_MS}ms (about 24 days), got ${describeValue(value)}`);
  };

  // Everything the process binds, so that no two of them can clash on a port.
  const bound: { path: PathSegment[]; at: HostPort }[] = [];
  const bind = (path: PathSegment[], at: HostPort): void => {
    const clash = bound.find((b) => b.at.port === at.port && hostsOverlap(b.at.host, at.host));
    if (clash) {
      add(path, `port ${at.port} on ${at.host} is already taken by ${formatPath(clash.path)} (${clash.at.host}:${clash.at.port})`);
    } else {
      bound.push({ path, at });
    }
  };

  each(['listen'], raw.listen, (l, i) => {
    if (ok(['listen', i, 'host'])) expectHost(['listen', i, 'host'], l.host);
    if (ok(['listen', i])) bind(['listen', i], l);
    if (ok(['listen', i])) checkListenerTls(l, ['listen', i], baseDir, add);
  });
  const clientCaListener = typed(['listen']) && raw.listen.some((l) => l.tls?.client_ca !== undefined);
  checkL4Listeners(raw, { ok, typed, add, expectTimer });
  checkDsr(raw, { ok, typed, add, expectTimer });
  if (raw.admin !== undefined && ok(['admin', 'host']) && ok(['admin', 'port'])) {
    expectHost(['admin', 'host'], raw.admin.host);
    bind(['admin', 'port'], raw.admin);
  }
  each(['demo_backends'], raw.demo_backends, (text, i) => {
    const at = expectHostPort(['demo_backends', i], text);
    if (at) bind(['demo_backends', i], at);
  });

  each(['trusted_proxies'], raw.trusted_proxies, (cidr, i) => {
    if (!isValidCidr(cidr)) add(['trusted_proxies', i], `expected a CIDR like 10.0.0.0/8 or an IP address, got ${describeValue(cidr)}`);
  });

  for (const key of ['headers_timeout', 'request_timeout', 'keepalive_timeout'] as const) {
    if (ok(['limits', key])) expectTimer(['limits', key], raw.limits[key]);
  }
  if (ok(['shutdown_timeout'])) expectTimer(['shutdown_timeout'], raw.shutdown_timeout);
  if (ok(['tunnel_max_age'])) expectTimer(['tunnel_max_age'], raw.tunnel_max_age);
  // The HTTP/2 window is a 31-bit number (RFC 9113 §6.9.2).
  if (ok(['http2', 'initial_window_size']) && parseSize(raw.http2.initial_window_size) > 2 ** 31 - 1) {
    add(['http2', 'initial_window_size'], `expected a size of at most 2147483647 bytes, got ${describeValue(raw.http2.initial_window_size)}`);
  }
  if (ok(['auth_failures', 'rate']) && !(parseRate(raw.auth_failures.rate) > 0)) {
    add(['auth_failures', 'rate'], `expected a positive rate, got ${describeValue(raw.auth_failures.rate)}`);
  }

  const upstreams = typed(['upstreams']) ? raw.upstreams : {};
  for (const [name, up] of Object.entries(upstreams)) {
    const base: PathSegment[] = ['upstreams', name];
    if (!typed(base)) continue;
    const seen = new Map<string, number>();
    if (!Array.isArray(up.servers)) {
      checkDnsServers(up.servers, [...base, 'servers']);
      continue;
    }
    each([...base, 'servers'], up.servers, (s, i) => {
      if (!ok([...base, 'servers', i, 'address'])) return;
      const at = expectHostPort([...base, 'servers', i, 'address'], s.address);
      if (!at) return;
      const id = `${at.host.toLowerCase()}:${at.port}`;
      const first = seen.get(id);
      if (first !== undefined) add([...base, 'servers', i, 'address'], `duplicate server address (also servers[${first}])`);
      else seen.set(id, i);
    });
    for (const key of ['connect', 'response', 'idle'] as const) {
      if (ok([...base, 'timeouts', key])) expectTimer([...base, 'timeouts', key], up.timeouts[key]);
    }
    if (up.tls && ok([...base, 'tls'])) checkUpstreamTls(up.tls, [...base, 'tls'], baseDir, add);
    if (up.health && ok([...base, 'health'])) {
      const { interval, timeout } = up.health;
      expectTimer([...base, 'health', 'interval'], interval);
      if (parseDuration(timeout) > parseDuration(interval)) {
        add([...base, 'health', 'timeout'], `expected at most the interval (${interval}), got ${describeValue(timeout)}`);
      }
    }
  }

  const upstreamNames = Object.keys(upstreams);
  const routeKeys = new Map<string, number>();
  const routeNames = new Map<string, number>();
  each(['routes'], raw.routes, (r, i) => {
    const at = (...rest: PathSegment[]): PathSegment[] => ['routes', i, ...rest];
    if (ok(at('match', 'host')) && !isRouteHost(r.match.host)) {
      add(at('match', 'host'), `expected an exact host name, "*.example.com" or "*", got ${describeValue(r.match.host)}`);
    }
    if (ok(at('match', 'path'))) {
      const path = r.match.path;
      // Requests carry bytes: a non-ASCII path is compared as its UTF-8 escapes.
      const resolved = resolvePath(Buffer.from(path, 'utf8').toString('latin1'), 'decode');
      if (resolved !== path || /[;?#]/.test(path)) {
        const hint = typeof resolved === 'string' && !/[;?#]/.test(resolved) && resolved !== path ? `; write ${describeValue(resolved)}` : '';
        add(at('match', 'path'), `expected a normalised path (no "." or ".." segments, "//", "\\", ";", "?", "#", escaped letters, digits or "-._~", lower-case hex in escapes), got ${describeValue(path)}${hint}`);
      }
    }
    if (typed(['upstreams']) && ok(at('upstream')) && !upstreamNames.includes(r.upstream)) {
      add(at('upstream'), `expected the name of an upstream (one of: ${upstreamNames.join(', ')}), got ${describeValue(r.upstream)}`);
    }
    for (const key of ['connect', 'response', 'idle', 'total'] as const) {
      const value = r.timeouts?.[key];
      if (value !== undefined && ok(at('timeouts', key))) expectTimer(at('timeouts', key), value);
    }
    for (const side of ['request_headers', 'response_headers'] as const) {
      for (const kind of ['set', 'add'] as const) {
        const pairs = r[side]?.[kind];
        if (pairs === undefined || !ok(at(side, kind))) continue;
        for (const [name, value] of Object.entries(pairs)) {
          // Written into the head as they are: a line break or NUL would end the header and start another.
          const where = `route ${describeValue(r.name ?? defaultRouteName(r))}, ${side}.${kind} ${describeValue(name)}`;
          if (!HEADER_NAME.test(name)) add(at(side, kind, name), `${where}: expected a header name (letters, digits and !#$%&'*+.^_\`|~-)`);
          const bad = /[\x00-\x08\x0a-\x1f\x7f]/.exec(value);
          if (bad) add(at(side, kind, name), `${where}: a header value cannot hold ${CONTROL_NAMES[bad[0]] ?? describeValue(bad[0])} (CR, LF, NUL and other control characters end or corrupt the header)`);
          else if (/[^\x00-\xff]/.test(value)) add(at(side, kind, name), `${where}: expected a latin1 header value (characters up to U+00FF), got ${describeValue(value)}`);
        }
      }
    }
    if (r.auth && ok(at('auth'))) checkAuth(r.auth, at('auth'));
    if (r.rate_limit && ok(at('rate_limit', 'rate')) && !(parseRate(r.rate_limit.rate) > 0)) {
      add(at('rate_limit', 'rate'), `expected a positive rate, got ${describeValue(r.rate_limit.rate)}`);
    }
    if (r.rate_limit?.scope === 'global' && raw.redis === undefined && ok(at('rate_limit', 'scope'))) {
      add(at('rate_limit', 'scope'), 'scope: global keeps the bucket in Redis: expected a top-level redis: { url } (or scope: instance)');
    }
    if (r.authorize?.cidrs && ok(at('authorize', 'cidrs'))) {
      r.authorize.cidrs.forEach((cidr, j) => {
        if (!isValidCidr(cidr)) add(at('authorize', 'cidrs', j), `expected a CIDR like 10.0.0.0/8 or an IP address, got ${describeValue(cidr)}`);
      });
    }
    if (r.cors && ok(at('cors', 'origins'))) {
      r.cors.origins.forEach((origin, j) => {
        if (!isCorsOrigin(origin)) add(at('cors', 'origins', j), `expected an origin like https://app.example.com, https://*.example.com or "*", got ${describeValue(origin)}`);
      });
      if (r.cors.credentials && r.cors.origins.includes('*') && ok(at('cors', 'credentials'))) {
        add(at('cors', 'origins'), 'expected explicit origins: "*" cannot be combined with credentials: true');
      }
    }
    if (!ok(['routes', i])) return;
    const key = routeKey(r);
    const sameMatch = routeKeys.get(key);
    if (sameMatch !== undefined) {
      const other = raw.routes[sameMatch]!.match.path;
      const why = other === r.match.path ? 'same host, path' : `same host, path (${describeValue(other)}: paths match case-insensitively)`;
      add(at('match'), `duplicate route (${why}, methods and headers as routes[${sameMatch}])`);
    }
    else routeKeys.set(key, i);
    const name = r.name ?? defaultRouteName(r);
    const sameName = routeNames.get(name);
    if (sameName !== undefined && sameMatch === undefined) add(at('name'), `duplicate route name ${describeValue(name)} (also routes[${sameName}])`);
    else routeNames.set(name, i);
  });

  if (raw.redis && typed(['redis'])) checkRedis(raw.redis);

  function checkDnsServers(d: RawDnsServers, path: PathSegment[]): void {
    if (!typed(path)) return;
    if (d.type === 'SRV' && d.port !== undefined && ok([...path, 'port'])) add([...path, 'port'], 'expected no port with type SRV: each SRV record carries its own');
    if (d.type !== 'SRV' && d.port === undefined && ok([...path, 'type'])) add(path, `expected a port with type ${d.type} (the records hold addresses only)`);
    if (ok([...path, 'interval'])) {
      expectTimer([...path, 'interval'], d.interval);
      if (parseDuration(d.interval) < 1000) add([...path, 'interval'], `expected at least 1s, got ${describeValue(d.interval)}`);
    }
    d.resolvers?.forEach((r, i) => {
      if (ok([...path, 'resolvers', i]) && !isResolverAddress(r)) {
        add([...path, 'resolvers', i], `expected an IP address, optionally with :port (127.0.0.1:5353, [::1]:53), got ${describeValue(r)}`);
      }
    });
  }

  function checkRedis(r: NonNullable<RawConfig['redis']>): void {
    if (ok(['redis', 'url'])) {
      let url: URL | undefined;
      try {
        url = new URL(r.url);
      } catch {
        add(['redis', 'url'], `expected a URL like redis://host:6379, got ${describeValue(r.url)}`);
      }
      if (url !== undefined) {
        if (url.hostname === '') add(['redis', 'url'], `expected a host in the URL, got ${describeValue(r.url)}`);
        if (url.pathname !== '' && url.pathname !== '/' && !/^\/\d{1,2}$/.test(url.pathname)) add(['redis', 'url'], `expected a database number as the path (redis://host:6379/0), got ${describeValue(url.pathname)}`);
      }
    }
    if (r.ca_file !== undefined && ok(['redis', 'ca_file'])) {
      if (!r.url.startsWith('rediss://')) add(['redis', 'ca_file'], 'expected a rediss:// url: ca_file verifies a TLS connection');
      const file = resolve(baseDir, r.ca_file);
      try {
        if (!readFileSync(file, 'utf8').includes('-----BEGIN CERTIFICATE-----')) add(['redis', 'ca_file'], `expected ${file} to hold PEM certificates (-----BEGIN CERTIFICATE-----)`);
      } catch (err) {
        add(['redis', 'ca_file'], `cannot read ${file}: ${(err as Error).message}`);
      }
    }
    if (ok(['redis', 'timeout'])) expectTimer(['redis', 'timeout'], r.timeout);
  }

  function checkAuth(a: NonNullable<RawRoute['auth']>, path: PathSegment[]): void {
    const schemes = (['api_key', 'jwt', 'basic', 'mtls'] as const).filter((k) => a[k] !== undefined);
    if (schemes.length !== 1) {
      add(path, `expected exactly one of api_key, jwt, basic, mtls, got ${schemes.length === 0 ? 'none' : schemes.join(' and ')}`);
      return;
    }
    if (a.mtls && !clientCaListener) add([...path, 'mtls'], 'no listener requests client certificates: set tls.client_ca on a listener (listen[].tls.client_ca)');
    if (a.api_key) {
      const k = a.api_key;
      (k.keys ?? []).forEach((entry, j) => {
        if ((entry.key === undefined) === (entry.sha256 === undefined)) add([...path, 'api_key', 'keys', j], 'expected exactly one of key, sha256');
      });
      if (!k.keys?.length && !k.keys_file) add([...path, 'api_key'], 'expected keys or keys_file');
      if (k.keys_file) {
        const file = resolve(baseDir, k.keys_file);
        try {
          const listed = readKeysFile(file);
          if (!Array.isArray(listed) || !listed.every((e) => e && typeof e.name === 'string' && (typeof e.key === 'string' || typeof e.sha256 === 'string'))) {
            add([...path, 'api_key', 'keys_file'], `expected ${file} to hold a YAML list of { name, key or sha256, scopes }`);
          }
        } catch (err) {
          add([...path, 'api_key', 'keys_file'], `cannot read ${file}: ${(err as Error).message}`);
        }
      }
    }
    if (a.jwt) {
      const j = a.jwt;
      const sources = (['secret', 'public_key_file', 'jwks_file', 'jwks_url'] as const).filter((k) => j[k] !== undefined);
      if (sources.length !== 1) add([...path, 'jwt'], `expected exactly one key source of secret, public_key_file, jwks_file, jwks_url, got ${sources.length === 0 ? 'none' : sources.join(' and ')}`);
      const algorithms = j.algorithms ?? [];
      if (j.secret !== undefined && algorithms.some((alg) => alg !== 'HS256')) add([...path, 'jwt', 'algorithms'], 'expected only HS256 with a shared secret');
      if (j.secret === undefined && algorithms.includes('HS256')) add([...path, 'jwt', 'algorithms'], 'expected HS256 only with a secret (public keys verify RS256, ES256, EdDSA)');
      for (const key of ['public_key_file', 'jwks_file'] as const) {
        const rel = j[key];
        if (rel === undefined) continue;
        const file = resolve(baseDir, rel);
        try {
          const text = readFileSync(file, 'utf8');
          if (key === 'public_key_file' && !text.includes('-----BEGIN PUBLIC KEY-----')) add([...path, 'jwt', key], `expected ${file} to hold a PEM public key (-----BEGIN PUBLIC KEY-----)`);
          if (key === 'jwks_file' && !Array.isArray((JSON.parse(text) as { keys?: unknown }).keys)) add([...path, 'jwt', key], `expected ${file} to hold a JWKS ({"keys": [...]})`);
        } catch (err) {
          add([...path, 'jwt', key], `cannot read ${file}: ${(err as Error).message}`);
        }
      }
    }
  }
  checkAcme(raw, ok, add, baseDir);
  return issues;
}

// ---- ACME (issue 12, item 3) ----------------------------------------------
function checkAcme(raw: RawConfig, ok: (path: PathSegment[]) => boolean, add: (path: PathSegment[], message: string) => void, baseDir: string): void {
  if (!Array.isArray(raw.listen)) return;
  const claimed = new Map<string, PathSegment[]>();
  // Listeners that redirect to https answer HTTP-01 before they redirect.
  const plainListeners = raw.listen.filter((l) => typeof l === 'object' && l !== null && l.tls === undefined).length;
  raw.listen.forEach((l, i) => {
    const path: PathSegment[] = ['listen', i, 'tls', 'acme'];
    const t = l?.tls;
    if (t !== undefined && ok(['listen', i, 'tls', 'certificates']) && t.certificates.length === 0 && t.acme === undefined) {
      add(['listen', i, 'tls', 'certificates'], 'expected at least one { cert, key }, or acme to obtain one');
    }
    const a = t?.acme;
    if (a === undefined || !ok(path)) return;
    // HTTP-01 (the default): the CA must reach a plain listener. TLS-ALPN-01 is answered on this listener itself.
    if (plainListeners === 0 && a.challenge !== 'tls-alpn-01') {
      add(path, 'expected a plain listener (one without tls, port 80 for a public CA) beside it: HTTP-01 challenges are answered there (or challenge: tls-alpn-01)');
    }
    a.domains.forEach((domain, d) => {
      const key = domain.toLowerCase();
      const first = claimed.get(key);
      if (first !== undefined) add([...path, 'domains', d], `duplicate domain ${describeValue(domain)} (also ${formatPath(first)})`);
      else claimed.set(key, [...path, 'domains', d]);
    });
    for (const key of ['min', 'max'] as const) expectAcmeTimer([...path, 'retry', key], a.retry[key], add);
    if (parseDuration(a.retry.min) > parseDuration(a.retry.max)) add([...path, 'retry', 'min'], `expected at most retry.max (${a.retry.max}), got ${describeValue(a.retry.min)}`);
    if (a.ca !== undefined) {
      const file = resolve(baseDir, a.ca);
      try {
        new X509Certificate(readFileSync(file));
      } catch (err) {
        add([...path, 'ca'], `expected ${file} to hold a PEM CA certificate: ${(err as Error).message}`);
      }
    }
  });
}

function expectAcmeTimer(path: PathSegment[], value: string | number, add: (path: PathSegment[], message: string) => void): void {
  if (parseDuration(value) > MAX_TIMER_MS) add(path, `expected a duration of at most ${MAX_TIMER_MS}ms (about 24 days), got ${describeValue(value)}`);
}
// ---- end ACME ---------------------------------------------------------------

// ---- TLS (issue 12) ----
type AddIssue = (path: PathSegment[], message: string) => void;

/** The file's text, or an issue naming the key and the reason. */
function readPem(path: PathSegment[], rel: string, baseDir: string, add: AddIssue): string | undefined {
  const file = resolve(baseDir, rel);
  try {
    const text = readFileSync(file, 'utf8');
    if (!text.includes('-----BEGIN ')) {
      add(path, `expected ${file} to hold PEM data (-----BEGIN ...)`);
      return undefined;
    }
    return text;
  } catch (err) {
    add(path, `cannot read ${file}: ${(err as Error).message}`);
    return undefined;
  }
}

/** A certificate and key that OpenSSL accepts as a pair; the reason otherwise ("key values mismatch"). */
function checkPair(path: PathSegment[], cert: string, key: string, add: AddIssue): void {
  try {
    // OpenSSL's context takes a key of another certificate without a word: compare them here.
    if (!new X509Certificate(cert).checkPrivateKey(createPrivateKey(key))) throw new Error('the key does not belong to the certificate');
    createSecureContext({ cert, key });
  } catch (err) {
    add(path, `certificate and key are not a usable pair: ${(err as Error).message}`);
  }
}

function checkListenerTls(l: RawListen, path: PathSegment[], baseDir: string, add: AddIssue): void {
  if (l.tls && l.redirect_https) add([...path, 'redirect_https'], 'expected either tls or redirect_https on one listener, not both');
  for (const [j, h] of (l.redirect_https?.hosts ?? []).entries()) {
    if (!isValidHost(h.startsWith('*.') ? h.slice(2) : h)) add([...path, 'redirect_https', 'hosts', j], `expected a host name or "*.example.com", got ${describeValue(h)}`);
  }
  const t = l.tls;
  if (!t) return;
  const defaults = t.certificates.filter((c) => c.default === true).length;
  if (defaults > 1) add([...path, 'tls', 'certificates'], `expected at most one certificate with default: true, got ${defaults}`);
  t.certificates.forEach((c, j) => {
    const at = [...path, 'tls', 'certificates', j];
    const cert = readPem([...at, 'cert'], c.cert, baseDir, add);
    const key = readPem([...at, 'key'], c.key, baseDir, add);
    if (cert !== undefined && key !== undefined) checkPair(at, cert, key, add);
  });
  if (t.client_ca !== undefined) {
    const ca = readPem([...path, 'tls', 'client_ca'], t.client_ca, baseDir, add);
    if (ca !== undefined) {
      try {
        createSecureContext({ ca });
      } catch (err) {
        add([...path, 'tls', 'client_ca'], `not a usable CA certificate: ${(err as Error).message}`);
      }
    }
  }
  if (t.ciphers !== undefined) {
    try {
      createSecureContext({ ciphers: t.ciphers });
    } catch (err) {
      add([...path, 'tls', 'ciphers'], `OpenSSL refuses this cipher list: ${(err as Error).message}`);
    }
  }
}

function checkUpstreamTls(t: RawUpstreamTls, path: PathSegment[], baseDir: string, add: AddIssue): void {
  if ((t.cert === undefined) !== (t.key === undefined)) add(path, 'expected both cert and key (a client certificate) or neither');
  const cert = t.cert === undefined ? undefined : readPem([...path, 'cert'], t.cert, baseDir, add);
  const key = t.key === undefined ? undefined : readPem([...path, 'key'], t.key, baseDir, add);
  if (cert !== undefined && key !== undefined) checkPair(path, cert, key, add);
  if (t.ca !== undefined) readPem([...path, 'ca'], t.ca, baseDir, add);
  if (t.servername !== undefined && !isValidHost(t.servername)) add([...path, 'servername'], `expected a host name, got ${describeValue(t.servername)}`);
}
// ---- end TLS ----

const HEADER_NAME = new RegExp(HEADER_NAME_PATTERN);
const CONTROL_NAMES: Record<string, string> = { '\r': 'a CR', '\n': 'an LF', '\x00': 'a NUL' };

/** What node:dns setServers takes: an IP, "IPv4:port" or "[IPv6]:port". */
function isResolverAddress(text: string): boolean {
  const m = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(text) ?? /^([^:]+):(\d{1,5})$/.exec(text) ?? [text, text, undefined];
  const port = m[2] === undefined ? 53 : Number(m[2]);
  return isIP(m[1]!) !== 0 && port >= 1 && port <= 65535;
}

/** "*", an exact host, or "*.example.com". */
function isRouteHost(host: string): boolean {
  if (host === '*') return true;
  return isValidHost(host.startsWith('*.') ? host.slice(2) : host);
}

/** "*", or scheme://host[:port] where host may start with "*." (any subdomain). */
function isCorsOrigin(origin: string): boolean {
  if (origin === '*') return true;
  const m = /^(https?):\/\/(\*\.)?([^/:*]+)(:\d{1,5})?$/.exec(origin);
  return m !== null && isValidHost(m[3]!);
}

/** What makes two routes the same route. */
function routeKey(r: RawRoute): string {
  const methods = (r.match.methods ?? []).map((m) => m.toUpperCase()).sort().join(',');
  const headers = Object.entries(r.match.headers ?? {})
    .map(([k, v]) => `${k.toLowerCase()}=${v}`)
    .sort()
    .join(',');
  // Paths match case-insensitively too (Router): "/Admin" and "/admin" would make every request to either ambiguous.
  return `${r.match.host.toLowerCase()} ${r.match.path.toLowerCase()} ${methods} ${headers}`;
}
