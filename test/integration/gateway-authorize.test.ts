// Issue 5 acceptance, authorization, through the real CLI: a missing scope, a
// claim without an accepted value, a client address outside the allowed
// CIDRs and a method not allowed each get 403; the reason is logged but is
// not in the response (body or headers), and the upstream never sees the
// request. The client address is the one trusted_proxies resolves: an
// X-Forwarded-For from an untrusted peer changes nothing.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startBackend, type Backend } from '../helpers/backend.js';
import { findBySeq, logLines, send, waitWorkersReady, type Reply } from '../helpers/gateway.js';
import { startSwitchyard, type Switchyard } from '../helpers/switchyard.js';
import { claims, signJwt } from '../helpers/tokens.js';

const SECRET = 'authorize-test-secret-0123456789';
const TRUSTED_PROXY = '127.0.0.2';
const OTHER_CLIENT = '127.0.0.3';

/** What a 403 must not reveal, by route. */
const SECRETS_OF_POLICY = ['orders.write', 'reports.read', 'tenant', 'acme', 'umbrella', '10.0.0.0', '127.0.0.1/32', '192.0.2.1', 'HEAD'];

describe('gateway authorization', () => {
  let backend: Backend;
  let sy: Switchyard;
  let seq = 0;

  before(async () => {
    backend = await startBackend();
    const jwt = { algorithms: ['HS256'], secret: SECRET, issuer: 'https://issuer.test', audience: 'gateway-tests' };
    sy = await startSwitchyard({
      trusted_proxies: [`${TRUSTED_PROXY}/32`],
      upstreams: { app: { servers: [{ address: backend.address }], retries: 0 } },
      routes: [
        {
          name: 'scoped-key',
          match: { host: '*', path: '/scoped' },
          upstream: 'app',
          auth: {
            api_key: {
              keys: [
                { name: 'reader', key: 'reader-key-0123456789', scopes: ['orders.read'] },
                { name: 'writer', key: 'writer-key-0123456789', scopes: ['orders.read', 'orders.write'] },
              ],
            },
          },
          authorize: { scopes: ['orders.write'] },
        },
        { name: 'scoped-jwt', match: { host: '*', path: '/jwt' }, upstream: 'app', auth: { jwt }, authorize: { scopes: ['reports.read'], claims: { tenant: ['acme', 'umbrella'] } } },
        { name: 'cidr-in', match: { host: '*', path: '/cidr-in' }, upstream: 'app', authorize: { cidrs: ['127.0.0.1/32'] } },
        { name: 'cidr-out', match: { host: '*', path: '/cidr-out' }, upstream: 'app', authorize: { cidrs: ['10.0.0.0/8', '192.0.2.1'] } },
        { name: 'methods', match: { host: '*', path: '/methods' }, upstream: 'app', authorize: { methods: ['GET', 'HEAD'] } },
        { name: 'open', match: { host: '*', path: '/' }, upstream: 'app' },
      ],
    });
    await waitWorkersReady(sy.adminPort, 2);
  });

  after(async () => {
    await sy?.stop();
    await backend?.close();
  });

  /** Sends a request tagged with a fresh X-Test-Seq; returns the reply and whether the upstream saw it. */
  async function call(path: string, o: { method?: string; headers?: Record<string, string>; from?: string } = {}): Promise<{ reply: Reply; reached: number }> {
    const tag = `authz-${seq++}`;
    const reply = await send({
      port: sy.port,
      path,
      method: o.method ?? 'GET',
      headers: { 'X-Test-Seq': tag, ...o.headers },
      ...(o.from ? { localAddress: o.from } : {}),
    });
    return { reply, reached: findBySeq([backend], tag).length };
  }

  function assertForbidden(r: { reply: Reply; reached: number }, what: string): void {
    assert.equal(r.reply.status, 403, `${what}: ${r.reply.status} ${r.reply.body}`);
    assert.equal(r.reached, 0, `${what}: the upstream saw a forbidden request`);
    const headerText = r.reply.rawHeaders.join('\n');
    for (const s of SECRETS_OF_POLICY) {
      assert.ok(!r.reply.body.includes(s), `${what}: the 403 body reveals "${s}": ${JSON.stringify(r.reply.body)}`);
      assert.ok(!headerText.includes(s), `${what}: the 403 headers reveal "${s}": ${headerText}`);
    }
  }

  function assertAllowed(r: { reply: Reply; reached: number }, what: string): void {
    assert.equal(r.reply.status, 200, `${what}: ${r.reply.status} ${r.reply.body}`);
    assert.equal(r.reached, 1, `${what}: upstream requests`);
  }

  test('missing scope (API key): 403; the key with the scope passes; no key at all is 401, not 403', async () => {
    assertForbidden(await call('/scoped/1', { headers: { 'x-api-key': 'reader-key-0123456789' } }), 'reader key');
    assertAllowed(await call('/scoped/2', { headers: { 'x-api-key': 'writer-key-0123456789' } }), 'writer key');
    const anonymous = await call('/scoped/3');
    assert.equal(anonymous.reply.status, 401, 'authentication is checked before authorization');
    assert.equal(anonymous.reached, 0);
  });

  test('missing scope or wrong claim (JWT): 403', async () => {
    const bearer = async (c: Record<string, unknown>) => ({ Authorization: `Bearer ${await signJwt(SECRET, claims(c))}` });
    assertAllowed(await call('/jwt/1', { headers: await bearer({ scope: 'profile reports.read', tenant: 'acme' }) }), 'scope and tenant');
    assertAllowed(await call('/jwt/2', { headers: await bearer({ scope: 'reports.read', tenant: 'umbrella' }) }), 'the other tenant');
    assertForbidden(await call('/jwt/3', { headers: await bearer({ scope: 'profile', tenant: 'acme' }) }), 'scope missing');
    assertForbidden(await call('/jwt/4', { headers: await bearer({ scope: 'reports.reader', tenant: 'acme' }) }), 'a scope that only starts like the required one');
    assertForbidden(await call('/jwt/5', { headers: await bearer({ tenant: 'acme' }) }), 'no scope claim');
    assertForbidden(await call('/jwt/6', { headers: await bearer({ scope: 'reports.read', tenant: 'initech' }) }), 'tenant not accepted');
    assertForbidden(await call('/jwt/7', { headers: await bearer({ scope: 'reports.read' }) }), 'tenant claim absent');
  });

  test('client address outside the CIDRs: 403, and X-Forwarded-For is believed only from a trusted proxy', async () => {
    assertAllowed(await call('/cidr-in/1'), 'from 127.0.0.1');
    assertForbidden(await call('/cidr-in/2', { from: OTHER_CLIENT }), `from ${OTHER_CLIENT}`);
    assertForbidden(await call('/cidr-out/1'), 'from 127.0.0.1');
    assertForbidden(await call('/cidr-out/2', { headers: { 'X-Forwarded-For': '10.1.2.3' } }), 'spoofed X-Forwarded-For from an untrusted peer');
    assertForbidden(await call('/cidr-out/3', { from: OTHER_CLIENT, headers: { 'X-Forwarded-For': '192.0.2.1' } }), 'spoofed X-Forwarded-For from another untrusted peer');
    assertAllowed(await call('/cidr-out/4', { from: TRUSTED_PROXY, headers: { 'X-Forwarded-For': '10.1.2.3' } }), 'a trusted proxy forwarding for 10.1.2.3');
    assertAllowed(await call('/cidr-out/5', { from: TRUSTED_PROXY, headers: { 'X-Forwarded-For': '192.0.2.1' } }), 'a trusted proxy forwarding for 192.0.2.1');
    assertForbidden(await call('/cidr-out/6', { from: TRUSTED_PROXY, headers: { 'X-Forwarded-For': '192.0.2.2' } }), 'a trusted proxy forwarding for 192.0.2.2');
    assertForbidden(await call('/cidr-in/3', { from: TRUSTED_PROXY, headers: { 'X-Forwarded-For': '10.1.2.3' } }), 'a trusted proxy forwarding for 10.1.2.3 on /cidr-in');
  });

  test('method not allowed by the route policy: 403', async () => {
    assertAllowed(await call('/methods/1'), 'GET');
    assertForbidden(await call('/methods/2', { method: 'POST' }), 'POST');
    assertForbidden(await call('/methods/3', { method: 'DELETE' }), 'DELETE');
    assertForbidden(await call('/methods/4', { method: 'PUT' }), 'PUT');
  });

  test('the reason of a 403 is logged (with the request id)', async () => {
    const r = await call('/scoped/9', { headers: { 'x-api-key': 'reader-key-0123456789' } });
    assertForbidden(r, 'reader key');
    const id = r.reply.headers['x-request-id'];
    assert.equal(typeof id, 'string', 'the 403 carries X-Request-Id');
    let line: Record<string, unknown> | undefined;
    for (let i = 0; i < 40 && line === undefined; i++) {
      line = logLines(sy.output()).find((l) => l.reqId === id && Number(l.status) === 403);
      if (line === undefined) await sleep(50);
    }
    assert.ok(line, `no log line for request ${id}:\n${sy.output().slice(-3000)}`);
    assert.match(JSON.stringify(line), /orders\.write/, `the logged reason names the missing scope: ${JSON.stringify(line)}`);
  });
});
