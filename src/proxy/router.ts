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
// Paths are compared in each form a backend could give them (request-target.ts):
// every form must land on the same route, or the request is refused, so no
// spelling of a path reaches a route other than the one its resource belongs
// to under whichever reading the backend makes. Hosts compare lower-cased,
// without port or trailing dot. Route paths are normalised (checked by the
// config); folded forms compare with the route paths lower-cased.
//
// Routes sit in a trie of path segments per host group, so a request is
// compared only with the routes whose prefix lies along its own path: a
// table of a thousand services costs about what a table of ten does.
import type { RouteConfig } from '../config/types.js';
import { asciiLower, hasUpperCase, matchingHost, pathForms, pathKind, PLAIN, type EscapedSlashes } from './request-target.js';

interface Entry<T> {
  route: RouteConfig;
  target: T;
  conditions: number;
  order: number;
}

/** One path segment in the prefix trie, with the routes whose prefix ends here. */
interface TrieNode<T> {
  children: Map<string, TrieNode<T>>;
  /** Prefixes ending at this segment ("/api"): the target ends, or goes on with "/" or "?". */
  exact: Entry<T>[];
  /** Prefixes ending with "/" after this segment ("/api/", or "/" at the root): the target goes on with "/". */
  slash: Entry<T>[];
}

const newNode = <T>(): TrieNode<T> => ({ children: new Map(), exact: [], slash: [] });

/**
 * The routes of one host group in a trie of path segments: a match walks the
 * request path once, segment by segment, then tries the routes met on the
 * way from the deepest (longest prefix) up. Its cost grows with the depth of
 * the path, not with the number of routes.
 */
class PathIndex<T> {
  private readonly root: TrieNode<T> = newNode<T>();

  add(entry: Entry<T>, path: string): void {
    const slash = path.endsWith('/');
    const body = slash ? path.slice(1, -1) : path.slice(1);
    let node = this.root;
    if (body !== '' || !slash) {
      for (const segment of body.split('/')) {
        let child = node.children.get(segment);
        if (child === undefined) node.children.set(segment, (child = newNode<T>()));
        node = child;
      }
    }
    (slash ? node.slash : node.exact).push(entry);
  }

  seal(): void {
    const order = (a: Entry<T>, b: Entry<T>) => b.conditions - a.conditions || a.order - b.order;
    const visit = (node: TrieNode<T>): void => {
      node.exact.sort(order);
      node.slash.sort(order);
      for (const child of node.children.values()) visit(child);
    };
    visit(this.root);
  }

  match(method: string, target: string, raw: readonly string[]): Entry<T> | undefined {
    if (target.charCodeAt(0) !== 0x2f /* / */) return undefined;
    let end = target.indexOf('?');
    if (end < 0) end = target.length;
    // Walk down; nodes[d] is reached after d segments, followedBySlash[d] says whether "/" comes next.
    const nodes: TrieNode<T>[] = [this.root];
    const followedBySlash: boolean[] = [true];
    let node = this.root;
    let start = 1;
    while (start <= end) {
      let stop = target.indexOf('/', start);
      if (stop < 0 || stop > end) stop = end;
      const child = node.children.get(target.slice(start, stop));
      if (child === undefined) break;
      node = child;
      nodes.push(node);
      followedBySlash.push(stop < end);
      start = stop + 1;
    }
    for (let d = nodes.length - 1; d >= 0; d--) {
      const at = nodes[d]!;
      if (followedBySlash[d]) {
        const hit = firstMatch(at.slash, method, raw);
        if (hit !== undefined) return hit;
      }
      if (d > 0) {
        const hit = firstMatch(at.exact, method, raw);
        if (hit !== undefined) return hit;
      }
    }
    return undefined;
  }
}

/** The routes grouped by host: exact names, "*.suffix" wildcards (longest first), "*". */
class HostIndex<T> {
  private readonly exact = new Map<string, PathIndex<T>>();
  private readonly wildcard: Array<{ suffix: string; index: PathIndex<T> }> = [];
  private readonly any = new PathIndex<T>();

  constructor(entries: readonly Entry<T>[], pathOf: (route: RouteConfig) => string) {
    const wildcards = new Map<string, PathIndex<T>>();
    for (const entry of entries) {
      const host = routeHost(entry.route.host);
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
      index.add(entry, pathOf(entry.route));
    }
    for (const [suffix, index] of wildcards) this.wildcard.push({ suffix, index });
    this.wildcard.sort((a, b) => b.suffix.length - a.suffix.length);
    for (const index of [...this.exact.values(), ...wildcards.values(), this.any]) index.seal();
  }

  /** `name`: the matching host (see matchingHost), undefined without a Host header. */
  match(name: string | undefined, method: string, path: string, raw: readonly string[]): Entry<T> | undefined {
    if (name !== undefined && (this.exact.size > 0 || this.wildcard.length > 0)) {
      const hit = this.exact.get(name)?.match(method, path, raw);
      if (hit !== undefined) return hit;
      for (const { suffix, index } of this.wildcard) {
        if (name.length > suffix.length && name.endsWith(suffix)) {
          const wild = index.match(method, path, raw);
          if (wild !== undefined) return wild;
        }
      }
    }
    return this.any.match(method, path, raw);
  }
}

/** Why the router refused a request (400) instead of matching it. */
export interface Refusal {
  refused: 'bad-host' | 'bad-path';
  detail: string;
}

export class Router<T> {
  /** Route paths as written, for the forms compared case-sensitively. */
  private readonly exact: HostIndex<T>;
  /** Route paths lower-cased, for the folded forms (the same index when no route path has an upper-case letter). */
  private readonly folded: HostIndex<T>;
  private readonly foldAlways: boolean;

  constructor(
    routes: readonly RouteConfig[],
    resolve: (route: RouteConfig) => T,
    private readonly escapedSlashes: EscapedSlashes = 'decode',
  ) {
    const entries = routes.map((route, order) => ({
      route,
      target: resolve(route),
      conditions: (route.methods ? 1 : 0) + Object.keys(route.headers ?? {}).length,
      order,
    }));
    this.foldAlways = routes.some((r) => hasUpperCase(r.path));
    this.exact = new HostIndex(entries, (r) => r.path);
    this.folded = this.foldAlways ? new HostIndex(entries, (r) => asciiLower(r.path)) : this.exact;
  }

  /**
   * `host` is the Host header as received (may carry a port); `target` the
   * request-target (origin-form). Undefined when no route matches; a
   * Refusal (400) for a Host no backend takes, a path refused by pathForms,
   * or a path whose forms belong to different routes.
   */
  match(host: string | undefined, method: string, target: string, raw: readonly string[]): Entry<T> | Refusal | undefined {
    const name = host === undefined ? undefined : matchingHost(host);
    if (name === undefined && host !== undefined) return { refused: 'bad-host', detail: `a Host no backend accepts: ${quote(host)}` };
    if (target.charCodeAt(0) !== 0x2f /* / */) return undefined;
    if (!this.foldAlways && pathKind(target) === PLAIN) return this.exact.match(name, method, target, raw);
    const forms = pathForms(target, this.escapedSlashes, this.foldAlways);
    if (typeof forms === 'string') return { refused: 'bad-path', detail: forms };
    const first = this.exact.match(name, method, forms.plain[0]!, raw);
    for (const [index, list, from] of [[this.exact, forms.plain, 1], [this.folded, forms.folded, 0]] as const) {
      for (let i = from; i < list.length; i++) {
        const form = list[i]!;
        const other = index.match(name, method, form, raw);
        if (other !== first) {
          return { refused: 'bad-path', detail: `the path belongs to ${routeLabel(first)} as ${quote(forms.plain[0]!)} but to ${routeLabel(other)} as ${quote(form)}` };
        }
      }
    }
    return first;
  }
}

const routeLabel = (entry: Entry<unknown> | undefined): string => (entry === undefined ? 'no route' : `route ${entry.route.name}`);
/** A path or Host for the log, cut short: either can be kilobytes long. */
const quote = (path: string): string => JSON.stringify(path.length > 200 ? `${path.slice(0, 200)}…` : path);

function firstMatch<T>(list: readonly Entry<T>[], method: string, raw: readonly string[]): Entry<T> | undefined {
  for (const entry of list) {
    const { route } = entry;
    if (route.methods !== undefined && !route.methods.includes(method)) continue;
    if (route.headers !== undefined && !headersMatch(route.headers, raw)) continue;
    return entry;
  }
  return undefined;
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

/** A route's host as matched: lower-case, without a trailing dot. */
function routeHost(host: string): string {
  const lower = host.toLowerCase();
  return lower.length > 1 && lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** One host group of the route table, in the order Router tries groups: exact hosts, then "*.suffix" (longest first), then "*". */
export interface RouteGroup {
  host: string;
  /** In the order Router tries them for a request whose path all of them take: the first that matches wins. */
  routes: RouteConfig[];
}

/**
 * The routes as Router.match tries them, for `--check` and the dashboard:
 * the same grouping of hosts, and within a group the trie's order (the
 * deepest prefix first, "/x/" before "/x", more conditions first, then
 * config order; routes with unrelated paths never compete and are listed by
 * path).
 */
export function routeMatchOrder(routes: readonly RouteConfig[]): RouteGroup[] {
  const groups = new Map<string, RouteConfig[]>();
  for (const route of routes) {
    const host = routeHost(route.host);
    let list = groups.get(host);
    if (list === undefined) groups.set(host, (list = []));
    list.push(route);
  }
  const rank = (host: string): number => (host === '*' ? 2 : host.startsWith('*.') ? 1 : 0);
  const hosts = [...groups.keys()].sort((a, b) => rank(a) - rank(b) || (rank(a) === 1 ? b.length - a.length : 0) || a.localeCompare(b));
  const order = new Map(routes.map((r, i) => [r, i]));
  const depth = (path: string): number => (path === '/' ? 0 : path.replace(/\/$/, '').split('/').length - 1);
  const conditions = (r: RouteConfig): number => (r.methods ? 1 : 0) + Object.keys(r.headers ?? {}).length;
  return hosts.map((host) => ({
    host,
    routes: groups.get(host)!.sort(
      (a, b) =>
        depth(b.path) - depth(a.path) ||
        a.path.replace(/\/$/, '').localeCompare(b.path.replace(/\/$/, '')) ||
        Number(b.path.endsWith('/')) - Number(a.path.endsWith('/')) ||
        conditions(b) - conditions(a) ||
        order.get(a)! - order.get(b)!,
    ),
  }));
}
