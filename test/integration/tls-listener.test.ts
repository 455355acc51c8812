// TLS termination, black box: the real CLI with a TLS listener in front of a
// real backend, reached with Node's tls/https client, curl and openssl. The
// certificates are made here (test/helpers/certs.ts). Attacks: a name no
// certificate carries, forged X-Forwarded-Proto, TLS 1.0/1.1, a certificate
// file replaced with garbage, a Host header pointing the https redirect
// elsewhere.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, renameSync, writeFileSync } from 'node:fs';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { startBackend, type Backend } from '../helpers/backend.js';
import { Pki, type Ca, type Issued } from '../helpers/certs.js';
import { freePort, startSwitchyard, type Switchyard } from '../helpers/switchyard.js';
import { handshake, tlsRequest } from '../helpers/tls-client.js';
import { exchange } from '../helpers/raw-client.js';

const run = promisify(execFile);

let pki: Pki;
let ca: Ca;
let rsa: Issued;
let ecdsa: Issued;
let wildcard: Issued;
let fallback: Issued;
let backend: Backend;
let sy: Switchyard;
let redirectPort: number;
/** The files the listener serves for a.test (RSA), replaced by tests below. */
let liveCert: string;
let liveKey: string;

before(async () => {
  pki = new Pki();
  ca = pki.ca('test-ca');
  fallback = pki.issue(ca, 'default', { subject: '/CN=default.test', sans: ['DNS:default.test'], type: 'ec' });
  rsa = pki.issue(ca, 'a-rsa', { subject: '/CN=a.test', sans: ['DNS:a.test'], type: 'rsa' });
  ecdsa = pki.issue(ca, 'a-ec', { subject: '/CN=a.test', sans: ['DNS:a.test'], type: 'ec' });
  wildcard = pki.issue(ca, 'wild', { subject: '/CN=*.w.test', sans: ['DNS:*.w.test'], type: 'ec' });
  liveCert = pki.file('live.pem');
  liveKey = pki.file('live.key');
  copyFileSync(rsa.cert, liveCert);
  copyFileSync(rsa.key, liveKey);
  backend = await startBackend();
  backend.respond = () => ({ status: 200, body: 'ok' });
  const tlsPort = await freePort();
  redirectPort = await freePort(new Set([tlsPort]));
  sy = await startSwitchyard({
    logging: { level: 'info', access: false },
    listen: [
      {
        host: '127.0.0.1',
        port: tlsPort,
        tls: {
          certificates: [
            { cert: fallback.cert, key: fallback.key, default: true },
            { cert: liveCert, key: liveKey },
            { cert: ecdsa.cert, key: ecdsa.key },
            { cert: wildcard.cert, key: wildcard.key },
          ],
          hsts: { max_age: '1h', include_subdomains: true },
          reload_interval: '200ms',
        },
      },
      { host: '127.0.0.1', port: redirectPort, redirect_https: { port: 443 } },
    ],
    upstreams: { app: { servers: [{ address: backend.address }], retries: 0 } },
    routes: [{ match: { host: '*', path: '/' }, upstream: 'app' }],
  });
});

after(async () => {
  await sy?.stop();
  await backend?.close();
  pki?.cleanup();
});

/** A client that can only take the RSA certificate (TLS 1.2, ECDHE-RSA). */
const RSA_ONLY = { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' } as const;
const fingerprint = (pem: string): string => new X509Certificate(pem).fingerprint256;

test('a request over TLS reaches the upstream with X-Forwarded-Proto: https, and the response carries HSTS', async () => {
  backend.reset();
  const res = await tlsRequest({ port: sy.port, servername: 'a.test', ca: ca.certPem, path: '/x?y=1' });
  assert.equal(res.status, 200);
  assert.equal(res.body, 'ok');
  assert.equal(res.headers['strict-transport-security'], 'max-age=3600; includeSubDomains');
  assert.equal(backend.requests.at(-1)!.url, '/x?y=1');
  assert.equal(backend.requests.at(-1)!.headers['x-forwarded-proto'], 'https');
});

test('a forged X-Forwarded-Proto from the client is replaced', async () => {
  backend.reset();
  const res = await tlsRequest({ port: sy.port, servername: 'a.test', ca: ca.certPem, headers: { 'X-Forwarded-Proto': 'http', 'x-forwarded-proto': 'gopher' } });
  assert.equal(res.status, 200);
  assert.equal(backend.requests.at(-1)!.headers['x-forwarded-proto'], 'https');
  assert.equal(backend.requests.at(-1)!.rawHeaders.filter((h) => h.toLowerCase() === 'x-forwarded-proto').length, 1);
});

test('generated errors carry HSTS too', async () => {
  const res = await tlsRequest({ port: sy.port, servername: 'a.test', ca: ca.certPem, path: '/%zz' });
  assert.equal(res.status, 400);
  assert.equal(res.headers['strict-transport-security'], 'max-age=3600; includeSubDomains');
});

test('SNI picks the exact name, RSA or ECDSA by what the client accepts', async () => {
  const ec = await tlsRequest({ port: sy.port, servername: 'a.test', ca: ca.certPem, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
  assert.equal(ec.fingerprint, fingerprint(ecdsa.certPem));
  const r = await tlsRequest({ port: sy.port, servername: 'a.test', ca: ca.certPem, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' });
  assert.equal(r.fingerprint, fingerprint(rsa.certPem));
  // Names are matched case-insensitively; a TLS 1.3 client that takes either gets one of them.
  const r13 = await tlsRequest({ port: sy.port, servername: 'A.TEST', ca: ca.certPem });
  assert.ok([fingerprint(rsa.certPem), fingerprint(ecdsa.certPem)].includes(r13.fingerprint));
  assert.equal(r13.protocol, 'TLSv1.3');
});

test('a wildcard certificate covers exactly one label', async () => {
  const one = await tlsRequest({ port: sy.port, servername: 'b.w.test', ca: ca.certPem });
  assert.equal(one.fingerprint, fingerprint(wildcard.certPem));
  const two = await tlsRequest({ port: sy.port, servername: 'c.b.w.test' });
  assert.equal(two.fingerprint, fingerprint(fallback.certPem));
  const bare = await tlsRequest({ port: sy.port, servername: 'w.test' });
  assert.equal(bare.fingerprint, fingerprint(fallback.certPem));
});

test('attack: a name no certificate carries, or no SNI at all, gets the default certificate (and the request still works)', async () => {
  const other = await tlsRequest({ port: sy.port, servername: 'evil.example' });
  assert.equal(other.fingerprint, fingerprint(fallback.certPem));
  assert.equal(other.status, 200);
  const none = await tlsRequest({ port: sy.port });
  assert.equal(none.fingerprint, fingerprint(fallback.certPem));
});

test('attack: TLS 1.0 and 1.1 are refused (the same client reaches a server that allows them)', async () => {
  // Control: this client can speak TLS 1.1 (OpenSSL 3 needs security level 0 for it).
  const legacy = tls.createServer({ cert: fallback.certPem, key: fallback.keyPem, minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' }, (s) => s.end());
  await new Promise<void>((resolve) => legacy.listen(0, '127.0.0.1', resolve));
  const legacyPort = (legacy.address() as { port: number }).port;
  try {
    for (const version of ['TLSv1', 'TLSv1.1'] as const) {
      const ok = await handshake({ port: legacyPort, minVersion: version, maxVersion: version, ciphers: 'DEFAULT@SECLEVEL=0' });
      assert.equal(ok, version, `control: the client speaks ${version}`);
      await assert.rejects(handshake({ port: sy.port, servername: 'a.test', minVersion: version, maxVersion: version, ciphers: 'DEFAULT@SECLEVEL=0' }), /protocol|version/i);
    }
  } finally {
    legacy.close();
  }
  assert.equal(await handshake({ port: sy.port, servername: 'a.test', maxVersion: 'TLSv1.2' }), 'TLSv1.2');
});

test('openssl s_client and curl reach it', async () => {
  const { stdout } = await run('sh', ['-c', `printf 'GET / HTTP/1.1\\r\\nHost: a.test\\r\\nConnection: close\\r\\n\\r\\n' | openssl s_client -connect 127.0.0.1:${sy.port} -servername a.test -CAfile ${ca.cert} -verify_return_error -quiet 2>&1`]);
  assert.match(stdout, /HTTP\/1\.1 200 OK/);
  const curl = await run('curl', ['-sS', '--cacert', ca.cert, '--resolve', `a.test:${sy.port}:127.0.0.1`, `https://a.test:${sy.port}/curl`, '-o', '/dev/null', '-w', '%{http_code} %{ssl_verify_result}']);
  assert.equal(curl.stdout, '200 0');
});

test('a certificate changed on disk is served to new connections; an open connection keeps working', async () => {
  const agentSocket = tls.connect({ host: '127.0.0.1', port: sy.port, servername: 'a.test', ca: ca.certPem, ...RSA_ONLY });
  await new Promise((resolve, reject) => agentSocket.once('secureConnect', resolve).once('error', reject));
  const oldFingerprint = agentSocket.getPeerX509Certificate()!.fingerprint256;
  assert.equal(oldFingerprint, fingerprint(rsa.certPem));
  // One request first: an idle keep-alive connection stays open (a connection that never sent one is closed at headers_timeout).
  let received = '';
  agentSocket.setEncoding('utf8');
  agentSocket.on('data', (d: string) => (received += d));
  agentSocket.write('GET /first HTTP/1.1\r\nHost: a.test\r\n\r\n');
  await waitFor(() => received.includes('\r\n\r\nok'));
  const renewed = pki.issue(ca, 'a-rsa-2', { subject: '/CN=a.test', sans: ['DNS:a.test'], type: 'rsa' });
  // As certificate tools do it: write new files and rename them over the old ones.
  copyFileSync(renewed.key, liveKey + '.tmp');
  copyFileSync(renewed.cert, liveCert + '.tmp');
  renameSync(liveKey + '.tmp', liveKey);
  renameSync(liveCert + '.tmp', liveCert);
  await waitFor(async () => (await tlsRequest({ port: sy.port, servername: 'a.test', ...RSA_ONLY })).fingerprint === fingerprint(renewed.certPem));
  // The connection opened before the change still works, on its old certificate.
  received = '';
  assert.ok(!agentSocket.destroyed, 'the connection opened before the change is still open');
  agentSocket.write('GET /still HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n');
  await new Promise((resolve) => agentSocket.once('end', resolve));
  assert.match(received, /^HTTP\/1\.1 200 /);
  rsa = renewed;
});

test('attack: a certificate file replaced with garbage is refused; the old certificate stays and the process stays up', async () => {
  const before = sy.workerPids().sort();
  writeFileSync(liveCert, 'this is not a certificate\n');
  await waitFor(() => /certificate reload failed: keeping the previous certificate/.test(sy.output()));
  const res = await tlsRequest({ port: sy.port, servername: 'a.test', ca: ca.certPem, ...RSA_ONLY });
  assert.equal(res.status, 200);
  assert.equal(res.fingerprint, fingerprint(rsa.certPem));
  // A key that belongs to another certificate is refused the same way.
  copyFileSync(rsa.cert, liveCert);
  copyFileSync(ecdsa.key, liveKey);
  await sleep(600);
  const still = await tlsRequest({ port: sy.port, servername: 'a.test', ca: ca.certPem, ...RSA_ONLY });
  assert.equal(still.fingerprint, fingerprint(rsa.certPem));
  copyFileSync(rsa.key, liveKey);
  assert.deepEqual(sy.workerPids().sort(), before, 'no worker restarted');
});

test('certificates rotating on disk under load: no request fails', async () => {
  let failures = 0;
  let done = 0;
  let stop = false;
  const client = async () => {
    while (!stop) {
      try {
        const r = await tlsRequest({ port: sy.port, servername: 'a.test', ca: ca.certPem, ...RSA_ONLY });
        if (r.status !== 200) failures++;
      } catch {
        failures++;
      }
      done++;
    }
  };
  const clients = Array.from({ length: 4 }, client);
  for (let i = 0; i < 3; i++) {
    const next = pki.issue(ca, `a-rsa-rot-${i}`, { subject: '/CN=a.test', sans: ['DNS:a.test'], type: 'rsa' });
    copyFileSync(next.key, liveKey + '.tmp');
    copyFileSync(next.cert, liveCert + '.tmp');
    renameSync(liveKey + '.tmp', liveKey);
    renameSync(liveCert + '.tmp', liveCert);
    rsa = next;
    // Some requests between rotations, however slow the machine is.
    const target = done + 4;
    await waitFor(() => done >= target, 30_000);
  }
  stop = true;
  await Promise.all(clients);
  assert.ok(done >= 12, `only ${done} requests made`);
  assert.equal(failures, 0, `${failures} of ${done} requests failed`);
  // The last rotation is picked up within reload_interval (200ms) of being written: allow a few periods.
  const deadline = Date.now() + 5000;
  let last = await tlsRequest({ port: sy.port, servername: 'a.test', ca: ca.certPem, ...RSA_ONLY });
  while (last.fingerprint !== fingerprint(rsa.certPem) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    last = await tlsRequest({ port: sy.port, servername: 'a.test', ca: ca.certPem, ...RSA_ONLY });
  }
  assert.equal(last.fingerprint, fingerprint(rsa.certPem));
});

test('the plain redirect listener answers 308 to https with path and query kept', async () => {
  const { response } = await exchange(redirectPort, 'GET /p/a%20th?q=1&r=%2F HTTP/1.1\r\nHost: b.w.test:8080\r\nConnection: close\r\n\r\n');
  assert.ok(response, sy.output().slice(-2000));
  assert.equal(response?.status, 308);
  assert.equal(response?.header('location'), 'https://b.w.test/p/a%20th?q=1&r=%2F');
  const post = await exchange(redirectPort, 'POST /form HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc');
  assert.equal(post.response?.status, 308);
  assert.equal(post.response?.header('location'), 'https://a.test/form');
});

test('attack: the redirect never points at a host that is not served over TLS', async () => {
  for (const host of ['evil.example', 'a.test@evil.example', 'evil.example/a.test', '[::1]', 'a.test.evil.example', '']) {
    const { response } = await exchange(redirectPort, `GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    assert.ok(response?.status === 400, `Host ${JSON.stringify(host)}: ${response?.status} ${String(response?.header('location'))}`);
    assert.equal(response?.header('location'), undefined);
  }
  const absolute = await exchange(redirectPort, 'GET http://evil.example/ HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n');
  assert.equal(absolute.response?.status, 400);
});

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(100);
  }
}
