// The way into a slow credential check (a password hash, a JWT signature),
// shared by the schemes that have one: a credential verified recently is
// known good at once (SuccessCache), identical checks in flight at once share
// one run (a browser sends the same credential on several connections), and
// a new check costs the client an attempt (AttemptGate) that a success gives
// back. The caller keys by a digest of the credential, never the credential.
import { outOfAttempts } from './attempts.js';
import type { AttemptGate } from './attempts.js';
import { SuccessCache } from './success-cache.js';
import type { SuccessCacheOptions } from './success-cache.js';
import type { AuthResult, Identity } from './types.js';

export class CredentialChecks {
  readonly #verified: SuccessCache<Identity>;
  /** Checks running now, by the same key as #verified. */
  readonly #inFlight = new Map<string, Promise<AuthResult>>();
  readonly #gate: AttemptGate | undefined;

  constructor(cache: SuccessCacheOptions, gate: AttemptGate | undefined) {
    this.#verified = new SuccessCache(cache);
    this.#gate = gate;
  }

  /** The answer for `key` with no new check: known good, or the check running now; undefined when one must run. */
  known(key: string): AuthResult | Promise<AuthResult> | undefined {
    const cached = this.#verified.get(key);
    if (cached) return { ok: true, identity: cached };
    return this.#inFlight.get(key);
  }

  /** Runs `check` for `key`, charged to `clientIp`'s attempts; a client out of attempts is refused with nothing run. */
  run(key: string, clientIp: string, check: () => Promise<AuthResult>): AuthResult | Promise<AuthResult> {
    const wait = this.#gate?.charge(clientIp) ?? 0;
    if (wait > 0) return outOfAttempts(wait);
    const running = check().finally(() => this.#inFlight.delete(key));
    this.#inFlight.set(key, running);
    return running;
  }

  /** A check succeeded: the attempt goes back, and `key` is known good until the TTL or `notAfter` (epoch ms). */
  succeeded(key: string, clientIp: string, identity: Identity, notAfter?: number): AuthResult {
    this.#gate?.refund(clientIp);
    this.#verified.set(key, identity, notAfter);
    return { ok: true, identity };
  }

  /** Gives back the attempt of a check that could not run through no fault of the client's. */
  refund(clientIp: string): void {
    this.#gate?.refund(clientIp);
  }

  clear(): void {
    this.#verified.clear();
  }
}
