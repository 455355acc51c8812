// The TLS listener's hand-built TLSSocket (it reads the ClientHello itself)
// must be usable by Node's HTTP/2 session directly, as tls.Server's own
// sockets are: the session consumes the TLS handle, so frames are read in C++
// with no JavaScript stream in between. A socket left "securely connecting"
// makes the session wait for a 'secureConnect' a server socket never emits:
// the client's request then hangs (this test times out without the fix).
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { LogThrottle } from '../../src/log.js';
import { createTlsListener, type TlsListener } from '../../src/tls/tls-listener.js';
import { TicketKeyRing } from '../../src/tls/ticket-keys.js';
import { Pki } from '../helpers/certs.js';
import { closeListener, listenOnLoopback } from '../helpers/tls-listener.js';

let pki: Pki;
let listener: TlsListener;
let port: number;
let caPem: string;
const handed: { secureConnecting: unknown; alpn: string | false | null }[] = [];

before(async () => {
  pki = new Pki();
  const ca = pki.ca('h2-listener-ca');
  caPem = ca.certPem;
  const leaf = pki.issue(ca, 'app', { subject: '/CN=app.test', sans: ['DNS:app.test'] });
  const h2 = http2.createServer();
  h2.on('stream', (stream) => {
    stream.respond({ ':status': 200 });
    stream.end('over the TLS handle\n');
  });
  const log = pino({ level: 'silent' });
  listener = createTlsListener(
    { certificates: [{ cert: leaf.cert, key: leaf.key }], minVersion: 'TLSv1.2', ciphers: 'ECDHE+AESGCM', reloadIntervalMs: 60_000, handshakeTimeoutMs: 5000 },
    {
      'http/1.1': (socket) => socket.destroy(),
      h2: (socket) => {
        handed.push({ secureConnecting: (socket as unknown as { secureConnecting: unknown }).secureConnecting, alpn: socket.alpnProtocol });
        // What the worker's HTTP/2 front end does: the TLSSocket itself, no wrapper stream.
        h2.emit('connection', socket);
      },
    },
    { log, logThrottle: new LogThrottle(), tickets: new TicketKeyRing(), sessionTimeoutSeconds: 300 },
    { allowHalfOpen: false, noDelay: true },
  );
  port = await listenOnLoopback(listener);
});

after(async () => {
  await closeListener(listener);
  pki?.cleanup();
});

test('an h2 socket handed over is established, and Node HTTP/2 serves streams on it directly', async () => {
  const client = http2.connect(`https://127.0.0.1:${port}`, { ca: caPem, servername: 'app.test' });
  try {
    const body = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no response in 5 s: the HTTP/2 session never read a frame')), 5000);
      const req = client.request({ ':path': '/' });
      let text = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => (text += d));
      req.on('end', () => {
        clearTimeout(timer);
        resolve(text);
      });
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    assert.equal(body, 'over the TLS handle\n');
    assert.deepEqual(handed, [{ secureConnecting: false, alpn: 'h2' }]);
  } finally {
    client.destroy();
  }
});

test('several concurrent streams on one connection all complete', async () => {
  const client = http2.connect(`https://127.0.0.1:${port}`, { ca: caPem, servername: 'app.test' });
  try {
    const one = (): Promise<number> =>
      new Promise((resolve, reject) => {
        const req = client.request({ ':path': '/' });
        req.on('response', (h) => resolve(Number(h[':status'])));
        req.on('error', reject);
        req.resume();
      });
    const statuses = await Promise.race([
      Promise.all(Array.from({ length: 20 }, one)),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('streams hung')), 5000)),
    ]);
    assert.deepEqual(new Set(statuses), new Set([200]));
  } finally {
    client.destroy();
  }
});
