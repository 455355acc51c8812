// Route matching, compiled once per config. The order, most specific first:
//   1. host: the exact host (case-insensitive, port ignored), then
//      "*.example.com" routes (longest suffix first; any depth of subdomain,
//      not example.com itself), then "*";
//   2. within a host group: the longest path prefix, on a segment boundary
//      ("/api" takes "/api", "/api/x" and "/api?q", not "/apiary"; a prefix
//      ending in "/" takes anything below it);
//   3. among routes with the same prefix: those with more conditions
//      (methods + headers) first, then config order.
// The first route whose path, methods and headers all match wins; no match
// in a group falls through to the next group.
//
// Routes are indexed by the first path segment of their prefix, so a request
// is compared only with the routes that share its first segment plus the
// root ("/") routes: a table of a thousand services costs about what a table
// of ten does.
import type { RouteConfig } from '../config/types.js';

interface Entry<T> {
  route: RouteConfig;
  target: T;
  conditions: number;
  order: number;
}

class PathIndex<T> {
  private readonly bySegment = new Map<string, Entry<T>[]>();
  private readonly root: Entry<T>[] = [];

  add(entry: Entry<T>): void {
    const segment = firstSegment(entry.route.path);
    if (segment === '') this.root.push(entry);
    else {
      let list = this.bySegment.get(segment);
      if (list === undefined) this.bySegment.set(segment, (list = []));
      list.push(entry);
    }
  }

  seal(): void {
    const order = (a: Entry<T>, b: Entry<T>) => b.route.path.length - a.route.path.length || b.conditions - a.conditions || a.order - b.order;
    for (const list of this.bySegment.values()) list.sort(order);
    this.root.sort(order);
  }

  match(method: string, target: string, raw: readonly string[]): Entry<T> | undefined {
    const list = this.bySegment.get(firstSegment(target));
    return (list !== undefined ? firstMatch(list, method, target, raw) : undefined) ?? firstMatch(this.root, method, target, raw);
  }
}

export class Router<T> {
  private readonly exact = new Map<string, PathIndex<T>>();
  private readonly wildcard: Array<{ suffix: string; index: PathIndex<T> }> = [];
  private readonly any = new PathIndex<T>();

  constructor(routes: readonly RouteConfig[], resolve: (route: RouteConfig) => T) {
    const wildcards = new Map<string, PathIndex<T>>();
    routes.forEach((route, order) => {
      const entry = { route, target: resolve(route), conditions: (route.methods ? 1 : 0) + Object.keys(route.headers ?? {}).length, order };
      const host = route.host.toLowerCase();
      let index: PathIndex<T>;
      if (host === '*') index = this.any;
      else if (host.startsWith('*.')) {
        const suffix = host.slice(1); // ".example.com"
        index = wildcards.get(suffix) ?? new PathIndex<T>();
        wildcards.set(suffix, index);
      } else {
        index = this.exact.get(host) ?? new PathIndex<T>();
        this.exact.set(host, index);
      }
      index.add(entry);
    });
    for (const [suffix, index] of wildcards) this.wildcard.push({ suffix, index });
    this.wildcard.sort((a, b) => b.suffix.length - a.suffix.length);
    for (const index of [...this.exact.values(), ...wildcards.values(), this.any]) index.seal();
  }

  /** `host` is the Host header as received (may carry a port); `target` the request-target (origin-form). */
  match(host: string | undefined, method: string, target: string, raw: readonly string[]): { route: RouteConfig; target: T } | undefined {
    if (host !== undefined && (this.exact.size > 0 || this.wildcard.length > 0)) {
      const name = hostName(host);
      const hit = this.exact.get(name)?.match(method, target, raw);
      if (hit !== undefined) return hit;
      for (const { suffix, index } of this.wildcard) {
        if (name.length > suffix.length && name.endsWith(suffix)) {
          const wild = index.match(method, target, raw);
          if (wild !== undefined) return wild;
        }
      }
    }
    return this.any.match(method, target, raw);
  }
}

function firstMatch<T>(list: readonly Entry<T>[], method: string, target: string, raw: readonly string[]): Entry<T> | undefined {
  for (const entry of list) {
    const { route } = entry;
    if (!prefixMatches(route.path, target)) continue;
    if (route.methods !== undefined && !route.methods.includes(method)) continue;
    if (route.headers !== undefined && !headersMatch(route.headers, raw)) continue;
    return entry;
  }
  return undefined;
}

function prefixMatches(prefix: string, target: string): boolean {
  if (!target.startsWith(prefix)) return false;
  if (target.length === prefix.length || prefix.endsWith('/')) return true;
  const next = target.charCodeAt(prefix.length);
  return next === 0x2f /* / */ || next === 0x3f /* ? */;
}

/** Every required header is present with exactly the required value (names lower-cased in the config). */
function headersMatch(required: Readonly<Record<string, string>>, raw: readonly string[]): boolean {
  for (const name in required) {
    let found = false;
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i]!.length === name.length && raw[i]!.toLowerCase() === name && raw[i + 1] === required[name]) {
        found = true;
        break;
      }
    }
    if (!found) return false;
  }
  return true;
}

/** "/api/users?x" → "api"; "/" and "/?q" → "". */
function firstSegment(path: string): string {
  let end = 1;
  while (end < path.length) {
    const c = path.charCodeAt(end);
    if (c === 0x2f || c === 0x3f) break;
    end++;
  }
  return path.slice(1, end);
}

/** Lower-cased host without the port ("[::1]:80" → "[::1]"). */
export function hostName(host: string): string {
  let end = host.length;
  const colon = host.lastIndexOf(':');
  if (colon > 0 && host.indexOf(']') < colon) end = colon;
  return host.slice(0, end).toLowerCase();
}
