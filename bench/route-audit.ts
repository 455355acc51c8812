// Time of the `--check` route audit on tables of 100, 1,000 and 3,000
// routes: exact, wildcard and "*" hosts, nested prefixes, method and header
// conditions, a quarter of the routes with auth, twenty upstreams, and an
// open catch-all per upstream family so that findings exist.
//   node --import tsx bench/route-audit.ts
import { auditRoutes } from '../src/proxy/route-audit.js';
import type { AuthConfig, RouteConfig } from '../src/config/types.js';

const KEY: AuthConfig = { type: 'api_key', keys: [{ name: 'k', sha256: 'a'.repeat(64), scopes: [] }], header: 'x-api-key', forward: { claimHeaders: [] } };

function table(n: number): RouteConfig[] {
  const routes: RouteConfig[] = [];
  for (let i = 0; i < n; i++) {
    const host = i % 3 === 0 ? `svc${i % 200}.example.test` : i % 3 === 1 ? `*.t${i % 7}.example.test` : '*';
    const path = i % 2 === 0 ? `/api/v${i % 7}/svc${i}` : `/api/v${i % 7}`;
    const route: RouteConfig = { name: `r${i}`, host, path: `${path}${i % 13 === 0 ? '/' : ''}`, upstream: `u${i % 20}`, stripPrefix: false, upgrades: ['websocket'] };
    if (i % 4 === 0) route.auth = KEY;
    if (i % 5 === 0) route.methods = ['GET', 'POST'];
    if (i % 11 === 0) route.headers = { 'x-tenant': `t${i}` };
    routes.push(route);
  }
  for (let u = 0; u < 20; u++) routes.push({ name: `open${u}`, host: u % 2 === 0 ? '*' : `svc${u}.example.test`, path: `/api/v${u % 7}/`, upstream: `u${u}`, stripPrefix: false, upgrades: ['websocket'] });
  return routes;
}

const rows: Record<string, string>[] = [];
for (const n of [100, 1000, 3000]) {
  const routes = table(n);
  const times: number[] = [];
  let findings = 0;
  for (let round = 0; round < 3; round++) {
    const start = performance.now();
    findings = auditRoutes(routes).length;
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  rows.push({ routes: String(routes.length), findings: String(findings), 'ms (median of 3)': times[1]!.toFixed(0) });
}
console.table(rows);
