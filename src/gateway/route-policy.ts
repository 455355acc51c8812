// A route's gateway policy as one worker runs it: CORS, authentication,
// authorization, rate limit and header rules, built once per config so a
// request only reads them. Building may throw (control plane); the checks
// never do. Forwarding (upstream, timeouts, retries, path rewrites) is the
// data path's: src/proxy/route-runtime.ts holds it and calls this policy.
import type { Logger } from '../log.js';
import type { AuthFailuresConfig, HeaderRules, RateLimitConfig, RouteConfig } from '../config/types.js';
import { createAuthenticator, identityHeaderNames, identityHeaders, type Authenticator, type Identity } from './auth/index.js';
import { AuthFailureGate } from './auth-failures.js';
import { compileAuthorizer, type Authorizer } from './authorize.js';
import { compileCors, type CorsPolicy } from './cors.js';
import { applyHeaderRules } from './header-rules.js';
import { removeQueryParam } from './query-credential.js';
import type { RateDecision, RateLimiter } from './rate-limit.js';
import type { GlobalRateLimiter } from './global-rate-limit.js';
import { ErrorCode, SwitchyardError } from '../errors.js';

export interface GatewayDeps {
  log: Logger;
  /** The shared-memory token buckets; required when any route has a rate limit. */
  limiter: RateLimiter | undefined;
  /** Failed authentication attempts per client (in `limiter`); without it, unlimited. */
  authFailures?: AuthFailuresConfig;
  /** Buckets in Redis for scope: global limits; required when a route has one. */
  global?: GlobalRateLimiter | undefined;
  /** Header names (lower-case) removed from every request on every route: the client certificate headers when a listener takes client certificates. */
  alwaysStripped?: readonly string[];
}

export class RoutePolicy {
  /** The route's name: metrics labels and rate-limit buckets. */
  readonly name: string;
  readonly cors: CorsPolicy | undefined;
  readonly authenticator: Authenticator | undefined;
  readonly authorizer: Authorizer | undefined;
  readonly rateLimit: RateLimitConfig | undefined;
  readonly limiter: RateLimiter | undefined;
  private readonly global: GlobalRateLimiter | undefined;
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

  constructor(private readonly route: RouteConfig, deps: GatewayDeps) {
    this.name = route.name;
    this.cors = route.cors ? compileCors(route.cors) : undefined;
    const gate = deps.authFailures && deps.limiter ? new AuthFailureGate(deps.limiter, deps.authFailures) : undefined;
    this.authenticator = route.auth ? createAuthenticator(route.auth, deps.log, {}, gate) : undefined;
    this.authorizer = route.authorize ? compileAuthorizer(route.authorize) : undefined;
    this.rateLimit = route.rateLimit;
    if (route.rateLimit && deps.limiter === undefined) throw new SwitchyardError(ErrorCode.ConfigPolicy, `route ${route.name} has a rate limit but no rate-limit table is attached`);
    this.limiter = deps.limiter;
    if (route.rateLimit?.scope === 'global' && deps.global === undefined) throw new SwitchyardError(ErrorCode.ConfigPolicy, `route ${route.name} has a global rate limit but no redis is configured`);
    this.global = route.rateLimit?.scope === 'global' ? deps.global : undefined;
    this.requestRules = route.requestHeaders;
    this.responseRules = route.responseHeaders;
    this.identityNames = new Set([...(route.auth ? identityHeaderNames(route.auth.forward) : []), ...(deps.alwaysStripped ?? [])]);
    this.identityLengths = new Set([...this.identityNames].map((n) => n.length));
    this.rewritesRequestHeaders = this.requestRules !== undefined || this.identityNames.size > 0;
    const auth = route.auth;
    this.credentialQueryParam =
      auth?.type === 'api_key' ? auth.query : auth?.type === 'jwt' && auth.jwt.from.startsWith('query:') ? auth.jwt.from.slice(6) : undefined;
  }

  /** Counts one request of `key` against the route's limit; a Promise only when a global limit must ask Redis. */
  takeRateLimit(key: string): RateDecision | Promise<RateDecision> {
    const limit = this.rateLimit!;
    return this.global !== undefined ? this.global.take(this.name, key, limit) : this.limiter!.take(this.name, key, limit);
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

  /** The request-target without the route's credential query parameter: the upstream never sees a credential sent in the query. */
  withoutCredential(target: string): string {
    return this.credentialQueryParam === undefined ? target : removeQueryParam(target, this.credentialQueryParam);
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

  close(): void {
    this.authenticator?.close();
  }
}

