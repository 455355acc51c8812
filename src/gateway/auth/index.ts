// Authentication for a route: one Authenticator per route, built when the
// route table is built (control plane: throws with a clear message on a bad
// key, hash or file) and asked once per request (data plane: never throws).

import type { AuthConfig } from '../../config/types.js';
import type { Logger } from '../../log.js';
import { ApiKeyAuthenticator } from './api-key.js';
import { BasicAuthenticator } from './basic.js';
import { DEFAULT_JWKS_TUNING, JwtAuthenticator } from './jwt.js';
import type { JwksTuning } from './jwt.js';
import { DEFAULT_SUCCESS_CACHE } from './success-cache.js';
import type { SuccessCacheOptions } from './success-cache.js';
import type { Authenticator } from './types.js';
import type { AttemptGate } from './attempts.js';
import { MtlsAuthenticator } from './mtls.js';

export type { AuthResult, Authenticator, ClientCertificate, GatewayRequest, Identity } from './types.js';
export type { JwksTuning } from './jwt.js';
export type { SuccessCacheOptions } from './success-cache.js';
export type { AttemptGate } from './attempts.js';
export { identityHeaderNames, identityHeaders } from './identity-headers.js';

/** Timings that tests shorten; production uses the defaults. */
export interface AuthTuning {
  jwks: JwksTuning;
  /** Recent successes remembered by the slow schemes (basic, jwt). */
  successCache: SuccessCacheOptions;
}

/** `gate`, when given, limits failed attempts per client (every scheme charges it before checking a credential). */
export function createAuthenticator(auth: AuthConfig, log: Logger, tuning: Partial<AuthTuning> = {}, gate?: AttemptGate): Authenticator {
  switch (auth.type) {
    case 'api_key':
      return new ApiKeyAuthenticator({ ...auth, ...(gate ? { gate } : {}) });
    case 'jwt':
      return new JwtAuthenticator(auth.jwt, log, tuning.jwks ?? DEFAULT_JWKS_TUNING, tuning.successCache ?? DEFAULT_SUCCESS_CACHE, gate);
    case 'basic':
      return new BasicAuthenticator(auth.realm, auth.users, tuning.successCache ?? DEFAULT_SUCCESS_CACHE, gate);
    case 'mtls':
      // No gate: nothing is guessed here, the TLS handshake already proved (or not) the key.
      return new MtlsAuthenticator(auth.subjects, auth.sans);
  }
}
