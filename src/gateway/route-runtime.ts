// A route as one worker runs it: the upstream it forwards to, its effective
// timeouts and retries (route overrides over the upstream's), and the path
// rewrite, all resolved once per config so a request only reads them.
import type { RouteConfig, UpstreamTimeouts } from '../config/types.js';
import type { UpstreamRuntime } from '../proxy/upstream-runtime.js';

export class RouteRuntime {
  readonly name: string;
  readonly timeouts: UpstreamTimeouts;
  readonly retries: number;
  private readonly replacePrefix: string | undefined;

  constructor(readonly route: RouteConfig, readonly upstream: UpstreamRuntime) {
    this.name = route.name;
    this.timeouts = { ...upstream.config.timeouts, ...route.timeouts };
    this.retries = route.retries ?? upstream.config.retries;
    this.replacePrefix = route.rewrite ?? (route.stripPrefix ? '' : undefined);
  }

  /**
   * The request-target sent upstream: with strip_prefix the matched prefix
   * goes ("/api/users/7?x" → "/users/7?x" for prefix "/api"), with rewrite it
   * is replaced. Everything after the prefix is kept byte for byte.
   */
  upstreamTarget(target: string): string {
    const replacement = this.replacePrefix;
    if (replacement === undefined) return target;
    const prefix = this.route.path.endsWith('/') && this.route.path.length > 1 ? this.route.path.slice(0, -1) : this.route.path;
    if (prefix === '/') return replacement === '' ? target : joinPath(replacement, target);
    return joinPath(replacement, target.slice(prefix.length));
  }
}

/** `base` + `rest` with exactly one "/" between them, never an empty path. */
function joinPath(base: string, rest: string): string {
  const trimmed = base.endsWith('/') ? base.slice(0, -1) : base;
  if (rest === '' || rest.startsWith('?')) return (trimmed === '' ? '/' : trimmed) + rest;
  return trimmed + (rest.startsWith('/') ? rest : `/${rest}`);
}
