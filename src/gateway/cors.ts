// Per-route CORS (the Fetch standard's CORS protocol), compiled once per
// config: which origins are allowed, the answer to a preflight (which
// Switchyard gives itself, without the upstream), and the headers added to
// actual responses.
//
// Origins: exact ("https://app.example.com"), wildcard subdomain
// ("https://*.example.com": any depth of subdomain, same scheme and port,
// never the bare domain), or "*". A disallowed origin gets no
// Access-Control-* header at all, so the browser blocks the response.
// Responses whose headers depend on the Origin carry `Vary: Origin` (also
// when the origin is refused or absent), so a cache never hands one
// origin's answer to another; the caller appends it to any upstream Vary.
import type { CorsConfig } from '../config/types.js';
import { ErrorCode, SwitchyardError } from '../errors.js';

export interface PreflightResult {
  /** False: answer the preflight (e.g. 204) with `headers` only; the browser then refuses. */
  allowed: boolean;
  headers: Array<[string, string]>;
}

export interface CorsPolicy {
  /**
   * An OPTIONS request with Origin and Access-Control-Request-Method:
   * `method` is that header, `requestHeaders` the raw
   * Access-Control-Request-Headers value (comma-separated), if any.
   */
  preflight(origin: string | undefined, method: string, requestHeaders: string | undefined): PreflightResult;
  /** Headers to add to an actual (non-preflight) response. */
  responseHeaders(origin: string | undefined): Array<[string, string]>;
}

interface Wildcard {
  scheme: string;
  /** ".example.com" */
  suffix: string;
  /** "" when the pattern has no port. */
  port: string;
}

// "scheme://host[:port]" as browsers serialise an origin (lower case, no path).
const ORIGIN = /^([a-z][a-z0-9+.-]*):\/\/([a-z0-9.-]+)(?::(\d+))?$/;
const WILDCARD = /^([a-z][a-z0-9+.-]*):\/\/\*(\.[a-z0-9-]+(?:\.[a-z0-9-]+)*)(?::(\d+))?$/;
// Allowed by CORS without being listed (Fetch: CORS-safelisted methods).
const SAFE_METHODS = new Set(['GET', 'HEAD', 'POST']);

/** Throws on a malformed wildcard origin (config time only). */
export function compileCors(cfg: CorsConfig): CorsPolicy {
  let anyOrigin = false;
  const exact = new Set<string>();
  const wildcards: Wildcard[] = [];
  for (const raw of cfg.origins) {
    const origin = raw.toLowerCase().replace(/\/$/, '');
    if (origin === '*') {
      anyOrigin = true;
    } else if (origin.includes('*')) {
      const m = WILDCARD.exec(origin);
      if (!m) throw new SwitchyardError(ErrorCode.ConfigPolicy, `CORS origin "${raw}": a wildcard must be scheme://*.domain[:port]`);
      wildcards.push({ scheme: m[1]!, suffix: m[2]!, port: m[3] ?? '' });
    } else {
      exact.add(origin);
    }
  }
  const credentials = cfg.credentials;
  // "*" means any origin, but a credentialed response may not say "*": the
  // origin is echoed instead (and then the answer depends on it).
  const literalStar = anyOrigin && !credentials;
  const vary: Array<[string, string]> = literalStar ? [] : [['Vary', 'Origin']];
  const methods = new Set(cfg.methods.map((m) => m.toUpperCase()));
  const anyMethod = methods.has('*');
  const headers = new Set(cfg.headers.map((h) => h.toLowerCase()));
  const anyHeader = headers.has('*');
  const allowMethods = cfg.methods.join(', ');
  const allowHeaders = cfg.headers.join(', ');
  const exposeHeaders = cfg.exposeHeaders.join(', ');
  const maxAge = cfg.maxAgeSeconds === undefined ? undefined : String(cfg.maxAgeSeconds);

  const allowed = (origin: string): boolean => {
    if (anyOrigin) return true;
    const o = origin.toLowerCase();
    if (exact.has(o)) return true;
    if (wildcards.length === 0) return false;
    const m = ORIGIN.exec(o);
    if (!m) return false;
    const [, scheme, host, port = ''] = m;
    for (const w of wildcards) {
      if (scheme === w.scheme && port === w.port && host!.length > w.suffix.length && host!.endsWith(w.suffix)) {
        return true;
      }
    }
    return false;
  };

  const originHeaders = (origin: string): Array<[string, string]> => {
    const out: Array<[string, string]> = [['Access-Control-Allow-Origin', literalStar ? '*' : origin]];
    if (credentials) out.push(['Access-Control-Allow-Credentials', 'true']);
    return out;
  };

  return {
    preflight(origin, method, requestHeaders) {
      if (origin === undefined || !allowed(origin)) return { allowed: false, headers: [...vary] };
      if (!anyMethod && !methods.has(method) && !SAFE_METHODS.has(method)) return { allowed: false, headers: [...vary] };
      const requested = requestHeaders === undefined ? [] : parseList(requestHeaders);
      if (!anyHeader && !requested.every((h) => headers.has(h))) return { allowed: false, headers: [...vary] };
      const out = originHeaders(origin);
      // With credentials a "*" is taken literally by browsers, so the
      // wildcard answers echo what was asked.
      out.push(['Access-Control-Allow-Methods', anyMethod ? (credentials ? method : '*') : allowMethods]);
      if (anyHeader) {
        if (requested.length > 0) out.push(['Access-Control-Allow-Headers', credentials ? requested.join(', ') : '*']);
      } else if (allowHeaders !== '') {
        out.push(['Access-Control-Allow-Headers', allowHeaders]);
      }
      if (maxAge !== undefined) out.push(['Access-Control-Max-Age', maxAge]);
      out.push(...vary);
      return { allowed: true, headers: out };
    },

    responseHeaders(origin) {
      // With a literal "*" every response carries it, Origin or not, so a
      // cached copy serves any origin.
      if (literalStar || (origin !== undefined && allowed(origin))) {
        const out = originHeaders(origin ?? '*');
        if (exposeHeaders !== '') out.push(['Access-Control-Expose-Headers', exposeHeaders]);
        out.push(...vary);
        return out;
      }
      return [...vary];
    },
  };
}

/** "X-A, x-b ,," → ["x-a", "x-b"] */
function parseList(value: string): string[] {
  const out: string[] = [];
  for (const part of value.split(',')) {
    const name = part.trim().toLowerCase();
    if (name !== '') out.push(name);
  }
  return out;
}
