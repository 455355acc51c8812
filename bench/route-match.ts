// ns per route match for route tables of 10, 100 and 1,000 routes, a mix of
// exact hosts, wildcard hosts and "*" with path prefixes, methods and header
// conditions, each looked up with requests that hit routes all over the table
// (and some that miss everything). The "spelled" column sends the same
// requests with paths that need the normaliser's slow path (escapes, dot
// segments, upper case: every form is matched).
//   node --import tsx bench/route-match.ts [iterations]
import { Router } from '../src/proxy/router.js';
import type { RouteConfig } from '../src/config/types.js';

const iterations = Number(process.argv[2] ?? 1_000_000);

function table(n: number): RouteConfig[] {
  const routes: RouteConfig[] = [];
  for (let i = 0; i < n; i++) {
    const host = i % 3 === 0 ? `svc${i}.example.test` : i % 3 === 1 ? '*.example.test' : '*';
    const route: RouteConfig = { name: `r${i}`, host, path: `/api/v${i % 7}/svc${i}`, upstream: 'u', stripPrefix: false, upgrades: ['websocket'] };
    if (i % 5 === 0) route.methods = ['GET', 'POST'];
    if (i % 11 === 0) route.headers = { 'x-tenant': `t${i}` };
    routes.push(route);
  }
  routes.push({ name: 'root', host: '*', path: '/', upstream: 'u', stripPrefix: false, upgrades: ['websocket'] });
  return routes;
}

let sink = 0;
const rows: Record<string, string>[] = [];
type Request = { host: string; target: string; raw: string[] };

/** Median ns per match over 5 rounds, after a warm-up. */
function measure(router: Router<string>, requests: readonly Request[]): number {
  const one = (r: Request): number => {
    const hit = router.match(r.host, 'GET', r.target, r.raw);
    return hit !== undefined && 'target' in hit ? hit.target.length : 0;
  };
  for (let k = 0; k < 100_000; k++) sink += one(requests[k & 1023]!);
  const times: number[] = [];
  for (let round = 0; round < 5; round++) {
    const start = process.hrtime.bigint();
    for (let k = 0; k < iterations; k++) sink += one(requests[k & 1023]!);
    times.push(Number(process.hrtime.bigint() - start) / iterations);
  }
  return times.sort((a, b) => a - b)[2]!;
}

for (const n of [10, 100, 1000]) {
  const routes = table(n);
  const router = new Router(routes, (r) => r.name);
  const requests = Array.from({ length: 1024 }, (_, k) => {
    const i = (k * 7919) % n;
    const host = i % 3 === 0 ? `svc${i}.example.test:8080` : `app${k}.example.test`;
    const raw = ['Host', host, 'User-Agent', 'bench', 'Accept', '*/*', 'X-Tenant', `t${i}`];
    return { host, target: k % 16 === 0 ? `/nothing/${k}` : `/api/v${i % 7}/svc${i}/items/${k}?q=1`, raw };
  });
  const spelled = requests.map((r) => ({ ...r, target: r.target.replace('/items/', '/x/%2e%2e/It%65ms/') }));
  rows.push({ routes: String(routes.length), 'ns/match (median)': measure(router, requests).toFixed(0), 'spelled ns/match (median)': measure(router, spelled).toFixed(0) });
}
console.table(rows);
if (sink === -1) console.log(sink);
