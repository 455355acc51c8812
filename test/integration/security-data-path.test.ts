// Issue 10 regression tests for the data path, each an attack that worked on
// 5d4d8fe: requests smuggled behind an Upgrade head that got no 101, a request
// pipelined behind one rejected at the head stage, trailers that leaked into
// the next message on either side of a pooled connection, gateway headers
// removed through `Connection`, headers with underscores shadowing identity
// headers, Proxy-Authorization forwarded, unwanted Upgrade protocols (h2c)
// tunnelled, idle tunnels kept forever, and an upload cut halfway that the
// upstream kept waiting for. The backend is a raw TCP recorder, so what the
// proxy forwarded is checked byte for byte.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, beforeEach, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startRawBackend, type RawBackend } from '../helpers/backend.js';
import { RawConnection, exchange } from '../helpers/raw-client.js';
import { logLines } from '../helpers/gateway.js';
import { getStatus } from '../helpers/admin-status.js';
import { startSwitchyard, type Switchyard } from '../helpers/switchyard.js';

const KEY = 'secret-key-0123456789';

/** What the recording backend does with each request it parses. */
type Behaviour = 'ok' | 'trailer' | 'silent' | 'upgrade-200' | 'upgrade-101';

interface Seen {
  head: string;
  connection: number;
}

let backend: RawBackend;
/** Reads request bytes slowly (about 16 KiB every 50 ms) and records when its connection closed. */
let slowBackend: RawBackend;
/** Accepts connections and never reads from them. */
let stalledBackend: RawBackend;
let behaviour: Behaviour = 'ok';
/** Every request head the backend parsed, in order, with its connection index. */
let seen: Seen[] = [];
let backendConnections = 0;
/** Bytes of request bodies the slow reader has consumed, and whether its peer closed. */
let slowRead = 0;
let slowClosedAt = 0;
let sy: Switchyard;

/**
 * A minimal strict recorder: heads end at CRLFCRLF, bodies are framed by
 * Content-Length or chunked (trailers skipped); every request is answered
 * according to `behaviour`.
 */
function serve(socket: net.Socket): void {
  const index = backendConnections++;
  let buf = Buffer.alloc(0);
  let tunnel = false;
  socket.on('data', (chunk: Buffer) => {
    if (tunnel) {
      socket.write(chunk);
      return;
    }
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString('latin1');
      let rest = buf.subarray(end + 4);
      const length = /\r\ncontent-length: *(\d+)/i.exec(head);
      if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
        const last = rest.indexOf('\r\n0\r\n');
        const start = rest.subarray(0, 3).toString() === '0\r\n' ? 0 : last < 0 ? -1 : last + 2;
        if (start < 0) return;
        const trailerEnd = rest.indexOf('\r\n\r\n', start);
        if (trailerEnd < 0) return;
        rest = rest.subarray(trailerEnd + 4);
      } else if (length !== null) {
        if (rest.length < Number(length[1])) return;
        rest = rest.subarray(Number(length[1]));
      }
      buf = rest;
      seen.push({ head, connection: index });
      if (behaviour === 'silent') continue;
      if (behaviour === 'upgrade-101' && /\r\nupgrade:/i.test(head)) {
        socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
        tunnel = true;
        if (buf.length > 0) socket.write(buf);
        return;
      }
      if (behaviour === 'trailer' && seen.length === 1) {
        socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Secret\r\n\r\n5\r\nfirst\r\n0\r\nX-Secret: for-client-a-only\r\n\r\n');
      } else {
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      }
    }
  });
  socket.on('error', () => {});
}

function serveSlowly(socket: net.Socket): void {
  socket.pause();
  socket.on('error', () => {});
  const tick = setInterval(() => {
    const chunk = socket.read() as Buffer | null;
    if (chunk !== null) slowRead += chunk.length;
  }, 50);
  socket.on('close', () => {
    clearInterval(tick);
    slowClosedAt = Date.now();
  });
}

before(async () => {
  backend = await startRawBackend(serve);
  slowBackend = await startRawBackend(serveSlowly);
  stalledBackend = await startRawBackend((socket) => {
    socket.pause();
    socket.on('error', () => {});
  });
  sy = await startSwitchyard({
    workers: 1,
    limits: { max_body_bytes: '100mb' },
    logging: { level: 'info', access: true },
    upstreams: {
      app: { servers: [{ address: backend.address }], retries: 0, timeouts: { response: '3s', idle: '3s', tunnel_idle: '1s' } },
      slow: { servers: [{ address: slowBackend.address }], retries: 0, timeouts: { response: '30s' } },
      stalled: { servers: [{ address: stalledBackend.address }], retries: 0, timeouts: { response: '30s' } },
    },
    routes: [
      { match: { host: '*', path: '/upload' }, upstream: 'slow' },
      { match: { host: '*', path: '/stalled' }, upstream: 'stalled' },
      {
        match: { host: '*', path: '/admin' },
        upstream: 'app',
        auth: { api_key: { keys: [{ name: 'ops', key: KEY }], header: 'x-api-key' }, forward: { subject: 'X-User-Id' } },
        request_headers: { set: { 'X-Gateway': 'set-by-route' } },
      },
      { match: { host: '*', path: '/h2c' }, upstream: 'app', upgrades: ['websocket', 'h2c'] },
      { match: { host: '*', path: '/' }, upstream: 'app' },
    ],
  });
});

after(async () => {
  await sy?.stop();
  await backend?.close();
  await slowBackend?.close();
  await stalledBackend?.close();
});

beforeEach(() => {
  behaviour = 'ok';
  seen = [];
  slowRead = 0;
  slowClosedAt = 0;
});

const heads = (): string[] => seen.map((s) => s.head.split('\r\n')[0]!);

test('bytes after an Upgrade head answered without 101 are parsed as the next request, never forwarded raw', async () => {
  behaviour = 'upgrade-200';
  const conn = await RawConnection.open(sy.port);
  try {
    conn.write(
      'GET /public HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n' +
        'POST /admin/delete-all HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\n\r\n',
    );
    const first = await conn.expectResponse();
    assert.equal(first.status, 200);
    const second = await conn.expectResponse();
    assert.equal(second.status, 401, 'the request after the refused upgrade went through the /admin route');
    await sleep(100);
    assert.deepEqual(heads(), ['GET /public HTTP/1.1'], 'the backend saw only the upgrade request');
  } finally {
    conn.destroy();
  }
});

test('an upstream connection that answered an Upgrade request with 200 is never reused', async () => {
  behaviour = 'upgrade-200';
  const before = backendConnections;
  const a = await exchange(sy.port, 'GET /one HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n', { closeWaitMs: 50 });
  assert.equal(a.response?.status, 200);
  const b = await exchange(sy.port, 'GET /two HTTP/1.1\r\nHost: a.test\r\n\r\n', { closeWaitMs: 50 });
  assert.equal(b.response?.status, 200);
  assert.equal(backendConnections - before, 2, 'the second request used a fresh upstream connection');
});

test('bytes after an Upgrade head are not read without bound while the upstream has not answered', async () => {
  behaviour = 'silent';
  const conn = await RawConnection.open(sy.port);
  try {
    conn.write('GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    const big = Buffer.alloc(64 << 20, 0x61);
    conn.socket.write(big);
    await sleep(1500);
    // Loopback socket buffers hold a few MiB; the rest must still be waiting in the client.
    assert.ok(conn.socket.writableLength > 32 << 20, `the proxy read ${(64 << 20) - conn.socket.writableLength} bytes ahead of any 101`);
  } finally {
    conn.socket.resetAndDestroy();
  }
  // The paused client's reset is noticed: the upstream request ends long before timeouts.response (3s).
  const activeOnServer = async (): Promise<number> => ((await getStatus(sy.adminPort)).upstreams.app!.servers[0] as unknown as { active: number }).active;
  const left = Date.now();
  while ((await activeOnServer()) !== 0 && Date.now() - left < 2000) await sleep(20);
  assert.equal(await activeOnServer(), 0);
});

test('after a 101, bytes sent with the handshake and after it reach the upstream, and the tunnel closes when idle', async () => {
  behaviour = 'upgrade-101';
  const conn = await RawConnection.open(sy.port);
  try {
    conn.write('GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nearly;');
    const res = await conn.expectResponse();
    assert.equal(res.status, 101);
    assert.equal((await conn.readBytes(6)).toString(), 'early;');
    conn.write('later;');
    assert.equal((await conn.readBytes(6)).toString(), 'later;');
    // A live tunnel counts on its server: an active request over one open connection.
    const server = (await getStatus(sy.adminPort)).upstreams.app!.servers[0] as unknown as { active: number; activeConnections: number };
    assert.equal(server.active, 1);
    assert.ok(server.activeConnections >= 1);
    // tunnel_idle is 1s: the proxy closes the quiet tunnel.
    assert.ok(await conn.waitClosed(3000), 'the idle tunnel was closed');
  } finally {
    conn.destroy();
  }
});

test('an Upgrade protocol the route does not allow (h2c) is forwarded as a plain request, never tunnelled', async () => {
  behaviour = 'upgrade-101';
  const conn = await RawConnection.open(sy.port);
  try {
    conn.write('GET / HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n');
    const res = await conn.expectResponse();
    assert.equal(res.status, 200);
    assert.equal(seen.length, 1);
    assert.doesNotMatch(seen[0]!.head, /upgrade|http2-settings/i, 'no upgrade headers reached the upstream');
    // The route that allows h2c tunnels it.
    conn.write('GET /h2c HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n');
    assert.equal((await conn.expectResponse()).status, 101);
  } finally {
    conn.destroy();
  }
});

for (const [name, bad] of [
  ['a duplicate Host', 'GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n'],
  ['a malformed Host', 'GET / HTTP/1.1\r\nHost: a b\r\n\r\n'],
  ['absolute-form to another host', 'GET http://elsewhere.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n'],
  ['a Transfer-Encoding list', 'POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n'],
  ['an unsupported Expect', 'GET / HTTP/1.1\r\nHost: a.test\r\nExpect: 200-ok\r\n\r\n'],
] as const) {
  test(`a request pipelined behind one refused for ${name} never reaches the upstream`, async () => {
    const res = await exchange(sy.port, bad + 'POST /smuggled HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\n\r\n');
    assert.ok(res.response !== undefined && res.response.status >= 400, `got ${res.response?.status}`);
    assert.ok(res.closed, 'the connection was closed after the error');
    await sleep(100);
    assert.deepEqual(heads(), [], 'nothing was forwarded');
  });
}

test('response trailers never reach another message on the pooled upstream connection', async () => {
  behaviour = 'trailer';
  const a = await RawConnection.open(sy.port);
  try {
    a.write('GET /a HTTP/1.1\r\nHost: a.test\r\n\r\n');
    const first = await a.expectResponse();
    assert.equal(first.body.toString(), 'first');
    assert.doesNotMatch(a.received.toString('latin1'), /x-secret/i, 'trailers are dropped (documented policy)');
  } finally {
    a.destroy();
  }
  const b = await exchange(sy.port, 'GET /b HTTP/1.1\r\nHost: a.test\r\n\r\n');
  assert.equal(b.response?.status, 200);
  assert.equal(seen.length, 2);
  assert.equal(seen[0]!.connection, seen[1]!.connection, 'the second client was served on the same upstream connection');
  assert.doesNotMatch(b.conn.received.toString('latin1'), /x-secret/i, 'client B never sees client A\'s trailer');
});

test('request trailers never reach the next request on the same client connection', async () => {
  const conn = await RawConnection.open(sy.port);
  try {
    conn.write('POST /first HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer-Secret: t1\r\n\r\n');
    assert.equal((await conn.expectResponse()).status, 200);
    conn.write('GET /second HTTP/1.1\r\nHost: a.test\r\n\r\n');
    assert.equal((await conn.expectResponse()).status, 200);
    assert.deepEqual(heads(), ['POST /first HTTP/1.1', 'GET /second HTTP/1.1']);
    assert.doesNotMatch(seen[1]!.head, /x-trailer-secret/i);
    assert.doesNotMatch(seen[0]!.head, /x-trailer-secret/i);
  } finally {
    conn.destroy();
  }
});

test('Connection cannot remove the headers the gateway adds', async () => {
  const res = await exchange(
    sy.port,
    `GET /admin HTTP/1.1\r\nHost: a.test\r\nX-Api-Key: ${KEY}\r\nConnection: X-User-Id, X-Gateway, X-Request-Id, X-Forwarded-For\r\n\r\n`,
    { closeWaitMs: 50 },
  );
  assert.equal(res.response?.status, 200);
  const head = seen[0]!.head;
  assert.match(head, /\r\nX-User-Id: ops(\r\n|$)/);
  assert.match(head, /\r\nX-Gateway: set-by-route(\r\n|$)/);
  assert.match(head, /\r\nX-Request-Id: /);
  assert.match(head, /\r\nX-Forwarded-For: /);
});

test('headers with underscores are dropped, so none can shadow an identity header', async () => {
  const res = await exchange(sy.port, `GET /admin HTTP/1.1\r\nHost: a.test\r\nX-Api-Key: ${KEY}\r\nX-User_Id: admin\r\nX_Other: 1\r\n\r\n`, {
    closeWaitMs: 50,
  });
  assert.equal(res.response?.status, 200);
  const head = seen[0]!.head;
  assert.doesNotMatch(head, /_/, 'no header with an underscore was forwarded');
  assert.match(head, /\r\nX-User-Id: ops(\r\n|$)/);
});

test('Proxy-Authorization is never forwarded', async () => {
  const res = await exchange(sy.port, 'GET / HTTP/1.1\r\nHost: a.test\r\nProxy-Authorization: Basic dXNlcjpwYXNz\r\n\r\n', { closeWaitMs: 50 });
  assert.equal(res.response?.status, 200);
  assert.doesNotMatch(seen[0]!.head, /proxy-authorization/i);
});

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  for (const end = Date.now() + ms; !cond() && Date.now() < end; ) await sleep(10);
}

test('an upload cut halfway (client FIN) aborts the upstream request at once', async () => {
  const conn = await RawConnection.open(sy.port);
  conn.write(`POST /upload HTTP/1.1\r\nHost: a.test\r\nContent-Length: ${4 << 20}\r\n\r\n`);
  conn.socket.write(Buffer.alloc(256 << 10, 0x62));
  await waitFor(() => slowRead > 256 << 10, 3000);
  assert.ok(slowRead > 256 << 10, 'the upstream received the head and the first part of the body');
  const cutAt = Date.now();
  conn.socket.end();
  await waitFor(() => slowClosedAt !== 0, 3000);
  conn.destroy();
  assert.ok(slowClosedAt !== 0, 'the upstream connection was closed');
  assert.ok(slowClosedAt - cutAt < 1000, `the upstream saw the abort ${slowClosedAt - cutAt} ms after the client left`);
});

test('an upload reset by the client aborts the upstream request at once, even while the upstream is not reading', async () => {
  const conn = await RawConnection.open(sy.port);
  conn.write(`POST /stalled HTTP/1.1\r\nHost: a.test\r\nContent-Length: ${64 << 20}\r\n\r\n`);
  conn.socket.write(Buffer.alloc(16 << 20, 0x62));
  // The upstream reads nothing: buffers fill and the proxy stops reading the client.
  await sleep(500);
  const cutAt = Date.now();
  conn.socket.resetAndDestroy();
  let line: Record<string, unknown> | undefined;
  for (const end = Date.now() + 2000; line === undefined && Date.now() < end; await sleep(20)) {
    line = logLines(sy.output()).find((l) => l.msg === 'access' && l.path === '/stalled');
  }
  assert.ok(line !== undefined, 'the request was ended');
  assert.equal(line.status, 499);
  assert.ok(Date.now() - cutAt < 1500);
});

test('an error answered to HEAD has no body, so the next response on the connection is read as itself', async () => {
  const conn = await RawConnection.open(sy.port);
  try {
    conn.write('HEAD /admin HTTP/1.1\r\nHost: a.test\r\n\r\nGET /after HTTP/1.1\r\nHost: a.test\r\n\r\n');
    const refused = await conn.expectResponse({ method: 'HEAD' });
    assert.equal(refused.status, 401);
    assert.equal(refused.body.length, 0);
    const next = await conn.expectResponse();
    assert.equal(next.status, 200);
    assert.equal(next.body.toString(), 'ok');
  } finally {
    conn.destroy();
  }
});

test('pipelined Upgrade requests answered without 101: each is an ordinary request, the bytes after them checked as requests', async () => {
  behaviour = 'upgrade-200';
  const conn = await RawConnection.open(sy.port);
  try {
    const upgrade = (path: string) => `GET ${path} HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`;
    conn.write(upgrade('/one') + upgrade('/two') + 'GET /admin HTTP/1.1\r\nHost: a.test\r\n\r\n' + 'NOT HTTP AT ALL\r\n\r\n');
    assert.equal((await conn.expectResponse()).status, 200);
    assert.equal((await conn.expectResponse()).status, 200);
    assert.equal((await conn.expectResponse()).status, 401, '/admin without a key, parsed after two refused upgrades');
    assert.equal((await conn.expectResponse()).status, 400, 'the garbage after it');
    assert.ok(await conn.waitClosed(2000));
    await sleep(100);
    assert.deepEqual(heads(), ['GET /one HTTP/1.1', 'GET /two HTTP/1.1']);
  } finally {
    conn.destroy();
  }
});

test('an Upgrade request with a body: the body is framed like any other, the bytes after it never reach the upstream before the 101', async () => {
  behaviour = 'upgrade-200';
  const firstConnection = backend.connections.length;
  const res = await exchange(
    sy.port,
    'POST /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nhello' + 'GET /admin/x HTTP/1.1\r\nHost: a.test\r\n\r\n',
    { closeWaitMs: 300 },
  );
  assert.equal(res.response?.status, 200);
  await sleep(100);
  assert.equal(seen.length, 1);
  assert.match(seen[0]!.head, /\r\nContent-Length: 5(\r\n|$)/i);
  assert.doesNotMatch(backend.connections.slice(firstConnection).map((b) => b.toString('latin1')).join(''), /admin/);
});
