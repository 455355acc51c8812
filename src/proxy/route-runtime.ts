// A route as one worker forwards it: the upstream, its effective timeouts and
// retries (route overrides over the upstream's), the path rewrite and the
// Upgrade protocols it tunnels, plus the route's gateway policy, which the
// data path calls (the gateway knows nothing of forwarding). Built once per
// config so a request only reads it.
import type { RouteConfig, UpstreamTimeouts } from '../config/types.js';
import { RoutePolicy, type GatewayDeps } from '../gateway/route-policy.js';
import type { UpstreamRuntime } from './upstream-runtime.js';

export class RouteRuntime {
  readonly name: string;
  readonly timeouts: UpstreamTimeouts;
  readonly retries: number;
  readonly policy: RoutePolicy;
  private readonly replacePrefix: string | undefined;
  /** Whether strip_prefix or rewrite changes the target (the exchange then hands upstreamTarget the resolved one). */
  readonly rewrites: boolean;

  constructor(readonly route: RouteConfig, readonly upstream: UpstreamRuntime, deps: GatewayDeps) {
    this.name = route.name;
    this.timeouts = { ...upstream.config.timeouts, ...route.timeouts };
    this.retries = route.retries ?? upstream.config.retries;
    this.replacePrefix = route.rewrite ?? (route.stripPrefix ? '' : undefined);
    this.rewrites = this.replacePrefix !== undefined;
    this.policy = new RoutePolicy(route, deps);
  }

  /**
   * The request-target sent upstream: the route's credential query parameter
   * removed (the policy's); with strip_prefix the matched prefix goes
   * ("/api/users/7?x" → "/users/7?x" for prefix "/api"), with rewrite it is
   * replaced. Everything else is kept byte for byte: the caller passes the
   * resolved target (request-target.ts) to a rewriting route, whose path
   * starts with the prefix since the router matched every form of it.
   */
  upstreamTarget(target: string): string {
    target = this.policy.withoutCredential(target);
    const replacement = this.replacePrefix;
    if (replacement === undefined) return target;
    const prefix = this.route.path.endsWith('/') && this.route.path.length > 1 ? this.route.path.slice(0, -1) : this.route.path;
    if (prefix === '/') return replacement === '' ? target : joinPath(replacement, target);
    return joinPath(replacement, target.slice(prefix.length));
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
    this.policy.close();
  }
}

/** `base` + `rest` with exactly one "/" between them, never an empty path. */
function joinPath(base: string, rest: string): string {
  const trimmed = base.endsWith('/') ? base.slice(0, -1) : base;
  if (rest === '' || rest.startsWith('?')) return (trimmed === '' ? '/' : trimmed) + rest;
  return trimmed + (rest.startsWith('/') ? rest : `/${rest}`);
}
