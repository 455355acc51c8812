// JWT authentication with real keys (HS256, RS256, ES256, EdDSA from PEM and
// a JWKS file): valid tokens pass; missing, malformed, expired, not yet
// valid, wrong issuer/audience/signature, alg:none and algorithm-confusion
// tokens are refused with the RFC 6750 challenge; clock skew is honoured.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SignJWT, exportJWK, exportSPKI, generateKeyPair } from 'jose';
import type { CryptoKey, JWTPayload } from 'jose';
import pino from 'pino';
import { createAuthenticator } from '../../src/gateway/auth/index.ts';
import type { AuthResult, Authenticator, GatewayRequest } from '../../src/gateway/auth/index.ts';
import type { JwtConfig } from '../../src/config/types.ts';

const log = pino({ level: 'silent' });
const SECRET = 'an-hs256-secret-of-at-least-32-bytes!';
const CHALLENGE = 'Bearer realm="switchyard"';
const INVALID = 'Bearer realm="switchyard", error="invalid_token"';
const now = (): number => Math.floor(Date.now() / 1000);
const b64url = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

type Alg = 'RS256' | 'ES256' | 'EdDSA';
const keys = {} as Record<Alg, { privateKey: CryptoKey; publicKey: CryptoKey; pem: string }>;
let tmp: string;

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'switchyard-jwt-'));
  for (const alg of ['RS256', 'ES256', 'EdDSA'] as const) {
    const pair = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
    keys[alg] = { ...pair, pem: await exportSPKI(pair.publicKey) };
  }
});
after(() => rmSync(tmp, { recursive: true, force: true }));

function request(headers: Array<[string, string]> = [], target = '/'): GatewayRequest {
  return { method: 'GET', target, rawHeaders: headers.flat(), clientIp: '127.0.0.1' };
}
const bearer = (token: string): GatewayRequest => request([['Authorization', `Bearer ${token}`]]);

function jwt(cfg: Partial<JwtConfig>): Authenticator {
  return createAuthenticator({ type: 'jwt', jwt: { algorithms: ['HS256'], clockSkewMs: 0, from: 'authorization', ...cfg }, forward: { claimHeaders: [] } }, log);
}

async function sign(payload: JWTPayload, key: CryptoKey | Uint8Array | string, alg: string, kid?: string): Promise<string> {
  const secret = typeof key === 'string' ? new TextEncoder().encode(key) : key;
  // Valid for 5 minutes unless the test says otherwise: tokens without exp are refused by default.
  return new SignJWT({ sub: 'user-1', exp: now() + 300, ...payload }).setProtectedHeader({ alg, ...(kid ? { kid } : {}) }).sign(secret);
}

async function refused(auth: Authenticator, req: GatewayRequest, reason: RegExp, challenge = INVALID): Promise<void> {
  const result = await auth.authenticate(req);
  assert.equal(result.ok, false, 'expected a refusal');
  if (result.ok) return;
  assert.match(result.reason, reason);
  assert.equal(result.wwwAuthenticate, challenge);
}

async function accepted(auth: Authenticator, req: GatewayRequest): Promise<Extract<AuthResult, { ok: true }>> {
  const result = await auth.authenticate(req);
  assert.ok(result.ok, `expected acceptance, got: ${result.ok ? '' : result.reason}`);
  return result;
}

describe('jwt: valid tokens', () => {
  it('HS256 with the shared secret: subject, scopes from "scope", the payload as claims', async () => {
    const auth = jwt({ secret: SECRET });
    const { identity } = await accepted(auth, bearer(await sign({ scope: 'read  write', role: 'admin' }, SECRET, 'HS256')));
    assert.equal(identity.kind, 'jwt');
    assert.equal(identity.subject, 'user-1');
    assert.deepEqual(identity.scopes, ['read', 'write']);
    assert.equal(identity.claims.role, 'admin');
  });

  for (const alg of ['RS256', 'ES256', 'EdDSA'] as const) {
    it(`${alg} with a PEM public key`, async () => {
      const auth = jwt({ algorithms: [alg], publicKeyPem: keys[alg].pem });
      const { identity } = await accepted(auth, bearer(await sign({ scp: ['a', 'b'] }, keys[alg].privateKey, alg)));
      assert.deepEqual(identity.scopes, ['a', 'b']);
    });
  }

  it('RS256 and ES256 from a JWKS file, chosen by kid', async () => {
    const rsa = { ...(await exportJWK((await generateKeyPair('RS256', { extractable: true })).publicKey)), kid: 'unused' };
    const es = await exportJWK(keys.ES256.publicKey);
    const rs = await exportJWK(keys.RS256.publicKey);
    const file = join(tmp, 'jwks.json');
    writeFileSync(file, JSON.stringify({ keys: [rsa, { ...es, kid: 'es' }, { ...rs, kid: 'rs' }] }));
    const auth = jwt({ algorithms: ['RS256', 'ES256'], jwksFile: file });
    await accepted(auth, bearer(await sign({}, keys.ES256.privateKey, 'ES256', 'es')));
    await accepted(auth, bearer(await sign({}, keys.RS256.privateKey, 'RS256', 'rs')));
    await refused(auth, bearer(await sign({}, keys.RS256.privateKey, 'RS256', 'unused')), /bad signature/);
  });

  it('reads the token from header:NAME, cookie:NAME and query:NAME, and a lower-case "bearer"', async () => {
    const token = await sign({}, SECRET, 'HS256');
    await accepted(jwt({ secret: SECRET }), request([['authorization', `bearer  ${token}`]]));
    await accepted(jwt({ secret: SECRET, from: 'header:X-Token' }), request([['x-token', token]]));
    await accepted(jwt({ secret: SECRET, from: 'cookie:at' }), request([['Cookie', `a=1; at=${token}; b=2`]]));
    await accepted(jwt({ secret: SECRET, from: 'query:access_token' }), request([], `/p?access_token=${token}`));
    await refused(jwt({ secret: SECRET, from: 'cookie:at' }), bearer(token), /missing token/, CHALLENGE);
  });
});

describe('jwt: refused tokens', () => {
  const auth = () => jwt({ algorithms: ['RS256'], publicKeyPem: keys.RS256.pem, issuer: ['https://issuer.test'], audience: ['api'] });
  const good = { iss: 'https://issuer.test', aud: 'api' };

  it('missing, or another scheme: challenge without an error', async () => {
    await refused(auth(), request(), /missing token/, CHALLENGE);
    await refused(auth(), request([['Authorization', 'Basic dTpw']]), /missing token/, CHALLENGE);
  });

  it('malformed and duplicated tokens', async () => {
    await refused(auth(), bearer('not-a-jwt'), /malformed token/);
    await refused(auth(), bearer('a.b.c'), /invalid token/);
    const token = await sign(good, keys.RS256.privateKey, 'RS256');
    await refused(auth(), request([['Authorization', `Bearer ${token}`], ['authorization', `Bearer ${token}`]]), /more than one token/);
  });

  it('expired and not yet valid', async () => {
    await refused(auth(), bearer(await sign({ ...good, exp: now() - 30 }, keys.RS256.privateKey, 'RS256')), /token expired/);
    await refused(auth(), bearer(await sign({ ...good, nbf: now() + 30 }, keys.RS256.privateKey, 'RS256')), /claim "nbf"/);
  });

  it('wrong or missing issuer and audience', async () => {
    await refused(auth(), bearer(await sign({ ...good, iss: 'https://evil.test' }, keys.RS256.privateKey, 'RS256')), /claim "iss"/);
    await refused(auth(), bearer(await sign({ aud: 'api' }, keys.RS256.privateKey, 'RS256')), /claim "iss"/);
    await refused(auth(), bearer(await sign({ ...good, aud: 'other' }, keys.RS256.privateKey, 'RS256')), /claim "aud"/);
    await accepted(auth(), bearer(await sign({ ...good, aud: ['other', 'api'] }, keys.RS256.privateKey, 'RS256')));
  });

  it('wrong signature: another key, or a payload edited after signing', async () => {
    const other = await generateKeyPair('RS256');
    await refused(auth(), bearer(await sign(good, other.privateKey, 'RS256')), /bad signature/);
    const [h, , s] = (await sign(good, keys.RS256.privateKey, 'RS256')).split('.');
    await refused(auth(), bearer(`${h}.${b64url({ ...good, sub: 'admin' })}.${s}`), /bad signature/);
  });

  it('alg:none, with or without a signature part', async () => {
    const unsigned = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ ...good, sub: 'admin' })}.`;
    await refused(auth(), bearer(unsigned), /algorithm not allowed/);
    await refused(jwt({ secret: SECRET }), bearer(unsigned), /algorithm not allowed/);
    const [, , signature] = (await sign(good, keys.RS256.privateKey, 'RS256')).split('.');
    await refused(auth(), bearer(`${unsigned}${signature}`), /algorithm not allowed/);
  });

  it('algorithm confusion: an HS256 token keyed with the RSA public key is refused', async () => {
    const forged = await sign(good, keys.RS256.pem, 'HS256');
    await refused(auth(), bearer(forged), /algorithm not allowed/);
    // Even where HS256 is allowed too, HS256 only ever meets the shared secret.
    const both = jwt({ algorithms: ['HS256', 'RS256'], secret: SECRET, publicKeyPem: keys.RS256.pem });
    await refused(both, bearer(forged), /bad signature/);
    await accepted(both, bearer(await sign({}, keys.RS256.privateKey, 'RS256')));
    await accepted(both, bearer(await sign({}, SECRET, 'HS256')));
  });

  it('an allowed algorithm that does not match the PEM key type is refused', async () => {
    const mixed = jwt({ algorithms: ['RS256', 'ES256'], publicKeyPem: keys.RS256.pem });
    await refused(mixed, bearer(await sign({}, keys.ES256.privateKey, 'ES256')), /algorithm not allowed/);
  });

  it('a token without a string "sub"', async () => {
    const token = await new SignJWT({ scope: 'x', exp: now() + 300 }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(SECRET));
    await refused(jwt({ secret: SECRET }), bearer(token), /no "sub" claim/);
  });
});

describe('jwt: tokens that never expire', () => {
  it('are refused unless the route sets require_exp: false', async () => {
    const forever = await sign({ exp: undefined }, SECRET, 'HS256');
    await refused(jwt({ secret: SECRET }), bearer(forever), /token has no "exp" claim .*require_exp: false/);
    await refused(jwt({ secret: SECRET, requireExp: true }), bearer(forever), /no "exp" claim/);
    await accepted(jwt({ secret: SECRET, requireExp: false }), bearer(forever));
    // exp must still be a date when present.
    await refused(jwt({ secret: SECRET, requireExp: false }), bearer(await sign({ exp: 'soon' as unknown as number }, SECRET, 'HS256')), /"exp" claim must be a number/);
  });
});

describe('jwt: clock skew', () => {
  it('accepts exp and nbf within the configured skew and refuses them beyond it', async () => {
    const skewed = jwt({ secret: SECRET, clockSkewMs: 20_000 });
    await accepted(skewed, bearer(await sign({ exp: now() - 10 }, SECRET, 'HS256')));
    await accepted(skewed, bearer(await sign({ nbf: now() + 10 }, SECRET, 'HS256')));
    await refused(skewed, bearer(await sign({ exp: now() - 40 }, SECRET, 'HS256')), /token expired/);
    await refused(skewed, bearer(await sign({ nbf: now() + 40 }, SECRET, 'HS256')), /claim "nbf"/);
    await refused(jwt({ secret: SECRET }), bearer(await sign({ exp: now() - 10 }, SECRET, 'HS256')), /token expired/);
  });
});

describe('jwt: verified tokens are remembered', () => {
  it('answers a repeated token synchronously, but never past its exp', async () => {
    const auth = jwt({ secret: SECRET, clockSkewMs: 1_000 });
    const token = await sign({ exp: now() }, SECRET, 'HS256'); // valid for about one more second thanks to the skew
    assert.ok(auth.authenticate(bearer(token)) instanceof Promise, 'first use is verified');
    await accepted(auth, bearer(token));
    const cached = auth.authenticate(bearer(token));
    assert.ok(!(cached instanceof Promise) && cached.ok, 'a repeat is recalled');
    await sleep((now() + 1) * 1000 - Date.now() + 50); // past exp + skew
    await refused(auth, bearer(token), /token expired/);
  });

  it('never remembers a refusal, and close() forgets', async () => {
    const auth = jwt({ secret: SECRET });
    const bad = await sign({}, 'another-secret-of-at-least-32-bytes!!', 'HS256');
    await refused(auth, bearer(bad), /bad signature/);
    assert.ok(auth.authenticate(bearer(bad)) instanceof Promise);
    const good = await sign({}, SECRET, 'HS256');
    await accepted(auth, bearer(good));
    auth.close();
    assert.ok(auth.authenticate(bearer(good)) instanceof Promise);
  });
});

describe('jwt: configuration errors are thrown at creation', () => {
  it('names the problem', () => {
    assert.throws(() => jwt({ algorithms: ['RS256'], publicKeyPem: 'not a pem' }), /public_key_file does not hold a valid PEM/);
    assert.throws(() => jwt({ algorithms: ['ES256'], publicKeyPem: keys.RS256.pem }), /holds a rsa key, usable with none of ES256/);
    assert.throws(() => jwt({ algorithms: ['RS256'], jwksFile: join(tmp, 'missing.json') }), /cannot read jwks_file/);
    assert.throws(() => jwt({ algorithms: ['HS256'] }), /HS256 needs a secret/);
    assert.throws(() => jwt({ algorithms: ['RS256'] }), /exactly one of public_key_file, jwks_file, jwks_url/);
    assert.throws(() => jwt({ secret: SECRET, from: 'body:x' }), /from must be/);
  });

  it('rejects a file that is not a JWK Set', () => {
    const file = join(tmp, 'bad.json');
    writeFileSync(file, '{"nokeys":true}');
    assert.throws(() => jwt({ algorithms: ['RS256'], jwksFile: file }), /is not a JWK Set/);
  });
});
