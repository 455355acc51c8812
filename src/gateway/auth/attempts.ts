// The contract between the schemes and the failed-attempt limit
// (gateway/auth-failures.ts, shared-memory buckets per client address).
import type { AuthResult } from './types.js';

/**
 * Failed attempts per client. A scheme charges one
 * attempt before it checks a presented credential that is not already known
 * good, and gives it back when the check succeeds, so only failures count
 * and a client out of attempts gets no check at all, not even a hash.
 */
export interface AttemptGate {
  /** Takes one attempt from `clientIp`; 0 if it had one, else the seconds (>= 1) until it has. */
  charge(clientIp: string): number;
  /** Returns the attempt of a check that succeeded (or never ran). */
  refund(clientIp: string): void;
}

/** The refusal of a client out of attempts: nothing was checked. */
export function outOfAttempts(retryAfter: number): AuthResult {
  return { ok: false, reason: 'too many failed authentication attempts from this client', retryAfter };
}
