// A reload must not reset a TLS connection the old worker accepted but whose
// handshake ends after the worker stopped accepting (found under load by
// acme-reload-canary.test.ts: 'read ECONNRESET' / 'socket hang up' in 2 of 4
// runs). Before, the worker destroyed such a connection at the end of its
// handshake, or exited before it ended. The test holds the state in place:
// a TCP connection that the (only) worker has accepted, with no ClientHello
// yet; a reload; the old worker seen closing its listening socket (from
// /proc, not from anything Switchyard says); only then the handshake and a
// request, which must be answered.
import assert from 'node:assert/strict';
import http from 'node:http';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import { admin } from '../helpers/admin-status.js';
import { acceptedBy, stoppedListening } from '../helpers/proc-sockets.js';
import { Pki, type Ca } from '../helpers/certs.js';
import { freePort, startSwitchyard, type Switchyard } from '../helpers/switchyard.js';

let pki: Pki;
let ca: Ca;
let upstream: http.Server;
let sy: Switchyard;

before(async () => {
  pki = new Pki();
  ca = pki.ca('drain-ca');
  const cert = pki.issue(ca, 'd', { subject: '/CN=d.test', sans: ['DNS:d.test'] });
  upstream = http.createServer((_req, res) => res.end('answered'));
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const port = (upstream.address() as { port: number }).port;
  sy = await startSwitchyard(
    {
      workers: 1,
      listen: [{ host: '127.0.0.1', port: await freePort(new Set([port])), tls: { certificates: [{ cert: cert.cert, key: cert.key }] } }],
      upstreams: { app: { servers: [{ address: `127.0.0.1:${port}` }], retries: 0 } },
      routes: [{ match: { host: '*', path: '/' }, upstream: 'app' }],
    },
  );
});

after(async () => {
  await sy?.stop();
  upstream?.close();
  pki?.cleanup();
});

test('a TLS connection accepted before a reload and handshaking after the old worker stopped accepting is answered', async () => {
  const [oldPid] = sy.workerPids();
  assert.ok(oldPid !== undefined);
  const raw = await acceptedBy(oldPid, sy.port);

  const reload = await admin(sy.adminPort, '/reload', 'POST');
  assert.equal(reload.status, 200, reload.body);
  // The old worker has closed its listener (or is gone, which the request below then shows).
  await stoppedListening(oldPid, sy.port);

  const socket = tls.connect({ socket: raw, servername: 'd.test', ca: ca.certPem });
  const answer = await new Promise<string>((resolve, reject) => {
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (data += d));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
    socket.once('secureConnect', () => socket.write('GET / HTTP/1.1\r\nHost: d.test\r\n\r\n'));
  });
  assert.match(answer, /^HTTP\/1\.1 200 /, answer);
  assert.match(answer, /\r\nconnection: close\r\n/i, 'the draining worker closes the connection after the answer');
  assert.match(answer, /answered$/);
});
