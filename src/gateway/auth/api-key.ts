// API keys: the config holds only the SHA-256 of each key, so the presented
// key is hashed and compared against every stored digest.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { ApiKeyEntry } from '../../config/types.js';
import { outOfAttempts } from './attempts.js';
import type { AttemptGate } from './attempts.js';
import { headerValue, queryValue } from './request-parts.js';
import type { Lookup } from './request-parts.js';
import type { AuthResult, Authenticator, GatewayRequest, Identity } from './types.js';
import { SuccessCache } from './success-cache.js';
import { ErrorCode, SwitchyardError } from '../../errors.js';

interface StoredKey {
  digest: Buffer;
  identity: Identity;
}

export interface ApiKeyOptions {
  keys: readonly ApiKeyEntry[];
  /** Header carrying the key; default x-api-key. */
  header?: string;
  /** Query parameter also accepted, when set. */
  query?: string;
  /** Failed attempts per client: every unknown key costs one. */
  gate?: AttemptGate;
}

export class ApiKeyAuthenticator implements Authenticator {
  readonly #keys: StoredKey[];
  readonly #header: string;
  readonly #query: string | undefined;
  readonly #gate: AttemptGate | undefined;
  /**
   * Keys recently verified, by the presented string: a keep-alive client
   * sending the same key on every request skips the SHA-256 (about 2 µs,
   * most of the gateway's cost per request). A wrong key never enters, so it
   * is always hashed and compared in full; a lookup of a wrong key lands in
   * another hash bucket and is never compared with a valid one. The cache
   * lives as long as the route table, so a reload drops it.
   */
  readonly #recent = new SuccessCache<Identity>({ ttlMs: 60_000, maxEntries: 1024 });

  constructor(options: ApiKeyOptions) {
    this.#header = (options.header ?? 'x-api-key').toLowerCase();
    this.#query = options.query;
    this.#gate = options.gate;
    this.#keys = options.keys.map((k) => {
      if (!/^[0-9a-f]{64}$/i.test(k.sha256)) throw new SwitchyardError(ErrorCode.ConfigPolicy, `api key "${k.name}": sha256 must be 64 hex digits`);
      return {
        digest: Buffer.from(k.sha256, 'hex'),
        identity: Object.freeze({ kind: 'api_key', subject: k.name, scopes: Object.freeze([...k.scopes]), claims: Object.freeze({}) }),
      };
    });
  }

  authenticate(req: GatewayRequest): AuthResult {
    // Header values are latin1 strings of the bytes received, query values
    // are percent-decoded UTF-8: hashing each in its own encoding gives the
    // bytes the client meant, as the config loader hashed them (UTF-8).
    let presented: Lookup = headerValue(req, this.#header);
    let encoding: BufferEncoding = 'latin1';
    if (presented.found === false && this.#query !== undefined) {
      presented = queryValue(req, this.#query);
      encoding = 'utf8';
    }
    if (presented.found === 'ambiguous') return { ok: false, reason: 'more than one API key presented' };
    if (presented.found === false || presented.value === '') return { ok: false, reason: 'missing API key' };

    // Every stored digest is compared, in constant time, with no early exit,
    // so the time taken says nothing about which entry (if any) matched. A
    // Map keyed by the hex digest would be as safe (an attacker cannot steer
    // SHA-256 output, so a prefix-timing leak teaches nothing) and O(1); the
    // scan costs ~50 ns per key, negligible for key sets of realistic size.
    const cacheKey = encoding === 'utf8' ? `q:${presented.value}` : `h:${presented.value}`;
    const recent = this.#recent.get(cacheKey);
    if (recent !== undefined) return { ok: true, identity: recent };
    const wait = this.#gate?.charge(req.clientIp) ?? 0;
    if (wait > 0) return outOfAttempts(wait);
    const digest = createHash('sha256').update(presented.value, encoding).digest();
    let match: Identity | undefined;
    for (const key of this.#keys) {
      if (timingSafeEqual(digest, key.digest)) match = key.identity;
    }
    if (match === undefined) return { ok: false, reason: 'unknown API key' };
    this.#gate?.refund(req.clientIp);
    this.#recent.set(cacheKey, match);
    return { ok: true, identity: match };
  }

  close(): void {
    this.#recent.clear();
  }
}
