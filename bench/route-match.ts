// ns per route match for route tables of 10, 100 and 1,000 routes, a mix of
// exact hosts, wildcard hosts and "*" with path prefixes, methods and header
// conditions, each looked up with requests that hit routes all over the table
// (and some that miss everything).
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
for (const n of [10, 100, 1000]) {
  const routes = table(n);
  const router = new Router(routes, (r) => r.name);
  const requests = Array.from({ length: 1024 }, (_, k) => {
    const i = (k * 7919) % n;
    const host = i % 3 === 0 ? `svc${i}.example.test:8080` : `app${k}.example.test`;
    const raw = ['Host', host, 'User-Agent', 'bench', 'Accept', '*/*', 'X-Tenant', `t${i}`];
    return { host, target: k % 16 === 0 ? `/nothing/${k}` : `/api/v${i % 7}/svc${i}/items/${k}?q=1`, raw };
  });
  for (let k = 0; k < 100_000; k++) sink += router.match(requests[k & 1023]!.host, 'GET', requests[k & 1023]!.target, requests[k & 1023]!.raw)?.target.length ?? 0;
  const times: number[] = [];
  for (let round = 0; round < 5; round++) {
    const start = process.hrtime.bigint();
    for (let k = 0; k < iterations; k++) {
      const r = requests[k & 1023]!;
      sink += router.match(r.host, 'GET', r.target, r.raw)?.target.length ?? 0;
    }
    times.push(Number(process.hrtime.bigint() - start) / iterations);
  }
  times.sort((a, b) => a - b);
  rows.push({ routes: String(routes.length), 'ns/match (min)': times[0]!.toFixed(0), 'ns/match (median)': times[2]!.toFixed(0) });
}
console.table(rows);
if (sink === -1) console.log(sink);
