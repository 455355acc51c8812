// Attacks on WebSockets over HTTP/2 (RFC 8441), through the real CLI with one
// worker (so /status and the per-session limits are one process's): forged
// identity headers on the extended CONNECT, more tunnels than the session's
// max_concurrent_streams sent as raw frames, path spellings around an auth
// route, pseudo-header abuse, and what a tunnel's upstream sends after the
// client reset it. The upstream is a raw socket that records every byte it
// gets, so what it was sent is checked byte for byte, not as a parser saw it.
import assert from 'node:assert/strict';
import http2, { constants, type ClientHttp2Session, type SecureClientSessionOptions } from 'node:http2';
import type net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { getStatus, waitForStatus } from '../helpers/admin-status.js';
import { startRawBackend, websocketAccept, type RawBackend } from '../helpers/backend.js';
import { Pki, type Ca, type Issued } from '../helpers/certs.js';
import { openH2WebSocket } from '../helpers/h2-websocket.js';
import { ErrorCode, FrameType, RawH2, data, headers, settingsAck } from '../helpers/h2-frames.js';
import { freePort, startSwitchyard, type Switchyard } from '../helpers/switchyard.js';
import { until } from '../helpers/until.js';

const START = { startTimeoutMs: 60_000 };
const API_KEY = 'ws-h2-attack-key-0123456789';
const MAX_STREAMS = 3;
/** What the upstream of a flooding tunnel sends, over and over, until its connection closes. */
const FLOOD_MARK = 'FLOOD-OF-A-RESET-TUNNEL|';
/** What an upstream sends after a 101 that came too late: the client had reset the stream. */
const LATE_MARK = 'BYTES-AFTER-A-LATE-101';

let pki: Pki;
let serverCa: Ca;
let client: Issued;
let up: RawBackend;
/** The request heads the upstream received, in order, with the connection each came on. */
const heads: Array<{ conn: number; head: string; path: string }> = [];
const upstreamSockets: net.Socket[] = [];
let sy: Switchyard;
let h2cPort: number;
let tlsPort: number;

/**
 * Reads request heads one after the other (no bodies): an Upgrade request is
 * answered with a correct 101 and then the tunnel does what its path says
 * (/flood: send FLOOD_MARK until closed; /late101: the 101 after 300 ms,
 * with LATE_MARK; otherwise echo); a plain request gets 200 with its path
 * (/slow: after 1.5 s), on a keep-alive connection.
 */
function upstream(socket: net.Socket): void {
  const conn = upstreamSockets.push(socket) - 1;
  let buffered = '';
  const onData = (chunk: Buffer): void => {
    buffered += chunk.toString('latin1');
    for (;;) {
      const end = buffered.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buffered.slice(0, end + 4);
      buffered = buffered.slice(end + 4);
      const path = /^\S+ (\S+) /.exec(head)?.[1] ?? '';
      heads.push({ conn, head, path });
      const key = /\r\nsec-websocket-key: *([^\r]*)/i.exec(head)?.[1];
      if (key === undefined) {
        const body = `plain ${path}`;
        const answer = () => socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
        if (path.startsWith('/slow')) setTimeout(answer, 1500);
        else answer();
        continue;
      }
      socket.off('data', onData);
      const switching = `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${websocketAccept(key)}\r\n\r\n`;
      if (path.startsWith('/late101')) {
        setTimeout(() => socket.destroyed || socket.write(switching + LATE_MARK), 300);
      } else if (path.startsWith('/flood')) {
        socket.write(switching);
        const more = (): void => {
          if (socket.destroyed) return;
          if (socket.write(FLOOD_MARK.repeat(512))) setImmediate(more);
          else socket.once('drain', more);
        };
        more();
      } else {
        socket.write(switching);
        if (buffered.length > 0) socket.write(buffered, 'latin1');
        socket.pipe(socket);
      }
      return;
    }
  };
  socket.on('data', onData);
}

before(async () => {
  pki = new Pki();
  serverCa = pki.ca('ws-attack-ca');
  const clientCa = pki.ca('ws-attack-client-ca');
  const cert = pki.issue(serverCa, 'app', { subject: '/CN=app.test', sans: ['DNS:app.test'] });
  client = pki.issue(clientCa, 'alice', { subject: '/O=Example/CN=alice', sans: ['URI:spiffe://example/alice'], usage: 'client' });
  up = await startRawBackend(upstream);
  h2cPort = await freePort();
  tlsPort = await freePort(new Set([h2cPort]));
  sy = await startSwitchyard(
    {
      workers: 1,
      listen: [
        { host: '127.0.0.1', port: h2cPort, http2: true },
        { host: '127.0.0.1', port: tlsPort, http2: true, tls: { certificates: [{ cert: cert.cert, key: cert.key }], client_ca: clientCa.cert } },
      ],
      logging: { level: 'info', access: true },
      http2: { max_concurrent_streams: MAX_STREAMS },
      upstreams: { up: { servers: [{ address: up.address }], retries: 0 } },
      routes: [
        { name: 'open', match: { host: '*', path: '/' }, upstream: 'up' },
        { name: 'keyed', match: { host: '*', path: '/keyed' }, upstream: 'up', auth: { api_key: { keys: [{ name: 'ops', key: API_KEY }] }, forward: { subject: 'X-User-Id' } } },
        { name: 'private', match: { host: '*', path: '/private' }, upstream: 'up', auth: { api_key: { keys: [{ name: 'ops', key: API_KEY }] } } },
        { name: 'mtls', match: { host: '*', path: '/mtls' }, upstream: 'up', auth: { mtls: {} } },
      ],
    },
    { ...START, outputBytes: 4 << 20 },
  );
});

after(async () => {
  await sy?.stop();
  await up?.close();
  pki?.cleanup();
});

async function connect(tls?: { cert?: Issued }): Promise<ClientHttp2Session> {
  const options: SecureClientSessionOptions = tls ? { servername: 'app.test', ca: serverCa.certPem, ...(tls.cert ? { cert: tls.cert.certPem, key: tls.cert.keyPem } : {}) } : {};
  const session = http2.connect(tls ? `https://127.0.0.1:${tlsPort}` : `http://127.0.0.1:${h2cPort}`, options);
  session.on('error', () => {});
  // Node sends :protocol only once the server's SETTINGS (ENABLE_CONNECT_PROTOCOL) have come.
  await new Promise<void>((resolve, reject) => {
    session.once('remoteSettings', () => resolve());
    session.once('error', reject);
  });
  return session;
}

/** A tunnel whose upstream echoes raw bytes: what comes back, as text. */
async function openRaw(session: ClientHttp2Session, path: string, extra: http2.OutgoingHttpHeaders = {}): Promise<{ stream: http2.ClientHttp2Stream; received: () => string }> {
  const hs = await openH2WebSocket(session, path, extra);
  assert.equal(hs.status, 200, `extended CONNECT ${path}: status ${hs.status}, rst ${hs.rstCode}, ${hs.body.toString()}`);
  const stream = hs.socket!.stream;
  stream.removeAllListeners('data');
  let got = '';
  stream.on('data', (c: Buffer) => (got += c.toString('latin1')));
  return { stream, received: () => got };
}

/** Writes `text` into a raw echo tunnel and waits for it to come back. */
async function echoThrough(t: { stream: http2.ClientHttp2Stream; received: () => string }, text: string): Promise<void> {
  t.stream.write(text);
  await until(`${text} echoed`, () => t.received().includes(text));
}


/** The head the upstream got for `path` (the last one). */
function headFor(path: string): string {
  const h = heads.filter((x) => x.path === path).at(-1);
  assert.ok(h !== undefined, `the upstream never got ${path}`);
  return h.head;
}

/** Every value of header `name` in a raw head (case-insensitive; `_` and `-` alike, as many backends read them). */
function values(head: string, name: string): string[] {
  const want = name.toLowerCase().replace(/_/g, '-');
  return head
    .split('\r\n')
    .slice(1)
    .filter((l) => l.includes(':'))
    .map((l) => [l.slice(0, l.indexOf(':')).trim().toLowerCase().replace(/_/g, '-'), l.slice(l.indexOf(':') + 1).trim()] as const)
    .filter(([n]) => n === want)
    .map(([, v]) => v);
}

/** A raw extended CONNECT on stream `id` (no END_STREAM): pseudo-headers as given, in order. */
function connectFrame(id: number, fields: Array<[string, string]>): Buffer {
  return headers(id, fields, false);
}

const CONNECT = (path: string, extra: Array<[string, string]> = []): Array<[string, string]> => [
  [':method', 'CONNECT'],
  [':protocol', 'websocket'],
  [':scheme', 'http'],
  [':path', path],
  [':authority', 'a.test'],
  ['sec-websocket-version', '13'],
  ...extra,
];

/** The body of the answer on stream `id` (the DATA frames received so far). */
function bodyOf(conn: RawH2, id: number): string {
  return conn.frames
    .filter((f) => f.type === FrameType.DATA && f.streamId === id)
    .map((f) => f.payload.toString('latin1'))
    .join('');
}

describe('forged identity headers on an extended CONNECT', () => {
  const FORGED: http2.OutgoingHttpHeaders = {
    'x-forwarded-for': '6.6.6.6',
    'x-forwarded-proto': 'https',
    'x-forwarded-host': 'admin.evil.test',
    'x-user-id': 'root',
    'x-user_id': 'root',
    'x-client-cert-subject': 'CN=admin',
    'x-client-cert_subject': 'CN=admin',
    'x-client-cert-san': 'URI:spiffe://example/admin',
  };

  test('h2c, a route forwarding the authenticated key: the upstream sees only the proxy’s X-Forwarded-* and X-User-Id', async () => {
    const session = await connect();
    const t = await openRaw(session, '/keyed/a', { ...FORGED, 'x-api-key': API_KEY });
    await echoThrough(t, 'x');
    const head = headFor('/keyed/a');
    assert.deepEqual(values(head, 'x-forwarded-for'), ['127.0.0.1'], head);
    assert.deepEqual(values(head, 'x-forwarded-proto'), ['http'], head);
    assert.ok(!head.includes('admin.evil.test'), head);
    assert.deepEqual(values(head, 'x-user-id'), ['ops'], head);
    assert.match(head, /^GET \/keyed\/a HTTP\/1\.1\r\n/);
    t.stream.close();
    session.close();
  });

  test('h2c, a :scheme of https does not make X-Forwarded-Proto https', async () => {
    const conn = await RawH2.open(h2cPort);
    conn.send(settingsAck());
    conn.send(connectFrame(1, [[':method', 'CONNECT'], [':protocol', 'websocket'], [':scheme', 'https'], [':path', '/scheme-https'], [':authority', 'a.test']]));
    await conn.waitFor((f) => f.streamId === 1 && (f.type === FrameType.HEADERS || f.type === FrameType.RST_STREAM));
    conn.close();
    assert.equal(conn.status(1), 200);
    assert.deepEqual(values(headFor('/scheme-https'), 'x-forwarded-proto'), ['http']);
  });

  test('TLS h2 with client_ca: forged client-certificate headers never reach the upstream; the verified subject does', async () => {
    for (const cert of [undefined, client]) {
      const session = await connect({ cert });
      const path = cert ? '/mtls/with-cert' : '/open-over-mtls-listener';
      const t = await openRaw(session, path, { ...FORGED, ':authority': 'app.test' });
      await echoThrough(t, 'x');
      const head = headFor(path);
      assert.deepEqual(values(head, 'x-forwarded-for'), ['127.0.0.1'], head);
      assert.deepEqual(values(head, 'x-forwarded-proto'), ['https'], head);
      assert.deepEqual(values(head, 'x-client-cert-subject'), cert ? ['CN=alice,O=Example'] : [], head);
      assert.deepEqual(values(head, 'x-client-cert-san'), cert ? ['URI:spiffe://example/alice'] : [], head);
      t.stream.close();
      session.close();
    }
  });

  test('the auth route without a credential: 401 whatever identity the client claims, nothing reaches the upstream', async () => {
    const before = heads.length;
    const session = await connect();
    const hs = await openH2WebSocket(session, '/keyed/forged', FORGED);
    session.close();
    assert.equal(hs.status, 401);
    assert.equal(heads.length, before);
  });
});

describe('more tunnels than http2.max_concurrent_streams, as raw frames', () => {
  /** Opens MAX_STREAMS tunnels on streams 1, 3, 5 of a raw connection; each answered 200. */
  async function fill(ackSettings: boolean): Promise<RawH2> {
    const conn = await RawH2.open(h2cPort);
    if (ackSettings) conn.send(settingsAck());
    for (let i = 0; i < MAX_STREAMS; i++) conn.send(connectFrame(2 * i + 1, CONNECT(`/limit/${ackSettings}/${i}`)));
    for (let i = 0; i < MAX_STREAMS; i++) {
      const id = 2 * i + 1;
      await conn.waitFor((f) => f.streamId === id && f.type === FrameType.HEADERS);
      assert.equal(conn.status(id), 200, `tunnel ${id}`);
    }
    return conn;
  }

  test('before the SETTINGS ACK: the extra CONNECTs are REFUSED_STREAM, no upstream connection; the open tunnels go on', async () => {
    const conn = await fill(false);
    const connections = up.connections.length;
    // The extra ones in one write, with DATA behind them (as a client that does not wait would send).
    conn.send(Buffer.concat([connectFrame(7, CONNECT('/limit/extra/7')), data(7, Buffer.from('GET /private HTTP/1.1\r\n\r\n'), false), connectFrame(9, CONNECT('/limit/extra/9'))]));
    await conn.waitFor((f) => f.streamId === 9 && f.type === FrameType.RST_STREAM);
    assert.equal(conn.resetCode(7), ErrorCode.REFUSED_STREAM);
    assert.equal(conn.resetCode(9), ErrorCode.REFUSED_STREAM);
    assert.equal(conn.answered(7) || conn.answered(9), false);
    // A tunnel already open still relays.
    conn.send(data(1, Buffer.from('still-open'), false));
    await until('the echo on stream 1', () => bodyOf(conn, 1).includes('still-open'));
    await sleep(300);
    assert.equal(up.connections.length, connections, 'a refused CONNECT made an upstream connection');
    assert.ok(!heads.some((h) => h.path.startsWith('/limit/extra') || h.path === '/private'));
    conn.close();
  });

  test('after the SETTINGS ACK: the session ends (GOAWAY, RFC 9113 §5.1.2), no upstream connection for the extra CONNECT', async () => {
    const conn = await fill(true);
    const connections = up.connections.length;
    conn.send(connectFrame(7, CONNECT('/limit/acked-extra')));
    await conn.waitFor((f) => f.type === FrameType.GOAWAY || (f.streamId === 7 && f.type === FrameType.RST_STREAM));
    assert.ok(conn.goaway() !== undefined || conn.resetCode(7) === ErrorCode.REFUSED_STREAM, 'neither GOAWAY nor REFUSED_STREAM');
    assert.equal(conn.answered(7), false);
    await sleep(300);
    assert.equal(up.connections.length, connections);
    assert.ok(!heads.some((h) => h.path === '/limit/acked-extra'));
    conn.close();
  });
});

describe('path spellings around an auth route (Unicode look-alikes, escapes, dot segments)', () => {
  test('via Node’s client: each is refused (400) or is the auth route (401); none reaches the upstream', async () => {
    const before = heads.length;
    const spellings = [
      '/%EF%BD%90rivate/x', // ｐ U+FF50
      '/%EF%BC%B0RIVATE/x', // Ｐ U+FF30, and upper case
      '/x/%E2%80%A5/private/x', // ‥ U+2025
      '/%EF%BC%8Fprivate/x', // ／ U+FF0F
      '/open%E2%88%95..%E2%88%95private', // ∕ U+2215
      '/private%EF%BC%8Fx', // the prefix, then ／
      '/private%E3%80%82/x', // 。 (NFKC keeps it): a name of its own, served as /private。 by a plain backend
      '/private./x',
      '/private%20/x',
      '/private::$DATA',
      '/private;x',
      '/%2e%2e/private',
      '/x/%2e%2e%2fprivate',
    ];
    const answers: string[] = [];
    for (const path of spellings) {
      // A session each: one that opens a tunnel keeps it.
      const session = await connect();
      const hs = await openH2WebSocket(session, path);
      answers.push(`${path}: ${hs.status}`);
      session.destroy();
    }
    assert.ok(
      answers.every((a) => /: (400|401)$/.test(a) || a.startsWith('/private%E3%80%82/x')),
      answers.join('\n'),
    );
    assert.deepEqual(
      heads.slice(before).map((h) => h.path).filter((p) => p !== '/private%E3%80%82/x'),
      [],
      'a spelling reached the upstream',
    );
  });

  test('raw UTF-8 bytes in :path (not escaped): refused or the auth route, never the open one', async () => {
    const before = heads.length;
    const paths = ['/ｐrivate/x', '/x/‥/private', '/／private', '/open∕..∕private', '/ｐｒｉｖａｔｅ'].map((p) => Buffer.from(p, 'utf8').toString('latin1'));
    for (const p of paths) {
      // One per connection: they stay open (an answer, then RST_STREAM NO_ERROR) while the next is sent.
      const conn = await RawH2.open(h2cPort);
      conn.send(settingsAck());
      conn.send(connectFrame(1, CONNECT(p)));
      await conn.waitFor((f) => f.streamId === 1 && (f.type === FrameType.HEADERS || f.type === FrameType.RST_STREAM));
      await sleep(50);
      conn.close();
      const id = 1;
      const i = paths.indexOf(p);
      const answer = conn.status(id) ?? (conn.answered(id) ? 'non-static status' : `rst ${conn.resetCode(id)}`);
      assert.ok(answer === 400 || answer === 'non-static status' || answer === `rst ${ErrorCode.PROTOCOL_ERROR}`, `${Buffer.from(paths[i]!, 'latin1').toString()}: ${answer} ${bodyOf(conn, id)}`);
      if (conn.answered(id) && conn.status(id) !== 400) assert.match(bodyOf(conn, id), /\(unauthorized\)/);
    }
    assert.equal(heads.length, before, 'a spelling reached the upstream');
  });
});

describe('pseudo-header abuse on an extended CONNECT (raw frames)', () => {
  async function one(fields: Array<[string, string]>): Promise<RawH2> {
    const conn = await RawH2.open(h2cPort);
    conn.send(settingsAck());
    conn.send(connectFrame(1, fields));
    await conn.waitFor((f) => f.streamId === 1 && (f.type === FrameType.RST_STREAM || f.type === FrameType.HEADERS));
    await conn.waitFor((f) => f.streamId === 1 && (f.type === FrameType.RST_STREAM || (f.type === FrameType.DATA && (f.flags & 1) === 1)), 500);
    return conn;
  }

  for (const [what, fields] of [
    ['two :protocol fields', [[':method', 'CONNECT'], [':protocol', 'websocket'], [':protocol', 'websocket'], [':scheme', 'http'], [':path', '/dup'], [':authority', 'a.test']]],
    ['two :path fields', [[':method', 'CONNECT'], [':protocol', 'websocket'], [':scheme', 'http'], [':path', '/ok'], [':path', '/private'], [':authority', 'a.test']]],
    ['two :authority fields', [[':method', 'CONNECT'], [':protocol', 'websocket'], [':scheme', 'http'], [':path', '/ok'], [':authority', 'a.test'], [':authority', 'b.test']]],
    ['no :authority and no host', [[':method', 'CONNECT'], [':protocol', 'websocket'], [':scheme', 'http'], [':path', '/ok']]],
    ['an empty :path', [[':method', 'CONNECT'], [':protocol', 'websocket'], [':scheme', 'http'], [':path', ''], [':authority', 'a.test']]],
    ['a pseudo-header after a regular field', [[':method', 'CONNECT'], [':protocol', 'websocket'], [':scheme', 'http'], ['x-a', '1'], [':path', '/ok'], [':authority', 'a.test']]],
    ['an upper-case field name', [[':method', 'CONNECT'], [':protocol', 'websocket'], [':scheme', 'http'], [':path', '/ok'], [':authority', 'a.test'], ['Host', 'b.test']]],
    ['a connection field', [[':method', 'CONNECT'], [':protocol', 'websocket'], [':scheme', 'http'], [':path', '/ok'], [':authority', 'a.test'], ['connection', 'upgrade']]],
    ['an upgrade field', [[':method', 'CONNECT'], [':protocol', 'websocket'], [':scheme', 'http'], [':path', '/ok'], [':authority', 'a.test'], ['upgrade', 'websocket']]],
  ] as Array<[string, Array<[string, string]>]>) {
    test(`${what}: RST_STREAM PROTOCOL_ERROR (malformed), never forwarded`, async () => {
      const before = heads.length;
      const conn = await one(fields);
      conn.close();
      assert.equal(conn.resetCode(1), ErrorCode.PROTOCOL_ERROR, `answered ${conn.status(1)} ${bodyOf(conn, 1)}`);
      assert.equal(conn.answered(1), false);
      await sleep(100);
      assert.equal(heads.length, before);
    });
  }

  for (const [what, extra] of [
    ['a host that disagrees with :authority', [['host', 'admin.test']]],
    ['two host fields', [['host', 'a.test'], ['host', 'admin.test']]],
  ] as Array<[string, Array<[string, string]>]>) {
    test(`${what}: 400 (bad-host) or RST_STREAM PROTOCOL_ERROR (nghttp2), never forwarded`, async () => {
      const before = heads.length;
      const conn = await one(CONNECT('/hosts', extra));
      conn.close();
      if (conn.answered(1)) {
        assert.equal(conn.status(1), 400);
        assert.match(bodyOf(conn, 1), /\(bad-host\)/);
      } else assert.equal(conn.resetCode(1), ErrorCode.PROTOCOL_ERROR);
      assert.equal(heads.length, before);
    });
  }

  test('a host equal to :authority (other case): one Host upstream, :authority’s', async () => {
    const conn = await one(CONNECT('/host-equal', [['host', 'A.TEST']]));
    conn.close();
    assert.equal(conn.status(1), 200);
    assert.deepEqual(values(headFor('/host-equal'), 'host'), ['a.test']);
  });

  test('no :authority, a host field: RST_STREAM PROTOCOL_ERROR (a CONNECT names its authority, RFC 9113 §8.5), never forwarded', async () => {
    const before = heads.length;
    const conn = await one([[':method', 'CONNECT'], [':protocol', 'websocket'], [':scheme', 'http'], [':path', '/host-only'], ['host', 'h.test']]);
    conn.close();
    assert.equal(conn.resetCode(1), ErrorCode.PROTOCOL_ERROR);
    assert.equal(heads.length, before);
  });

  test(':protocol in upper case is the same token: a WebSocket upstream with the proxy’s key, or refused; never without a key', async () => {
    const before = heads.length;
    const conn = await one(CONNECT('/upper-protocol').map(([n, v]) => [n, n === ':protocol' ? 'WebSocket' : v] as [string, string]));
    conn.close();
    if (conn.status(1) === 200) {
      const head = headFor('/upper-protocol');
      assert.equal(values(head, 'upgrade')[0]?.toLowerCase(), 'websocket');
      assert.equal(values(head, 'sec-websocket-key').length, 1);
    } else {
      assert.equal(heads.length, before, `answered ${conn.status(1)}, rst ${conn.resetCode(1)}, yet forwarded`);
    }
  });

  for (const [what, path] of [
    ['an absolute-form :path to the auth route', 'http://a.test/private/x'],
    ['an absolute-form :path to another host', 'http://admin.test/x'],
    ['an asterisk :path', '*'],
    ['a :path without a leading slash', 'private/x'],
  ] as Array<[string, string]>) {
    test(`${what}: refused, never forwarded`, async () => {
      const before = heads.length;
      const conn = await one(CONNECT(path));
      conn.close();
      assert.notEqual(conn.status(1), 200, `${path}: tunnel opened`);
      assert.ok(conn.answered(1) || conn.resetCode(1) === ErrorCode.PROTOCOL_ERROR, `${path}: no answer`);
      assert.equal(heads.length, before, `${path} reached the upstream`);
    });
  }
});

describe('the client goes away', () => {
  test('a FIN with tunnels open (raw frames, no RST_STREAM): the session ends, the tunnels’ upstream connections close', async () => {
    const conn = await RawH2.open(h2cPort);
    conn.send(settingsAck());
    conn.send(connectFrame(1, CONNECT('/fin/1')));
    conn.send(connectFrame(3, CONNECT('/fin/3')));
    await conn.waitFor((f) => f.streamId === 3 && f.type === FrameType.HEADERS);
    assert.equal(conn.status(1), 200);
    assert.equal(conn.status(3), 200);
    const tunnels = ['/fin/1', '/fin/3'].map((p) => upstreamSockets[heads.filter((h) => h.path === p).at(-1)!.conn]!);
    // FIN only: the client's side is shut, the socket not destroyed (what a client process that exits leaves behind is the same).
    conn.socket.end();
    await until('the tunnels’ upstream connections to close', () => tunnels.every((s) => s.destroyed), 5000);
    assert.equal(await conn.waitClosed(5000), true, 'the proxy closed its side too');
    await waitForStatus(sy.adminPort, 'no tunnel and no connection left', (st) => st.tunnels === 0 && st.activeConnections === 0);
  });
});

describe('the client resets a tunnel', () => {
  test('an upstream still flooding after the reset: none of its bytes reach another stream of the session', async () => {
    const session = await connect();
    const flooding = await openH2WebSocket(session, '/flood/a');
    assert.equal(flooding.status, 200);
    const floodStream = flooding.socket!.stream;
    floodStream.removeAllListeners('data');
    let floodBytes = 0;
    floodStream.on('data', (c: Buffer) => (floodBytes += c.length));
    await until('flood bytes', () => floodBytes > 100_000);
    const floodConn = heads.filter((h) => h.path === '/flood/a').at(-1)!.conn;
    floodStream.close(constants.NGHTTP2_CANCEL);
    // At once, on the same session: a tunnel and plain requests.
    const echo = await openRaw(session, '/echo/b');
    const plains = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        new Promise<string>((resolve) => {
          const s = session.request({ ':path': `/plain/${i}` });
          s.on('error', () => resolve('error'));
          let body = '';
          s.on('data', (c: Buffer) => (body += c.toString('latin1')));
          s.on('end', () => resolve(body));
        }),
      ),
    );
    plains.forEach((body, i) => assert.equal(body, `plain /plain/${i}`));
    await echoThrough(echo, 'mine');
    await sleep(300);
    assert.equal(echo.received(), 'mine', 'bytes of another stream in this tunnel');
    await until('the flooding upstream connection to close', () => upstreamSockets[floodConn]!.destroyed);
    echo.stream.close();
    session.close();
  });

  test('reset before the upstream’s 101: its connection is closed, never reused; the 101 and what follows reach nobody', async () => {
    const session = await connect();
    const s = session.request({ ':method': 'CONNECT', ':protocol': 'websocket', ':path': '/late101', 'sec-websocket-version': '13' }, { endStream: false });
    s.on('error', () => {});
    await until('the upstream to get the CONNECT', () => heads.some((h) => h.path === '/late101'));
    const lateConn = heads.filter((h) => h.path === '/late101').at(-1)!.conn;
    s.close(constants.NGHTTP2_CANCEL);
    const bodies: string[] = [];
    // Plain requests before, while and after the late 101 arrives upstream.
    for (let round = 0; round < 6; round++) {
      bodies.push(
        await new Promise<string>((resolve) => {
          const r = session.request({ ':path': `/after-late/${round}` });
          r.on('error', () => resolve('error'));
          let body = '';
          r.on('data', (c: Buffer) => (body += c.toString('latin1')));
          r.on('end', () => resolve(body));
        }),
      );
      await sleep(100);
    }
    bodies.forEach((body, i) => assert.equal(body, `plain /after-late/${i}`));
    assert.ok(!heads.some((h) => h.conn === lateConn && h.path.startsWith('/after-late')), 'the reset tunnel’s upstream connection was reused');
    await until('the late connection to close', () => upstreamSockets[lateConn]!.destroyed);
    session.close();
  });
});

describe('GET /status counts tunnels', () => {
  test('two tunnels on one HTTP/2 session count 2; a plain stream beside one does not hide it', async () => {
    // What earlier tests opened has closed.
    await waitForStatus(sy.adminPort, 'no tunnel open', (st) => st.tunnels === 0);
    const session = await connect();
    const a = await openRaw(session, '/status/a');
    const b = await openRaw(session, '/status/b');
    let s = await getStatus(sy.adminPort);
    assert.equal(s.tunnels, 2, 'two tunnels on one session');
    b.stream.close();
    await waitForStatus(sy.adminPort, 'one tunnel', (st) => st.tunnels === 1);
    // One tunnel and one plain request in flight on the same session.
    const slow = session.request({ ':path': '/slow/beside-a-tunnel' });
    slow.on('error', () => {});
    const done = new Promise<void>((resolve) => slow.on('close', () => resolve()));
    slow.resume();
    await until('the slow request upstream', () => heads.some((h) => h.path === '/slow/beside-a-tunnel'));
    s = await getStatus(sy.adminPort);
    assert.equal(s.tunnels, 1, 'a tunnel beside a plain stream');
    await done;
    a.stream.close();
    await waitForStatus(sy.adminPort, 'no tunnel', (st) => st.tunnels === 0);
    session.close();
  });
});
