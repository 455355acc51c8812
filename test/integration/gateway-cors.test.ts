// Issue 5 acceptance, CORS, through the real CLI: preflights (OPTIONS with
// Origin and Access-Control-Request-Method) are answered 204 by Switchyard
// and never reach the upstream, from allowed and disallowed origins alike;
// allowed origins (exact, and any subdomain of a wildcard) get
// Allow-Origin/Methods/Headers/Max-Age/Credentials; disallowed ones (the bare
// domain, look-alikes, another scheme or port) get no Access-Control-*
// header at all; actual responses carry Access-Control-Allow-Origin and
// Vary: Origin for allowed origins. Preflights come before authentication.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startBackend, type Backend } from '../helpers/backend.js';
import { corsHeaderNames, findBySeq, replyAll, send, waitWorkersReady, type Reply } from '../helpers/gateway.js';
import { startSwitchyard, type Switchyard } from '../helpers/switchyard.js';

const APP = 'https://app.example.test';
const CORS = {
  origins: [APP, 'https://*.example.test'],
  methods: ['GET', 'POST', 'PATCH'],
  headers: ['Authorization', 'Content-Type', 'X-Requested-With'],
  expose_headers: ['X-Total-Count'],
  credentials: true,
  max_age: '10m',
};
const DISALLOWED = [
  'https://example.test', // the bare domain of the wildcard
  'https://evilexample.test',
  'https://xexample.test',
  'https://app.example.test.evil.test',
  'https://a.example.test.evil.test',
  'https://example.test.evil.test',
  'http://app.example.test', // another scheme
  'http://a.example.test',
  'https://app.example.test:8443', // another port
  'https://app.example.testx',
  'null',
];

/** The comma-separated tokens of every line of a header, lower-cased. */
const tokens = (reply: Reply, name: string): string[] =>
  replyAll(reply, name)
    .join(',')
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter(Boolean);

describe('gateway CORS', () => {
  let backend: Backend;
  let sy: Switchyard;
  let seq = 0;

  before(async () => {
    backend = await startBackend({
      respond: (req) => ({
        status: 200,
        headers: [
          ['Content-Type', 'text/plain'],
          ['Vary', 'Accept-Encoding'],
          ['X-Total-Count', '3'],
          // An upstream that sets its own CORS headers, permissively.
          ...(req.url.includes('upstream-cors')
            ? ([
                ['Access-Control-Allow-Origin', '*'],
                ['Access-Control-Allow-Credentials', 'true'],
              ] as Array<[string, string]>)
            : []),
        ],
        body: 'ok',
      }),
    });
    sy = await startSwitchyard({
      upstreams: { app: { servers: [{ address: backend.address }], retries: 0 } },
      routes: [
        { name: 'cors-api', match: { host: '*', path: '/api' }, upstream: 'app', cors: CORS },
        { name: 'cors-star', match: { host: '*', path: '/star' }, upstream: 'app', cors: { origins: ['*'], methods: ['GET'] } },
        {
          name: 'cors-secure',
          match: { host: '*', path: '/secure' },
          upstream: 'app',
          cors: CORS,
          auth: { api_key: { keys: [{ name: 'k', key: 'cors-test-key-0123' }] } },
        },
        { name: 'open', match: { host: '*', path: '/' }, upstream: 'app' },
      ],
    });
    await waitWorkersReady(sy.adminPort, 2);
  });

  after(async () => {
    await sy?.stop();
    await backend?.close();
  });

  async function call(path: string, method: string, headers: Record<string, string>): Promise<{ reply: Reply; reached: number }> {
    const tag = `cors-${seq++}`;
    const reply = await send({ port: sy.port, path, method, headers: { 'X-Test-Seq': tag, ...headers } });
    return { reply, reached: findBySeq([backend], tag).length };
  }
  const preflight = (path: string, origin: string, method: string, requestHeaders?: string) =>
    call(path, 'OPTIONS', {
      Origin: origin,
      'Access-Control-Request-Method': method,
      ...(requestHeaders ? { 'Access-Control-Request-Headers': requestHeaders } : {}),
    });

  function assertGranted(r: { reply: Reply; reached: number }, origin: string, what: string): void {
    const { reply } = r;
    assert.equal(reply.status, 204, `${what}: status ${reply.status} ${reply.body}`);
    assert.equal(r.reached, 0, `${what}: the upstream saw the preflight`);
    assert.deepEqual(replyAll(reply, 'access-control-allow-origin'), [origin], `${what}: Allow-Origin`);
    assert.deepEqual(replyAll(reply, 'access-control-allow-credentials'), ['true'], `${what}: Allow-Credentials`);
    for (const m of ['get', 'post', 'patch']) assert.ok(tokens(reply, 'access-control-allow-methods').includes(m), `${what}: Allow-Methods ${replyAll(reply, 'access-control-allow-methods')}`);
    assert.deepEqual(replyAll(reply, 'access-control-max-age'), ['600'], `${what}: Max-Age`);
  }

  test('a preflight from the exact origin: 204 from Switchyard with the policy', async () => {
    const r = await preflight('/api/items', APP, 'PATCH', 'Authorization, content-type');
    assertGranted(r, APP, APP);
    const allowHeaders = tokens(r.reply, 'access-control-allow-headers');
    for (const h of ['authorization', 'content-type']) assert.ok(allowHeaders.includes(h), `Allow-Headers ${allowHeaders}`);
  });

  test('a preflight from any subdomain of the wildcard origin is allowed', async () => {
    for (const origin of ['https://a.example.test', 'https://deep.sub.example.test', 'https://app2.example.test']) {
      assertGranted(await preflight('/api/items', origin, 'POST', 'content-type'), origin, origin);
    }
  });

  test('preflights from disallowed origins: no Access-Control-* header, and the upstream never sees them', async () => {
    for (const origin of DISALLOWED) {
      const r = await preflight('/api/items', origin, 'GET', 'authorization');
      assert.deepEqual(corsHeaderNames(r.reply), [], `${origin}: ${JSON.stringify(r.reply.headers)}`);
      assert.equal(r.reached, 0, `${origin}: the upstream saw the preflight`);
      assert.ok(r.reply.status < 500, `${origin}: status ${r.reply.status}`);
    }
  });

  test('a preflight for a method or header outside the policy is not granted', async () => {
    const method = await preflight('/api/items', APP, 'DELETE');
    assert.equal(method.reached, 0);
    const granted = replyAll(method.reply, 'access-control-allow-origin').length > 0 && tokens(method.reply, 'access-control-allow-methods').some((m) => m === 'delete' || m === '*');
    assert.ok(!granted, `DELETE granted: ${JSON.stringify(method.reply.headers)}`);
    const header = await preflight('/api/items', APP, 'POST', 'X-Secret-Header');
    assert.equal(header.reached, 0);
    const grantedHeader = replyAll(header.reply, 'access-control-allow-origin').length > 0 && tokens(header.reply, 'access-control-allow-headers').some((h) => h === 'x-secret-header' || h === '*');
    assert.ok(!grantedHeader, `X-Secret-Header granted: ${JSON.stringify(header.reply.headers)}`);
  });

  test('actual requests from allowed origins carry Allow-Origin, Credentials, Expose-Headers and Vary: Origin', async () => {
    for (const origin of [APP, 'https://a.example.test']) {
      const r = await call('/api/items', 'GET', { Origin: origin });
      assert.equal(r.reply.status, 200);
      assert.equal(r.reached, 1);
      assert.deepEqual(replyAll(r.reply, 'access-control-allow-origin'), [origin]);
      assert.deepEqual(replyAll(r.reply, 'access-control-allow-credentials'), ['true']);
      assert.ok(tokens(r.reply, 'access-control-expose-headers').includes('x-total-count'), `Expose-Headers: ${replyAll(r.reply, 'access-control-expose-headers')}`);
      const vary = tokens(r.reply, 'vary');
      assert.ok(vary.includes('origin'), `Vary: ${vary}`);
      assert.ok(vary.includes('accept-encoding'), `the upstream's own Vary is kept: ${vary}`);
    }
  });

  test('actual requests from disallowed origins reach the upstream but get no Access-Control-* header', async () => {
    for (const origin of DISALLOWED) {
      const r = await call('/api/items', 'POST', { Origin: origin });
      assert.equal(r.reply.status, 200, origin);
      assert.equal(r.reached, 1, origin);
      assert.deepEqual(corsHeaderNames(r.reply), [], `${origin}: ${JSON.stringify(r.reply.headers)}`);
    }
  });

  // Switchyard owns CORS on a route with a policy: an upstream's own headers would
  // grant a disallowed origin, or give an allowed one two Allow-Origin lines (which browsers refuse).
  test("on a CORS route the upstream's own Access-Control-* headers are replaced by the policy's", async () => {
    const denied = await call('/api/upstream-cors', 'GET', { Origin: 'https://evil.test' });
    assert.equal(denied.reply.status, 200);
    assert.deepEqual(corsHeaderNames(denied.reply), [], `disallowed origin: ${JSON.stringify(denied.reply.headers)}`);
    const allowed = await call('/api/upstream-cors', 'GET', { Origin: APP });
    assert.deepEqual(replyAll(allowed.reply, 'access-control-allow-origin'), [APP], `allowed origin: ${JSON.stringify(allowed.reply.rawHeaders)}`);
    assert.deepEqual(replyAll(allowed.reply, 'access-control-allow-credentials'), ['true'], `allowed origin: ${JSON.stringify(allowed.reply.rawHeaders)}`);
  });

  test('OPTIONS without Access-Control-Request-Method is not a preflight: it is forwarded', async () => {
    const r = await call('/api/items', 'OPTIONS', { Origin: APP });
    assert.equal(r.reached, 1, 'a plain OPTIONS reaches the upstream');
  });

  test('origins ["*"] without credentials: Allow-Origin "*"', async () => {
    const pre = await preflight('/star/x', 'https://anyone.test', 'GET');
    assert.equal(pre.reply.status, 204);
    assert.equal(pre.reached, 0);
    assert.deepEqual(replyAll(pre.reply, 'access-control-allow-origin'), ['*']);
    assert.deepEqual(replyAll(pre.reply, 'access-control-allow-credentials'), []);
    const actual = await call('/star/x', 'GET', { Origin: 'https://anyone.test' });
    assert.deepEqual(replyAll(actual.reply, 'access-control-allow-origin'), ['*']);
  });

  test('a preflight is answered before authentication (no credentials needed), the actual request is not', async () => {
    const pre = await preflight('/secure/x', APP, 'GET', 'authorization');
    assertGranted(pre, APP, 'preflight on an authenticated route');
    const actual = await call('/secure/x', 'GET', { Origin: APP });
    assert.equal(actual.reply.status, 401);
    assert.equal(actual.reached, 0);
  });
});
