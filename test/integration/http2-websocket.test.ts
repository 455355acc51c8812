// WebSockets over HTTP/2 (RFC 8441, issue 12 item 4), through the real CLI
// with 2 workers: Node's http2 client sends the extended CONNECT and speaks
// RFC 6455 frames (the ws package's codec) to a real ws echo server, over
// h2c and over TLS h2. The upstream sees the HTTP/1.1 Upgrade it stands for,
// with a key of the proxy's, whose Sec-WebSocket-Accept is checked. What is
// refused is refused with the right status or RST_STREAM code and never
// forwarded; routing, path normalisation and auth apply as to any request;
// bytes stay in their tunnel; the ends of a tunnel map both ways.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http2, { constants, type ClientHttp2Session } from 'node:http2';
import { readFileSync } from 'node:fs';
import type net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { isAlive } from '../helpers/process.js';
import { admin, waitForStatus } from '../helpers/admin-status.js';
import { startRawBackend, websocketAccept, type RawBackend } from '../helpers/backend.js';
import { launchBrowser, requireBrowser } from '../helpers/browser.js';
import { Pki } from '../helpers/certs.js';
import { h2Connect } from '../helpers/h2-client.js';
import { openH2WebSocket, startWsEchoBackend, type H2WebSocket, type WsEchoBackend } from '../helpers/h2-websocket.js';
import { ErrorCode, FrameType, RawH2, headers, settingsAck } from '../helpers/h2-frames.js';
import { freePort, startSwitchyard, type Switchyard } from '../helpers/switchyard.js';
import { until } from '../helpers/until.js';

const API_KEY = 'ws-h2-key-0123456789';
const FLOOD_BYTES = 32 << 20;

let pki: Pki;
let caFile: string;
let echo: WsEchoBackend;
let scripted: RawBackend;
/** What the scripted upstream wrote after its 101 to /scripted/flood, and how much of it was still queued in the process. */
let flood: { socket: net.Socket } | undefined;
let sy: Switchyard;
let h2cPort: number;
let tlsPort: number;

/**
 * An upstream that reads the request head and then does what its path says:
 * refuse (403), answer 101 with a wrong Sec-WebSocket-Accept, open the
 * tunnel and reset the connection on the first byte, or open it and send
 * FLOOD_BYTES at once.
 */
function script(socket: net.Socket): void {
  let head = '';
  const onData = (chunk: Buffer): void => {
    head += chunk.toString('latin1');
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) return;
    socket.off('data', onData);
    const path = /^GET (\S+) /.exec(head)?.[1] ?? '';
    const key = /\r\nsec-websocket-key: *([^\r]*)/i.exec(head)?.[1] ?? '';
    const switching = (accept: string): string => `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`;
    if (path === '/scripted/refuse') socket.write('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nnope');
    else if (path === '/scripted/bad-accept') socket.write(switching(websocketAccept('not the key that was sent')));
    else if (path === '/scripted/reset') {
      socket.write(switching(websocketAccept(key)));
      socket.once('data', () => socket.resetAndDestroy());
    } else if (path === '/scripted/echo-raw') {
      socket.write(switching(websocketAccept(key)));
      socket.pipe(socket);
    } else if (path === '/scripted/flood') {
      socket.write(switching(websocketAccept(key)));
      socket.write(Buffer.alloc(FLOOD_BYTES, 0x5a));
      flood = { socket };
    }
  };
  socket.on('data', onData);
}

before(async () => {
  pki = new Pki();
  const ca = pki.ca('ws-h2-ca');
  caFile = ca.cert;
  const cert = pki.issue(ca, 'app', { subject: '/CN=app.test', sans: ['DNS:app.test'] });
  echo = await startWsEchoBackend();
  scripted = await startRawBackend(script);
  h2cPort = await freePort();
  tlsPort = await freePort(new Set([h2cPort]));
  sy = await startSwitchyard(
    {
      listen: [
        { host: '127.0.0.1', port: h2cPort, http2: true },
        { host: '127.0.0.1', port: tlsPort, http2: true, tls: { certificates: [{ cert: cert.cert, key: cert.key }] } },
      ],
      logging: { level: 'info', access: true },
      // Low, so that resets Switchyard makes itself (idle tunnels) would trip it if they were counted as the client's.
      http2: { max_resets: 2 },
      upstreams: {
        echo: { servers: [{ address: echo.address }] },
        scripted: { servers: [{ address: scripted.address }], retries: 0 },
      },
      routes: [
        { name: 'ws', match: { host: '*', path: '/' }, upstream: 'echo' },
        { name: 'no-upgrades', match: { host: '*', path: '/plain' }, upstream: 'echo', upgrades: [] },
        { name: 'private', match: { host: '*', path: '/private' }, upstream: 'echo', auth: { api_key: { keys: [{ name: 'ops', key: API_KEY }] } } },
        { name: 'idle', match: { host: '*', path: '/idle' }, upstream: 'echo', timeouts: { tunnel_idle: '1s' } },
        { name: 'scripted', match: { host: '*', path: '/scripted' }, upstream: 'scripted' },
      ],
    },
    { outputBytes: 4 << 20 },
  );
});

after(async () => {
  await sy?.stop();
  await echo?.close();
  await scripted?.close();
  pki?.cleanup();
});

async function connect(port = h2cPort, tls = false): Promise<ClientHttp2Session> {
  const session = await h2Connect(port, { tls: tls ? { servername: 'app.test', ca: readFileSync(caFile) } : undefined, remoteSettings: true });
  // Sessions that end in GOAWAY or a reset are what several tests provoke.
  session.on('error', () => {});
  return session;
}

async function open(session: ClientHttp2Session, path: string, extra: http2.OutgoingHttpHeaders = {}): Promise<H2WebSocket> {
  const hs = await openH2WebSocket(session, path, extra);
  assert.equal(hs.status, 200, `extended CONNECT ${path}: status ${hs.status}, rst ${hs.rstCode}, ${hs.body.toString()}`);
  return hs.socket!;
}

/** `p`, or a failure after `ms` (a test that would wait forever fails instead). */
async function within<T>(what: string, p: Promise<T>, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}


describe('a WebSocket over HTTP/2 reaches a real WebSocket server', () => {
  test('the server advertises SETTINGS_ENABLE_CONNECT_PROTOCOL on h2c and on TLS h2', async () => {
    for (const [port, tls] of [[h2cPort, false], [tlsPort, true]] as const) {
      const session = await connect(port, tls);
      assert.equal(session.remoteSettings.enableConnectProtocol, true);
      session.close();
    }
  });

  test('h2c: 200 and echoed frames; the upstream saw the HTTP/1.1 Upgrade with a key of the proxy, answered with its Accept', async () => {
    const before = echo.connections.length;
    const session = await connect();
    const hs = await openH2WebSocket(session, '/chat?room=1', { 'sec-websocket-protocol': 'chat, other', 'sec-websocket-key': 'Y2xpZW50LWNob3Nlbi1rZXk=', origin: 'http://app.test' });
    assert.equal(hs.status, 200);
    assert.equal(hs.headers['sec-websocket-protocol'], 'chat', 'the subprotocol the server chose reaches the client');
    assert.equal(hs.headers['sec-websocket-accept'], undefined, 'no Accept over HTTP/2 (RFC 8441 §5)');
    assert.equal(hs.headers.upgrade, undefined);
    const ws = hs.socket!;
    ws.send('hello over h2c');
    assert.equal((await ws.next()).toString(), 'hello over h2c');
    ws.send(Buffer.from([0, 1, 2, 255]));
    assert.deepEqual([...(await ws.next())], [0, 1, 2, 255]);
    const conn = echo.connections[before]!;
    assert.equal(conn.url, '/chat?room=1');
    assert.equal(conn.headers.upgrade, 'websocket');
    assert.equal(conn.headers.connection?.toLowerCase(), 'upgrade');
    assert.equal(conn.headers['sec-websocket-version'], '13');
    assert.equal(conn.headers['sec-websocket-protocol'], 'chat, other');
    assert.equal(conn.headers.origin, 'http://app.test');
    assert.equal(conn.headers['x-forwarded-proto'], 'http');
    const key = conn.headers['sec-websocket-key']!;
    assert.notEqual(key, 'Y2xpZW50LWNob3Nlbi1rZXk=', "the client's own key is not used");
    assert.equal(Buffer.from(key, 'base64').length, 16);
    ws.close();
    assert.equal(await within('ws to close', ws.closed), 0, 'a Close handshake ends the stream without a reset');
    assert.equal(ws.closeCode(), 1000);
    await until('the upstream connection to close', () => conn.closed);
    session.close();
  });

  test('TLS h2 (ALPN): the same, with X-Forwarded-Proto https', async () => {
    const before = echo.connections.length;
    const session = await connect(tlsPort, true);
    const ws = await open(session, '/tls', { ':authority': 'app.test' });
    ws.send('hello over tls');
    assert.equal((await ws.next()).toString(), 'hello over tls');
    assert.equal(echo.connections[before]!.headers['x-forwarded-proto'], 'https');
    ws.close();
    await within('ws to close', ws.closed);
    session.close();
  });

  test('1 MB messages both ways arrive whole (flow control on the stream, backpressure on the socket)', async () => {
    const session = await connect();
    const ws = await open(session, '/big');
    const big = Buffer.alloc(1 << 20);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
    for (let i = 0; i < 3; i++) ws.send(big);
    for (let i = 0; i < 3; i++) {
      const got = await ws.next(20_000);
      assert.equal(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(big).digest('hex'));
    }
    ws.close();
    await within('ws to close', ws.closed);
    session.close();
  });

  test('the tunnel is in the access log: route, HTTP/2, status 200, method GET', async () => {
    const session = await connect();
    const ws = await open(session, '/logged-tunnel');
    ws.send('x');
    await ws.next();
    ws.close();
    await within('ws to close', ws.closed);
    session.close();
    let line: Record<string, unknown> | undefined;
    await until('the access line', () => {
      line = sy
        .output()
        .split('\n')
        .filter((l) => l.includes('"access"') && l.includes('/logged-tunnel'))
        .map((l) => JSON.parse(l) as Record<string, unknown>)[0];
      return line !== undefined;
    });
    assert.equal(line!.proto, 'HTTP/2');
    assert.equal(line!.status, 200);
    assert.equal(line!.method, 'GET');
    assert.equal(line!.route, 'ws');
    assert.ok((line!.bytes as number) > 0, 'bytes from the upstream are counted');
  });
});

describe('a real browser', () => {
  test('Chromium opens its WebSocket as a stream of the HTTP/2 connection the page came on, and it echoes', { timeout: 120_000 }, async (t) => {
    if (!requireBrowser(t)) return;
    // The test CA is not in Chromium's store; app.test resolves to loopback.
    const browser = await launchBrowser(undefined, { args: ['--host-resolver-rules=MAP app.test 127.0.0.1'], ignoreHTTPSErrors: true });
    try {
      const page = await browser.context.newPage();
      const res = await page.goto(`https://app.test:${tlsPort}/browser-page`);
      assert.equal(res?.status(), 200);
      // Chromium uses RFC 8441 only on an HTTP/2 connection it already has, to a server that advertised it.
      const echoed = await page.evaluate(
        (url) =>
          new Promise<string>((resolve) => {
            const socket = new WebSocket(url);
            socket.onopen = () => socket.send('from chromium');
            socket.onmessage = (e) => {
              resolve(String(e.data));
              socket.close();
            };
            socket.onerror = () => resolve('error');
          }),
        `wss://app.test:${tlsPort}/browser-ws`,
      );
      assert.equal(echoed, 'from chromium');
      let proto: unknown;
      await until('the access line of the WebSocket', () => {
        const line = sy
          .output()
          .split('\n')
          .find((l) => l.includes('"access"') && l.includes('"/browser-ws"'));
        proto = line === undefined ? undefined : (JSON.parse(line) as { proto: unknown }).proto;
        return line !== undefined;
      });
      assert.equal(proto, 'HTTP/2', 'the WebSocket went over HTTP/2 (extended CONNECT), not an HTTP/1.1 Upgrade');
    } finally {
      await browser.close();
    }
  });
});

describe('refused: with the right status or reset, never forwarded', () => {
  test('a route without websocket in upgrades: 403 (upgrade-not-allowed), the upstream sees nothing', async () => {
    const before = echo.connections.length;
    const session = await connect();
    const hs = await openH2WebSocket(session, '/plain/x');
    session.close();
    assert.equal(hs.status, 403);
    assert.match(hs.body.toString(), /\(upgrade-not-allowed\)/);
    assert.equal(echo.connections.length, before);
  });

  test('a :protocol the route does not tunnel: 403', async () => {
    const session = await connect();
    const stream = session.request({ ':method': 'CONNECT', ':protocol': 'h2c', ':path': '/x' }, { endStream: false });
    stream.on('error', () => {});
    const status = await new Promise<number>((resolve) => stream.once('response', (h) => resolve(Number(h[':status']))));
    stream.close();
    session.close();
    assert.equal(status, 403);
  });

  test('a plain CONNECT (no :protocol): 400 (connect-method); Switchyard is not a forward proxy', async () => {
    const session = await connect();
    const stream = session.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${scripted.port}` }, { endStream: false });
    stream.on('error', () => {});
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    const status = await new Promise<number>((resolve) => stream.once('response', (h) => resolve(Number(h[':status']))));
    await new Promise((resolve) => stream.on('close', resolve));
    session.close();
    assert.equal(status, 400);
    assert.match(Buffer.concat(chunks).toString(), /\(connect-method\)/);
    assert.equal(scripted.connections.length, 0);
  });

  async function raw(fields: Array<[string, string]>): Promise<RawH2> {
    const conn = await RawH2.open(h2cPort);
    conn.send(settingsAck());
    conn.send(headers(1, fields, false));
    await conn.waitFor((f) => f.streamId === 1 && (f.type === FrameType.RST_STREAM || f.type === FrameType.HEADERS));
    return conn;
  }

  for (const [what, fields] of [
    [':protocol on a GET', [[':method', 'GET'], [':protocol', 'websocket'], [':scheme', 'http'], [':path', '/'], [':authority', 'a.test']]],
    ['an extended CONNECT without :path', [[':method', 'CONNECT'], [':protocol', 'websocket'], [':scheme', 'http'], [':authority', 'a.test']]],
    ['an extended CONNECT without :scheme', [[':method', 'CONNECT'], [':protocol', 'websocket'], [':path', '/'], [':authority', 'a.test']]],
  ] as Array<[string, Array<[string, string]>]>) {
    test(`${what}: RST_STREAM PROTOCOL_ERROR (malformed, RFC 8441 §4), never forwarded`, async () => {
      const before = echo.connections.length;
      const conn = await raw(fields);
      conn.close();
      assert.equal(conn.resetCode(1), ErrorCode.PROTOCOL_ERROR);
      assert.equal(conn.answered(1), false);
      assert.equal(echo.connections.length, before);
    });
  }

  for (const [what, extra, protocol] of [
    ['a :protocol that is not a token', [], 'web socket'],
    ['a content-length on an extended CONNECT', [['content-length', '5']], 'websocket'],
  ] as Array<[string, Array<[string, string]>, string]>) {
    test(`${what}: 400 (bad-request), never forwarded`, async () => {
      const before = echo.connections.length;
      const conn = await raw([[':method', 'CONNECT'], [':protocol', protocol], [':scheme', 'http'], [':path', '/'], [':authority', 'a.test'], ['sec-websocket-version', '13'], ...extra]);
      await conn.waitFor((f) => f.type === FrameType.DATA && f.streamId === 1);
      const body = conn.frames.filter((f) => f.type === FrameType.DATA && f.streamId === 1).map((f) => f.payload.toString()).join('');
      conn.close();
      assert.equal(conn.status(1), 400);
      assert.match(body, /\(bad-request\)/);
      assert.equal(echo.connections.length, before);
    });
  }
});

describe('what the upstream answers', () => {
  test('a non-101 answer is the stream’s response (status and body), no tunnel; DATA sent early never reaches the upstream', async () => {
    const before = scripted.connections.length;
    const session = await connect();
    const smuggled = Buffer.from('GET /private/smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n');
    const hs = await openH2WebSocket(session, '/scripted/refuse', {}, smuggled);
    session.close();
    assert.equal(hs.status, 403);
    assert.equal(hs.body.toString(), 'nope');
    await sleep(200);
    const upstreamSaw = scripted.connections[before]!.toString('latin1');
    assert.match(upstreamSaw, /^GET \/scripted\/refuse HTTP\/1\.1\r\n/);
    assert.ok(!upstreamSaw.includes('smuggled'), 'bytes sent before the answer were forwarded');
    assert.equal(scripted.connections.length, before + 1);
  });

  test('DATA sent before the answer waits in the stream, and goes through the tunnel once the 101 has come', async () => {
    const session = await connect();
    const hs = await openH2WebSocket(session, '/scripted/echo-raw', {}, Buffer.from('sent before the 200'));
    assert.equal(hs.status, 200);
    const stream = hs.socket!.stream;
    stream.removeAllListeners('data');
    let got = '';
    stream.on('data', (c: Buffer) => (got += c.toString()));
    await until('the early bytes echoed', () => got === 'sent before the 200');
    stream.write(' and after');
    await until('the later bytes echoed', () => got === 'sent before the 200 and after');
    stream.close();
    session.close();
  });

  test('a 101 whose Sec-WebSocket-Accept does not answer the key sent: 502, no tunnel, early DATA not forwarded', async () => {
    const before = scripted.connections.length;
    const session = await connect();
    const hs = await openH2WebSocket(session, '/scripted/bad-accept', {}, Buffer.from('early-bytes'));
    session.close();
    assert.equal(hs.status, 502);
    assert.match(hs.body.toString(), /\(upstream-bad-response\)/);
    await sleep(200);
    assert.ok(!scripted.connections[before]!.toString('latin1').includes('early-bytes'));
  });

  test('the upstream resets the connection: the stream is reset with CANCEL (RFC 8441 §5)', async () => {
    const session = await connect();
    const ws = await open(session, '/scripted/reset');
    ws.stream.write('anything');
    assert.equal(await within('ws to close', ws.closed), constants.NGHTTP2_CANCEL);
    session.close();
  });

  test('the upstream closes cleanly: the client sees END_STREAM (its Close frame first), no reset', async () => {
    const before = echo.connections.length;
    const session = await connect();
    const ws = await open(session, '/server-closes');
    await until('the upstream connection', () => echo.connections.length > before);
    echo.connections[before]!.socket.close(1001, 'going away');
    assert.equal(await within('ws to close', ws.closed), 0);
    assert.equal(ws.closeCode(), 1001);
    session.close();
  });
});

describe('the ends of a tunnel', () => {
  test('the client resets the stream: the upstream connection is closed', async () => {
    const before = echo.connections.length;
    const session = await connect();
    const ws = await open(session, '/client-resets');
    ws.send('ping');
    await ws.next();
    ws.stream.close(constants.NGHTTP2_CANCEL);
    await until('the upstream connection to close', () => echo.connections[before]!.closed);
    // The session is unharmed: another tunnel on it works.
    const again = await open(session, '/after-reset');
    again.send('still here');
    assert.equal((await again.next()).toString(), 'still here');
    again.close();
    await within('again to close', again.closed);
    session.close();
  });

  test('timeouts.tunnel_idle: a tunnel with no byte either way is reset (CANCEL) and its upstream closed; traffic keeps it open', async () => {
    const before = echo.connections.length;
    const session = await connect();
    const busy = await open(session, '/idle/busy');
    // More than http2.max_resets: the proxy's own resets are not the client's rapid reset.
    const quiet = await Promise.all([open(session, '/idle/quiet-1'), open(session, '/idle/quiet-2'), open(session, '/idle/quiet-3')]);
    const started = Date.now();
    for (let i = 0; i < 8; i++) {
      busy.send(`tick ${i}`);
      assert.equal((await busy.next()).toString(), `tick ${i}`);
      await sleep(300);
    }
    for (const q of quiet) assert.equal(await within('a quiet tunnel to close', q.closed), constants.NGHTTP2_CANCEL);
    assert.ok(Date.now() - started < 5000);
    await until('the quiet upstreams to close', () => echo.connections.slice(before).filter((c) => c.closed).length === 3);
    busy.send('after 2.4 s of traffic');
    assert.equal((await busy.next()).toString(), 'after 2.4 s of traffic');
    busy.close();
    await within('busy to close', busy.closed);
    session.close();
  });

  test('backpressure: a client that does not read holds the upstream back (the proxy does not buffer it); then every byte arrives', async () => {
    const session = await connect();
    const hs = await openH2WebSocket(session, '/scripted/flood');
    assert.equal(hs.status, 200);
    const stream = hs.socket!.stream;
    // The test client's socket listener (H2WebSocket) reads into ws's Receiver: stop the stream instead.
    stream.pause();
    await until('the flood to start', () => flood !== undefined);
    await sleep(1500);
    const queued = flood!.socket.writableLength;
    // Kernel buffers on loopback hold a few MB; the rest must still be queued in the upstream's own process.
    assert.ok(queued > FLOOD_BYTES / 2, `only ${queued} of ${FLOOD_BYTES} bytes still queued upstream: the proxy buffered the rest`);
    let received = 0;
    stream.removeAllListeners('data');
    stream.on('data', (c: Buffer) => (received += c.length));
    stream.resume();
    await until('every byte', () => received >= FLOOD_BYTES, 60_000);
    assert.equal(received, FLOOD_BYTES);
    stream.close();
    session.close();
  });
});

describe('attacks', () => {
  test('an auth route is not walkable by extended CONNECT with a differently spelt path', async () => {
    const before = echo.connections.length;
    const session = await connect();
    for (const path of ['/private', '/private/x', '/%70rivate/x', '/PRIVATE/x', '//private/x', '/./private/x', '/open/../private/x', '/private%2fx', '/%2e/private']) {
      const hs = await openH2WebSocket(session, path);
      assert.ok(hs.status === 401 || hs.status === 400, `${path}: ${hs.status}`);
    }
    assert.equal(echo.connections.length, before, 'no spelling reached the upstream');
    const ws = await open(session, '/private/x', { 'x-api-key': API_KEY });
    ws.send('authorised');
    assert.equal((await ws.next()).toString(), 'authorised');
    ws.close();
    await within('ws to close', ws.closed);
    session.close();
  });

  test('many tunnels at once, on one session and across sessions: each gets exactly its own bytes back, in order', { timeout: 120_000 }, async () => {
    const before = echo.connections.length;
    const sessions = await Promise.all([connect(), connect(), connect(tlsPort, true), connect(tlsPort, true)]);
    const sockets = await Promise.all(
      Array.from({ length: 80 }, (_, i) => (i % 4 < 2 ? open(sessions[i % 4]!, `/many/${i}`) : open(sessions[i % 4]!, `/many/${i}`, { ':authority': 'app.test' }))),
    );
    const ROUNDS = 10;
    for (let r = 0; r < ROUNDS; r++) sockets.forEach((ws, i) => ws.send(`tunnel ${i} message ${r} ${'x'.repeat((i * 37 + r * 11) % 3000)}`));
    await Promise.all(
      sockets.map(async (ws, i) => {
        for (let r = 0; r < ROUNDS; r++) {
          const got = (await ws.next(30_000)).toString();
          assert.ok(got.startsWith(`tunnel ${i} message ${r} `), `tunnel ${i} got ${got.slice(0, 40)}`);
        }
      }),
    );
    // Upstream side: every connection carried the messages of one tunnel only.
    const conns = echo.connections.slice(before);
    assert.equal(conns.length, 80);
    for (const c of conns) {
      const i = Number(/\/many\/(\d+)/.exec(c.url)![1]);
      assert.equal(c.messages.length, ROUNDS);
      for (const m of c.messages) assert.ok(m.toString().startsWith(`tunnel ${i} `), `upstream of ${c.url} got ${m.toString().slice(0, 30)}`);
    }
    for (const ws of sockets) ws.close();
    await within('every tunnel to close', Promise.all(sockets.map((ws) => ws.closed)));
    for (const s of sessions) s.close();
  });
});

describe('GOAWAY drain with an open tunnel', () => {
  /** One worker in front of the echo backend; `extra` on top of the config. */
  async function single(extra: Record<string, unknown>): Promise<{ sy: Switchyard; port: number }> {
    const port = await freePort();
    const single = await startSwitchyard(
      {
        workers: 1,
        listen: [{ host: '127.0.0.1', port, http2: true }],
        upstreams: { echo: { servers: [{ address: echo.address }] } },
        routes: [{ match: { host: '*', path: '/' }, upstream: 'echo' }],
        ...extra,
      },
    );
    return { sy: single, port };
  }

  test('shutdown: GOAWAY, the tunnel keeps working, and the worker exits as soon as it ends (not at shutdown_timeout)', { timeout: 90_000 }, async () => {
    const { sy: one, port } = await single({ shutdown_timeout: '20s' });
    try {
      const session = await connect(port);
      const ws = await open(session, '/drain');
      const goaway = new Promise<number>((resolve) => session.once('goaway', (code: number) => resolve(code)));
      const stopped = one.stop(40_000);
      assert.equal(await within('GOAWAY', goaway), constants.NGHTTP2_NO_ERROR);
      await sleep(500);
      ws.send('after GOAWAY');
      assert.equal((await ws.next()).toString(), 'after GOAWAY');
      const endedAt = Date.now();
      ws.close();
      assert.equal(await within('ws to close', ws.closed), 0);
      assert.equal(await stopped, 0);
      assert.ok(Date.now() - endedAt < 10_000, `exit ${Date.now() - endedAt} ms after the tunnel ended`);
      session.close();
    } finally {
      await one.stop();
    }
  });

  test('shutdown: a tunnel still open at shutdown_timeout is ended; the session and the upstream connection close', { timeout: 90_000 }, async () => {
    const { sy: one, port } = await single({ shutdown_timeout: '2s' });
    const before = echo.connections.length;
    try {
      const session = await connect(port);
      const sessionClosed = new Promise<void>((resolve) => session.once('close', () => resolve()));
      const ws = await open(session, '/held-open');
      const stopAt = Date.now();
      const stopped = one.stop(40_000);
      await within('ws to close', ws.closed);
      await within('the session to close', sessionClosed, 20_000);
      const took = Date.now() - stopAt;
      assert.ok(took >= 1500 && took < 15_000, `the tunnel ended ${took} ms after SIGTERM (shutdown_timeout 2s)`);
      assert.equal(await stopped, 0);
      await until('the upstream connection to close', () => echo.connections[before]!.closed);
    } finally {
      await one.stop();
    }
  });

  test('a reload keeps an HTTP/2 tunnel on the replaced worker past shutdown_timeout (tunnel_max_age); it exits when the tunnel ends', { timeout: 90_000 }, async () => {
    const { sy: one, port } = await single({ shutdown_timeout: '1s', tunnel_max_age: '1h' });
    try {
      const session = await connect(port);
      const ws = await open(session, '/across-reload');
      ws.send('before');
      await ws.next();
      const holder = one.workerPids()[0]!;
      const res = await admin(one.adminPort, '/reload', 'POST');
      assert.equal(res.status, 200, res.body);
      await waitForStatus(one.adminPort, 'the holder retiring', (s) => s.workers.some((w) => w.pid === holder && w.state === 'retiring'), 20_000);
      await sleep(2500);
      ws.send('after the reload and shutdown_timeout');
      assert.equal((await ws.next()).toString(), 'after the reload and shutdown_timeout');
      assert.ok(isAlive(holder));
      ws.close();
      await within('ws to close', ws.closed);
      await until('the retiring worker to exit', () => !isAlive(holder), 10_000);
      session.close();
    } finally {
      await one.stop();
    }
  });
});
