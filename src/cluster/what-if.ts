// GET /upstreams/{name}/what-if?remove=ADDR&add=ADDR:W: what a change of an
// upstream's servers would do, before anyone makes it. The query is checked
// strictly (every problem named, nothing guessed); the answer comes from
// tables built aside (balancer/maglev-change.ts), never the live ones. The
// admin API asks the primary, which owns the config (the admin layer does not
// reach into the balancer).
import type { UpstreamConfig } from '../config/types.js';
import type { WhatIfResult } from '../admin/types.js';
import { parseHostPort } from '../config/address.js';
import { maglevChange, weightChange, type WeightedServer } from '../balancer/maglev-change.js';

/** Server weights as the config allows them (schema: upstreams.*.servers[].weight). */
const MIN_WEIGHT = 1;
const MAX_WEIGHT = 1000;


/** "host:port:W" or "[v6]:port:W"; a plain "host:port" means weight 1. */
function parseAdd(text: string): WeightedServer | string {
  const colon = text.lastIndexOf(':');
  const weightText = colon < 0 ? '' : text.slice(colon + 1);
  const withWeight = colon < 0 ? undefined : parseHostPort(text.slice(0, colon));
  if (withWeight !== undefined && typeof withWeight !== 'string') {
    const weight = /^\d{1,4}$/.test(weightText) ? Number(weightText) : NaN;
    if (!(weight >= MIN_WEIGHT && weight <= MAX_WEIGHT)) return `expected ADDR:W with a weight ${MIN_WEIGHT}..${MAX_WEIGHT}, got ${JSON.stringify(text)}`;
    return { address: text.slice(0, colon), weight };
  }
  const plain = parseHostPort(text);
  if (typeof plain === 'string') return `expected ADDR:W (host:port:weight, [IPv6]:port:weight) or host:port, got ${JSON.stringify(text)}`;
  return { address: text, weight: 1 };
}

/** Two spellings of one server (a host's case, a port's leading zeros) are the same server. */
function serverKey(address: string): string {
  const at = parseHostPort(address);
  return typeof at === 'string' ? address : `${at.host.toLowerCase()}|${at.port}`;
}

/** Applies the query to the upstream's configured servers; every error is reported, none stops the others. */
export function whatIf(upstream: UpstreamConfig, query: URLSearchParams): WhatIfResult {
  const errors: string[] = [];
  const servers = upstream.servers.map(({ address, weight }) => ({ address, weight }));
  const configured = new Map(servers.map((s) => [serverKey(s.address), s.address]));
  /** Configured addresses to remove. */
  const removed = new Set<string>();
  /** By serverKey. */
  const added = new Map<string, WeightedServer>();
  for (const [key, value] of query) {
    if (key === 'remove') {
      const address = configured.get(serverKey(value));
      if (address === undefined) {
        errors.push(`remove=${JSON.stringify(value)}: no such server in upstream "${upstream.name}" (it has ${servers.map((s) => s.address).join(', ')})`);
      } else if (removed.has(address)) errors.push(`remove=${JSON.stringify(value)}: given twice`);
      else removed.add(address);
    } else if (key === 'add') {
      const parsed = parseAdd(value);
      if (typeof parsed === 'string') errors.push(`add: ${parsed}`);
      else if (added.has(serverKey(parsed.address))) errors.push(`add=${JSON.stringify(value)}: ${parsed.address} given twice`);
      else added.set(serverKey(parsed.address), parsed);
    } else {
      errors.push(`unknown query parameter ${JSON.stringify(key)}: expected remove=ADDR and/or add=ADDR:W`);
    }
  }
  for (const [key, server] of added) {
    // Adding a server that stays would be ambiguous; remove it too to change its weight.
    const existing = configured.get(key);
    if (existing !== undefined && !removed.has(existing)) {
      errors.push(`add=${server.address}: already in upstream "${upstream.name}" as ${existing} (to change its weight, also remove=${existing})`);
    } else if (existing !== undefined) {
      server.address = existing; // the same server with a new weight: one identity in the table
    }
  }
  if (removed.size === 0 && added.size === 0 && errors.length === 0) errors.push('nothing to change: give remove=ADDR and/or add=ADDR:W');
  const after = [...servers.filter((s) => !removed.has(s.address)), ...added.values()];
  if (after.length === 0 && errors.length === 0) errors.push(`the change would leave upstream "${upstream.name}" without servers`);
  if (errors.length > 0) return { ok: false, errors };

  const change = { removed: [...removed], added: [...added.values()] };
  if (upstream.balance === 'source') {
    // The table as configured: servers that are unhealthy or drained right now keep their entries (their
    // clients walk to their next preference until they are back), so the answer does not depend on the moment.
    return { ok: true, body: { upstream: upstream.name, balance: upstream.balance, hashed: true, change, ...maglevChange(servers, after) } };
  }
  return {
    ok: true,
    body: {
      upstream: upstream.name,
      balance: upstream.balance,
      hashed: false,
      change,
      note: `${upstream.balance} keeps no client on a server: requests spread by weight, so no client moves; these are the new weight shares`,
      servers: weightChange(servers, after),
    },
  };
}
