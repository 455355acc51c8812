// HTTP/2 over TLS: a TLS listener with `http2: true` offers ALPN h2 before
// http/1.1. curl --http2 and Node's http2 client get HTTP/2 (X-Forwarded-Proto
// https upstream, HSTS on the response); a client offering only http/1.1
// still gets the llhttp path on the same port; openssl s_client sees the
// ALPN choice; a listener without http2 never offers h2.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { startBackend, type Backend } from '../helpers/backend.js';
import { Pki } from '../helpers/certs.js';
import { h2Connect } from '../helpers/h2-client.js';
import { freePort, startSwitchyard, type Switchyard } from '../helpers/switchyard.js';

const run = promisify(execFile);

let pki: Pki;
let caFile: string;
let backend: Backend;
let sy: Switchyard;
let h2Port: number;
let h1OnlyPort: number;

before(async () => {
  pki = new Pki();
  const ca = pki.ca('h2-test-ca');
  caFile = ca.cert;
  const server = pki.issue(ca, 'app', { subject: '/CN=app.test', sans: ['DNS:app.test'] });
  backend = await startBackend();
  h2Port = await freePort();
  h1OnlyPort = await freePort();
  const tls = { certificates: [{ cert: server.cert, key: server.key }], hsts: { max_age: '1h' } };
  sy = await startSwitchyard({
    listen: [
      { host: '127.0.0.1', port: h2Port, http2: true, tls },
      { host: '127.0.0.1', port: h1OnlyPort, tls },
    ],
    upstreams: { app: { servers: [{ address: backend.address }] } },
    routes: [{ match: { host: '*', path: '/' }, upstream: 'app' }],
  });
});

after(async () => {
  await sy?.stop();
  await backend?.close();
  pki?.cleanup();
});

const resolveArg = (port: number): string[] => ['--resolve', `app.test:${port}:127.0.0.1`, '--cacert', caFile];

describe('HTTP/2 over TLS (ALPN)', () => {
  test('curl --http2 negotiates h2; the upstream sees HTTP/1.1 with X-Forwarded-Proto https; HSTS is on the response', async () => {
    backend.reset();
    const { stdout } = await run('curl', ['-sS', '--http2', ...resolveArg(h2Port), '-D', '-', '-o', '/dev/null', '-w', '%{http_version}', `https://app.test:${h2Port}/tls`]);
    assert.match(stdout, /^HTTP\/2 200/);
    assert.match(stdout, /strict-transport-security: max-age=3600/i);
    assert.ok(stdout.endsWith('2'));
    const got = backend.requests.at(-1)!;
    assert.equal(got.httpVersion, '1.1');
    assert.equal(got.headers['x-forwarded-proto'], 'https');
    assert.equal(got.headers.host, `app.test:${h2Port}`);
  });

  test('a client offering only http/1.1 gets HTTP/1.1 on the same port', async () => {
    const { stdout } = await run('curl', ['-sS', '--http1.1', ...resolveArg(h2Port), '-o', '-', '-w', '\n%{http_version}', `https://app.test:${h2Port}/h1`]);
    assert.equal(stdout, 'ok\n1.1');
  });

  test("Node's http2 client over TLS: concurrent streams on one session", async () => {
    const session = await h2Connect(h2Port, { tls: { servername: 'app.test', ca: readFileSync(caFile) } });
    session.on('error', () => {});
    const one = (i: number): Promise<number> =>
      new Promise((resolve) => {
        const s = session.request({ ':path': `/s/${i}`, ':authority': 'app.test' });
        let status = 0;
        s.on('response', (h) => (status = Number(h[':status'])));
        s.resume();
        s.on('close', () => resolve(status));
      });
    const statuses = await Promise.all(Array.from({ length: 20 }, (_, i) => one(i)));
    session.close();
    assert.deepEqual(statuses, Array(20).fill(200));
  });

  test('openssl s_client sees ALPN h2 where http2 is on, and no h2 where it is off', async () => {
    const alpn = async (port: number): Promise<string> => {
      const { stdout } = await run('sh', ['-c', `echo | openssl s_client -connect 127.0.0.1:${port} -servername app.test -alpn h2,http/1.1 2>/dev/null`]).catch((e: { stdout: string }) => e);
      return /ALPN protocol: (\S+)/.exec(stdout)?.[1] ?? 'none';
    };
    assert.equal(await alpn(h2Port), 'h2');
    assert.equal(await alpn(h1OnlyPort), 'http/1.1');
  });
});
