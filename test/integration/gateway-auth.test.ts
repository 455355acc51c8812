// Issue 5 acceptance, authentication, through the real CLI (2 workers): every
// scheme (api_key in a header and in the query, from the config and from a
// keys_file; JWT HS256, RS256, ES256 and EdDSA from PEM files, a JWKS file
// and a JWKS URL served by the test; Basic with bcrypt and scrypt hashes).
// A valid credential passes and its identity reaches the upstream in the
// configured headers; missing, malformed, expired, not-yet-valid,
// wrong-audience, wrong-issuer, wrong-signature, tampered, `alg: none` and
// algorithm-confusion tokens get 401 (with a Bearer / Basic challenge where
// the scheme defines one) and never reach the upstream; identity headers a
// client sends itself never reach the upstream.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { startBackend, type Backend } from '../helpers/backend.js';
import { findBySeq, mapLimit, receivedAll, send, startJwksServer, waitWorkersReady, type JwksServer } from '../helpers/gateway.js';
import { startSwitchyard, type Switchyard } from '../helpers/switchyard.js';
import {
  algConfusionJwt,
  basicAuth,
  bcryptHash,
  claims,
  epoch,
  generateKeys,
  jwks,
  scryptHash,
  sha256Hex,
  signJwt,
  tamperPayload,
  unsignedJwt,
  type KeyPair,
} from '../helpers/tokens.js';

const ISSUER = 'https://issuer.test';
const AUDIENCE = 'gateway-tests';
const HS_SECRET = 'hs256-secret-for-the-gateway-tests';
const FORWARD_JWT = { subject: 'X-User-Id', claims: { email: 'X-User-Email' } };

interface Case {
  what: string;
  path: string;
  headers?: Record<string, string | string[]>;
  status: number;
  /** The WWW-Authenticate of a 401 must match. */
  challenge?: RegExp;
  /** For a 200: the identity headers the upstream must see, exactly once each (null: not at all). */
  identity?: Record<string, string | null>;
}

/** Header names a client may try to forge on each kind of route. */
const FORGED = { 'X-User-Id': ['admin', 'root'], 'X-User-Email': 'root@evil.test', 'X-Client-Id': 'svc-root', 'X-User': 'root' };

describe('gateway authentication', () => {
  let dir: string;
  let backend: Backend;
  let jwksServer: JwksServer;
  let deadJwks: net.Server;
  const deadSockets = new Set<net.Socket>();
  let sy: Switchyard;
  const cases: Case[] = [];

  // Keys: one pair per algorithm for each key source, and impostors for wrong signatures.
  const pem = { RS256: generateKeys('RS256'), ES256: generateKeys('ES256'), EdDSA: generateKeys('EdDSA') };
  const fileSet = { RS256: generateKeys('RS256'), ES256: generateKeys('ES256'), EdDSA: generateKeys('EdDSA') };
  const urlSet = { RS256: generateKeys('RS256'), ES256: generateKeys('ES256'), EdDSA: generateKeys('EdDSA') };
  const impostor = { RS256: generateKeys('RS256'), ES256: generateKeys('ES256'), EdDSA: generateKeys('EdDSA') };

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-gw-auth-'));
    const file = (name: string, text: string): string => {
      const p = path.join(dir, name);
      writeFileSync(p, text);
      return p;
    };
    backend = await startBackend();
    jwksServer = await startJwksServer(jwks(urlSet.RS256, urlSet.ES256, urlSet.EdDSA));
    // A JWKS URL that accepts connections and never answers.
    deadJwks = net.createServer((s) => {
      deadSockets.add(s);
      s.on('error', () => {});
      s.on('close', () => deadSockets.delete(s));
    });
    await new Promise<void>((resolve) => deadJwks.listen(0, '127.0.0.1', resolve));
    const deadUrl = `http://127.0.0.1:${(deadJwks.address() as net.AddressInfo).port}/.well-known/jwks.json`;

    const jwtRoute = (p: string, jwt: Record<string, unknown>) => ({
      name: p.slice(1),
      match: { host: '*', path: p },
      upstream: 'app',
      auth: { jwt: { issuer: ISSUER, audience: AUDIENCE, clock_skew: '30s', ...jwt }, forward: FORWARD_JWT },
    });
    const routes = [
      {
        name: 'key-header',
        match: { host: '*', path: '/key-header' },
        upstream: 'app',
        auth: {
          api_key: {
            keys: [
              { name: 'svc-alpha', key: 'alpha-key-0123456789' },
              { name: 'svc-beta', sha256: sha256Hex('beta-key-9876543210') },
            ],
            header: 'x-api-key',
          },
          forward: { subject: 'X-Client-Id' },
        },
      },
      {
        name: 'key-query',
        match: { host: '*', path: '/key-query' },
        upstream: 'app',
        auth: {
          api_key: {
            keys_file: file(
              'keys.yaml',
              stringify([
                { name: 'svc-gamma', sha256: sha256Hex('gamma-key-5555555555') },
                { name: 'svc-delta', key: 'delta-key-7777777777' },
              ]),
            ),
            query: 'api_key',
          },
          forward: { subject: 'X-Client-Id' },
        },
      },
      jwtRoute('/hs', { algorithms: ['HS256'], secret: HS_SECRET }),
      jwtRoute('/rs', { algorithms: ['RS256'], public_key_file: file('rs.pem', pem.RS256.publicPem) }),
      jwtRoute('/es', { algorithms: ['ES256'], public_key_file: file('es.pem', pem.ES256.publicPem) }),
      jwtRoute('/ed', { algorithms: ['EdDSA'], public_key_file: file('ed.pem', pem.EdDSA.publicPem) }),
      jwtRoute('/jwks-file', {
        algorithms: ['RS256', 'ES256', 'EdDSA'],
        jwks_file: file('jwks.json', JSON.stringify(jwks(fileSet.RS256, fileSet.ES256, fileSet.EdDSA))),
      }),
      jwtRoute('/jwks-url', { algorithms: ['RS256', 'ES256', 'EdDSA'], jwks_url: jwksServer.url }),
      jwtRoute('/jwks-dead', { algorithms: ['RS256'], jwks_url: deadUrl }),
      {
        name: 'basic-bcrypt',
        match: { host: '*', path: '/basic-bcrypt' },
        upstream: 'app',
        auth: { basic: { realm: 'bcrypt-realm', users: [{ name: 'ann', hash: bcryptHash('ann-password-1') }] }, forward: { subject: 'X-User' } },
      },
      {
        name: 'basic-scrypt',
        match: { host: '*', path: '/basic-scrypt' },
        upstream: 'app',
        auth: { basic: { realm: 'scrypt-realm', users: [{ name: 'bob', hash: scryptHash('bob-password-2') }] }, forward: { subject: 'X-User' } },
      },
      { name: 'open', match: { host: '*', path: '/' }, upstream: 'app' },
    ];
    // Hundreds of refusals from one address, on purpose: above the failed-attempt limit (gateway-hardening.test.ts tests that).
    sy = await startSwitchyard({ auth_failures: { rate: '100/s', burst: 1000 }, upstreams: { app: { servers: [{ address: backend.address }], retries: 0 } }, routes });
    await waitWorkersReady(sy.adminPort, 2);
  });

  after(async () => {
    await sy?.stop();
    await backend?.close();
    await jwksServer?.close();
    for (const s of deadSockets) s.destroy();
    await new Promise<void>((resolve) => (deadJwks ? deadJwks.close(() => resolve()) : resolve()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const bearer = (t: string): Record<string, string> => ({ Authorization: `Bearer ${t}` });
  const BEARER = /^Bearer\b/i;

  /** The cases every JWT route must get right, signed by `sign`, with `wrongKey` an impostor. */
  async function jwtCases(p: string, key: string | KeyPair, wrongKey: string | KeyPair, label = ''): Promise<void> {
    const sub = `user-${p.slice(1)}${label}`;
    const email = `${sub}@example.test`;
    const ok = claims({ sub, email });
    const good = await signJwt(key, ok);
    const name = (s: string): string => `${p}${label}: ${s}`;
    cases.push({ what: name('valid token'), path: `${p}/a`, headers: { ...bearer(good), ...FORGED }, status: 200, identity: { 'X-User-Id': sub, 'X-User-Email': email } });
    cases.push({
      what: name('expired 10 s ago, within the 30 s clock skew'),
      path: `${p}/skew`,
      headers: bearer(await signJwt(key, claims({ sub, email, iat: epoch(-310), nbf: epoch(-310), exp: epoch(-10) }))),
      status: 200,
      identity: { 'X-User-Id': sub },
    });
    const refuse = (what: string, headers: Record<string, string> | undefined, challenge: RegExp = BEARER): void => {
      cases.push({ what: name(what), path: `${p}/x`, ...(headers ? { headers: { ...headers, ...FORGED } } : {}), status: 401, challenge });
    };
    cases.push({
      what: name('valid token without the forwarded claim: the forged claim header is still removed'),
      path: `${p}/no-email`,
      headers: { ...bearer(await signJwt(key, claims({ sub }))), ...FORGED },
      status: 200,
      identity: { 'X-User-Id': sub, 'X-User-Email': null },
    });
    refuse('no Authorization header', undefined);
    refuse('Authorization without a token', { Authorization: 'Bearer' });
    refuse('malformed token', bearer('not-a-token'));
    refuse('garbage in three parts', bearer('abc.def.ghi'));
    refuse('truncated signature', bearer(good.slice(0, -6)));
    refuse('expired two minutes ago', bearer(await signJwt(key, claims({ sub, iat: epoch(-400), nbf: epoch(-400), exp: epoch(-120) }))));
    refuse('not valid for two more minutes', bearer(await signJwt(key, claims({ sub, nbf: epoch(120) }))));
    refuse('wrong audience', bearer(await signJwt(key, claims({ sub, aud: 'another-api' }))));
    refuse('wrong issuer', bearer(await signJwt(key, claims({ sub, iss: 'https://evil.test' }))));
    refuse('signed by another key', bearer(await signJwt(wrongKey, ok)));
    refuse('payload tampered after signing', bearer(tamperPayload(good, { ...ok, sub: 'admin' })));
    refuse('alg none', bearer(unsignedJwt(ok)));
    refuse('alg none keeping a known kid', bearer(unsignedJwt(ok, typeof key === 'string' ? {} : { kid: key.kid })));
    refuse('alg "None" spelled otherwise', bearer(unsignedJwt(ok, { alg: 'None' })));
    if (typeof key !== 'string') refuse('HS256 signed with the public key (algorithm confusion)', bearer(await algConfusionJwt(key.publicPem, ok)));
  }

  before(async () => {
    // API key in a header (config keys: plain and sha256).
    cases.push({ what: 'api key (plain in config)', path: '/key-header/1', headers: { 'x-api-key': 'alpha-key-0123456789', ...FORGED }, status: 200, identity: { 'X-Client-Id': 'svc-alpha' } });
    cases.push({ what: 'api key (sha256 in config)', path: '/key-header/2', headers: { 'X-API-Key': 'beta-key-9876543210', ...FORGED }, status: 200, identity: { 'X-Client-Id': 'svc-beta' } });
    cases.push({ what: 'api key missing', path: '/key-header/3', headers: FORGED, status: 401 });
    cases.push({ what: 'api key wrong', path: '/key-header/4', headers: { 'x-api-key': 'alpha-key-012345678X', ...FORGED }, status: 401 });
    cases.push({ what: 'api key with an extra character', path: '/key-header/5', headers: { 'x-api-key': 'alpha-key-0123456789a' }, status: 401 });
    cases.push({ what: 'api key empty', path: '/key-header/6', headers: { 'x-api-key': '' }, status: 401 });
    cases.push({ what: 'api key as a Bearer token instead of the header', path: '/key-header/7', headers: { Authorization: 'Bearer alpha-key-0123456789' }, status: 401 });
    cases.push({ what: 'api key of the other route', path: '/key-header/8', headers: { 'x-api-key': 'delta-key-7777777777' }, status: 401 });
    // API key in the query (keys_file).
    cases.push({ what: 'query api key (sha256 in keys_file)', path: '/key-query/1?api_key=gamma-key-5555555555', headers: FORGED, status: 200, identity: { 'X-Client-Id': 'svc-gamma' } });
    cases.push({ what: 'query api key (plain in keys_file)', path: '/key-query/2?a=1&api_key=delta-key-7777777777', headers: FORGED, status: 200, identity: { 'X-Client-Id': 'svc-delta' } });
    cases.push({ what: 'query api key missing', path: '/key-query/3?a=1', headers: FORGED, status: 401 });
    cases.push({ what: 'query api key wrong', path: '/key-query/4?api_key=gamma-key-5555555556', status: 401 });
    cases.push({ what: 'query api key of the other route', path: '/key-query/5?api_key=alpha-key-0123456789', status: 401 });

    await jwtCases('/hs', HS_SECRET, 'another-hs256-secret-of-enough-length');
    await jwtCases('/rs', pem.RS256, impostor.RS256);
    await jwtCases('/es', pem.ES256, impostor.ES256);
    await jwtCases('/ed', pem.EdDSA, impostor.EdDSA);
    for (const alg of ['RS256', 'ES256', 'EdDSA'] as const) {
      await jwtCases('/jwks-file', fileSet[alg], impostor[alg], `[${alg}]`);
      await jwtCases('/jwks-url', urlSet[alg], impostor[alg], `[${alg}]`);
    }
    // A key of an allowed algorithm, but not the one the route's PEM holds.
    cases.push({ what: '/rs: ES256 token on an RS256 route', path: '/rs/x', headers: bearer(await signJwt(pem.ES256, claims())), status: 401, challenge: BEARER });
    // A JWKS key presented under another key's kid.
    cases.push({
      what: '/jwks-file: impostor key using a listed kid',
      path: '/jwks-file/x',
      headers: bearer(await signJwt(impostor.RS256, claims(), { header: { kid: fileSet.RS256.kid } })),
      status: 401,
      challenge: BEARER,
    });

    for (const [p, user, password, realm] of [
      ['/basic-bcrypt', 'ann', 'ann-password-1', 'bcrypt-realm'],
      ['/basic-scrypt', 'bob', 'bob-password-2', 'scrypt-realm'],
    ] as const) {
      const challenge = new RegExp(`^Basic realm="${realm}"`, 'i');
      cases.push({ what: `${p}: valid`, path: `${p}/1`, headers: { Authorization: basicAuth(user, password), ...FORGED }, status: 200, identity: { 'X-User': user } });
      cases.push({ what: `${p}: wrong password`, path: `${p}/2`, headers: { Authorization: basicAuth(user, `${password}x`), ...FORGED }, status: 401, challenge });
      cases.push({ what: `${p}: unknown user`, path: `${p}/3`, headers: { Authorization: basicAuth('mallory', password) }, status: 401, challenge });
      cases.push({ what: `${p}: missing`, path: `${p}/4`, headers: FORGED, status: 401, challenge });
      cases.push({ what: `${p}: not base64`, path: `${p}/5`, headers: { Authorization: 'Basic !!!not-base64!!!' }, status: 401, challenge });
      cases.push({ what: `${p}: no colon`, path: `${p}/6`, headers: { Authorization: `Basic ${Buffer.from(user + password).toString('base64')}` }, status: 401, challenge });
      cases.push({ what: `${p}: empty password`, path: `${p}/7`, headers: { Authorization: basicAuth(user, '') }, status: 401, challenge });
      cases.push({ what: `${p}: a Bearer token instead`, path: `${p}/8`, headers: { Authorization: `Bearer ${password}` }, status: 401, challenge });
    }
  });

  test('every scheme: valid credentials pass with their identity, bad ones get 401 and never reach the upstream', async () => {
    assert.ok(cases.length > 150, `${cases.length} cases`);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const failures: string[] = [];
    try {
      await mapLimit(cases, 8, async (c, i) => {
        const seq = `auth-${i}`;
        const reply = await send({ port: sy.port, path: c.path, agent, headers: { 'X-Test-Seq': seq, ...c.headers } });
        const problems: string[] = [];
        if (reply.status !== c.status) problems.push(`status ${reply.status}, want ${c.status}: ${reply.body.slice(0, 80)}`);
        const seen = findBySeq([backend], seq);
        if (c.status === 200) {
          if (seen.length !== 1) problems.push(`${seen.length} upstream requests`);
          else {
            const got = seen[0]!.req;
            for (const [name, value] of Object.entries(c.identity ?? {})) {
              const values = receivedAll(got, name);
              const want = value === null ? [] : [value];
              if (JSON.stringify(values) !== JSON.stringify(want)) problems.push(`upstream ${name} ${JSON.stringify(values)}, want ${JSON.stringify(want)}`);
            }
          }
        } else {
          if (seen.length !== 0) problems.push(`a refused request reached the upstream (${seen.length}x)`);
          const challenge = reply.headers['www-authenticate'];
          if (c.challenge && !(typeof challenge === 'string' && c.challenge.test(challenge))) problems.push(`WWW-Authenticate ${JSON.stringify(challenge)}, want ${c.challenge}`);
        }
        if (problems.length > 0) failures.push(`${c.what}: ${problems.join('; ')}`);
      });
    } finally {
      agent.destroy();
    }
    assert.equal(failures.length, 0, `${failures.length} of ${cases.length} cases went wrong:\n${failures.slice(0, 40).join('\n')}`);
  });

  test('the JWKS URL is cached: a handful of fetches, not one per request', () => {
    // Each worker fetches at start; unknown kids may refetch only after a cooldown.
    assert.ok(jwksServer.fetches >= 1, 'the JWKS URL was never fetched');
    assert.ok(jwksServer.fetches <= 4, `${jwksServer.fetches} fetches of the JWKS for ${cases.filter((c) => c.path.startsWith('/jwks-url')).length} requests`);
  });

  test('a JWKS URL that never answers: the request waits a bounded time, then is refused', async () => {
    const t0 = Date.now();
    const reply = await send({ port: sy.port, path: '/jwks-dead/x', headers: { 'X-Test-Seq': 'dead-jwks', ...bearer(await signJwt(pem.RS256, claims())) }, timeoutMs: 15_000 });
    const ms = Date.now() - t0;
    assert.notEqual(reply.status, 200);
    assert.ok(reply.status === 401 || reply.status === 503, `status ${reply.status}`);
    assert.ok(ms < 5000, `answered after ${ms} ms`);
    assert.equal(findBySeq([backend], 'dead-jwks').length, 0);
  });

  test('a route without auth passes client headers through untouched (the stripping is per route)', async () => {
    const reply = await send({ port: sy.port, path: '/open', headers: { 'X-Test-Seq': 'open', 'X-User-Id': 'anyone' } });
    assert.equal(reply.status, 200);
    const [seen] = findBySeq([backend], 'open');
    assert.deepEqual(receivedAll(seen!.req, 'x-user-id'), ['anyone']);
  });
});
