// The route table as the router will match it, in one plain form for
// `switchyard --check` (text) and the admin API's /status (JSON, which the
// dashboard renders): host groups in the order they are tried, routes in
// each group in the order the first match wins, and what each one checks.
import type { RouteConfig } from '../config/types.js';
import { routeMatchOrder } from './router.js';
import type { RouteTableEntry } from '../admin/types.js';

export type { RouteTableEntry };

export function routeTable(routes: readonly RouteConfig[]): RouteTableEntry[] {
  const out: RouteTableEntry[] = [];
  for (const group of routeMatchOrder(routes)) {
    for (const r of group.routes) {
      out.push({
        order: out.length + 1,
        group: group.host,
        name: r.name,
        path: r.path,
        ...(r.methods ? { methods: r.methods } : {}),
        ...(r.headers ? { headers: Object.entries(r.headers).map(([k, v]) => `${k}: ${v}`) } : {}),
        upstream: r.upstream,
        checks: routeChecks(r),
      });
    }
  }
  return out;
}

function routeChecks(r: RouteConfig): string[] {
  const checks: string[] = [];
  if (r.cors) checks.push('cors');
  if (r.auth) checks.push(`${r.auth.type} auth`);
  if (r.authorize) checks.push('authorize');
  if (r.rateLimit) checks.push(`rate limit ${r.rateLimit.ratePerSecond}/s`);
  if (r.stripPrefix) checks.push('strip prefix');
  if (r.rewrite !== undefined) checks.push(`rewrite ${r.rewrite}`);
  return checks;
}

/** The text form: one block per host group, one aligned line per route. */
export function formatRouteTable(entries: readonly RouteTableEntry[]): string {
  const lines = [
    'route table, in match order (a request tries the group of its exact host, then the *.suffix groups its host is under, then *; in a group the first route that matches wins):',
  ];
  const cond = (e: RouteTableEntry) => [e.methods?.join(',') ?? '', ...(e.headers ?? [])].filter((s) => s !== '').join(' ');
  const pathWidth = Math.max(...entries.map((e) => e.path.length));
  const condWidth = Math.max(0, ...entries.map((e) => cond(e).length));
  let group: string | undefined;
  for (const e of entries) {
    if (e.group !== group) {
      group = e.group;
      lines.push(`  host ${group}`);
    }
    const named = e.name === `${e.group}${e.path}` ? '' : ` (${e.name})`;
    const checks = e.checks.length > 0 ? ` [${e.checks.join(', ')}]` : '';
    const c = condWidth > 0 ? ` ${cond(e).padEnd(condWidth)}` : '';
    lines.push(`    ${String(e.order).padStart(3)}. ${e.path.padEnd(pathWidth)}${c} -> ${e.upstream}${named}${checks}`.trimEnd());
  }
  return lines.join('\n');
}
