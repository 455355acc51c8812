// The failed-authentication limit: one token bucket per client address in
// the shared-memory rate table (so it holds across every worker and every
// route), charged by the schemes through AttemptGate. Buckets live under the
// route name "" (no route can be named that), so they never meet a route's
// own rate-limit buckets.
import type { AuthFailuresConfig } from '../config/types.js';
import type { AttemptGate } from './auth/index.js';
import type { RateLimiter } from './rate-limit.js';

const NAMESPACE = '';

export class AuthFailureGate implements AttemptGate {
  constructor(
    private readonly limiter: RateLimiter,
    private readonly cfg: AuthFailuresConfig,
  ) {}

  charge(clientIp: string): number {
    if (clientIp === '') return 0; // the connection is gone: nothing will be answered
    const decision = this.limiter.take(NAMESPACE, clientIp, this.cfg);
    return decision.allowed ? 0 : Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
  }

  refund(clientIp: string): void {
    if (clientIp !== '') this.limiter.take(NAMESPACE, clientIp, this.cfg, -1);
  }
}
