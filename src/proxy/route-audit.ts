// The route audit behind `switchyard --check`: for every route with auth,
// the requests for its path that reach the same upstream through another
// route with weaker checks. An upstream serves a path whatever the method or
// Host, so a DELETE that falls from an authenticated POST/PUT route to an
// open route for the same prefix, or a Host that misses an authenticated
// wildcard route and lands on "*", reaches the protected resource unchecked.
//
// Precise by construction: the audit asks the real Router where sample
// requests go, one per equivalence class of what the router looks at, among
// the routes whose prefix covers the auth route's path (no other route takes
// part): each exact host, a fresh name under each wildcard, a host nothing
// names; each method one of them names, the common ones and one none names;
// for each weaker route, exactly its header conditions. Paths: the prefix
// and one below it. Cost: per auth route, the covering routes times their
// hosts and methods, not the table squared.
//
// Not reported, as deliberate: a request that lands on a route for the same
// path that names its method explicitly, has no header conditions (a client
// chooses its headers) and names the host (exact, or the same pattern as the
// auth route); and routes for longer prefixes (an open /api/health under an
// authenticated /api is a carve-out someone wrote).
import type { RouteConfig } from '../config/types.js';
import { compatibilityMappings, pathForms, type EscapedSlashes } from './request-target.js';
import { Router } from './router.js';

export interface AuditFinding {
  /** Index of the route with auth. */
  route: number;
  /** Index of the route with weaker checks the requests reach instead. */
  via: number;
  upstream: string;
  /** What is weaker: "without auth", "with jwt auth instead of basic", ... */
  weaker: string;
  /** Methods that get through, upper-case; "other" for methods no route names; ["any"] when every method does. */
  methods: string[];
  /** Hosts they get through with: exact names, "*.suffix" for other names under a wildcard, "*" for hosts no route names. */
  hosts: string[];
  path: string;
}

const COMMON_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
/** Stands for every method no route names (not a valid token a route could list: it has a space). */
const UNNAMED_METHOD = 'UNNAMED METHOD';

interface HostClass {
  /** What the router is asked with. */
  sample: string;
  /** How the finding shows it. */
  label: string;
}

export function auditRoutes(routes: readonly RouteConfig[]): AuditFinding[] {
  const router = new Router(routes, (route) => route);
  const index = new Map(routes.map((r, i) => [r, i]));
  const findings: AuditFinding[] = [];
  routes.forEach((route, a) => {
    if (route.auth === undefined) return;
    // Only routes whose prefix covers this path take part in routing it.
    const covering = routes.filter((r) => coversPath(r.path, route.path));
    // Those that could take part of it to the same upstream with weaker checks.
    const weaker = new Map<RouteConfig, string>();
    for (const other of covering) {
      if (other === route || other.upstream !== route.upstream) continue;
      const why = weakerChecks(route, other);
      if (why !== undefined) weaker.set(other, why);
    }
    if (weaker.size === 0) return;
    const hosts = hostClasses(covering);
    const methods = [...new Set([...COMMON_METHODS, ...covering.flatMap((r) => r.methods ?? [])]), UNNAMED_METHOD];
    const byRoute = new Map<RouteConfig, { methods: Set<string>; hosts: Set<string> }>();
    const base = route.path.endsWith('/') ? route.path : `${route.path}/`;
    // Each weaker route is tried with the requests that could reach it: its host, its methods, exactly its
    // header conditions (more headers can only make other routes match first).
    for (const target of weaker.keys()) {
      const raw = Object.entries(target.headers ?? {}).flat();
      for (const host of hosts) {
        if (!hostMatches(target.host, host.sample)) continue;
        for (const method of target.methods ?? methods) {
          for (const path of [route.path, `${base}audit-below`]) {
            const hit = router.match(host.sample, method, path, raw);
            if (hit === undefined || 'refused' in hit || !weaker.has(hit.target)) continue;
            const via = hit.target;
            if (via.path === route.path && via.methods?.includes(method) && via.headers === undefined && namesHost(via, route, host)) continue;
            let seen = byRoute.get(via);
            if (seen === undefined) byRoute.set(via, (seen = { methods: new Set(), hosts: new Set() }));
            seen.methods.add(method === UNNAMED_METHOD ? 'other' : method);
            seen.hosts.add(host.label);
          }
        }
      }
    }
    for (const [via, seen] of byRoute) {
      const all = seen.methods.size === methods.length;
      findings.push({ route: a, via: index.get(via)!, upstream: route.upstream, weaker: weaker.get(via)!, methods: all ? ['any'] : [...seen.methods], hosts: [...seen.hosts], path: route.path });
    }
  });
  return findings;
}

/** One line per finding, naming both routes and the requests that get through. */
export function formatFinding(f: AuditFinding, routes: readonly RouteConfig[]): string {
  const route = routes[f.route]!;
  const via = routes[f.via]!;
  const conditions = routeConditions(route);
  const methods = f.methods[0] === 'any' ? 'requests of any method' : f.methods.map((m) => (m === 'other' ? 'methods no route names' : m)).join(', ');
  const hosts = f.hosts.map((h) => (h === '*' ? 'a Host no route names' : h.startsWith('*.') ? `another Host under ${h}` : `Host ${h}`)).join(' or ');
  return `routes[${f.route}] ${route.name} (${conditions}) has ${route.auth!.type} auth, but ${methods} for ${f.path} and below with ${hosts} reach upstream "${f.upstream}" via routes[${f.via}] ${via.name} ${f.weaker}`;
}

/** What a route matches, as the audit and the config diff show it: "POST,PUT api.example.test /v1/orders". */
export function routeConditions(route: RouteConfig): string {
  return [route.methods?.join(',') ?? 'any method', route.host, route.path, ...Object.entries(route.headers ?? {}).map(([k, v]) => `${k}: ${v}`)].join(' ');
}

/** Whether `outer` takes requests for `inner`'s path: a segment prefix of it, or the same prefix with or without the trailing slash. */
export function coversPath(outer: string, inner: string): boolean {
  const o = outer.endsWith('/') ? outer.slice(0, -1) : outer;
  const i = inner.endsWith('/') ? inner.slice(0, -1) : inner;
  return o === '' || i === o || i.startsWith(`${o}/`);
}

/** How `other`'s checks fall short of `route`'s (which has auth), or undefined when they are the same. */
export function weakerChecks(route: RouteConfig, other: RouteConfig): string | undefined {
  const auth = route.auth!;
  if (other.auth === undefined) return 'without auth';
  if (other.auth.type !== auth.type) return `with ${other.auth.type} auth instead of ${auth.type}`;
  const { forward: _a, ...mine } = auth;
  const { forward: _b, ...theirs } = other.auth;
  if (JSON.stringify(mine) !== JSON.stringify(theirs)) return `with ${other.auth.type} auth of other keys or settings`;
  if (route.authorize !== undefined && other.authorize === undefined) return 'without its authorize rules';
  if (JSON.stringify(route.authorize) !== JSON.stringify(other.authorize)) return 'with other authorize rules';
  return undefined;
}

/** Whether a route's host (exact, "*.suffix" or "*") takes `host`. */
export function hostMatches(pattern: string, host: string): boolean {
  const p = pattern.toLowerCase().replace(/\.$/, '');
  if (p === '*') return true;
  if (p.startsWith('*.')) return host.length > p.length - 1 && host.endsWith(p.slice(1));
  return p === host;
}

/** Whether `via` names the sample's host itself: an exact host, or the same pattern as the auth route. */
function namesHost(via: RouteConfig, route: RouteConfig, host: HostClass): boolean {
  const pattern = via.host.toLowerCase();
  return pattern === route.host.toLowerCase() || (!pattern.startsWith('*') && pattern === host.label);
}

/**
 * One host per class the router tells apart for these routes: each exact
 * host, a new name under each wildcard, a name nothing matches. (A host no
 * route here names exactly goes where the new name under its longest
 * matching wildcard goes.)
 */
function hostClasses(routes: readonly RouteConfig[]): HostClass[] {
  const out = new Map<string, HostClass>();
  for (const r of routes) {
    const host = r.host.toLowerCase().replace(/\.$/, '');
    if (host === '*') continue;
    if (host.startsWith('*.')) out.set(host, { sample: `audit-sample${host.slice(1)}`, label: host });
    else out.set(host, { sample: host, label: host });
  }
  out.set('*', { sample: 'audit-sample.invalid', label: '*' });
  return [...out.values()];
}

/** A route no request can reach: its own path has another form, so the router refuses every request for it (400 bad-path). */
export interface UnreachableRoute {
  route: number;
  /** What in the path reads as something else, and what. */
  why: string;
  /** The other form the router compares, and where it goes. */
  form: string;
  refusal: string;
}

/**
 * Routes whose configured path holds characters the path normaliser maps
 * elsewhere (Unicode look-alikes such as "%EF%BD%81" for "a", "%EF%BC%8F"
 * for "/", "%E2%80%A5" for ".."; names that Windows reads without their
 * trailing dots, spaces or "::$DATA"). A request for such a path has that
 * other form too, which never belongs to the same route: the router refuses
 * it, so the route is dead. Asked of the real router, with a request that
 * meets the route's own host, method and header conditions.
 */
export function unreachableRoutes(routes: readonly RouteConfig[], escapedSlashes: EscapedSlashes): UnreachableRoute[] {
  const router = new Router(routes, (route) => route, escapedSlashes);
  const out: UnreachableRoute[] = [];
  routes.forEach((route, i) => {
    const forms = pathForms(route.path, escapedSlashes, false);
    if (typeof forms === 'string' || forms.plain.length < 2) return;
    const host = route.host === '*' ? 'audit-sample.invalid' : route.host.startsWith('*.') ? `audit-sample${route.host.slice(1)}` : route.host;
    const hit = router.match(host, route.methods?.[0] ?? 'GET', route.path, Object.entries(route.headers ?? {}).flat());
    if (hit !== undefined && !('refused' in hit) && hit.target === route) return;
    const form = forms.plain.find((f) => f !== route.path)!;
    out.push({ route: i, why: lookAlikes(route.path), form, refusal: hit !== undefined && 'refused' in hit ? hit.detail : `it goes to ${hit === undefined ? 'no route' : `route ${hit.target.name}`}` });
  });
  return out;
}

/** What in `path` the normaliser reads as something else. */
function lookAlikes(path: string): string {
  const unicode = compatibilityMappings(path).map((m) => `${JSON.stringify(m.escaped)} (U+${m.char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')} ${JSON.stringify(m.char)}) reads as ${JSON.stringify(m.readsAs)}`);
  const windows = path
    .split('/')
    .filter((name) => name !== '' && /(?:::\$DATA|\.|%20)$/i.test(name))
    .map((name) => `the name ${JSON.stringify(name)} reads as ${JSON.stringify(name.replace(/(?:::\$DATA)?(?:\.|%20)*$/i, ''))} on Windows (trailing dots, spaces and "::$DATA" dropped)`);
  const all = [...unicode, ...windows];
  return all.length > 0 ? all.join(', ') : 'it has another form';
}

/** One line per unreachable route: which route, which characters, what they read as, and why it is dead. */
export function formatUnreachable(u: UnreachableRoute, routes: readonly RouteConfig[]): string {
  const route = routes[u.route]!;
  return `routes[${u.route}] ${route.name} (${routeConditions(route)}) can never be reached: in its path ${u.why}, so every request for it is also ${JSON.stringify(u.form)} to a backend that normalises it, and the router refuses it (400 bad-path: ${u.refusal})`;
}
