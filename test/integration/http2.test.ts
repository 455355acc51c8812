// HTTP/2 to clients (h2c with prior knowledge on a listener with
// `http2: true`), through the real CLI with 2 workers in front of real
// HTTP/1.1 backends: curl --http2-prior-knowledge and Node's http2 client
// reach the same routes, gateway checks, limits and retries as HTTP/1.1 on
// the same port; the request the upstream sees is plain HTTP/1.1 built from
// the pseudo-headers; what HTTP/2 forbids (connection-specific fields, a
// Host that contradicts :authority, a Content-Length the DATA frames don't
// match) is refused; bodies stream both ways with flow control; hop-by-hop
// response fields and trailers never reach the client.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { promisify } from 'node:util';
import { after, before, beforeEach, describe, test } from 'node:test';
import { closedPort, patternBytes, patternSha256, startBackend, startRawBackend, type Backend } from '../helpers/backend.js';
import { h2Connect, h2Get, h2Request } from '../helpers/h2-client.js';
import { ErrorCode, FrameType, PREFACE, RawH2, data, headers, request, settings, settingsAck } from '../helpers/h2-frames.js';
import { freePort, startSwitchyard, type Switchyard } from '../helpers/switchyard.js';

const run = promisify(execFile);
const API_KEY = 'h2-test-key-0123456789';

let backend: Backend;
let sy: Switchyard;
let port: number;
let authority: string;

before(async () => {
  backend = await startBackend();
  const dead = await closedPort();
  port = await freePort();
  authority = `127.0.0.1:${port}`;
  sy = await startSwitchyard({
    listen: [{ host: '127.0.0.1', port, http2: true }],
    limits: { max_body_bytes: '2mb', max_url_bytes: '1kb' },
    upstreams: {
      app: { servers: [{ address: backend.address }], retries: 0, timeouts: { response: '5s' } },
      // The first server refuses connections: a retry must land on the second.
      flaky: { balance: 'round-robin', servers: [{ address: `127.0.0.1:${dead}` }, { address: backend.address }], retries: 1 },
    },
    routes: [
      { name: 'open', match: { host: '*', path: '/' }, upstream: 'app' },
      { name: 'admin', match: { host: '*', path: '/admin' }, upstream: 'app', auth: { api_key: { keys: [{ name: 'ops', key: API_KEY }] } } },
      { name: 'limited', match: { host: '*', path: '/limited' }, upstream: 'app', rate_limit: { rate: '1/m', burst: 2, key: 'client-ip' } },
      { name: 'retry', match: { host: '*', path: '/retry' }, upstream: 'flaky' },
    ],
  });
});

after(async () => {
  await sy?.stop();
  await backend?.close();
});

beforeEach(() => {
  backend.reset();
  backend.respond = () => ({ status: 200, headers: [['content-type', 'text/plain']], body: 'ok' });
});

describe('h2c with prior knowledge and HTTP/1.1 on one listener', () => {
  test('curl --http2-prior-knowledge gets the upstream answer over HTTP/2; plain HTTP/1.1 still works on the port', async () => {
    const h2 = await run('curl', ['-sS', '--http2-prior-knowledge', '-o', '-', '-w', '\n%{http_version}', `http://${authority}/hello?x=1`]);
    assert.equal(h2.stdout, 'ok\n2');
    const h1 = await run('curl', ['-sS', '-o', '-', '-w', '\n%{http_version}', `http://${authority}/hello`]);
    assert.equal(h1.stdout, 'ok\n1.1');
    assert.equal(backend.requests.length, 2);
  });

  test('a preface that arrives a few bytes at a time is still HTTP/2; a request starting like it but not it is HTTP/1.1', async () => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    await new Promise((r) => socket.once('connect', r));
    const received: Buffer[] = [];
    socket.on('data', (d: Buffer) => received.push(d));
    for (const piece of [PREFACE.subarray(0, 3), PREFACE.subarray(3, 11), PREFACE.subarray(11)]) {
      socket.write(piece);
      await new Promise((r) => setTimeout(r, 50));
    }
    socket.write(Buffer.concat([settings(), settingsAck(), headers(1, request('/split', authority), true)]));
    await new Promise((r) => setTimeout(r, 500));
    socket.destroy();
    const bytes = Buffer.concat(received);
    // The server's first frame is its SETTINGS (type 4 on stream 0), not an HTTP/1.1 status line.
    assert.equal(bytes[3], FrameType.SETTINGS);
    assert.equal(backend.requests.length, 1);
    assert.equal(backend.requests[0]!.url, '/split');
    // "PRI /pri HTTP/1.1" parts from the preface at its 5th byte: llhttp gets it, and refuses the method.
    const h1 = await run('curl', ['-sS', '-X', 'PRI', '-o', '/dev/null', '-w', '%{http_code} %{http_version}', `http://${authority}/pri`]);
    assert.equal(h1.stdout, '400 1.1', 'an HTTP/1.1 request with method PRI is answered over HTTP/1.1');
  });

  test('the upstream sees HTTP/1.1: request line from :method and :path, Host from :authority, cookies joined, X-Forwarded-*', async () => {
    const res = await h2Get(port, '/a/b?q=1', { cookie: ['a=1', 'b=2'], 'x-custom': 'v' });
    assert.equal(res.status, 200);
    const got = backend.requests[0]!;
    assert.equal(got.httpVersion, '1.1');
    assert.equal(got.method, 'GET');
    assert.equal(got.url, '/a/b?q=1');
    assert.equal(got.headers.host, authority);
    assert.equal(got.headers.cookie, 'a=1; b=2');
    assert.equal(got.headers['x-custom'], 'v');
    assert.equal(got.headers['x-forwarded-proto'], 'http');
    assert.equal(got.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(got.headers['x-request-id'], res.headers['x-request-id']);
    assert.ok(!got.rawHeaders.some((h) => h.startsWith(':')), 'no pseudo-header upstream');
  });

  test('workers serving HTTP/2 run with a 4 MB young generation (primary.ts, workerV8Flags)', () => {
    const pids = sy.workerPids();
    assert.equal(pids.length, 2);
    for (const pid of pids) assert.ok(readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').includes('--max-semi-space-size=4'));
  });

  test('one session carries many concurrent streams, each answered with its own body', async () => {
    backend.respond = (req) => ({ status: 200, body: `you asked for ${req.url}` });
    const session = await h2Connect(port);
    const all = await Promise.all(Array.from({ length: 40 }, (_, i) => h2Request(session, { ':path': `/n/${i}` })));
    session.close();
    all.forEach((r, i) => assert.equal(r.body.toString(), `you asked for /n/${i}`));
  });

  test('request bodies stream up (with and without content-length), response bodies stream down, byte for byte', async () => {
    const size = 1_500_000;
    backend.respond = () => ({ status: 200, bodySize: size });
    const session = await h2Connect(port);
    const withLength = await h2Request(session, { ':path': '/up', 'content-length': String(size) }, patternBytes(0, size));
    const unknownLength = await h2Request(session, { ':path': '/up2' }, patternBytes(0, size));
    session.close();
    for (const r of [withLength, unknownLength]) {
      assert.equal(r.status, 200);
      assert.equal(r.body.length, size);
      assert.ok(r.body.equals(patternBytes(0, size)));
    }
    const [a, b] = backend.requests;
    assert.equal(a!.headers['content-length'], String(size));
    assert.equal(b!.headers['transfer-encoding'], 'chunked', 'a body of unknown length goes up chunked');
    for (const req of [a!, b!]) {
      assert.equal(req.bodySha256, patternSha256(size));
      assert.equal(req.complete, true);
    }
  });

  test('hop-by-hop response fields are removed, trailers dropped, Set-Cookie kept', async () => {
    backend.respond = () => ({
      status: 200,
      headers: [
        ['Connection', 'X-Secret-Hop'],
        ['X-Secret-Hop', 'hidden'],
        ['Keep-Alive', 'timeout=5'],
        ['Trailer', 'X-Checksum'],
        ['Set-Cookie', 'a=1'],
        ['Set-Cookie', 'b=2'],
      ],
      chunks: ['part1-', 'part2'],
    });
    const res = await h2Get(port, '/hop');
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'part1-part2');
    for (const name of ['connection', 'x-secret-hop', 'keep-alive', 'trailer', 'transfer-encoding']) assert.equal(res.headers[name], undefined, name);
    assert.deepEqual(res.headers['set-cookie'], ['a=1', 'b=2']);
  });

  test('trailers an upstream sends after a chunked body never reach the HTTP/2 client', async () => {
    const raw = await startRawBackend((socket) => {
      socket.once('data', () => socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Trailer\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: leaked\r\n\r\n'));
    });
    const p2 = await freePort();
    const sy2 = await startSwitchyard({
      workers: 1,
      listen: [{ host: '127.0.0.1', port: p2, http2: true }],
      upstreams: { raw: { servers: [{ address: raw.address }] } },
      routes: [{ match: { host: '*', path: '/' }, upstream: 'raw' }],
    });
    try {
      const session = await h2Connect(p2);
      const stream = session.request({ ':path': '/t' });
      let trailers: unknown;
      stream.on('trailers', (t) => (trailers = t));
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      await new Promise((resolve) => stream.on('close', resolve));
      session.close();
      assert.equal(Buffer.concat(chunks).toString(), 'abc');
      assert.equal(trailers, undefined);
    } finally {
      await sy2.stop();
      await raw.close();
    }
  });
});

describe('the same checks as HTTP/1.1', () => {
  test('authentication: 401 without the key, 200 with it', async () => {
    const denied = await h2Get(port, '/admin/x');
    assert.equal(denied.status, 401);
    assert.match(denied.body.toString(), /unauthorized/);
    assert.equal(backend.requests.length, 0);
    const allowed = await h2Get(port, '/admin/x', { 'x-api-key': API_KEY });
    assert.equal(allowed.status, 200);
  });

  test('path normalisation: respelled /admin paths are refused, not sent to the open route', async () => {
    for (const path of ['/ADMIN', '/%61dmin', '//admin', '/x/../admin', '/admin;x']) {
      const res = await h2Get(port, path);
      assert.ok(res.status === 400 || res.status === 401, `${path}: ${res.status}`);
    }
    assert.equal(backend.requests.length, 0);
  });

  test('rate limits count HTTP/2 and HTTP/1.1 requests in one bucket', async () => {
    assert.equal((await h2Get(port, '/limited')).status, 200);
    const h1 = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${authority}/limited`]);
    assert.equal(h1.stdout, '200');
    const third = await h2Get(port, '/limited');
    assert.equal(third.status, 429);
    assert.ok(third.headers['retry-after'] !== undefined || third.headers['ratelimit-reset'] !== undefined);
  });

  test('limits: a body over max_body_bytes gets 413 (and the stream is closed), a URL over max_url_bytes 414', async () => {
    const session = await h2Connect(port);
    const big = await h2Request(session, { ':path': '/big' }, patternBytes(0, 3 * 1024 * 1024));
    assert.equal(big.status, 413);
    const long = await h2Request(session, { ':path': `/${'a'.repeat(2000)}` });
    assert.equal(long.status, 414);
    // The session survives both.
    assert.equal((await h2Request(session, { ':path': '/after' })).status, 200);
    session.close();
  });

  test('a request that could not connect is retried on another server', async () => {
    for (let i = 0; i < 4; i++) assert.equal((await h2Get(port, '/retry')).status, 200);
  });

  test('metrics count HTTP/2 requests by route', async () => {
    await h2Get(port, '/metrics-probe');
    const res = await fetch(`http://127.0.0.1:${sy.adminPort}/metrics`, { headers: { authorization: 'Bearer test-token' } });
    const text = await res.text();
    assert.match(text, /switchyard_requests_total\{[^}]*route="open"[^}]*\} [1-9]/);
  });
});

describe('what HTTP/2 forbids is refused', () => {
  /** Opens a raw session, sends one request on stream 1, returns the connection once the server answered or reset it. */
  async function rawRequest(fields: Array<[string, string]>, body?: Buffer, endStream = body === undefined): Promise<RawH2> {
    const conn = await RawH2.open(port);
    conn.send(settingsAck());
    conn.send(headers(1, fields, endStream));
    if (body !== undefined) conn.send(data(1, body, true));
    await conn.waitFor((f) => f.streamId === 1 && (f.type === FrameType.RST_STREAM || f.type === FrameType.HEADERS));
    return conn;
  }

  for (const [name, value] of [
    ['connection', 'keep-alive'],
    ['keep-alive', 'timeout=5'],
    ['proxy-connection', 'keep-alive'],
    ['transfer-encoding', 'chunked'],
    ['upgrade', 'websocket'],
    ['te', 'gzip'],
  ] as const) {
    test(`a request with ${name}: ${value} is reset with PROTOCOL_ERROR and never forwarded`, async () => {
      const conn = await rawRequest(request('/forbidden', authority, [[name, value]]));
      assert.equal(conn.resetCode(1), ErrorCode.PROTOCOL_ERROR);
      assert.equal(conn.answered(1), false);
      conn.close();
      assert.equal(backend.requests.length, 0);
    });
  }

  // HTTP/1.1 (llhttp) refuses a method it does not know, lower-case ones included; over HTTP/2 nghttp2 takes any token.
  // Forwarded, `delete` would miss a route for DELETE (an auth route for writes, say) and land on an open one,
  // while a backend that upper-cases methods (Werkzeug) serves it as DELETE.
  for (const method of ['delete', 'Get', 'FOO']) {
    test(`a method HTTP/1.1 refuses (${method}) is refused over HTTP/2 too (400 from the proxy) and never forwarded`, async () => {
      const conn = await rawRequest(request('/method', authority, [], method));
      await conn.waitFor((f) => f.type === FrameType.DATA && f.streamId === 1);
      const body = conn.frames.filter((f) => f.type === FrameType.DATA && f.streamId === 1).map((f) => f.payload.toString()).join('');
      conn.close();
      assert.equal(conn.status(1), 400);
      assert.match(body, /\(bad-request\)/, 'the proxy refused it, not the backend');
      assert.equal(backend.requests.length, 0);
    });
  }

  test('te: trailers is allowed (and not forwarded)', async () => {
    const res = await h2Get(port, '/te', { te: 'trailers' });
    assert.equal(res.status, 200);
    assert.equal(backend.requests[0]!.headers.te, undefined);
  });

  test('a host field that contradicts :authority is refused with 400; an equal one is sent once', async () => {
    // Raw frames: client libraries fold host into :authority.
    const conflict = await rawRequest(request('/h', authority, [['host', 'evil.test']]));
    assert.equal(conflict.status(1), 400);
    conflict.close();
    assert.equal(backend.requests.length, 0);
    const same = await rawRequest(request('/h', authority, [['host', authority]]));
    assert.equal(same.resetCode(1), undefined);
    await same.waitFor((f) => f.type === FrameType.DATA && f.streamId === 1);
    same.close();
    assert.equal(backend.requests.length, 1);
    assert.equal(backend.requests[0]!.rawHeaders.filter((h) => h.toLowerCase() === 'host').length, 1);
  });

  test('a request without :authority or host is reset (nghttp2: malformed) and never forwarded', async () => {
    const conn = await RawH2.open(port);
    conn.send(settingsAck());
    conn.send(headers(1, [[':method', 'GET'], [':scheme', 'http'], [':path', '/nohost']], true));
    await conn.waitFor((f) => f.streamId === 1 && (f.type === FrameType.HEADERS || f.type === FrameType.RST_STREAM));
    assert.equal(conn.resetCode(1), ErrorCode.PROTOCOL_ERROR);
    conn.close();
    assert.equal(backend.requests.length, 0);
  });

  test('a content-length the DATA frames contradict resets the stream; the upstream never gets a complete request', async () => {
    const short = await rawRequest(request('/cl', authority, [['content-length', '10']], 'POST'), Buffer.from('12345'));
    assert.equal(short.resetCode(1), ErrorCode.PROTOCOL_ERROR);
    short.close();
    const long = await rawRequest(request('/cl', authority, [['content-length', '3']], 'POST'), Buffer.from('12345'));
    assert.equal(long.resetCode(1), ErrorCode.PROTOCOL_ERROR);
    long.close();
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(backend.requests.every((r) => !r.complete), 'no request reached the upstream whole');
  });
});

describe('flow control and backpressure', () => {
  test('a client uploading to an upstream that does not read is held by its stream window (no unbounded buffering)', async () => {
    const stalled = await startRawBackend((socket) => socket.pause()); // accepts, never reads (paused past the helper's recorder), never answers
    const p2 = await freePort();
    const sy2 = await startSwitchyard({
      workers: 1,
      listen: [{ host: '127.0.0.1', port: p2, http2: true }],
      limits: { max_body_bytes: '1gb' },
      upstreams: { stalled: { servers: [{ address: stalled.address }], timeouts: { response: '30s' } } },
      routes: [{ match: { host: '*', path: '/' }, upstream: 'stalled' }],
    });
    try {
      const session = await h2Connect(p2);
      const stream = session.request({ ':method': 'POST', ':path': '/upload' }, { endStream: false });
      stream.on('error', () => {});
      let offered = 0;
      const chunk = Buffer.alloc(64 * 1024, 1);
      // Write as fast as the stream takes it, for 2 seconds.
      const until = Date.now() + 2000;
      while (Date.now() < until) {
        if (stream.write(chunk)) offered += chunk.length;
        else await Promise.race([new Promise((r) => stream.once('drain', r)), new Promise((r) => setTimeout(r, 100))]);
      }
      // What left the client: bounded by its stream window, the proxy's socket buffers and the stalled upstream's receive buffer.
      const sent = session.socket.bytesWritten;
      assert.ok(sent < 24 * 1024 * 1024, `the client could push ${sent} bytes (offered ${offered})`);
      stream.close();
      session.close();
    } finally {
      await sy2.stop();
      await stalled.close();
    }
  });

  test('a client that stops reading a large response pauses the upstream (the proxy does not buffer it)', async () => {
    let upstreamWritten = 0;
    const big = await startRawBackend((socket) => {
      socket.once('data', () => {
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n');
        const chunk = Buffer.alloc(256 * 1024, 2);
        const pump = (): void => {
          while (upstreamWritten < 1 << 30 && !socket.destroyed) {
            upstreamWritten += chunk.length;
            if (!socket.write(chunk)) return void socket.once('drain', pump);
          }
        };
        pump();
      });
    });
    const p2 = await freePort();
    const sy2 = await startSwitchyard({
      workers: 1,
      listen: [{ host: '127.0.0.1', port: p2, http2: true }],
      upstreams: { big: { servers: [{ address: big.address }], timeouts: { response: '30s', idle: '30s' } } },
      routes: [{ match: { host: '*', path: '/' }, upstream: 'big' }],
    });
    try {
      const session = await h2Connect(p2);
      const stream = session.request({ ':path': '/download' });
      stream.on('error', () => {});
      await new Promise((r) => stream.once('response', r));
      stream.pause(); // read nothing: the client's window closes
      await new Promise((r) => setTimeout(r, 2000));
      const after2s = upstreamWritten;
      await new Promise((r) => setTimeout(r, 1000));
      assert.ok(upstreamWritten < 32 * 1024 * 1024, `the upstream could write ${upstreamWritten} bytes`);
      assert.equal(upstreamWritten, after2s, 'the upstream is paused, not trickling into a buffer');
      stream.close();
      session.close();
    } finally {
      await sy2.stop();
      await big.close();
    }
  });
});
