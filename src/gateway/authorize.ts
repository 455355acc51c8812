// Authorization for a route, compiled once from its config into one function.
// Cheap checks run first (method, client address), then the identity's
// scopes and claims. A refusal carries a reason for the log; the client only
// ever sees a bare 403.

import { BlockList, isIP } from 'node:net';
import type { AuthorizeConfig } from '../config/types.js';
import type { GatewayRequest, Identity } from './auth/types.js';
import { ErrorCode, SwitchyardError } from '../errors.js';

export type AuthorizeResult = { ok: true } | { ok: false; reason: string };
export type Authorizer = (req: GatewayRequest, identity: Identity | undefined) => AuthorizeResult;

const ALLOWED: AuthorizeResult = Object.freeze({ ok: true });
const IPV4_MAPPED = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

/** Throws (control plane) on a malformed CIDR. */
export function compileAuthorizer(cfg: AuthorizeConfig): Authorizer {
  const checks: Authorizer[] = [];

  if (cfg.methods?.length) {
    const methods = new Set(cfg.methods.map((m) => m.toUpperCase()));
    checks.push((req) => (methods.has(req.method) ? ALLOWED : { ok: false, reason: `method ${req.method} not allowed` }));
  }

  if (cfg.cidrs?.length) {
    const allowed = blockListOf(cfg.cidrs);
    checks.push((req) => (addressAllowed(allowed, req.clientIp) ? ALLOWED : { ok: false, reason: `client address ${req.clientIp} not allowed` }));
  }

  if (cfg.scopes?.length) {
    const required = [...cfg.scopes];
    checks.push((_req, identity) => {
      for (const scope of required) {
        if (!identity?.scopes.includes(scope)) return { ok: false, reason: `missing scope "${scope}"` };
      }
      return ALLOWED;
    });
  }

  for (const [claim, accepted] of Object.entries(cfg.claims ?? {})) {
    const values = new Set(accepted);
    checks.push((_req, identity) => (claimAccepted(identity?.claims[claim], values) ? ALLOWED : { ok: false, reason: `claim "${claim}" has no accepted value` }));
  }

  return (req, identity) => {
    for (const check of checks) {
      const result = check(req, identity);
      if (!result.ok) return result;
    }
    return ALLOWED;
  };
}

function blockListOf(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of cidrs) {
    const [written, prefixText, extra] = entry.split('/');
    const writtenFamily = isIP(written!);
    const max = writtenFamily === 4 ? 32 : 128;
    const prefix = prefixText === undefined ? max : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
    if (writtenFamily === 0 || extra !== undefined || !(prefix <= max)) {
      throw new SwitchyardError(ErrorCode.ConfigPolicy, `authorize: "${entry}" is not an IP address or CIDR`);
    }
    // Clients are matched as IPv4 when mapped, so a mapped range ("::ffff:10.0.0.0/104")
    // becomes the IPv4 range under its 96-bit prefix.
    const address = normaliseAddress(written!);
    if (address !== written && prefix >= 96) list.addSubnet(address, prefix - 96, 'ipv4');
    else list.addSubnet(written!, prefix, writtenFamily === 4 ? 'ipv4' : 'ipv6');
  }
  return list;
}

/** An IPv4-mapped IPv6 address (a dual-stack socket's view of an IPv4 client) is its IPv4 address. */
function normaliseAddress(address: string): string {
  const mapped = IPV4_MAPPED.exec(address);
  return mapped ? mapped[1]! : address;
}

function addressAllowed(list: BlockList, clientIp: string): boolean {
  const address = normaliseAddress(clientIp);
  const family = isIP(address);
  if (family === 0) return false;
  try {
    return list.check(address, family === 4 ? 'ipv4' : 'ipv6');
  } catch {
    return false; // e.g. a zone id BlockList cannot parse: not in any allowed range
  }
}

/** A claim passes if it (or, for a list, any element) is accepted; numbers and booleans compare as text. */
function claimAccepted(value: unknown, accepted: ReadonlySet<string>): boolean {
  if (Array.isArray(value)) return value.some((v) => claimAccepted(v, accepted));
  if (typeof value === 'string') return accepted.has(value);
  if (typeof value === 'number' || typeof value === 'boolean') return accepted.has(String(value));
  return false;
}
