// A route as one worker runs it: the upstream it forwards to, its effective
// timeouts and retries (route overrides over the upstream's), the path
// rewrite, and its gateway checks (CORS, authentication, authorization, rate
// limit, header rules), all built once per config so a request only reads
// them. Building may throw (control plane); the checks never do.
import type { Logger } from '../log.js';
import type { AuthFailuresConfig, HeaderRules, RateLimitConfig, RouteConfig, UpstreamTimeouts } from '../config/types.js';
import type { UpstreamRuntime } from '../proxy/upstream-runtime.js';
import { createAuthenticator, identityHeaderNames, identityHeaders, type Authenticator, type Identity } from './auth/index.js';
import { AuthFailureGate } from './auth-failures.js';
import { compileAuthorizer, type Authorizer } from './authorize.js';
import { compileCors, type CorsPolicy } from './cors.js';
import { applyHeaderRules } from './header-rules.js';
import type { RateLimiter } from './rate-limit.js';

export interface GatewayDeps {
  log: Logger;
  /** The shared-memory token buckets; required when any route has a rate limit. */
  limiter: RateLimiter | undefined;
  /** Failed authentication attempts per client (in `limiter`); without it, unlimited. */
  authFailures?: AuthFailuresConfig;
  /** Header names (lower-case) removed from every request on every route: the client certificate headers when a listener takes client certificates. */
  alwaysStripped?: readonly string[];
}

export class RouteRuntime {
  readonly name: string;
  readonly timeouts: UpstreamTimeouts;
  readonly retries: number;
  readonly cors: CorsPolicy | undefined;
  readonly authenticator: Authenticator | undefined;
  readonly authorizer: Authorizer | undefined;
  readonly rateLimit: RateLimitConfig | undefined;
  readonly limiter: RateLimiter | undefined;
  private readonly responseRules: HeaderRules | undefined;
  /** The query parameter that carries a credential on this route: removed upstream, redacted in logs. */
  readonly credentialQueryParam: string | undefined;
  /** Whether requests need their headers rewritten before forwarding. */
  readonly rewritesRequestHeaders: boolean;
  private readonly requestRules: HeaderRules | undefined;
  /** Identity headers: incoming copies are removed so a client cannot forge them. */
  private readonly identityNames: ReadonlySet<string>;
  /** Their lengths: most headers are ruled out without lower-casing their name. */
  private readonly identityLengths: ReadonlySet<number>;
  private readonly replacePrefix: string | undefined;
  /** Whether strip_prefix or rewrite changes the target (the exchange then hands upstreamTarget the resolved one). */
  readonly rewrites: boolean;

  constructor(readonly route: RouteConfig, readonly upstream: UpstreamRuntime, deps: GatewayDeps) {
    this.name = route.name;
    this.timeouts = { ...upstream.config.timeouts, ...route.timeouts };
    this.retries = route.retries ?? upstream.config.retries;
    this.replacePrefix = route.rewrite ?? (route.stripPrefix ? '' : undefined);
    this.rewrites = this.replacePrefix !== undefined;
    this.cors = route.cors ? compileCors(route.cors) : undefined;
    const gate = deps.authFailures && deps.limiter ? new AuthFailureGate(deps.limiter, deps.authFailures) : undefined;
    this.authenticator = route.auth ? createAuthenticator(route.auth, deps.log, {}, gate) : undefined;
    this.authorizer = route.authorize ? compileAuthorizer(route.authorize) : undefined;
    this.rateLimit = route.rateLimit;
    if (route.rateLimit && deps.limiter === undefined) throw new Error(`route ${route.name} has a rate limit but no rate-limit table is attached`);
    this.limiter = deps.limiter;
    this.requestRules = route.requestHeaders;
    this.responseRules = route.responseHeaders;
    this.identityNames = new Set([...(route.auth ? identityHeaderNames(route.auth.forward) : []), ...(deps.alwaysStripped ?? [])]);
    this.identityLengths = new Set([...this.identityNames].map((n) => n.length));
    this.rewritesRequestHeaders = this.requestRules !== undefined || this.identityNames.size > 0;
    const auth = route.auth;
    this.credentialQueryParam =
      auth?.type === 'api_key' ? auth.query : auth?.type === 'jwt' && auth.jwt.from.startsWith('query:') ? auth.jwt.from.slice(6) : undefined;
  }

  /**
   * Response headers for the client: with a CORS policy the upstream's own
   * Access-Control-* headers go (the policy alone decides, and a browser
   * refuses two Allow-Origin values), then the route's header rules.
   */
  responseHeaders(raw: readonly string[]): readonly string[] {
    let out = raw;
    if (this.cors !== undefined) {
      const kept: string[] = [];
      for (let i = 0; i < raw.length; i += 2) {
        const name = raw[i]!;
        if (!(name.length > 15 && name.slice(0, 15).toLowerCase() === 'access-control-')) kept.push(name, raw[i + 1]!);
      }
      out = kept;
    }
    return this.responseRules === undefined ? out : applyHeaderRules(out, this.responseRules);
  }

  /**
   * The request-target sent upstream: the route's credential query parameter
   * (api_key `query`, jwt `from: query:NAME`) removed; with strip_prefix the
   * matched prefix goes ("/api/users/7?x" → "/users/7?x" for prefix "/api"),
   * with rewrite it is replaced. Everything else is kept byte for byte: the
   * caller passes the resolved target (request-target.ts) to a rewriting
   * route, whose path starts with the prefix since the router matched every form of it.
   */
  upstreamTarget(target: string): string {
    // A credential sent in the query is for the gateway: the upstream never sees it.
    if (this.credentialQueryParam !== undefined) target = removeQueryParam(target, this.credentialQueryParam);
    const replacement = this.replacePrefix;
    if (replacement === undefined) return target;
    const prefix = this.route.path.endsWith('/') && this.route.path.length > 1 ? this.route.path.slice(0, -1) : this.route.path;
    if (prefix === '/') return replacement === '' ? target : joinPath(replacement, target);
    return joinPath(replacement, target.slice(prefix.length));
  }

  /** Request headers for the upstream: forged identity headers out, header rules, then the real identity in. */
  upstreamHeaders(raw: readonly string[], identity: Identity | undefined): readonly string[] {
    let out: readonly string[] = raw;
    if (this.identityNames.size > 0) {
      // Copied only when a forged copy is actually there.
      let kept: string[] | undefined;
      for (let i = 0; i < raw.length; i += 2) {
        const name = raw[i]!;
        // "X-User_Id" counts as "X-User-Id": CGI-style servers read both as HTTP_X_USER_ID.
        if (this.identityLengths.has(name.length) && this.identityNames.has(name.toLowerCase().replaceAll('_', '-'))) {
          kept ??= raw.slice(0, i);
          continue;
        }
        kept?.push(name, raw[i + 1]!);
      }
      if (kept !== undefined) out = kept;
    }
    if (this.requestRules !== undefined) out = applyHeaderRules(out, this.requestRules);
    if (identity !== undefined && this.route.auth !== undefined) {
      const added = identityHeaders(this.route.auth.forward, identity);
      if (added.length > 0) {
        const copy = out === raw ? raw.slice() : (out as string[]);
        for (const [name, value] of added) copy.push(name, value);
        out = copy;
      }
    }
    return out;
  }

  /**
   * Whether this route tunnels an Upgrade request for `value` (the Upgrade
   * header): every protocol it offers must be one the route allows.
   */
  allowsUpgrade(value: string | undefined): boolean {
    if (value === undefined || this.route.upgrades.length === 0) return false;
    for (const offer of value.split(',')) {
      const slash = offer.indexOf('/');
      const name = (slash < 0 ? offer : offer.slice(0, slash)).trim().toLowerCase();
      if (!this.route.upgrades.includes(name)) return false;
    }
    return true;
  }

  close(): void {
    this.authenticator?.close();
  }
}

/** `base` + `rest` with exactly one "/" between them, never an empty path. */
function joinPath(base: string, rest: string): string {
  const trimmed = base.endsWith('/') ? base.slice(0, -1) : base;
  if (rest === '' || rest.startsWith('?')) return (trimmed === '' ? '/' : trimmed) + rest;
  return trimmed + (rest.startsWith('/') ? rest : `/${rest}`);
}

/**
 * `target` without query parameter `name`: every pair whose name decodes to
 * `name` as the authenticator reads it (URLSearchParams: "+" is a space,
 * percent-escapes are UTF-8, so "api%5Fkey" is "api_key") goes, with its
 * "&"; every other byte of the target stays as it was. A query left empty
 * goes with its "?".
 */
export function removeQueryParam(target: string, name: string): string {
  const query = parseQuery(target, name);
  if (query === undefined || !query.named.includes(true)) return target;
  const rest = query.lead + query.segments.filter((_, i) => !query.named[i]).join('&');
  return rest === '' ? query.path : `${query.path}?${rest}`;
}

/** `url` with the value of query parameter `name` replaced by "REDACTED" (every occurrence, matched as removeQueryParam does). */
export function redactQueryParam(url: string, name: string): string {
  const query = parseQuery(url, name);
  if (query === undefined || !query.named.includes(true)) return url;
  const parts = query.segments.map((seg, i) => {
    if (!query.named[i]) return seg;
    const eq = seg.indexOf('=');
    return `${eq < 0 ? seg : seg.slice(0, eq)}=REDACTED`;
  });
  return `${query.path}?${query.lead}${parts.join('&')}`;
}

/**
 * The query of `target` as its "&"-separated segments, byte for byte, and
 * which of them carry parameter `name`. Names are decoded by URLSearchParams
 * itself, so the match is exactly the authenticator's queryValue(): it parses
 * the query after one leading "?" (kept here as `lead`) and skips empty
 * segments, so its names line up with the non-empty segments in order.
 */
function parseQuery(target: string, name: string): { path: string; lead: string; segments: string[]; named: boolean[] } | undefined {
  const q = target.indexOf('?');
  if (q < 0) return undefined;
  const query = target.slice(q + 1);
  const lead = query.startsWith('?') ? '?' : '';
  const segments = query.slice(lead.length).split('&');
  const names = [...new URLSearchParams(query).keys()];
  let next = 0;
  const named = segments.map((seg) => seg !== '' && names[next++] === name);
  return { path: target.slice(0, q), lead, segments, named };
}
