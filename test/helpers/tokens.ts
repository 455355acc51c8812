// Credentials for gateway tests: key pairs for every JWT algorithm Switchyard
// accepts (as PEM and as JWK), signed tokens and the bad ones a client can
// forge (unsigned `alg: none`, tampered payload, wrong key), API key digests
// and Basic password hashes in both supported forms (bcrypt, scrypt).
import { createHash, generateKeyPairSync, randomBytes, scryptSync, type KeyObject } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { SignJWT, type JWTPayload } from 'jose';

export type AsymmetricAlg = 'RS256' | 'ES256' | 'EdDSA';

export interface KeyPair {
  alg: AsymmetricAlg;
  kid: string;
  privateKey: KeyObject;
  /** SPKI PEM of the public key, as `public_key_file` holds it. */
  publicPem: string;
  /** The public key as a JWK with kid, alg and use, as a JWKS lists it. */
  publicJwk: Record<string, unknown>;
}

/** A fresh key pair for `alg` (RSA 2048, P-256 or Ed25519). */
export function generateKeys(alg: AsymmetricAlg, kid = `${alg.toLowerCase()}-${randomBytes(4).toString('hex')}`): KeyPair {
  const { privateKey, publicKey } =
    alg === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : alg === 'ES256'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('ed25519');
  return {
    alg,
    kid,
    privateKey,
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    publicJwk: { ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' },
  };
}

export function jwks(...pairs: KeyPair[]): { keys: Array<Record<string, unknown>> } {
  return { keys: pairs.map((p) => p.publicJwk) };
}

export interface SignOptions {
  /** Extra protected-header fields (kid, typ...). */
  header?: Record<string, unknown>;
}

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/**
 * The standard claims of a token that should pass: `sub`, `iss`, `aud`, issued
 * now, expiring in 5 minutes. Spread overrides on top.
 */
export function claims(over: JWTPayload & Record<string, unknown> = {}): JWTPayload {
  const now = nowSeconds();
  return { sub: 'user-1', iss: 'https://issuer.test', aud: 'gateway-tests', iat: now, nbf: now - 1, exp: now + 300, ...over };
}

/** Seconds since the epoch, offset by `deltaSeconds`. */
export function epoch(deltaSeconds = 0): number {
  return nowSeconds() + deltaSeconds;
}

/** Signs `payload` with an HS256 secret or an asymmetric key pair (kid in the header for the latter). */
export async function signJwt(key: string | KeyPair, payload: JWTPayload, opts: SignOptions = {}): Promise<string> {
  if (typeof key === 'string') {
    return new SignJWT(payload).setProtectedHeader({ alg: 'HS256', typ: 'JWT', ...opts.header }).sign(new TextEncoder().encode(key));
  }
  return new SignJWT(payload).setProtectedHeader({ alg: key.alg, typ: 'JWT', kid: key.kid, ...opts.header }).sign(key.privateKey);
}

const b64url = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

/** An unsigned token (`alg: none`, empty signature), as RFC 7519 §6 defines it. */
export function unsignedJwt(payload: JWTPayload, header: Record<string, unknown> = {}): string {
  return `${b64url({ alg: 'none', typ: 'JWT', ...header })}.${b64url(payload)}.`;
}

/** `token` with its payload replaced by `payload`, the original signature kept (a forged claim). */
export function tamperPayload(token: string, payload: JWTPayload): string {
  const [header, , signature] = token.split('.');
  return `${header}.${b64url(payload)}.${signature}`;
}

/**
 * The RS256 → HS256 confusion: an HS256 token whose "secret" is the server's
 * own public key PEM, which a naive verifier would use as the HMAC key.
 */
export async function algConfusionJwt(publicPem: string, payload: JWTPayload): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(new TextEncoder().encode(publicPem));
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** A bcrypt hash ($2b$) of `password`; cost 8 keeps the tests quick. */
export function bcryptHash(password: string, cost = 8): string {
  return bcrypt.hashSync(password, cost).replace(/^\$2a\$/, '$2b$');
}

/** "scrypt$N$r$p$salt-b64$hash-b64" with a 32-byte derived key. */
export function scryptHash(password: string, N = 1024, r = 8, p = 1): string {
  const salt = randomBytes(16);
  const hash = scryptSync(password, salt, 32, { N, r, p });
  return `scrypt$${N}$${r}$${p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** The value of an `Authorization: Basic ...` header. */
export function basicAuth(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;
}
