// Client certificates (mTLS) for routes: the listener asks for a
// certificate (tls.client_ca), a route with auth.mtls requires a verified one
// (optionally with given subjects or SANs) and forwards the verified subject
// and SANs in headers the client cannot forge. Attacks: no certificate, a
// certificate from another CA, a valid one the route does not accept, forged
// X-Client-Cert-* headers on every route.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startBackend, type Backend } from '../helpers/backend.js';
import { Pki, type Ca, type Issued } from '../helpers/certs.js';
import { freePort, startSwitchyard, type Switchyard } from '../helpers/switchyard.js';
import { tlsRequest } from '../helpers/tls-client.js';

let pki: Pki;
let ca: Ca;
let clientCa: Ca;
let alice: Issued;
let bob: Issued;
let mallory: Issued;
let backend: Backend;
let sy: Switchyard;

before(async () => {
  pki = new Pki();
  ca = pki.ca('server-ca');
  clientCa = pki.ca('client-ca');
  const otherCa = pki.ca('other-ca');
  const server = pki.issue(ca, 'srv', { subject: '/CN=m.test', sans: ['DNS:m.test'] });
  alice = pki.issue(clientCa, 'alice', { subject: '/O=Example/CN=alice', sans: ['URI:spiffe://example/alice', 'email:alice@example.test'], usage: 'client' });
  bob = pki.issue(clientCa, 'bob', { subject: '/O=Example/CN=bob', sans: ['DNS:bob.example.test'], usage: 'client' });
  mallory = pki.issue(otherCa, 'mallory', { subject: '/O=Example/CN=alice', sans: ['URI:spiffe://example/alice'], usage: 'client' });
  backend = await startBackend();
  backend.respond = () => ({ status: 200, body: 'ok' });
  sy = await startSwitchyard(
    {
      listen: [{ host: '127.0.0.1', port: await freePort(), tls: { certificates: [{ cert: server.cert, key: server.key }], client_ca: clientCa.cert } }],
      upstreams: { app: { servers: [{ address: backend.address }], retries: 0 } },
      routes: [
        { match: { host: '*', path: '/open' }, upstream: 'app' },
        { match: { host: '*', path: '/any-cert' }, upstream: 'app', auth: { mtls: {} } },
        { match: { host: '*', path: '/alice' }, upstream: 'app', auth: { mtls: { sans: ['URI:spiffe://example/alice'] } } },
        { match: { host: '*', path: '/bob' }, upstream: 'app', auth: { mtls: { subjects: ['CN=bob,O=Example'] } } },
      ],
    },
  );
});

after(async () => {
  await sy?.stop();
  await backend?.close();
  pki?.cleanup();
});

const FORGED = { 'X-Client-Cert-Subject': 'CN=admin', 'X-Client-Cert-San': 'URI:spiffe://example/admin', 'x-client-cert_subject': 'CN=admin' };

async function request(path: string, client: Issued | undefined) {
  backend.reset();
  const res = await tlsRequest({ port: sy.port, servername: 'm.test', ca: ca.certPem, path, headers: FORGED, ...(client ? { cert: client.certPem, key: client.keyPem } : {}) });
  return { res, got: backend.requests.at(-1) };
}

test('a verified certificate passes and its subject and SANs go upstream; forged copies do not', async () => {
  const { res, got } = await request('/alice', alice);
  assert.equal(res.status, 200);
  assert.equal(got!.headers['x-client-cert-subject'], 'CN=alice,O=Example');
  assert.equal(got!.headers['x-client-cert-san'], 'URI:spiffe://example/alice,email:alice@example.test');
  assert.equal(got!.rawHeaders.filter((h) => /^x-client-cert[-_]subject$/i.test(h)).length, 1, 'only the proxy-set subject');
});

test('a route checking subjects accepts the listed one', async () => {
  const { res, got } = await request('/bob', bob);
  assert.equal(res.status, 200);
  assert.equal(got!.headers['x-client-cert-subject'], 'CN=bob,O=Example');
});

test('attack: no certificate on a route that requires one: 401 client-cert-required, nothing upstream', async () => {
  const { res, got } = await request('/any-cert', undefined);
  assert.equal(res.status, 401);
  assert.match(res.body, /client-cert-required/);
  assert.equal(got, undefined);
});

test('attack: a certificate from another CA (same subject and SAN) is refused with 401', async () => {
  const { res, got } = await request('/alice', mallory);
  assert.equal(res.status, 401);
  assert.match(res.body, /client-cert-required/);
  assert.equal(got, undefined);
});

test('attack: a verified certificate the route does not list gets 403 client-cert-refused', async () => {
  const { res, got } = await request('/bob', alice);
  assert.equal(res.status, 403);
  assert.match(res.body, /client-cert-refused/);
  assert.equal(got, undefined);
  const other = await request('/alice', bob);
  assert.equal(other.res.status, 403);
});

test('attack: forged client-certificate headers never reach the upstream on routes without mTLS', async () => {
  for (const client of [undefined, alice, mallory]) {
    const { res, got } = await request('/open', client);
    assert.equal(res.status, 200);
    for (const name of Object.keys(got!.headers)) assert.ok(!/^x-client-cert/.test(name), `${name} reached the upstream`);
  }
});
