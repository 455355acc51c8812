// Issue 10 (defects 7, 8 and parts of 9), through the real CLI with 2
// workers taking turns (round-robin): shared-memory state must hold across
// both.
// - Rate-limit keys that differ only after byte 255 have their own buckets.
// - Wrong Basic passwords: the default auth_failures (10/m, burst 10) gives
//   each client address 10 failed attempts, then 429 + Retry-After with no
//   hash computed; another client still logs in; plain requests on another
//   route are answered while a flood of wrong passwords is still being hashed.
// - JWTs without exp are refused unless the route sets require_exp: false.
// - API keys and tokens sent in the query never reach the upstream; the rest
//   of the request-target reaches it byte for byte.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startBackend, type Backend } from '../helpers/backend.js';
import { send, waitWorkersReady } from '../helpers/gateway.js';
import { startSwitchyard, type Switchyard } from '../helpers/switchyard.js';
import { basicAuth, bcryptHash, signJwt } from '../helpers/tokens.js';

const API_KEY = 'hardening-api-key-1';
const JWT_SECRET = 'hardening-jwt-secret-of-some-length';
const PASSWORD = 'the right password';

describe('gateway hardening (issue 10)', () => {
  let backend: Backend;
  let sy: Switchyard;
  // Cost 10, as in production: on the event loop each wrong password would stall the worker for ~100 ms.
  const hash = bcryptHash(PASSWORD, 10);

  before(async () => {
    backend = await startBackend();
    sy = await startSwitchyard({
      workers: 2,
      scheduling: 'round-robin',
      upstreams: { app: { servers: [{ address: backend.address }], retries: 0 } },
      routes: [
        { name: 'admin', match: { path: '/admin' }, upstream: 'app', auth: { basic: { users: [{ name: 'ops', hash }] } } },
        { name: 'per-client', match: { path: '/per-client' }, upstream: 'app', rate_limit: { rate: '6/m', burst: 1, key: 'header:X-Client' } },
        { name: 'keyed', match: { path: '/keyed' }, upstream: 'app', auth: { api_key: { keys: [{ name: 'svc', key: API_KEY }], query: 'api_key' } } },
        { name: 'token-in-query', match: { path: '/jwtq' }, upstream: 'app', auth: { jwt: { secret: JWT_SECRET, from: 'query:access_token' } } },
        { name: 'forever', match: { path: '/forever' }, upstream: 'app', auth: { jwt: { secret: JWT_SECRET, require_exp: false } } },
        { name: 'open', match: { path: '/' }, upstream: 'app' },
      ],
    });
    await waitWorkersReady(sy.adminPort, 2);
  });

  after(async () => {
    await sy?.stop();
    await backend?.close();
  });

  const received = (prefix: string): string[] => backend.requests.filter((r) => r.url.startsWith(prefix)).map((r) => r.url);

  test('rate-limit keys that differ only after byte 255 have buckets of their own', async () => {
    // The key is "hdr:" + the value: 254 ASCII bytes, then é or ê, which the
    // old 256-byte UTF-8 read (255 bytes and a NUL) cut off whole.
    const base = 'c'.repeat(250);
    const statuses = async (client: string): Promise<number[]> => {
      const out: number[] = [];
      // A fresh connection each: the two workers take turns, and share the bucket.
      for (let i = 0; i < 2; i++) out.push((await send({ port: sy.port, path: '/per-client', headers: { 'X-Client': client } })).status);
      return out;
    };
    assert.deepEqual(await statuses(`${base}\u00e9`), [200, 429]);
    assert.deepEqual(await statuses(`${base}\u00ea`), [200, 429], 'a key differing in its 256th byte is another client');
    assert.deepEqual(await statuses(`${base}\u00e9x`), [200, 429], 'and so is a longer one');
  });

  test('20 wrong passwords from one client: 10 refused with 401, then 429 + Retry-After; another client still gets in', async () => {
    const attacker = '127.0.0.2';
    // All at once: the attempts are charged before the hashes run, so parallel guesses cannot overrun the limit.
    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, i) => send({ port: sy.port, path: '/admin', localAddress: attacker, headers: { Authorization: basicAuth('ops', `guess-${i}`) } })),
    );
    const count = (status: number) => replies.filter((r) => r.status === status).length;
    assert.equal(count(401), 10, `statuses ${replies.map((r) => r.status).join(' ')}`);
    assert.equal(count(429), 10);
    for (const r of replies.filter((x) => x.status === 429)) {
      assert.match(String(r.headers['retry-after']), /^[1-9]\d*$/, 'Retry-After in whole seconds');
      assert.ok(Number(r.headers['retry-after']) <= 6, `one attempt comes back every 6 s, Retry-After ${r.headers['retry-after']}`);
      assert.equal(r.headers['www-authenticate'], undefined, 'no challenge: nothing was checked');
    }
    // Out of attempts, even the right password is not checked from this address.
    assert.equal((await send({ port: sy.port, path: '/admin/x', localAddress: attacker, headers: { Authorization: basicAuth('ops', PASSWORD) } })).status, 429);
    const other = await send({ port: sy.port, path: '/admin/from-another-client', localAddress: '127.0.0.3', headers: { Authorization: basicAuth('ops', PASSWORD) } });
    assert.equal(other.status, 200);
    assert.deepEqual(received('/admin'), ['/admin/from-another-client'], 'only the good request reached the upstream');
  });

  test('a plain request on another route is answered while wrong passwords from 20 clients are still being hashed', async (t) => {
    // 20 clients, one wrong password each: 20 bcrypt hashes of cost 10, at most one at a time per worker.
    let floodAnswered = 0;
    const flood = Array.from({ length: 20 }, (_, i) =>
      send({ port: sy.port, path: '/admin', localAddress: `127.0.1.${i + 1}`, headers: { Authorization: basicAuth('ops', `flood-${i}`) } }).then((r) => {
        floodAnswered++;
        return r.status;
      }),
    );
    const plain: number[] = [];
    const answeredBefore: number[] = [];
    for (let i = 0; i < 5; i++) {
      plain.push((await send({ port: sy.port, path: `/plain/${i}` })).status);
      answeredBefore.push(floodAnswered);
    }
    const floodStatuses = await Promise.all(flood);
    assert.deepEqual(plain, [200, 200, 200, 200, 200]);
    assert.deepEqual(floodStatuses, new Array(20).fill(401), 'each flood client had attempts left: every password was checked');
    // With the hashes on the event loop, a worker reads no new request until
    // its queued hashes are done; off it, the plain requests pass the flood.
    t.diagnostic(`flood answers seen before each plain answer: ${answeredBefore.join(', ')}`);
    assert.ok(answeredBefore[0]! < 10, `the first plain request was answered after ${answeredBefore[0]} of 20 flood answers`);
  });

  test('JWTs without exp are refused unless the route sets require_exp: false', async () => {
    const forever = await signJwt(JWT_SECRET, { sub: 'svc-forever' });
    const expiring = await signJwt(JWT_SECRET, { sub: 'svc', exp: Math.floor(Date.now() / 1000) + 300 });
    const viaQuery = (token: string) => send({ port: sy.port, path: `/jwtq/exp?access_token=${token}`, localAddress: '127.0.0.4' });
    const refused = await viaQuery(forever);
    assert.equal(refused.status, 401);
    assert.match(String(refused.headers['www-authenticate']), /invalid_token/);
    assert.equal((await viaQuery(expiring)).status, 200);
    assert.equal((await send({ port: sy.port, path: '/forever', localAddress: '127.0.0.4', headers: { Authorization: `Bearer ${forever}` } })).status, 200);
  });

  test('API keys and tokens sent in the query are removed before the request goes upstream; the rest is forwarded byte for byte', async () => {
    const token = await signJwt(JWT_SECRET, { sub: 'svc', exp: Math.floor(Date.now() / 1000) + 300 });
    const cases: Array<[string, string]> = [
      [`/keyed/a?api_key=${API_KEY}`, '/keyed/a'],
      [`/keyed/b?x=%2F%20+y&api_key=${API_KEY}&&z=%zz&`, '/keyed/b?x=%2F%20+y&&z=%zz&'],
      [`/keyed/c?api%5Fkey=${API_KEY}&q=1`, '/keyed/c?q=1'],
      [`/keyed/d?q=1&%61pi_key=${API_KEY}`, '/keyed/d?q=1'],
      [`/jwtq/a?access_token=${token}&page=2&access_tokenx=1`, '/jwtq/a?page=2&access_tokenx=1'],
      [`/jwtq/b?%61ccess_token=${token}`, '/jwtq/b'],
    ];
    for (const [target, upstream] of cases) {
      const before = backend.requests.length;
      const reply = await send({ port: sy.port, path: target, localAddress: '127.0.0.5' });
      assert.equal(reply.status, 200, target);
      assert.deepEqual(backend.requests.slice(before).map((r) => r.url), [upstream], target);
    }
    // With the key in its header, a query parameter of the same name is removed too: it is the route's credential slot.
    const before = backend.requests.length;
    assert.equal((await send({ port: sy.port, path: '/keyed/e?api_key=leaked&k=v', localAddress: '127.0.0.5', headers: { 'X-Api-Key': API_KEY } })).status, 200);
    assert.deepEqual(backend.requests.slice(before).map((r) => r.url), ['/keyed/e?k=v']);
    assert.deepEqual(backend.requests.filter((r) => r.url.includes(API_KEY) || r.url.includes(token)), [], 'no credential in any forwarded request-target');
  });
});
