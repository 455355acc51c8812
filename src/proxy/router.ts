// Host + longest-path-prefix routing, compiled once per config. Hosts match
// exactly (case-insensitive, port ignored) before the "*" catch-all. A prefix
// matches on a segment boundary: "/api" takes "/api", "/api/x" and "/api?q"
// but not "/apiary" (a prefix ending in "/" matches anything below it).
import type { RouteConfig } from '../config/types.js';

export class Router<T> {
  private readonly byHost = new Map<string, Array<{ route: RouteConfig; target: T }>>();
  private readonly anyHost: Array<{ route: RouteConfig; target: T }> = [];

  constructor(routes: readonly RouteConfig[], resolve: (route: RouteConfig) => T) {
    for (const route of routes) {
      const entry = { route, target: resolve(route) };
      if (route.host === '*') this.anyHost.push(entry);
      else {
        const host = route.host.toLowerCase();
        let list = this.byHost.get(host);
        if (list === undefined) this.byHost.set(host, (list = []));
        list.push(entry);
      }
    }
    const longestFirst = (a: { route: RouteConfig }, b: { route: RouteConfig }) => b.route.path.length - a.route.path.length;
    for (const list of this.byHost.values()) list.sort(longestFirst);
    this.anyHost.sort(longestFirst);
  }

  /** `host` is the Host header value as received (may carry a port); `target` the request-target. */
  match(host: string | undefined, target: string): { route: RouteConfig; target: T } | undefined {
    if (host !== undefined && this.byHost.size > 0) {
      const list = this.byHost.get(hostName(host));
      if (list !== undefined) {
        const hit = matchPath(list, target);
        if (hit !== undefined) return hit;
      }
    }
    return matchPath(this.anyHost, target);
  }
}

function matchPath<E extends { route: RouteConfig }>(list: readonly E[], target: string): E | undefined {
  for (const entry of list) {
    const prefix = entry.route.path;
    if (!target.startsWith(prefix)) continue;
    if (target.length === prefix.length || prefix.endsWith('/')) return entry;
    const next = target.charCodeAt(prefix.length);
    if (next === 0x2f /* / */ || next === 0x3f /* ? */) return entry;
  }
  return undefined;
}

/** Lower-cased host without the port ("[::1]:80" → "[::1]"). */
export function hostName(host: string): string {
  let end = host.length;
  const colon = host.lastIndexOf(':');
  if (colon > 0 && host.indexOf(']') < colon) end = colon;
  return host.slice(0, end).toLowerCase();
}
