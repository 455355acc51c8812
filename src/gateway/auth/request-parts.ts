// Reading credentials out of a request as received. Duplicates are refused
// rather than resolved: a proxy that picks the first copy while the upstream
// picks the last is a classic smuggling gap, so a credential must be unique.

import type { GatewayRequest } from './types.js';

/** A credential lookup: absent, present once, or present more than once. */
export type Lookup = { found: false } | { found: true; value: string } | { found: 'ambiguous' };

const ABSENT: Lookup = { found: false };
const AMBIGUOUS: Lookup = { found: 'ambiguous' };

/** The single header with this (lower-case) name. */
export function headerValue(req: GatewayRequest, lowerName: string): Lookup {
  const raw = req.rawHeaders;
  let result = ABSENT;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length !== lowerName.length || name.toLowerCase() !== lowerName) continue;
    if (result.found) return AMBIGUOUS;
    result = { found: true, value: raw[i + 1]!.trim() };
  }
  return result;
}

/** The single query parameter with this name (percent-decoded). */
export function queryValue(req: GatewayRequest, name: string): Lookup {
  const q = req.target.indexOf('?');
  if (q < 0) return ABSENT;
  const values = new URLSearchParams(req.target.slice(q + 1)).getAll(name);
  if (values.length === 0) return ABSENT;
  return values.length === 1 ? { found: true, value: values[0]! } : AMBIGUOUS;
}

/** The single cookie with this name, over all Cookie headers (RFC 6265 §5.4). */
export function cookieValue(req: GatewayRequest, name: string): Lookup {
  const raw = req.rawHeaders;
  let result = ABSENT;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length !== 6 || raw[i]!.toLowerCase() !== 'cookie') continue;
    for (const pair of raw[i + 1]!.split(';')) {
      const eq = pair.indexOf('=');
      if (eq < 0 || pair.slice(0, eq).trim() !== name) continue;
      if (result.found) return AMBIGUOUS;
      let value = pair.slice(eq + 1).trim();
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
      result = { found: true, value };
    }
  }
  return result;
}

/**
 * The credentials of an `Authorization: <scheme> <credentials>` header when
 * the scheme matches (case-insensitive, RFC 9110 §11.1). `found: false` also
 * when another scheme is used: to this scheme that is no credential at all.
 */
export function authorizationCredentials(req: GatewayRequest, scheme: string): Lookup {
  const header = headerValue(req, 'authorization');
  if (header.found !== true) return header;
  const value = header.value;
  const space = value.indexOf(' ');
  if (space < 0 || value.slice(0, space).toLowerCase() !== scheme) return ABSENT;
  return { found: true, value: value.slice(space + 1).trim() };
}
