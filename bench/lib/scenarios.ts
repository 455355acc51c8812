// What each cell sends. The backends serve the paths (see nginx.ts and
// servers/node-backend.mjs); `systems` narrows a scenario to some systems.

export interface Scenario {
  name: string;
  description: string;
  path: string;
  method: 'GET' | 'POST';
  bodyBytes?: number;
  /** Response body size every backend sends for `path`. */
  expectBytes: number;
  newConnectionPerRequest?: boolean;
  /** Client connections for this scenario; absent: `--connections` (64). */
  connections?: number;
  /** Only these systems run it; undefined means every non-variant system. */
  systems?: string[];
  /** Variants and references that run here too, beside every other system. */
  variants?: string[];
}

/** Switchyard's balancing variants: they run only in the `balance` scenario. */
export const BALANCE_VARIANTS = ['switchyard-source', 'switchyard-least-conn'];
/** Switchyard with the other cluster scheduling policy: runs where a scenario lists it in `variants`. */
export const SCHEDULING_VARIANTS = ['switchyard-sched-rr'];
/** Switchyard with auth + authorization + rate limit on the route: its cost against plain `switchyard`. */
export const GATEWAY_VARIANTS = ['switchyard-gateway', 'switchyard-gateway-global'];
/** Variants whose ratio is taken against another variant instead of "switchyard": scope global against scope instance. */
export const VARIANT_BASIS: Record<string, string> = { 'switchyard-gateway-global': 'switchyard-gateway' };
/** Systems that run only where a scenario names them; their ratios are taken against `switchyard`. */
export const VARIANTS = [...BALANCE_VARIANTS, ...SCHEDULING_VARIANTS, ...GATEWAY_VARIANTS];
/** Not proxies: references that answer 100 B themselves, run where a scenario names them, ratios like any peer's. */
export const REFERENCES = ['node-floor'];

export const SCENARIOS: Scenario[] = [
  { name: '100b', description: 'GET 100 B, keep-alive', path: '/100b', method: 'GET', expectBytes: 100, variants: [...SCHEDULING_VARIANTS, ...GATEWAY_VARIANTS, ...REFERENCES] },
  { name: '16k', description: 'GET 16 KB, keep-alive', path: '/16k', method: 'GET', expectBytes: 16 * 1024 },
  { name: '1m', description: 'GET 1 MB, keep-alive', path: '/1m', method: 'GET', expectBytes: 1024 * 1024 },
  {
    name: 'close',
    description: 'GET 100 B, new connection per request',
    path: '/100b',
    method: 'GET',
    expectBytes: 100,
    newConnectionPerRequest: true,
    variants: [...SCHEDULING_VARIANTS, ...REFERENCES],
  },
  { name: 'post-4k', description: 'POST 4 KB body, keep-alive', path: '/post', method: 'POST', bodyBytes: 4096, expectBytes: 3, variants: SCHEDULING_VARIANTS },
  // The connections sweep (with `100b` as its 64-connection point): what a
  // front end holding thousands of keep-alive clients costs per request.
  ...[1000, 8000].map((connections) => ({
    name: `c${connections / 1000}k`,
    description: `GET 100 B, keep-alive, ${connections} connections (wrk -t2)`,
    path: '/100b',
    method: 'GET' as const,
    expectBytes: 100,
    connections,
    systems: ['switchyard', 'nginx', 'haproxy'],
  })),
  {
    name: 'balance',
    description: 'GET 100 B keep-alive: Switchyard round-robin vs source vs least-conn (one client IP: source pins to one backend)',
    path: '/100b',
    method: 'GET',
    expectBytes: 100,
    systems: ['switchyard', ...BALANCE_VARIANTS],
  },
];

export function runsIn(scenario: Scenario, system: string): boolean {
  // The before/after build (SWITCHYARD_BASELINE_CLI) runs wherever `switchyard` does, the connections sweep included.
  if (system === 'switchyard-baseline') return runsIn(scenario, 'switchyard');
  if (scenario.systems) return scenario.systems.includes(system);
  return (!VARIANTS.includes(system) && !REFERENCES.includes(system)) || (scenario.variants?.includes(system) ?? false);
}
