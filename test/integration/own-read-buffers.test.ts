// Upstream connections and plain client connections read into a buffer of
// their own and reuse it while nothing refers to what it holds
// (src/proxy/own-read-buffer.ts). The attack on that: bytes still referenced
// when the next read lands.
// - Responses: bytes queued for a slow client, whether the next read is the
//   rest of the same response or, on a pooled connection, another client's.
//   Every client gets bodies no other request gets, over HTTP/1.1 (plain and
//   TLS) and HTTP/2, some reading slowly, each byte for byte. Reusing the
//   buffer regardless fails this at once over HTTP/2 (a stream holds its last
//   chunk back); over HTTP/1.1 the kernel takes a write whole or not at all
//   so often here that the same mistake rarely shows (the last test forces it).
// - Request bodies: a PUT's body is kept for a retry while it streams to a
//   server that then resets; the retry must carry the body as sent, not the
//   last read's bytes over and over (which reusing the buffer regardless
//   gives). And POSTs of many clients on one pool each arrive whole.
// - A POST (no retry: nothing keeps its body) to a server that stops reading:
//   the kernel takes part of a write and the rest stays queued in node, in the
//   read buffer it came in. Had the next read reused that buffer, the server
//   would get the next read's bytes in place of the rest (reusing the buffer
//   regardless of queued bytes fails it at once).
// - The same the other way: a response dripping from its server in reads
//   of 8,000 bytes to a client with a small receive window that stops
//   reading: the client socket takes a write in part while its upstream
//   connection keeps reading (a client side that ignores queued bytes fails
//   it at once).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, before, test } from 'node:test';
import { Pki } from '../helpers/certs.js';
import { freePort, startSwitchyard, type Switchyard } from '../helpers/switchyard.js';

/** Body of request `seed`: a block made from the seed, repeated (its odd length puts no two chunks on the same boundaries). */
function bodyOf(seed: string, size: number): Buffer {
  const block = Buffer.concat(Array.from({ length: 128 }, (_, i) => createHash('sha256').update(`${seed}:${i}`).digest())).subarray(0, 4093);
  const out = Buffer.allocUnsafe(size);
  for (let off = 0; off < size; off += block.length) block.copy(out, off, 0, Math.min(block.length, size - off));
  return out;
}

let backend: http.Server;
let backendPort: number;
let backendConnections = 0;
let backendRequests = 0;
/** Request bodies the backend received, by URL. */
const uploads = new Map<string, Buffer>();
/** Resets each connection once it has read one whole request (head and Content-Length body). */
let resetter: net.Server;
let resets = 0;
/**
 * A server with a small receive buffer that stops reading each request for a
 * second after its head, then answers with the SHA-256 of the body: the
 * proxy's send buffer to it fills, and writes to it are taken in part.
 * Python, since node cannot set SO_RCVBUF on a TCP socket.
 */
const STALLING_SERVER = `
import hashlib, socket, threading, time
def serve(conn):
    buf = b''
    with conn:
        while True:
            while b'\\r\\n\\r\\n' not in buf:
                d = conn.recv(65536)
                if not d: return
                buf += d
            head, _, buf = buf.partition(b'\\r\\n\\r\\n')
            length = next(int(l.split(b':')[1]) for l in head.split(b'\\r\\n')[1:] if l.split(b':')[0].strip().lower() == b'content-length')
            time.sleep(1)
            digest = hashlib.sha256(buf[:length]); got = len(buf[:length]); buf = buf[length:]
            while got < length:
                d = conn.recv(min(65536, length - got))
                if not d: return
                digest.update(d); got += len(d)
            answer = digest.hexdigest().encode()
            conn.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n%s' % (len(answer), answer))
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.bind(('127.0.0.1', 0))
s.listen(16)
print(s.getsockname()[1], flush=True)
while True:
    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
`;
let stalling: ChildProcess;

/**
 * A client with a small receive window that sends a GET, stops reading for a
 * second, then widens its buffer (to read fast), reads the response to its
 * end and prints its status line and the SHA-256 of its body (argv: port, path).
 */
const STALLING_CLIENT = `
import hashlib, socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(('127.0.0.1', int(sys.argv[1])))
s.sendall(b'GET %s HTTP/1.1\\r\\nHost: app.test\\r\\nConnection: close\\r\\n\\r\\n' % sys.argv[2].encode())
time.sleep(1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
data = b''
while True:
    d = s.recv(65536)
    if not d: break
    data += d
head, _, body = data.partition(b'\\r\\n\\r\\n')
print(head.split(b'\\r\\n')[0].decode(), hashlib.sha256(body).hexdigest())
`;
let sy: Switchyard;
let tlsPort: number;
let h2Port: number;
let caPem: string;
let pki: Pki;

before(async () => {
  // Each body goes out in pieces of varied sizes, so reads upstream vary too.
  backend = http.createServer(async (req, res) => {
    backendRequests++;
    if (req.method !== 'GET') {
      const parts: Buffer[] = [];
      for await (const part of req) parts.push(part as Buffer);
      uploads.set(req.url!, Buffer.concat(parts));
      res.end('stored');
      return;
    }
    if (req.url!.startsWith('/drip/')) {
      // 8,000 bytes a millisecond: reads of their own at the proxy, each under a socket's high-water mark.
      const body = bodyOf('drip', Number(req.url!.slice('/drip/'.length)));
      res.writeHead(200, { 'content-length': body.length });
      for (let off = 0; off < body.length; off += 8000) {
        if (!res.write(body.subarray(off, off + 8000))) await new Promise((r) => res.once('drain', r));
        else await new Promise((r) => setTimeout(r, 1));
      }
      res.end();
      return;
    }
    const [, seed, size, framing] = req.url!.split('/');
    const body = bodyOf(seed!, Number(size));
    res.writeHead(200, framing === 'chunked' ? {} : { 'content-length': body.length });
    for (let off = 0, n = 1; off < body.length; off += n) {
      n = 1000 + ((off * 7919) % 60000);
      if (!res.write(body.subarray(off, off + n))) await new Promise((r) => res.once('drain', r));
      if (n % 3 === 0) await new Promise((r) => setImmediate(r));
    }
    res.end();
  });
  backend.on('connection', () => backendConnections++);
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  backendPort = (backend.address() as { port: number }).port;
  resetter = net.createServer((socket) => {
    let seen = Buffer.alloc(0);
    socket.on('error', () => {});
    socket.on('data', (d: Buffer) => {
      seen = Buffer.concat([seen, d]);
      const end = seen.indexOf('\r\n\r\n');
      const length = /content-length: *(\d+)/i.exec(seen.subarray(0, Math.max(end, 0)).toString('latin1'));
      if (end >= 0 && length !== null && seen.length >= end + 4 + Number(length[1])) {
        resets++;
        socket.resetAndDestroy();
      }
    });
  });
  await new Promise<void>((r) => resetter.listen(0, '127.0.0.1', r));
  stalling = spawn('python3', ['-c', STALLING_SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  const stallingPort = await new Promise<number>((resolve, reject) => {
    stalling.once('error', reject);
    stalling.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString())));
  });
  pki = new Pki();
  const ca = pki.ca('read-buffers-ca');
  caPem = readFileSync(ca.cert, 'utf8');
  const cert = pki.issue(ca, 'app', { subject: '/CN=app.test', sans: ['DNS:app.test'] });
  const tls = { certificates: [{ cert: cert.cert, key: cert.key }] };
  const plainPort = await freePort();
  tlsPort = await freePort(new Set([plainPort]));
  h2Port = await freePort(new Set([plainPort, tlsPort]));
  sy = await startSwitchyard({
    workers: 1,
    listen: [
      { host: '127.0.0.1', port: plainPort },
      { host: '127.0.0.1', port: tlsPort, tls },
      { host: '127.0.0.1', port: h2Port, tls, http2: true },
    ],
    upstreams: {
      app: { servers: [{ address: `127.0.0.1:${backendPort}` }], retries: 0 },
      // Never ejected: passive health would take the resetting server out and hide the retries.
      pair: {
        servers: [{ address: `127.0.0.1:${(resetter.address() as net.AddressInfo).port}` }, { address: `127.0.0.1:${backendPort}` }],
        retries: 1,
        retry_budget: { percent: 100, min_per_second: 1000 },
        outlier: { consecutive_failures: 100000 },
      },
      stalling: { servers: [{ address: `127.0.0.1:${stallingPort}` }], retries: 0 },
    },
    routes: [
      { match: { host: '*', path: '/stall/' }, upstream: 'stalling' },
      { match: { host: '*', path: '/retry/' }, upstream: 'pair' },
      { match: { host: '*', path: '/' }, upstream: 'app' },
    ],
  });
});

after(async () => {
  await sy?.stop();
  backend?.closeAllConnections();
  resetter?.close();
  stalling?.kill();
  await new Promise((r) => backend?.close(r));
  pki?.cleanup();
});

/**
 * Reads a response body. A slow reader takes a break after every 64 KiB, so
 * the socket to it stays full: writes to it queue up, and its response ends
 * with bytes still queued while its upstream connection serves another client.
 */
async function readBody(stream: NodeJS.ReadableStream & { pause(): void; resume(): void }, slow: boolean): Promise<Buffer> {
  const parts: Buffer[] = [];
  let sincePause = 0;
  stream.on('data', (d: Buffer) => {
    parts.push(d);
    sincePause += d.length;
    if (slow && sincePause >= 65536) {
      sincePause = 0;
      stream.pause();
      setTimeout(() => stream.resume(), 4);
    }
  });
  await new Promise<void>((resolve, reject) => stream.once('end', resolve).once('error', reject));
  return Buffer.concat(parts);
}

type Kind = 'plain' | 'tls' | 'h2';

/**
 * Bodies for slow HTTP/1.1 clients larger than loopback's socket buffers hold
 * (4 MiB to send, more to receive); an HTTP/2 stream's window is smaller
 * (1 MB does); 50-140 KB for fast clients.
 */
function sizeFor(kind: Kind, slow: boolean, n: number): number {
  if (!slow) return 50_000 + (n % 10) * 10_000;
  return (kind === 'h2' ? 1_000_000 : 5_000_000) + (n % 10) * 100_000;
}

/** GETs until `more()` says stop (at least once); returns the paths whose body was not exactly the one sent. */
async function client(kind: Kind, id: string, slow: boolean, more: (done: number) => boolean): Promise<string[]> {
  const wrong: string[] = [];
  const session = kind === 'h2' ? http2.connect(`https://127.0.0.1:${h2Port}`, { ca: caPem, servername: 'app.test' }) : undefined;
  const agent = kind === 'tls' ? new https.Agent({ keepAlive: true, maxSockets: 1, ca: caPem, servername: 'app.test' }) : new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (let n = 0; n === 0 || more(n); n++) {
      const seed = `${kind}-${id}-${n}`;
      const size = sizeFor(kind, slow, n);
      const path = `/${seed}/${size}/${n % 2 === 0 ? 'chunked' : 'length'}`;
      let body: Buffer;
      if (session !== undefined) {
        body = await readBody(session.request({ ':path': path, ':authority': 'app.test' }), slow);
      } else {
        body = await new Promise<Buffer>((resolve, reject) => {
          const get = kind === 'tls' ? https.get : http.get;
          get({ host: '127.0.0.1', port: kind === 'tls' ? tlsPort : sy.port, path, agent, headers: { host: 'app.test' } }, (res) => {
            readBody(res, slow).then(resolve, reject);
          }).on('error', reject);
        });
      }
      if (!body.equals(bodyOf(seed, size))) wrong.push(`${path}: ${body.length} bytes, not the ones sent`);
    }
  } finally {
    session?.close();
    agent.destroy();
  }
  return wrong;
}

test('slow clients with big bodies and fast clients on the same pool each get exactly their own bytes (HTTP/1.1 plain and TLS, HTTP/2)', async () => {
  const connectionsBefore = backendConnections;
  let slowRunning = true;
  const slow: Array<Promise<string[]>> = [];
  const fast: Array<Promise<string[]>> = [];
  for (const kind of ['plain', 'tls', 'h2'] as const) {
    for (let i = 0; i < 2; i++) slow.push(client(kind, `slow${i}`, true, (n) => n < 2));
    for (let i = 0; i < 3; i++) fast.push(client(kind, `fast${i}`, false, () => slowRunning));
  }
  const wrong = (await Promise.all(slow)).flat();
  slowRunning = false;
  wrong.push(...(await Promise.all(fast)).flat());
  assert.deepEqual(wrong, []);
  // Connections were reused: the pool carried several responses on each.
  assert.ok(backendConnections - connectionsBefore < backendRequests, `${backendConnections - connectionsBefore} upstream connections for ${backendRequests} requests`);
});

/** One request on a fresh connection, its body written in `pieces` separate writes (separate reads at the proxy); the status line. */
async function upload(method: string, path: string, body: Buffer, pieces: number): Promise<string> {
  const socket = net.connect(sy.port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  let answer = '';
  socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
  const ended = new Promise((r) => socket.once('close', r));
  socket.write(`${method} ${path} HTTP/1.1\r\nHost: app.test\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
  const size = Math.ceil(body.length / pieces);
  for (let off = 0; off < body.length; off += size) {
    await new Promise((r) => setTimeout(r, 10));
    socket.write(body.subarray(off, off + size));
  }
  await ended;
  return answer.split('\r\n')[0]!;
}

/** Keep-alive GETs on `n` connections until `more()` says stop: reads of idle connections keep landing in the shared buffer. */
async function getTraffic(n: number, more: () => boolean): Promise<void> {
  await Promise.all(
    Array.from({ length: n }, async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      for (let i = 0; more(); i++) {
        await new Promise<void>((resolve, reject) => {
          http.get({ host: '127.0.0.1', port: sy.port, path: `/get-${i}/100/length`, agent, headers: { host: 'app.test', 'x-filler': 'f'.repeat(i % 3000) } }, (res) => {
            res.resume();
            res.once('end', resolve);
          }).on('error', reject);
        });
      }
      agent.destroy();
    }),
  );
}

test('a retried PUT carries the body the client sent, read by read (kept for the retry, never overwritten by later reads)', async () => {
  const resetsBefore = resets;
  let uploading = true;
  const traffic = getTraffic(4, () => uploading);
  try {
    for (let i = 0; i < 6; i++) {
      const body = bodyOf(`put-${i}`, 48_000);
      const status = await upload('PUT', `/retry/put-${i}`, body, 6);
      assert.equal(status, 'HTTP/1.1 200 OK', `PUT ${i}`);
      assert.ok(uploads.get(`/retry/put-${i}`)?.equals(body), `PUT ${i}: the body the backend got differs from the one sent`);
    }
  } finally {
    uploading = false;
    await traffic;
  }
  // Round robin sent about half of them to the resetting server first: those were retried with their kept body.
  assert.ok(resets - resetsBefore >= 2, `${resets - resetsBefore} requests were retried`);
});

test('POSTs of many clients, in several reads each, arrive whole and each at its own request', async () => {
  let uploading = true;
  const traffic = getTraffic(4, () => uploading);
  await Promise.all(
    Array.from({ length: 12 }, async (_, i) => {
      for (let n = 0; n < 3; n++) {
        const body = bodyOf(`post-${i}-${n}`, 20_000 + i * 7_000 + n * 3_001);
        assert.equal(await upload('POST', `/post-${i}-${n}`, body, 1 + ((i + n) % 4)), 'HTTP/1.1 200 OK');
        assert.ok(uploads.get(`/post-${i}-${n}`)?.equals(body), `POST ${i}/${n}: the body the backend got differs from the one sent`);
      }
    }),
  ).finally(() => (uploading = false));
  await traffic;
});

test('a POST whose upstream write was taken in part reaches the server as sent, not overwritten by the next reads', async () => {
  const body = bodyOf('stalled', 6_000_000);
  const socket = net.connect(sy.port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  let answer = '';
  socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
  const ended = new Promise((r) => socket.once('close', r));
  socket.write(`POST /stall/post HTTP/1.1\r\nHost: app.test\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
  // 8,000 bytes a millisecond: each a read of its own at the proxy, smaller than
  // a socket's high-water mark, so a write taken in part does not stop the reading.
  for (let off = 0; off < body.length; off += 8000) {
    if (!socket.write(body.subarray(off, off + 8000))) await new Promise((r) => socket.once('drain', r));
    else await new Promise((r) => setTimeout(r, 1));
  }
  await ended;
  assert.equal(answer.split('\r\n')[0], 'HTTP/1.1 200 OK');
  assert.equal(answer.split('\r\n\r\n')[1], createHash('sha256').update(body).digest('hex'), 'the server got other bytes than the client sent');
});

test('a response whose client write was taken in part reaches the client as sent, not overwritten by the next upstream reads', async () => {
  const size = 6_000_000;
  const python = spawn('python3', ['-c', STALLING_CLIENT, String(sy.port), `/drip/${size}`], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  python.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const [code] = await new Promise<[number | null]>((resolve, reject) => python.once('error', reject).once('exit', (c) => resolve([c])));
  assert.equal(code, 0);
  assert.equal(out.trim(), `HTTP/1.1 200 OK ${createHash('sha256').update(bodyOf('drip', size)).digest('hex')}`, 'the client got other bytes than the server sent');
});
