// HTTP Basic (RFC 7617) against bcrypt/scrypt hashes. Those hashes are slow
// on purpose (bcrypt cost 10 is ~90 ms), so they run on the hash pool's
// threads (hash-pool.ts), a success is remembered briefly, and identical
// checks in flight at once share one hash (a browser loading a page sends
// the same credentials on several connections): credential-checks.ts.
// Failures are never remembered; each one costs the client an attempt, and a
// client out of attempts gets no hash at all.

import { createHmac, randomBytes } from 'node:crypto';
import type { BasicUser } from '../../config/types.js';
import type { AttemptGate } from './attempts.js';
import { CredentialChecks } from './credential-checks.js';
import { decoyVerifier, parsePasswordHash } from './password-hash.js';
import type { PasswordVerifier } from './password-hash.js';
import { authorizationCredentials } from './request-parts.js';
import { DEFAULT_SUCCESS_CACHE } from './success-cache.js';
import type { SuccessCacheOptions } from './success-cache.js';
import type { AuthResult, Authenticator, GatewayRequest, Identity } from './types.js';
import { ErrorCode, SwitchyardError } from '../../errors.js';

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

interface User {
  verifier: PasswordVerifier;
  identity: Identity;
}

export class BasicAuthenticator implements Authenticator {
  readonly #users = new Map<string, User>();
  readonly #decoy: PasswordVerifier;
  readonly #challenge: string;
  /** Keyed by HMAC(per-process key, "user:password"): memory never holds a password or a plain fast hash of one. */
  readonly #checks: CredentialChecks;
  readonly #cacheKey = randomBytes(32);

  constructor(realm: string, users: readonly BasicUser[], cache: SuccessCacheOptions = DEFAULT_SUCCESS_CACHE, gate?: AttemptGate) {
    this.#checks = new CredentialChecks(cache, gate);
    for (const u of users) {
      if (u.name.includes(':')) throw new SwitchyardError(ErrorCode.ConfigPolicy, `basic auth user "${u.name}": a user name cannot contain ":"`);
      const identity: Identity = Object.freeze({ kind: 'basic', subject: u.name, scopes: Object.freeze([]), claims: Object.freeze({}) });
      this.#users.set(u.name, { verifier: parsePasswordHash(u.hash, `basic auth user "${u.name}"`), identity });
    }
    this.#decoy = decoyVerifier(this.#users.values().next().value?.verifier);
    this.#challenge = `Basic realm="${realm.replace(/["\\]/g, '\\$&')}", charset="UTF-8"`;
  }

  authenticate(req: GatewayRequest): AuthResult | Promise<AuthResult> {
    const cred = authorizationCredentials(req, 'basic');
    if (cred.found === 'ambiguous') return this.#refuse('more than one Authorization header');
    if (cred.found === false) return this.#refuse('missing Basic credentials');
    if (!BASE64.test(cred.value)) return this.#refuse('malformed Basic credentials');
    const decoded = Buffer.from(cred.value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) return this.#refuse('malformed Basic credentials');
    const name = decoded.slice(0, colon);
    const user = this.#users.get(name);

    const key = createHmac('sha256', this.#cacheKey).update(decoded).digest('base64');
    return this.#checks.known(key) ?? this.#checks.run(key, req.clientIp, () => this.#verify(user, decoded.slice(colon + 1), key, req.clientIp));
  }

  close(): void {
    this.#checks.clear();
  }

  async #verify(user: User | undefined, password: string, key: string, clientIp: string): Promise<AuthResult> {
    // An unknown user still pays one hash of the usual cost.
    const ok = await (user ?? { verifier: this.#decoy }).verifier.verify(password);
    if (ok === 'busy') {
      this.#checks.refund(clientIp);
      return { ok: false, reason: 'password check queue full', retryAfter: 1 };
    }
    if (!user) return this.#refuse('unknown user');
    if (!ok) return this.#refuse(`wrong password for user "${user.identity.subject}"`);
    return this.#checks.succeeded(key, clientIp, user.identity);
  }

  #refuse(reason: string): AuthResult {
    return { ok: false, reason, wwwAuthenticate: this.#challenge };
  }
}
