// The TLS listener's accept path, black box, both ways it runs: a listener
// with one certificate starts the handshake on the accepted socket at once;
// one with several reads the ClientHello first to choose. Either way
// handshake_timeout bounds everything before the hand-over (a silent client,
// a ClientHello dribbled a byte at a time, a client that stops after its
// ClientHello), plain HTTP on the TLS port is never answered in the clear,
// and a PROXY header (accept_proxy) before the ClientHello still names the
// client.
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { startBackend, type Backend } from '../helpers/backend.js';
import { Pki, type Ca } from '../helpers/certs.js';
import { sleep } from '../helpers/process.js';
import { freePort, startSwitchyard, type Switchyard } from '../helpers/switchyard.js';

const HANDSHAKE_TIMEOUT_MS = 600;

let pki: Pki;
let ca: Ca;
let backend: Backend;
let clientHello: Buffer;
const running: Switchyard[] = [];

before(async () => {
  pki = new Pki();
  ca = pki.ca('accept-ca');
  pki.issue(ca, 'a', { subject: '/CN=a.test', sans: ['DNS:a.test'] });
  pki.issue(ca, 'b', { subject: '/CN=b.test', sans: ['DNS:b.test'] });
  backend = await startBackend({ respond: (req) => ({ status: 200, body: `xff=${String(req.headers['x-forwarded-for'])}` }) });
  clientHello = await captureClientHello();
});

after(async () => {
  await Promise.all(running.map((s) => s.stop()));
  await backend?.close();
  pki?.cleanup();
});

/** The first flight of a real TLS client (Node's), captured by a plain TCP server. */
function captureClientHello(): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const server = net.createServer((s) => {
      s.once('data', (chunk: Buffer) => {
        resolve(chunk);
        s.destroy();
        server.close();
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      const client = tls.connect({ host: '127.0.0.1', port, servername: 'a.test', rejectUnauthorized: false });
      client.on('error', () => {});
    });
    server.on('error', reject);
  });
}

async function start(names: string[], acceptProxy: boolean): Promise<Switchyard> {
  const port = await freePort();
  const sy = await startSwitchyard(
    {
      workers: 1,
      listen: [
        {
          host: '127.0.0.1',
          port,
          ...(acceptProxy ? { accept_proxy: true } : {}),
          tls: { certificates: names.map((n) => ({ cert: pki.file(`${n}.pem`), key: pki.file(`${n}.key`) })), handshake_timeout: `${HANDSHAKE_TIMEOUT_MS}ms` },
        },
      ],
      trusted_proxies: ['127.0.0.1'],
      upstreams: { app: { servers: [{ address: backend.address }] } },
      routes: [{ match: { path: '/' }, upstream: 'app' }],
    },
  );
  running.push(sy);
  return sy;
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** How long after `from` the server closed `socket`, and what it sent meanwhile. */
function closed(socket: net.Socket, from: number): Promise<{ ms: number; received: Buffer }> {
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  socket.on('error', () => {});
  return new Promise((resolve) => socket.on('close', () => resolve({ ms: Date.now() - from, received: Buffer.concat(chunks) })));
}

/** An HTTP/1.1 request over TLS on `socket` (after whatever it sent before): the raw response. */
function requestOver(socket: net.Socket | undefined, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const t = tls.connect({ ...(socket ? { socket } : { host: '127.0.0.1', port }), servername: 'a.test', ca: ca.certPem });
    let data = '';
    t.once('secureConnect', () => t.write('GET /who HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n'));
    t.setEncoding('latin1').on('data', (d: string) => (data += d));
    t.once('error', reject);
    t.once('close', () => resolve(data));
  });
}

const bounded = (what: string, ms: number): void =>
  assert.ok(ms >= HANDSHAKE_TIMEOUT_MS - 100 && ms < HANDSHAKE_TIMEOUT_MS + 1500, `${what}: closed after ${ms} ms (handshake_timeout ${HANDSHAKE_TIMEOUT_MS} ms)`);

for (const [kind, names] of [
  ['one certificate (no ClientHello read)', ['a']],
  ['two certificates (ClientHello read for SNI)', ['a', 'b']],
] as const) {
  describe(`TLS listener with ${kind}`, () => {
    test('attack: a silent client, a ClientHello a byte at a time, a client that stops after its ClientHello: each closed at handshake_timeout', { timeout: 30_000 }, async () => {
      const sy = await start([...names], false);
      const silent = await connect(sy.port);
      bounded('silent', (await closed(silent, Date.now())).ms);

      const slow = await connect(sy.port);
      const slowStart = Date.now();
      const slowClosed = closed(slow, slowStart);
      for (let i = 0; i < clientHello.length && !slow.destroyed && Date.now() - slowStart < HANDSHAKE_TIMEOUT_MS + 2000; i++) {
        slow.write(clientHello.subarray(i, i + 1));
        await sleep(50);
      }
      bounded('dribbled ClientHello', (await slowClosed).ms);

      // The server answers the whole ClientHello (ServerHello...) and then waits for a Finished that never comes.
      const stalled = await connect(sy.port);
      const stalledStart = Date.now();
      const stalledClosed = closed(stalled, stalledStart);
      stalled.write(clientHello);
      const { ms, received } = await stalledClosed;
      assert.equal(received[0], 22, 'the server answered the ClientHello with a handshake record');
      bounded('stalled after its ClientHello', ms);

      // The worker is still up and serves.
      assert.match(await requestOver(undefined, sy.port), /^HTTP\/1\.1 200 [\s\S]*xff=127\.0\.0\.1$/);
    });

    test('attack: plain HTTP on the TLS port is never answered in the clear', { timeout: 30_000 }, async () => {
      const sy = await start([...names], false);
      const seen = backend.connections.length;
      const socket = await connect(sy.port);
      const done = closed(socket, Date.now());
      socket.write('GET /who HTTP/1.1\r\nHost: a.test\r\n\r\n');
      const { ms, received } = await done;
      assert.doesNotMatch(received.toString('latin1'), /HTTP\/1\.[01]/);
      assert.ok(ms < 2000, `held ${ms} ms`);
      assert.equal(backend.connections.length, seen, 'a connection reached the server');
    });

    test('accept_proxy: the PROXY header before the ClientHello names the client', { timeout: 30_000 }, async () => {
      const sy = await start([...names], true);
      const socket = await connect(sy.port);
      socket.write('PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n');
      assert.match(await requestOver(socket, sy.port), /^HTTP\/1\.1 200 [\s\S]*xff=203\.0\.113\.7$/);
      // A PROXY header that stops halfway is closed at proxy_timeout or handshake_timeout, whichever comes first.
      const half = await connect(sy.port);
      const halfClosed = closed(half, Date.now());
      half.write('PROXY TCP4 203.0.113.7');
      bounded('half a PROXY header', (await halfClosed).ms);
    });
  });
}
