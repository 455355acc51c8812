// Checks the schema cannot express: address syntax, references between
// sections, duplicates and port clashes. Runs after the schema, and checks
// only the parts the schema passed, so that every problem is reported in one
// go without a wrongly typed value causing noise or a crash here.

import { hostsOverlap, isValidCidr, isValidHost, parseHostPort } from './address.js';
import type { HostPort } from './address.js';
import { MAX_TIMER_MS, parseDuration } from './duration.js';
import { describeValue, formatPath } from './errors.js';
import type { Issue, PathSegment } from './errors.js';
import type { RawConfig } from './schema.js';

function isPrefix(prefix: readonly PathSegment[], path: readonly PathSegment[]): boolean {
  return prefix.length <= path.length && prefix.every((seg, i) => seg === path[i]);
}

/** `raw` has had defaults applied; the parts touched by `schemaIssues` are skipped. */
export function checkSemantics(raw: RawConfig, schemaIssues: readonly Issue[]): Issue[] {
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
  });
  if (ok(['admin', 'host']) && ok(['admin', 'port'])) {
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

  const upstreams = typed(['upstreams']) ? raw.upstreams : {};
  for (const [name, up] of Object.entries(upstreams)) {
    const base: PathSegment[] = ['upstreams', name];
    if (!typed(base)) continue;
    const seen = new Map<string, number>();
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
    if (ok(['routes', i, 'match', 'host']) && r.match.host !== '*' && !isValidHost(r.match.host)) {
      add(['routes', i, 'match', 'host'], `expected an exact host name or "*", got ${describeValue(r.match.host)}`);
    }
    if (typed(['upstreams']) && ok(['routes', i, 'upstream']) && !upstreamNames.includes(r.upstream)) {
      add(['routes', i, 'upstream'], `expected the name of an upstream (one of: ${upstreamNames.join(', ')}), got ${describeValue(r.upstream)}`);
    }
    if (!ok(['routes', i])) return;
    const key = `${r.match.host.toLowerCase()} ${r.match.path}`;
    const sameMatch = routeKeys.get(key);
    if (sameMatch !== undefined) add(['routes', i, 'match'], `duplicate route (same host and path as routes[${sameMatch}])`);
    else routeKeys.set(key, i);
    const name = r.name ?? `${r.match.host}${r.match.path}`;
    const sameName = routeNames.get(name);
    if (sameName !== undefined && sameMatch === undefined) add(['routes', i, 'name'], `duplicate route name ${describeValue(name)} (also routes[${sameName}])`);
    else routeNames.set(name, i);
  });
  return issues;
}
