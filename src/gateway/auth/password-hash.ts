// Stored password hashes for Basic auth: bcrypt ($2a$/$2b$/$2y$, via the
// pure-JS bcryptjs) or scrypt written "scrypt$N$r$p$<salt-b64>$<hash-b64>".
// Both are parsed once at configuration time; a malformed hash is a config
// error, never a request-time surprise. Both are computed on the hash pool's
// threads (hash-pool.ts), never on the event loop.

import { randomBytes } from 'node:crypto';
import { hashPool } from './hash-pool.js';
import type { HashOutcome } from './hash-pool.js';
import { ErrorCode, SwitchyardError } from '../../errors.js';

export interface PasswordVerifier {
  /** Whether `password` matches; "busy" when the hash pool refused the check. */
  verify(password: string): Promise<HashOutcome>;
}

const BCRYPT = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;
const BCRYPT_ALPHABET = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
/** 2^20 × r=8 needs 1 GiB: anything above is a typo, not a policy. */
const MAX_SCRYPT_N = 2 ** 20;

class BcryptVerifier implements PasswordVerifier {
  constructor(readonly hash: string) {}
  verify(password: string): Promise<HashOutcome> {
    return hashPool.verify({ kind: 'bcrypt', password, hash: this.hash });
  }
}

class ScryptVerifier implements PasswordVerifier {
  constructor(
    readonly N: number,
    readonly r: number,
    readonly p: number,
    readonly salt: Buffer,
    readonly expected: Buffer,
  ) {}

  verify(password: string): Promise<HashOutcome> {
    const { N, r, p, salt, expected } = this;
    // scrypt needs 128·N·r bytes; Node refuses anything above maxmem (32 MiB by default).
    return hashPool.verify({ kind: 'scrypt', password, N, r, p, maxmem: 256 * N * r + (1 << 20), salt, expected });
  }
}

/** Parse a stored hash; throws with `label` in the message when it is malformed. */
export function parsePasswordHash(hash: string, label: string): PasswordVerifier {
  if (hash.startsWith('$2')) {
    if (!BCRYPT.test(hash)) throw new SwitchyardError(ErrorCode.ConfigPolicy, `${label}: malformed bcrypt hash`);
    return new BcryptVerifier(hash);
  }
  if (hash.startsWith('scrypt$')) {
    const parts = hash.split('$');
    const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
    const ok =
      parts.length === 6 &&
      Number.isInteger(N) && N > 1 && N <= MAX_SCRYPT_N && (N & (N - 1)) === 0 &&
      Number.isInteger(r) && r >= 1 && r <= 64 &&
      Number.isInteger(p) && p >= 1 && p <= 16 &&
      BASE64.test(parts[4]!) && BASE64.test(parts[5]!);
    if (!ok) throw new SwitchyardError(ErrorCode.ConfigPolicy, `${label}: malformed scrypt hash (expected scrypt$N$r$p$salt-b64$hash-b64, N a power of 2 ≤ 2^20)`);
    const expected = Buffer.from(parts[5]!, 'base64');
    if (expected.length < 16) throw new SwitchyardError(ErrorCode.ConfigPolicy, `${label}: scrypt hash shorter than 16 bytes`);
    return new ScryptVerifier(N, r, p, Buffer.from(parts[4]!, 'base64'), expected);
  }
  throw new SwitchyardError(ErrorCode.ConfigPolicy, `${label}: unsupported password hash (bcrypt $2a$/$2b$/$2y$ or scrypt$N$r$p$salt$hash)`);
}

/**
 * A verifier that costs the same as `like` and matches nothing: unknown users
 * are checked against it so that response time does not reveal which user
 * names exist.
 */
export function decoyVerifier(like: PasswordVerifier | undefined): PasswordVerifier {
  if (like instanceof ScryptVerifier) {
    return new ScryptVerifier(like.N, like.r, like.p, randomBytes(16), randomBytes(like.expected.length));
  }
  const cost = like instanceof BcryptVerifier ? like.hash.slice(4, 6) : '10';
  const body = Array.from(randomBytes(53), (b) => BCRYPT_ALPHABET[b & 63]).join('');
  return new BcryptVerifier(`$2b$${cost}$${body}`);
}
