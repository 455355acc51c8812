// The gateway step of an exchange: a route's checks, run in order before the
// request costs an upstream anything. CORS first (a preflight is answered
// here), then authentication (asynchronous when a JWKS must be fetched),
// then authorization, the rate limit and the request headers to forward.
// The policies themselves live in src/gateway/; this module only sequences
// them and turns their answers into what the exchange does next.
import type { AuthResult, GatewayRequest, Identity } from '../gateway/auth/index.js';
import { rateLimitHeaders, rateLimitKey } from '../gateway/rate-limit.js';
import type { RouteRuntime } from '../gateway/route-runtime.js';
import { headerNameEquals } from '../gateway/header-rules.js';
import type { WorkerMetrics } from '../metrics/worker-metrics.js';
import type { ProxyErrorReason } from './errors.js';
import { clientEndToEndHeaders, type RequestHeadInfo } from './headers.js';

export type HeaderList = ReadonlyArray<readonly [string, string]>;

/** What CORS makes of a request: a preflight to answer here, or headers to add to the response. */
export type CorsOutcome = { preflight: HeaderList } | { preflight?: undefined; responseHeaders: HeaderList | undefined };

export function corsStep(route: RouteRuntime, method: string, raw: readonly string[]): CorsOutcome {
  const cors = route.cors;
  if (cors === undefined) return { responseHeaders: undefined };
  const origin = headerValue(raw, 'origin');
  const preflightMethod = method === 'OPTIONS' ? headerValue(raw, 'access-control-request-method') : undefined;
  if (origin !== undefined && preflightMethod !== undefined) {
    return { preflight: cors.preflight(origin, preflightMethod, headerValue(raw, 'access-control-request-headers')).headers };
  }
  return { responseHeaders: cors.responseHeaders(origin) };
}

/**
 * The rest of the gateway's answer, once authentication (if the route has
 * any) is known. `identity` is who authenticated, refused or not: a denied
 * request's access log line says whom it was denied to.
 */
export type GatewayVerdict = { identity: Identity | undefined } & (
  | {
      pass: true;
      /** Headers to add to the response (RateLimit-*). */
      responseHeaders: HeaderList | undefined;
      /** The request headers to send upstream when the route rewrites them. */
      upstreamHeaders: readonly string[] | undefined;
    }
  | { pass: false; reason: ProxyErrorReason; detail: string; headers: HeaderList | undefined }
);

export interface GatewayContext {
  request: GatewayRequest;
  info: RequestHeadInfo;
  metrics: WorkerMetrics;
  dropUnderscored: boolean;
}

export function afterAuthentication(route: RouteRuntime, result: AuthResult | undefined, ctx: GatewayContext): GatewayVerdict {
  const { metrics, request } = ctx;
  let identity: Identity | undefined;
  if (result !== undefined) {
    if (!result.ok) {
      if (result.retryAfter !== undefined) {
        // Out of authentication attempts (auth/attempts.ts): nothing was checked.
        metrics.gatewayRefusal(route.name, 'rate-limit');
        return { pass: false, identity, reason: 'rate-limited', detail: result.reason, headers: [['Retry-After', String(result.retryAfter)]] };
      }
      metrics.gatewayRefusal(route.name, 'auth');
      if (result.refusal !== undefined) return { pass: false, identity, reason: result.refusal, detail: result.reason, headers: undefined };
      return { pass: false, identity, reason: 'unauthorized', detail: result.reason, headers: result.wwwAuthenticate === undefined ? undefined : [['WWW-Authenticate', result.wwwAuthenticate]] };
    }
    identity = result.identity;
  }
  if (route.authorizer !== undefined) {
    const decision = route.authorizer(request, identity);
    if (!decision.ok) {
      metrics.gatewayRefusal(route.name, 'authorize');
      return { pass: false, identity, reason: 'forbidden', detail: decision.reason, headers: undefined };
    }
  }
  let responseHeaders: HeaderList | undefined;
  const limit = route.rateLimit;
  if (limit !== undefined) {
    const key = rateLimitKey(limit.key, { clientIp: request.clientIp, rawHeaders: request.rawHeaders, identity });
    if (key !== undefined) {
      const decision = route.limiter!.take(route.name, key, limit);
      responseHeaders = rateLimitHeaders(decision, limit);
      if (!decision.allowed) {
        metrics.gatewayRefusal(route.name, 'rate-limit');
        return { pass: false, identity, reason: 'rate-limited', detail: `rate limit ${limit.ratePerSecond}/s burst ${limit.burst} exceeded for ${limit.key}`, headers: responseHeaders };
      }
    }
  }
  // The client's hop-by-hop headers go first, so nothing it names in Connection can remove what the gateway adds.
  const upstreamHeaders = route.rewritesRequestHeaders ? route.upstreamHeaders(clientEndToEndHeaders(request.rawHeaders, ctx.info, ctx.dropUnderscored), identity) : undefined;
  return { pass: true, identity, responseHeaders, upstreamHeaders };
}

/** The first value of a header (name lower-case), or undefined. */
function headerValue(raw: readonly string[], lowerName: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) if (headerNameEquals(raw[i]!, lowerName)) return raw[i + 1];
  return undefined;
}
