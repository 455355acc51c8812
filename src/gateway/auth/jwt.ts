// Bearer JWTs verified with jose. The accepted algorithms are exactly the
// configured list (jose never accepts "none"), and each algorithm is tied to
// one key source: HS256 only ever sees the shared secret, the asymmetric ones
// only the PEM key or the JWKS. A token cannot talk its way into another key
// by naming another algorithm (the classic RS256 → HS256 confusion).
// A signature check costs 60-200 µs, so verified tokens are remembered
// briefly (SuccessCache), never past their own `exp`: a keep-alive client
// reusing its token pays the check once per TTL. The price is that a key
// withdrawn from a JWKS keeps serving already-seen tokens for up to that TTL.

import { createHash, createPublicKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as Jose from 'jose';
import type { JWTPayload, JWTVerifyGetKey, JWTVerifyOptions } from 'jose';
import type { JwtConfig } from '../../config/types.js';
import type { Logger } from '../../log.js';
import type { AttemptGate } from './attempts.js';
import { CredentialChecks } from './credential-checks.js';
import { authorizationCredentials, cookieValue, headerValue, queryValue } from './request-parts.js';
import type { Lookup } from './request-parts.js';
import { DEFAULT_SUCCESS_CACHE } from './success-cache.js';
import type { SuccessCacheOptions } from './success-cache.js';
import type { AuthResult, Authenticator, GatewayRequest, Identity } from './types.js';
import { ErrorCode, SwitchyardError } from '../../errors.js';

/**
 * jose is loaded by the first JWT authenticator, not with this module: it
 * adds ~7 MB to every worker, and most configs have no JWT route. require()
 * of an ES module is synchronous (Node >= 20.19), so building the routes
 * stays synchronous.
 */
let joseModule: typeof Jose | undefined;
const jose = (): typeof Jose => (joseModule ??= createRequire(import.meta.url)('jose') as typeof Jose);

/** Timing of a remote JWKS: every fetch is bounded, refreshes happen off the request path. */
export interface JwksTuning {
  /** A JWKS fetch is abandoned after this long; a request never waits longer for keys. */
  timeoutMs: number;
  /** An unknown `kid` triggers a refetch at most this often (key rotation). */
  cooldownMs: number;
  /** The keys are refreshed in the background this often. */
  cacheMaxAgeMs: number;
}

export const DEFAULT_JWKS_TUNING: JwksTuning = { timeoutMs: 2_000, cooldownMs: 30_000, cacheMaxAgeMs: 600_000 };

const CHALLENGE = 'Bearer realm="switchyard"';
const INVALID_CHALLENGE = `${CHALLENGE}, error="invalid_token"`;
const COMPACT_JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
/** Errors from the key lookup itself, as opposed to failing to fetch the keys. */
const KEY_LOOKUP_ERRORS = new Set(['ERR_JWKS_NO_MATCHING_KEY', 'ERR_JWKS_MULTIPLE_MATCHING_KEYS', 'ERR_JOSE_NOT_SUPPORTED']);

export class JwtAuthenticator implements Authenticator {
  readonly #readToken: (req: GatewayRequest) => Lookup;
  readonly #options: JWTVerifyOptions;
  readonly #getKey: JWTVerifyGetKey;
  readonly #log: Logger;
  readonly #clockSkewMs: number;
  /** Keyed by SHA-256 of the token: small keys, and no usable bearer token held in the cache. */
  readonly #checks: CredentialChecks;
  #refreshTimer: NodeJS.Timeout | undefined;

  constructor(cfg: JwtConfig, log: Logger, tuning: JwksTuning = DEFAULT_JWKS_TUNING, cache: SuccessCacheOptions = DEFAULT_SUCCESS_CACHE, gate?: AttemptGate) {
    this.#log = log;
    this.#checks = new CredentialChecks(cache, gate);
    this.#clockSkewMs = cfg.clockSkewMs;
    this.#readToken = tokenReader(cfg.from);
    if (cfg.algorithms.length === 0) throw new SwitchyardError(ErrorCode.ConfigPolicy, 'jwt: at least one algorithm is required');
    this.#options = {
      algorithms: [...cfg.algorithms],
      clockTolerance: cfg.clockSkewMs / 1000,
      ...(cfg.requireExp === false ? {} : { requiredClaims: ['exp'] }),
      ...(cfg.issuer?.length ? { issuer: [...cfg.issuer] } : {}),
      ...(cfg.audience?.length ? { audience: [...cfg.audience] } : {}),
    };

    const secret = cfg.secret === undefined ? undefined : new TextEncoder().encode(cfg.secret);
    if (cfg.algorithms.includes('HS256') && secret === undefined) throw new SwitchyardError(ErrorCode.ConfigPolicy, 'jwt: HS256 needs a secret');
    const asymmetric = cfg.algorithms.filter((a) => a !== 'HS256');
    const sources = [cfg.publicKeyPem, cfg.jwksFile, cfg.jwksUrl].filter((s) => s !== undefined).length;
    if (asymmetric.length > 0 && sources !== 1) {
      throw new SwitchyardError(ErrorCode.ConfigPolicy, `jwt: ${asymmetric.join('/')} needs exactly one of public_key_file, jwks_file, jwks_url`);
    }
    const keySource = asymmetric.length > 0 ? this.#asymmetricSource(cfg, asymmetric, tuning) : undefined;

    this.#getKey = async (header, token) => {
      // jose has already refused any alg outside the configured list.
      if (header.alg === 'HS256') return secret!;
      if (keySource === undefined) throw new (jose().errors.JOSEAlgNotAllowed)('no key for this algorithm');
      return keySource(header, token);
    };
  }

  authenticate(req: GatewayRequest): AuthResult | Promise<AuthResult> {
    const token = this.#readToken(req);
    if (token.found === 'ambiguous') return { ok: false, reason: 'more than one token presented', wwwAuthenticate: INVALID_CHALLENGE };
    if (token.found === false || token.value === '') return { ok: false, reason: 'missing token', wwwAuthenticate: CHALLENGE };
    if (!COMPACT_JWT.test(token.value)) return { ok: false, reason: 'malformed token', wwwAuthenticate: INVALID_CHALLENGE };
    const key = createHash('sha256').update(token.value).digest('base64');
    return this.#checks.known(key) ?? this.#checks.run(key, req.clientIp, () => this.#verify(token.value, key, req.clientIp));
  }

  close(): void {
    clearInterval(this.#refreshTimer);
    this.#refreshTimer = undefined;
    this.#checks.clear();
  }

  async #verify(token: string, cacheKey: string, clientIp: string): Promise<AuthResult> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jose().jwtVerify(token, this.#getKey, this.#options));
    } catch (err) {
      // The keys could not be fetched: no fault of the client's, no attempt of theirs spent.
      if (!(err instanceof jose().errors.JOSEError) || err instanceof jose().errors.JWKSTimeout) this.#checks.refund(clientIp);
      return { ok: false, reason: describeFailure(err), wwwAuthenticate: INVALID_CHALLENGE };
    }
    if (typeof payload.sub !== 'string' || payload.sub === '') {
      return { ok: false, reason: 'token has no "sub" claim', wwwAuthenticate: INVALID_CHALLENGE };
    }
    const identity: Identity = Object.freeze({ kind: 'jwt', subject: payload.sub, scopes: Object.freeze(scopesOf(payload)), claims: Object.freeze(payload) });
    return this.#checks.succeeded(cacheKey, clientIp, identity, payload.exp === undefined ? Infinity : payload.exp * 1000 + this.#clockSkewMs);
  }

  #asymmetricSource(cfg: JwtConfig, algorithms: readonly string[], tuning: JwksTuning): JWTVerifyGetKey {
    if (cfg.publicKeyPem !== undefined) {
      let key: KeyObject;
      try {
        key = createPublicKey(cfg.publicKeyPem);
      } catch (err) {
        throw new SwitchyardError(ErrorCode.ConfigPolicy, `jwt: public_key_file does not hold a valid PEM public key (${(err as Error).message})`);
      }
      const alg = algorithmOf(key);
      if (alg === undefined || !algorithms.includes(alg)) {
        throw new SwitchyardError(ErrorCode.ConfigPolicy, `jwt: public_key_file holds a ${describeKey(key)} key, usable with none of ${algorithms.join(', ')}`);
      }
      // Name the one algorithm this key serves, so a token naming another is refused even among allowed ones.
      return async (header) => {
        if (header.alg !== alg) throw new (jose().errors.JOSEAlgNotAllowed)(`"${header.alg}" does not match the configured ${alg} key`);
        return key;
      };
    }
    if (cfg.jwksFile !== undefined) {
      let jwks: unknown;
      try {
        jwks = JSON.parse(readFileSync(cfg.jwksFile, 'utf8'));
      } catch (err) {
        throw new SwitchyardError(ErrorCode.ConfigPolicy, `jwt: cannot read jwks_file ${cfg.jwksFile}: ${(err as Error).message}`);
      }
      try {
        return jose().createLocalJWKSet(jwks as Parameters<typeof Jose.createLocalJWKSet>[0]);
      } catch (err) {
        throw new SwitchyardError(ErrorCode.ConfigPolicy, `jwt: jwks_file ${cfg.jwksFile} is not a JWK Set: ${(err as Error).message}`);
      }
    }
    return this.#remoteSource(cfg.jwksUrl!, tuning);
  }

  /**
   * A remote JWKS, fetched at once and then refreshed in the background
   * before it goes stale, so requests normally never wait on the network.
   * If a refresh fails, requests keep verifying against the last keys
   * fetched (logged); only with no keys at all does a request wait, and
   * never longer than `timeoutMs`.
   */
  #remoteSource(url: string, tuning: JwksTuning): JWTVerifyGetKey {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new SwitchyardError(ErrorCode.ConfigPolicy, `jwt: jwks_url ${url} is not a URL`);
    }
    const remote = jose().createRemoteJWKSet(parsed, {
      timeoutDuration: tuning.timeoutMs,
      cooldownDuration: tuning.cooldownMs,
      cacheMaxAge: tuning.cacheMaxAgeMs,
    });
    const refresh = (): void => {
      remote.reload().catch((err: unknown) => this.#log.warn({ jwksUrl: url, err: String(err) }, 'JWKS refresh failed'));
    };
    refresh();
    // Refresh a little before jose would consider the keys stale and fetch them on a request.
    this.#refreshTimer = setInterval(refresh, Math.max(1, Math.floor(tuning.cacheMaxAgeMs * 0.9))).unref();

    return async (header, token) => {
      try {
        return await remote(header, token);
      } catch (err) {
        const last = remote.jwks();
        if (last === undefined || (err instanceof jose().errors.JOSEError && KEY_LOOKUP_ERRORS.has(err.code))) throw err;
        this.#log.warn({ jwksUrl: url, err: String(err) }, 'JWKS fetch failed; using the last keys fetched');
        return jose().createLocalJWKSet(last)(header, token);
      }
    };
  }
}

function tokenReader(from: string): (req: GatewayRequest) => Lookup {
  if (from === 'authorization') return (req) => authorizationCredentials(req, 'bearer');
  const colon = from.indexOf(':');
  const kind = from.slice(0, colon);
  const name = from.slice(colon + 1);
  if (colon > 0 && name !== '') {
    if (kind === 'header') {
      const lower = name.toLowerCase();
      return (req) => headerValue(req, lower);
    }
    if (kind === 'cookie') return (req) => cookieValue(req, name);
    if (kind === 'query') return (req) => queryValue(req, name);
  }
  throw new SwitchyardError(ErrorCode.ConfigPolicy, `jwt: from must be "authorization", "header:NAME", "cookie:NAME" or "query:NAME", not "${from}"`);
}

function algorithmOf(key: KeyObject): string | undefined {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return 'RS256';
    case 'ec':
      return key.asymmetricKeyDetails?.namedCurve === 'prime256v1' ? 'ES256' : undefined;
    case 'ed25519':
      return 'EdDSA';
    default:
      return undefined;
  }
}

function describeKey(key: KeyObject): string {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  return curve ? `${key.asymmetricKeyType} ${curve}` : String(key.asymmetricKeyType);
}

/** `scope` (space-separated, RFC 8693) or `scp` (a list, or a string as some issuers send it). */
function scopesOf(payload: JWTPayload): readonly string[] {
  const raw = payload.scope ?? payload.scp;
  if (typeof raw === 'string') return raw.split(' ').filter((s) => s !== '');
  if (Array.isArray(raw)) return raw.filter((s): s is string => typeof s === 'string');
  return [];
}

/** A log line for a refused token; jose's messages name the failed check, never the token. */
function describeFailure(err: unknown): string {
  const { errors } = jose();
  if (err instanceof errors.JWTExpired) return 'token expired';
  if (err instanceof errors.JWTClaimValidationFailed && err.claim === 'exp' && err.reason === 'missing') {
    return 'token has no "exp" claim (a token that never expires is refused unless the route sets jwt.require_exp: false)';
  }
  if (err instanceof errors.JWTClaimValidationFailed) return `claim "${err.claim}" ${err.reason}: ${err.message}`;
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'bad signature';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'algorithm not allowed';
  if (err instanceof errors.JWKSTimeout) return 'JWKS fetch timed out';
  if (err instanceof errors.JWKSNoMatchingKey) return 'no JWKS key matches the token';
  if (err instanceof errors.JOSEError) return `invalid token (${err.code}): ${err.message}`;
  return `token not verified: ${String(err)}`; // e.g. the JWKS fetch failed
}
