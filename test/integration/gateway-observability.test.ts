// Issue 5 acceptance, observability, through the real CLI (2 workers,
// round-robin scheduling so both count): /metrics has
// switchyard_auth_failures_total, switchyard_authorization_denials_total and
// switchyard_rate_limited_total per route, equal to exactly what the test
// provoked; the access log lines carry the route name and the authenticated
// identity, and nothing Switchyard prints ever holds a token, API key or
// password the clients sent (right or wrong, in a header or in the query).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startBackend, type Backend } from '../helpers/backend.js';
import { logLines, metricsText, metricValue, send, waitWorkersReady } from '../helpers/gateway.js';
import { startSwitchyard, type Switchyard } from '../helpers/switchyard.js';
import { basicAuth, bcryptHash, claims, epoch, signJwt } from '../helpers/tokens.js';

const READER_KEY = 'obs-reader-key-AAAA1111';
const WRITER_KEY = 'obs-writer-key-BBBB2222';
const WRONG_KEY = 'obs-wrong-key-ZZZZ9999';
const QUERY_KEY = 'obs-query-key-DDDD4444';
const JWT_SECRET = 'obs-jwt-secret-EEEE5555-long-enough';
const PASSWORD = 'obs-password-CCCC3333';
const WRONG_PASSWORD = 'obs-wrong-password-FFFF6666';
const SUBJECT = 'obs-subject-42';

type Counter = 'switchyard_auth_failures_total' | 'switchyard_authorization_denials_total' | 'switchyard_rate_limited_total';

describe('gateway observability', () => {
  let backend: Backend;
  let sy: Switchyard;
  /** Every credential a client sent: none may appear in Switchyard's output. */
  const secrets: string[] = [READER_KEY, WRITER_KEY, WRONG_KEY, QUERY_KEY, JWT_SECRET, PASSWORD, WRONG_PASSWORD];
  /** What the test provoked, per counter and route. */
  const expected: Record<Counter, Record<string, number>> = {
    switchyard_auth_failures_total: { 'obs-key': 5, 'obs-jwt': 3, 'obs-basic': 2, 'obs-query': 1 },
    switchyard_authorization_denials_total: { 'obs-key': 4, 'obs-cidr': 3 },
    switchyard_rate_limited_total: { 'obs-rl': 5 },
  };
  const ROUTES = ['obs-key', 'obs-jwt', 'obs-basic', 'obs-query', 'obs-cidr', 'obs-rl'];
  let requestsSent = 0;

  before(async () => {
    backend = await startBackend();
    sy = await startSwitchyard({
      workers: 2,
      scheduling: 'round-robin',
      logging: { level: 'info', access: true },
      upstreams: { app: { servers: [{ address: backend.address }], retries: 0 } },
      routes: [
        {
          name: 'obs-key',
          match: { host: '*', path: '/obs-key' },
          upstream: 'app',
          auth: {
            api_key: {
              keys: [
                { name: 'obs-reader', key: READER_KEY, scopes: ['obs.read'] },
                { name: 'obs-writer', key: WRITER_KEY, scopes: ['obs.read', 'obs.write'] },
              ],
            },
            forward: { subject: 'X-Client' },
          },
          authorize: { scopes: ['obs.write'] },
        },
        { name: 'obs-query', match: { host: '*', path: '/obs-query' }, upstream: 'app', auth: { api_key: { keys: [{ name: 'obs-querier', key: QUERY_KEY }], query: 'api_key' } } },
        { name: 'obs-jwt', match: { host: '*', path: '/obs-jwt' }, upstream: 'app', auth: { jwt: { algorithms: ['HS256'], secret: JWT_SECRET } } },
        { name: 'obs-basic', match: { host: '*', path: '/obs-basic' }, upstream: 'app', auth: { basic: { realm: 'obs', users: [{ name: 'carol', hash: bcryptHash(PASSWORD) }] } } },
        { name: 'obs-cidr', match: { host: '*', path: '/obs-cidr' }, upstream: 'app', authorize: { cidrs: ['10.0.0.0/8'] } },
        { name: 'obs-rl', match: { host: '*', path: '/obs-rl' }, upstream: 'app', rate_limit: { rate: '1/m', burst: 2, key: 'client-ip' } },
        { name: 'open', match: { host: '*', path: '/' }, upstream: 'app' },
      ],
    });
    await waitWorkersReady(sy.adminPort, 2);

    // A fresh connection per request: round-robin scheduling spreads them over both workers.
    const statuses: string[] = [];
    const go = async (path: string, headers: Record<string, string> = {}, want: number): Promise<void> => {
      requestsSent++;
      const r = await send({ port: sy.port, path, headers });
      if (r.status !== want) statuses.push(`${path} ${JSON.stringify(headers)}: ${r.status}, want ${want}`);
    };
    for (let i = 0; i < 3; i++) await go(`/obs-key/missing/${i}`, {}, 401);
    for (let i = 0; i < 2; i++) await go(`/obs-key/wrong/${i}`, { 'x-api-key': WRONG_KEY }, 401);
    for (let i = 0; i < 4; i++) await go(`/obs-key/reader/${i}`, { 'x-api-key': READER_KEY }, 403);
    for (let i = 0; i < 2; i++) await go(`/obs-key/writer/${i}`, { 'x-api-key': WRITER_KEY }, 200);
    await go(`/obs-query/ok?api_key=${QUERY_KEY}`, {}, 200);
    await go(`/obs-query/bad?api_key=${WRONG_KEY}`, {}, 401);

    const valid = await signJwt(JWT_SECRET, claims({ sub: SUBJECT, aud: undefined, iss: undefined }));
    const expired = await signJwt(JWT_SECRET, claims({ sub: SUBJECT, aud: undefined, iss: undefined, iat: epoch(-600), nbf: epoch(-600), exp: epoch(-300) }));
    const forged = await signJwt('another-secret-of-sufficient-length', claims({ sub: 'obs-admin', aud: undefined, iss: undefined }));
    secrets.push(valid, expired, forged, ...[valid, expired, forged].map((t) => t.split('.')[2]!));
    for (let i = 0; i < 2; i++) await go(`/obs-jwt/ok/${i}`, { Authorization: `Bearer ${valid}` }, 200);
    for (let i = 0; i < 2; i++) await go(`/obs-jwt/expired/${i}`, { Authorization: `Bearer ${expired}` }, 401);
    await go('/obs-jwt/forged', { Authorization: `Bearer ${forged}` }, 401);

    const goodBasic = basicAuth('carol', PASSWORD);
    const badBasic = basicAuth('carol', WRONG_PASSWORD);
    secrets.push(goodBasic.slice(6), badBasic.slice(6));
    await go('/obs-basic/ok', { Authorization: goodBasic }, 200);
    for (let i = 0; i < 2; i++) await go(`/obs-basic/bad/${i}`, { Authorization: badBasic }, 401);

    for (let i = 0; i < 3; i++) await go(`/obs-cidr/${i}`, {}, 403);
    for (let i = 0; i < 7; i++) await go(`/obs-rl/${i}`, {}, i < 2 ? 200 : 429);
    assert.deepEqual(statuses, [], 'the provoking requests themselves');
  });

  after(async () => {
    await sy?.stop();
    await backend?.close();
  });

  test('auth failures, authorization denials and rate-limited requests are counted per route, exactly', async () => {
    const read = async (): Promise<string[]> => {
      const text = await metricsText(sy.adminPort);
      const wrong: string[] = [];
      for (const counter of Object.keys(expected) as Counter[]) {
        for (const route of ROUTES) {
          const want = expected[counter][route] ?? 0;
          const got = metricValue(text, counter, { route }) ?? 0;
          if (got !== want) wrong.push(`${counter}{route="${route}"} = ${got}, want ${want}`);
        }
        const total = metricValue(text, counter) ?? 0;
        const wantTotal = Object.values(expected[counter]).reduce((a, b) => a + b, 0);
        if (total !== wantTotal) wrong.push(`${counter} summed over routes = ${total}, want ${wantTotal}`);
      }
      return wrong;
    };
    // A worker counts a request as it finishes it: allow a moment.
    let wrong = await read();
    for (let i = 0; i < 40 && wrong.length > 0; i++) {
      await sleep(50);
      wrong = await read();
    }
    assert.deepEqual(wrong, []);
  });

  test('access log lines carry the route name and the identity, and nothing printed holds a credential', async () => {
    let access: Array<Record<string, unknown>> = [];
    for (let i = 0; i < 60; i++) {
      access = logLines(sy.output()).filter((l) => l.msg === 'access' && typeof l.route === 'string' && (l.route as string).startsWith('obs-'));
      if (access.length >= requestsSent) break;
      await sleep(50);
    }
    const output = sy.output();
    assert.ok(output.length < 60_000, `output ${output.length} bytes: the helper keeps only the first 64 KiB, so the check below would be partial`);
    assert.equal(access.length, requestsSent, `one access line per request; got ${access.length} of ${requestsSent}`);

    const line = (route: string, status: number) => access.filter((l) => l.route === route && Number(l.status) === status);
    const identities = (route: string, status: number) => line(route, status).map((l) => l.identity);
    assert.deepEqual(identities('obs-key', 200), ['obs-writer', 'obs-writer'], 'API key name as the identity');
    assert.deepEqual(identities('obs-query', 200), ['obs-querier']);
    assert.deepEqual(identities('obs-jwt', 200), [SUBJECT, SUBJECT], 'JWT sub as the identity');
    assert.deepEqual(identities('obs-basic', 200), ['carol'], 'Basic user name as the identity');
    // A denied request was authenticated: whom it was denied to is worth logging too.
    assert.deepEqual(identities('obs-key', 403), ['obs-reader', 'obs-reader', 'obs-reader', 'obs-reader']);
    assert.equal(line('obs-key', 401).length, 5, 'refusals are logged with their route');
    assert.equal(line('obs-rl', 429).length, 5);

    const leaked = secrets.filter((s) => output.includes(s));
    assert.deepEqual(leaked, [], 'credentials printed by Switchyard');
  });
});
