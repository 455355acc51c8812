// TLS to upstreams: real https backends with certificates made here. The
// proxy verifies the server (CA, name), presents a client certificate when
// configured, keeps the TLS connections alive in its pools, and its health
// checks use the same settings. Attacks: a server with a certificate from
// another CA, or for another name, never gets the request.

import assert from 'node:assert/strict';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { after, before, test } from 'node:test';
import { Pki, type Ca, type Issued } from '../helpers/certs.js';
import { startSwitchyard, type Switchyard } from '../helpers/switchyard.js';
import { exchange } from '../helpers/raw-client.js';
import { setTimeout as sleep } from 'node:timers/promises';

interface TlsBackend {
  port: number;
  /** TLS connections accepted, and requests served. */
  handshakes: number;
  requests: number;
  /** Subject CN of the client certificate on the last request, when verified. */
  clientCn: string | undefined;
  server: https.Server;
}

let pki: Pki;
let ca: Ca;
let otherCa: Ca;
let good: TlsBackend;
let rogue: TlsBackend;
let sy: Switchyard;

async function startTlsBackend(cert: Issued, opts: { clientCa?: string } = {}): Promise<TlsBackend> {
  const b = { port: 0, handshakes: 0, requests: 0, clientCn: undefined as string | undefined } as TlsBackend;
  b.server = https.createServer({ cert: cert.certPem, key: cert.keyPem, ...(opts.clientCa ? { ca: opts.clientCa, requestCert: true, rejectUnauthorized: true } : {}) }, (req, res) => {
    b.requests++;
    const socket = req.socket as TLSSocket;
    b.clientCn = socket.authorized ? (socket.getPeerCertificate().subject?.CN as string | undefined) : undefined;
    res.end(req.url === '/healthz' ? 'healthy' : 'secure ok');
  });
  b.server.on('secureConnection', () => b.handshakes++);
  await new Promise<void>((resolve) => b.server.listen(0, '127.0.0.1', resolve));
  b.port = (b.server.address() as { port: number }).port;
  return b;
}

before(async () => {
  pki = new Pki();
  ca = pki.ca('up-ca');
  otherCa = pki.ca('rogue-ca');
  const serverCert = pki.issue(ca, 'backend', { subject: '/CN=backend.internal', sans: ['DNS:backend.internal'] });
  const rogueCert = pki.issue(otherCa, 'rogue', { subject: '/CN=backend.internal', sans: ['DNS:backend.internal'] });
  const proxyClient = pki.issue(ca, 'proxy-client', { subject: '/CN=switchyard-proxy', usage: 'client' });
  good = await startTlsBackend(serverCert, { clientCa: ca.certPem });
  rogue = await startTlsBackend(rogueCert);
  const tls = { ca: ca.cert, servername: 'backend.internal', cert: proxyClient.cert, key: proxyClient.key };
  sy = await startSwitchyard(
    {
      workers: 1,
      upstreams: {
        good: { servers: [{ address: `127.0.0.1:${good.port}` }], retries: 0, tls },
        rogue: { servers: [{ address: `127.0.0.1:${rogue.port}` }], retries: 0, tls },
        wrongname: { servers: [{ address: `127.0.0.1:${good.port}` }], retries: 0, tls: { ...tls, servername: 'other.internal' } },
        unverified: { servers: [{ address: `127.0.0.1:${rogue.port}` }], retries: 0, tls: { verify: false } },
        checked: { servers: [{ address: `127.0.0.1:${rogue.port}` }], retries: 0, tls, health: { path: '/healthz', interval: '300ms', timeout: '250ms', fall: 1, rise: 1 } },
      },
      routes: [
        { match: { host: '*', path: '/good' }, upstream: 'good' },
        { match: { host: '*', path: '/rogue' }, upstream: 'rogue' },
        { match: { host: '*', path: '/wrongname' }, upstream: 'wrongname' },
        { match: { host: '*', path: '/unverified' }, upstream: 'unverified' },
        { match: { host: '*', path: '/checked' }, upstream: 'checked' },
      ],
    },
  );
});

after(async () => {
  await sy?.stop();
  good?.server.close();
  rogue?.server.close();
  pki?.cleanup();
});

const get = async (path: string, close = true) => {
  const { response } = await exchange(sy.port, `GET ${path} HTTP/1.1\r\nHost: app.test\r\n${close ? 'Connection: close\r\n' : ''}\r\n`);
  assert.ok(response, 'no response');
  return response;
};

test('requests reach a TLS upstream, verified, with the client certificate, over pooled connections', async () => {
  const before = good.handshakes;
  for (let i = 0; i < 10; i++) {
    const res = await get('/good');
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'secure ok');
  }
  assert.equal(good.clientCn, 'switchyard-proxy', 'the upstream verified the proxy client certificate');
  assert.ok(good.handshakes - before <= 1, `${good.handshakes - before} handshakes for 10 requests: the connection was not kept alive`);
});

test('attack: a server with a certificate from another CA never gets the request', async () => {
  const before = rogue.requests;
  const res = await get('/rogue');
  assert.equal(res.status, 502);
  assert.equal(rogue.requests, before);
});

test('attack: a certificate for another name is refused', async () => {
  const before = good.requests;
  const res = await get('/wrongname');
  assert.equal(res.status, 502);
  assert.equal(good.requests, before);
});

test('verify: false reaches a server with any certificate (documented as unsafe)', async () => {
  const res = await get('/unverified');
  assert.equal(res.status, 200);
});

test('health checks use the same TLS settings: an unverifiable server is marked down', async () => {
  const deadline = Date.now() + 10_000;
  let status = 0;
  while (Date.now() < deadline) {
    status = (await get('/checked')).status;
    if (status === 503) break;
    await sleep(200);
  }
  assert.equal(status, 503);
  assert.match(sy.output(), /server is down/);
});
