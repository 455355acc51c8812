// HTTP/2 attacks, sent as raw frames to the real CLI (one worker, so "the
// worker survived" means the same pid): rapid reset (CVE-2023-44487),
// CONTINUATION floods (CVE-2024-27983), SETTINGS and PING floods, too many
// concurrent streams, oversized header lists, idle sessions. Each must be
// answered with RST_STREAM or GOAWAY and the right code, must never reach
// the upstream beyond what the limits allow, must never take the worker
// down, and the next honest client is served. Graceful drain: GOAWAY, and
// the open stream still finishes.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { startBackend, type Backend } from '../helpers/backend.js';
import { h2Connect, h2Get, h2Request } from '../helpers/h2-client.js';
import { ErrorCode, FrameType, RawH2, continuation, frame, headerBlock, headers, ping, request, rstStream, settings, settingsAck } from '../helpers/h2-frames.js';
import { freePort, rssKb, startSwitchyard, type Switchyard } from '../helpers/switchyard.js';

const LIMITS = { max_concurrent_streams: 10, max_resets: 50, max_control_frames: 50, max_header_pairs: 64 };

let backend: Backend;
let sy: Switchyard;
let port: number;
let authority: string;
let workerPid: number;

before(async () => {
  backend = await startBackend();
  port = await freePort();
  authority = `127.0.0.1:${port}`;
  sy = await startSwitchyard({
    workers: 1,
    listen: [{ host: '127.0.0.1', port, http2: true }],
    limits: { max_header_bytes: '8kb', keepalive_timeout: '2s' },
    http2: LIMITS,
    upstreams: { app: { servers: [{ address: backend.address }], retries: 0, timeouts: { response: '10s' } } },
    routes: [{ match: { host: '*', path: '/' }, upstream: 'app' }],
  });
  workerPid = sy.workerPids()[0]!;
});

after(async () => {
  await sy?.stop();
  await backend?.close();
});

beforeEach(() => {
  backend.reset();
  backend.respond = () => ({ status: 200, body: 'ok' });
});

/** Lets the event loop (and the server) breathe between bursts of frames. */
const pause = (): Promise<void> => new Promise((r) => setTimeout(r, 1));

/** A raw session past the handshake: our SETTINGS sent, the server's acknowledged. */
async function handshaken(): Promise<RawH2> {
  const conn = await RawH2.open(port);
  await conn.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & 1) === 0);
  conn.send(settingsAck());
  return conn;
}

/** The worker is the same process and an honest client is served. */
async function stillServing(): Promise<void> {
  assert.deepEqual(sy.workerPids(), [workerPid], 'the worker survived');
  backend.respond = () => ({ status: 200, body: 'ok' });
  const res = await h2Get(port, '/honest');
  assert.equal(res.status, 200);
  assert.equal(res.body.toString(), 'ok');
}

describe('HTTP/2 attacks', () => {
  test('rapid reset (CVE-2023-44487): HEADERS + RST_STREAM by the thousand ends in GOAWAY ENHANCE_YOUR_CALM', async () => {
    backend.respond = () => ({ status: 200, body: 'slow', delayMs: 2000 });
    const conn = await handshaken();
    let sent = 0;
    for (let id = 1; id < 2 * 5000 && !conn.closed; id += 2) {
      conn.send(Buffer.concat([headers(id, request('/reset', authority), true), rstStream(id, ErrorCode.CANCEL)]));
      sent++;
      if (sent % 20 === 0) await pause();
    }
    assert.ok(await conn.waitClosed(5000), 'the connection is closed');
    assert.equal(conn.goaway()?.code, ErrorCode.ENHANCE_YOUR_CALM);
    assert.ok(sent < 5000, `the server took ${sent} reset streams`);
    // Each reset stream may have started an upstream request; no more than the limit (plus what was in flight) did.
    assert.ok(backend.requests.length <= LIMITS.max_resets + 20, `${backend.requests.length} requests reached the upstream`);
    await stillServing();
  });

  // nghttp2 (1.61, CVE-2024-28182) allows 8 CONTINUATION frames per header block and then fails the
  // session; Node destroys the socket at once, so the GOAWAY it queued rarely reaches the client.
  test('CONTINUATION flood (CVE-2024-27983): endless empty CONTINUATION frames end the connection at once', async () => {
    const conn = await handshaken();
    conn.send(headers(1, request('/cont', authority), true, false));
    let sent = 0;
    for (; sent < 100_000 && !conn.closed; sent++) {
      conn.send(continuation(1, Buffer.alloc(0), false));
      if (sent % 1000 === 0) await new Promise((r) => setImmediate(r));
    }
    assert.ok(await conn.waitClosed(5000), 'the connection is closed');
    assert.ok(sent < 10_000, `the server read ${sent} CONTINUATION frames`);
    assert.notEqual(conn.goaway()?.code, ErrorCode.NO_ERROR);
    assert.equal(backend.requests.length, 0);
    await stillServing();
  });

  test('CONTINUATION flood with header bytes: the header list limit stops it, memory stays bounded', async () => {
    const before = rssKb(workerPid)!;
    const conns = await Promise.all(Array.from({ length: 8 }, () => handshaken()));
    const filler = headerBlock([['x-filler', 'a'.repeat(1000)]]);
    await Promise.all(
      conns.map(async (conn) => {
        conn.send(headers(1, request('/cont', authority), true, false));
        for (let i = 0; i < 20_000 && !conn.closed; i++) {
          conn.send(continuation(1, filler, false));
          if (i % 200 === 0) await new Promise((r) => setImmediate(r));
        }
        await conn.waitClosed(5000);
      }),
    );
    for (const conn of conns) {
      const rst = conn.resetCode(1);
      assert.ok(conn.closed || rst !== undefined, 'stream reset or connection closed');
      conn.close();
    }
    const grown = rssKb(workerPid)! - before;
    assert.ok(grown < 64 * 1024, `worker RSS grew ${grown} KiB`);
    assert.equal(backend.requests.length, 0);
    await stillServing();
  });

  test('SETTINGS flood: GOAWAY ENHANCE_YOUR_CALM after max_control_frames', async () => {
    const conn = await handshaken();
    let sent = 0;
    for (; sent < 5000 && !conn.closed; sent++) {
      conn.send(settings([[4, 65535]]));
      if (sent % 10 === 0) await pause();
    }
    assert.ok(await conn.waitClosed(5000), 'the connection is closed');
    assert.equal(conn.goaway()?.code, ErrorCode.ENHANCE_YOUR_CALM);
    assert.ok(sent < 1000, `${sent} SETTINGS frames were taken`);
    await stillServing();
  });

  test('SETTINGS flood in one burst (ACKs never read): nghttp2 closes the connection', async () => {
    const conn = await handshaken();
    conn.socket.pause(); // read nothing: the ACKs pile up on the server's side
    conn.send(Buffer.concat(Array.from({ length: 20_000 }, () => settings([[4, 65535]]))));
    conn.socket.resume();
    assert.ok(await conn.waitClosed(5000), 'the connection is closed');
    await stillServing();
  });

  test('PING flood: GOAWAY ENHANCE_YOUR_CALM', async () => {
    const conn = await handshaken();
    let sent = 0;
    for (; sent < 5000 && !conn.closed; sent++) {
      conn.send(ping());
      if (sent % 10 === 0) await pause();
    }
    assert.ok(await conn.waitClosed(5000), 'the connection is closed');
    assert.equal(conn.goaway()?.code, ErrorCode.ENHANCE_YOUR_CALM);
    assert.ok(sent < 1000, `${sent} PINGs were taken`);
    await stillServing();
  });

  test('too many concurrent streams: those beyond max_concurrent_streams never reach the upstream', async () => {
    backend.respond = () => ({ status: 200, body: 'slow', delayMs: 1000 });
    // Before our SETTINGS ACK: nghttp2 refuses the extra streams one by one with REFUSED_STREAM.
    const early = await RawH2.open(port);
    for (let id = 1; id <= 2 * 20; id += 2) early.send(headers(id, request(`/c/${id}`, authority), true));
    // The refusals may come in more than one segment (the HEADERS do not always arrive in one read): wait for all of them.
    const refusals = (): number => early.frames.filter((f) => f.type === FrameType.RST_STREAM && f.payload.readUInt32BE(0) === ErrorCode.REFUSED_STREAM).length;
    await early.waitFor(() => refusals() >= 10, 3000);
    assert.ok(refusals() >= 10, `${refusals()} streams refused`);
    // After it: a client that ignores the limit it acknowledged commits a connection error (nghttp2);
    // Node closes the session with GOAWAY INTERNAL_ERROR rather than PROTOCOL_ERROR.
    const late = await handshaken();
    await new Promise((r) => setTimeout(r, 100));
    for (let id = 1; id <= 2 * 20; id += 2) late.send(headers(id, request(`/c/${id}`, authority), true));
    assert.ok(await late.waitClosed(3000), 'the connection is closed');
    const code = late.goaway()?.code;
    assert.ok(code === ErrorCode.PROTOCOL_ERROR || code === ErrorCode.INTERNAL_ERROR, `GOAWAY ${code}`);
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(backend.requests.length <= 2 * LIMITS.max_concurrent_streams, `${backend.requests.length} requests reached the upstream`);
    early.close();
    late.close();
    await stillServing();
  });

  test('an oversized header list (bytes or fields) is refused and never forwarded; the session lives on', async () => {
    const conn = await handshaken();
    conn.send(headers(1, request('/big', authority, [['x-big', 'b'.repeat(12_000)]]), true));
    conn.send(headers(3, request('/many', authority, Array.from({ length: 100 }, (_, i): [string, string] => [`x-h${i}`, 'v'])), true));
    await conn.waitFor((f) => f.streamId === 3 && (f.type === FrameType.RST_STREAM || f.type === FrameType.HEADERS), 3000);
    await conn.waitFor((f) => f.streamId === 1 && (f.type === FrameType.RST_STREAM || f.type === FrameType.HEADERS), 3000);
    // Node resets the stream with ENHANCE_YOUR_CALM while decoding the header block.
    assert.equal(conn.resetCode(1), ErrorCode.ENHANCE_YOUR_CALM, 'header bytes over limits.max_header_bytes');
    assert.equal(conn.resetCode(3), ErrorCode.ENHANCE_YOUR_CALM, 'fields over http2.max_header_pairs');
    assert.equal(backend.requests.length, 0);
    // The same session still serves a normal request.
    conn.send(headers(5, request('/fine', authority), true));
    await conn.waitFor((f) => f.streamId === 5 && f.type === FrameType.HEADERS, 3000);
    assert.equal(conn.status(5), 200);
    conn.close();
    await stillServing();
  });

  test('an idle session is closed with GOAWAY NO_ERROR after keepalive_timeout, even if it keeps sending PINGs', async () => {
    const quiet = await handshaken();
    const pinging = await handshaken();
    const timer = setInterval(() => pinging.send(ping()), 300);
    try {
      assert.ok(await quiet.waitClosed(5000), 'the quiet session is closed');
      assert.equal(quiet.goaway()?.code, ErrorCode.NO_ERROR);
      assert.ok(await pinging.waitClosed(5000), 'the pinging session is closed too');
      assert.equal(pinging.goaway()?.code, ErrorCode.NO_ERROR);
    } finally {
      clearInterval(timer);
    }
  });

  test('a session with a stream in flight is not idle', async () => {
    backend.respond = () => ({ status: 200, body: 'slow', delayMs: 2500 });
    const res = await h2Get(port, '/slow');
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'slow');
  });

  test('unknown frame types and a bad frame on stream 0 never take the worker down', async () => {
    const conn = await handshaken();
    conn.send(frame(0xfa, 0, 0, Buffer.from('whatever')));
    conn.send(frame(FrameType.DATA, 0, 0, Buffer.from('data on stream 0')));
    assert.ok(await conn.waitClosed(3000));
    assert.equal(conn.goaway()?.code, ErrorCode.PROTOCOL_ERROR);
    await stillServing();
  });
});

describe('graceful drain over HTTP/2', () => {
  test('SIGTERM sends GOAWAY NO_ERROR at once; the open stream still finishes and the exit is clean', async () => {
    const slow = await startBackend({ respond: () => ({ status: 200, body: 'finished', delayMs: 1500 }) });
    const p2 = await freePort();
    const sy2 = await startSwitchyard({
      workers: 1,
      listen: [{ host: '127.0.0.1', port: p2, http2: true }],
      shutdown_timeout: '10s',
      upstreams: { slow: { servers: [{ address: slow.address }], timeouts: { response: '10s' } } },
      routes: [{ match: { host: '*', path: '/' }, upstream: 'slow' }],
    });
    try {
      const session = await h2Connect(p2);
      let goaway: number | undefined;
      session.on('goaway', (code: number) => (goaway = code));
      session.on('error', () => {});
      const inFlight = h2Request(session, { ':path': '/long' });
      await new Promise((r) => setTimeout(r, 300));
      const stopped = sy2.stop(10_000);
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(goaway, ErrorCode.NO_ERROR, 'GOAWAY NO_ERROR arrived while the stream was open');
      const res = await inFlight;
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), 'finished');
      assert.equal(await stopped, 0);
    } finally {
      await sy2.stop();
      await slow.close();
    }
  });
});
