// Issue 13, PROXY protocol both ways, black-box against the real CLI:
// - received (accept_proxy) on HTTP and tcp listeners, from HAProxy's own
//   send-proxy / send-proxy-v2 and from hand-made headers: the reported client
//   feeds X-Forwarded-For, source hashing, rate-limit keys and the access log;
//   every malformed header, an untrusted sender and a slow header close the
//   connection without one byte reaching a server;
// - sent (proxy_protocol: v1|v2) to tcp servers (bytes checked exactly) and to
//   nginx behind an HTTP upstream (its $proxy_protocol_addr), where a pooled
//   connection never carries another client's requests, and health checks
//   carry a header nginx accepts.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, afterEach, describe, test } from 'node:test';
import { crc32c } from '../../src/l4/crc32c.js';
import { getStatus, waitForStatus, workersReady } from '../helpers/admin-status.js';
import { startBackend, type Backend } from '../helpers/backend.js';
import { startHaproxySender, startNginxReceiver, type Peer } from '../helpers/peers.js';
import { sleep } from '../helpers/process.js';
import { freePort, startSwitchyard, withOutput, type Switchyard } from '../helpers/switchyard.js';
import { startTcpBackend, tcpExchange, type TcpBackend } from '../helpers/tcp.js';

let sy: Switchyard | undefined;
let backends: Backend[] = [];
let tcpBackends: TcpBackend[] = [];
let peers: Peer[] = [];

afterEach(async () => {
  await sy?.stop();
  sy = undefined;
  await Promise.all([...backends, ...tcpBackends, ...peers].map((b) => (b as { close?: () => Promise<void> }).close?.() ?? (b as Peer).stop()));
  backends = [];
  tcpBackends = [];
  peers = [];
});
after(async () => {
  await sy?.stop();
});

/** Fails with what the Switchyard of the moment (tests start their own, into `sy`) and the peers printed too. */
async function diagnosed(fn: () => Promise<void>): Promise<void> {
  try {
    await withOutput({ output: () => sy?.output() ?? '' }, fn);
  } catch (err) {
    if (err instanceof Error) for (const p of peers) err.message += `\n--- peer log ---\n${p.log().slice(-2000)}`;
    throw err;
  }
}

const V2_SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
const GET = 'GET /who HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n';

/** A v2 header: command byte, family byte, address block + TLVs; length computed unless given. */
function v2(verCmd: number, family: number, body: Buffer, length = body.length): Buffer {
  return Buffer.concat([V2_SIG, Buffer.from([verCmd, family, length >> 8, length & 0xff]), body]);
}
/** TCP4 address block: src → dst with ports. */
function inet(src: string, dst: string, sport: number, dport: number): Buffer {
  const b = Buffer.alloc(12);
  src.split('.').forEach((o, i) => (b[i] = Number(o)));
  dst.split('.').forEach((o, i) => (b[4 + i] = Number(o)));
  b.writeUInt16BE(sport, 8);
  b.writeUInt16BE(dport, 10);
  return b;
}
const tlv = (type: number, value: Buffer): Buffer => Buffer.concat([Buffer.from([type, value.length >> 8, value.length & 0xff]), value]);
function withCrc(header: Buffer, corrupt: number): Buffer {
  const crc = crc32c(header);
  const out = Buffer.from(header);
  out.writeUInt32BE((crc ^ corrupt) >>> 0, out.length - 4);
  return out;
}

/** An HTTP backend answering with the X-Forwarded-For it received. */
async function xffBackend(): Promise<Backend> {
  const b = await startBackend({ respond: (req) => ({ status: 200, body: `xff=${String(req.headers['x-forwarded-for'])}` }) });
  backends.push(b);
  return b;
}

/** Switchyard with an accept_proxy HTTP listener in front of `servers`. */
async function startAcceptProxy(servers: Backend[], extra: Record<string, unknown> = {}, route: Record<string, unknown> = {}): Promise<Switchyard> {
  const port = await freePort();
  sy = await startSwitchyard({
    listen: [{ host: '127.0.0.1', port, accept_proxy: true, proxy_timeout: '700ms' }],
    trusted_proxies: ['127.0.0.1'],
    upstreams: { app: { balance: 'source', servers: servers.map((b) => ({ address: b.address })) } },
    routes: [{ match: { path: '/' }, upstream: 'app', ...route }],
    ...extra,
  });
  await waitForStatus(sy.adminPort, 'workers ready', (s) => workersReady(s, (extra.workers as number | undefined) ?? 2));
  return sy;
}

const statusOf = (data: Buffer): number | undefined => {
  const m = /^HTTP\/1\.1 (\d{3})/.exec(data.toString('latin1'));
  return m ? Number(m[1]) : undefined;
};
const bodyOf = (data: Buffer): string => data.toString('latin1').split('\r\n\r\n').slice(1).join('\r\n\r\n');

describe('PROXY protocol received (accept_proxy)', () => {
  for (const version of ['v1', 'v2'] as const) {
    test(`behind HAProxy send-proxy${version === 'v2' ? '-v2' : ''}: the client HAProxy saw is X-Forwarded-For`, { timeout: 30_000 }, () =>
      diagnosed(async () => {
        const backend = await xffBackend();
        await startAcceptProxy([backend]);
        const haproxy = await startHaproxySender(await freePort(), sy!.port, version);
        peers.push(haproxy);
        for (const client of ['127.0.0.5', '127.0.0.6']) {
          const r = await tcpExchange(haproxy.port, GET, { localAddress: client });
          assert.equal(statusOf(r.data), 200, r.data.toString());
          assert.equal(bodyOf(r.data), `xff=${client}`);
        }
        // Without HAProxy, straight from a trusted address but with no header: refused.
        const direct = await tcpExchange(sy!.port, GET);
        assert.equal(direct.data.length, 0, 'a connection without a PROXY header was served');
      }),
    );
  }

  test('the reported client drives source hashing, rate-limit keys and the access log; keep-alive after one header', { timeout: 30_000 }, () =>
    diagnosed(async () => {
      const a = await xffBackend();
      const b = await xffBackend();
      await startAcceptProxy([a, b], { logging: { level: 'info', access: true } }, { rate_limit: { rate: '1/m', burst: 2, key: 'client-ip' } });
      const seenBy = new Map<string, string>();
      for (let i = 1; i <= 12; i++) {
        const client = `198.51.100.${i}`;
        // Two requests on one connection behind one header, then a second connection for the same client.
        const header = Buffer.from(`PROXY TCP4 ${client} 127.0.0.1 ${40000 + i} ${sy!.port}\r\n`);
        const keepAlive = 'GET /who HTTP/1.1\r\nHost: test\r\n\r\n';
        const first = await tcpExchange(sy!.port, [header, keepAlive, GET]);
        const text = first.data.toString('latin1');
        assert.equal((text.match(/HTTP\/1\.1 200/g) ?? []).length, 2, `client ${client}: ${text}`);
        assert.equal((text.match(new RegExp(`xff=${client.replace(/\./g, '\\.')}`, 'g')) ?? []).length, 2);
        // The rate limit (burst 2) is per reported client: a third request from it is refused...
        const third = await tcpExchange(sy!.port, [Buffer.from(`PROXY TCP4 ${client} 127.0.0.1 ${50000 + i} ${sy!.port}\r\n`), GET]);
        assert.equal(statusOf(third.data), 429, `third request of ${client}`);
        seenBy.set(client, a.requests.some((r) => r.headers['x-forwarded-for'] === client) ? 'a' : 'b');
        // ...and the same client was always on the same server.
        const servers = [a, b].filter((s) => s.requests.some((r) => r.headers['x-forwarded-for'] === client));
        assert.equal(servers.length, 1, `client ${client} was spread over servers`);
      }
      // Hashing the real peer (127.0.0.1) would put everyone on one server.
      assert.deepEqual(new Set(seenBy.values()), new Set(['a', 'b']), 'source hashing ignored the PROXY client address');
      await sleep(300);
      assert.match(sy!.output(), /"client":"198\.51\.100\.7"[^\n]*"msg":"access"/, 'access log without the reported client');
    }),
  );

  test('LOCAL and UNKNOWN headers keep the real peer; a header split over many reads is awaited', { timeout: 30_000 }, () =>
    diagnosed(async () => {
      const backend = await xffBackend();
      await startAcceptProxy([backend]);
      const cases: Array<[string, Buffer[]]> = [
        ['v2 LOCAL', [v2(0x20, 0x00, Buffer.alloc(0))]],
        ['v1 UNKNOWN', [Buffer.from('PROXY UNKNOWN\r\n')]],
        ['v1 in 4 pieces', [Buffer.from('PROX'), Buffer.from('Y TCP4 203.0.113'), Buffer.from('.9 127.0.0.1 5 80\r'), Buffer.from('\n')]],
      ];
      for (const [name, pieces] of cases) {
        const r = await slowSend(sy!.port, [...pieces, Buffer.from(GET)], 30);
        assert.equal(statusOf(r.data), 200, `${name}: ${r.data.toString()}`);
        assert.equal(bodyOf(r.data), name === 'v1 in 4 pieces' ? 'xff=203.0.113.9' : 'xff=127.0.0.1', name);
      }
    }),
  );

  test('every malformed header closes the connection; nothing reaches the server', { timeout: 60_000 }, () =>
    diagnosed(async () => {
      const backend = await xffBackend();
      await startAcceptProxy([backend], { workers: 1 });
      const good = inet('192.0.2.1', '127.0.0.1', 1000, 80);
      const cases: Array<[string, Buffer]> = [
        ['wrong signature', Buffer.concat([Buffer.from('0d0a0d0a000d0a515549540b', 'hex'), Buffer.from([0x21, 0x11, 0, 12]), good])],
        ['plain HTTP, no header', Buffer.alloc(0)],
        ['bad version', v2(0x31, 0x11, good)],
        ['bad command', v2(0x2f, 0x11, good)],
        ['bad family', v2(0x21, 0x51, good)],
        ['datagram transport', v2(0x21, 0x12, good)],
        ['length overflow', v2(0x21, 0x11, good, 0xffff)],
        ['length shorter than the addresses', v2(0x21, 0x11, good.subarray(0, 8))],
        ['TLV overrunning the header', v2(0x21, 0x11, Buffer.concat([good, Buffer.from([0x02, 0x00, 0x40]), Buffer.from('host')]))],
        ['TLV truncated', v2(0x21, 0x11, Buffer.concat([good, Buffer.from([0x04, 0x00])]))],
        ['bad CRC32C', withCrc(v2(0x21, 0x11, Buffer.concat([good, tlv(0x03, Buffer.alloc(4))])), 0x1)],
        ['v1 too long', Buffer.from(`PROXY TCP4 ${'1'.repeat(110)}\r\n`)],
        ['v1 bad port', Buffer.from('PROXY TCP4 192.0.2.1 127.0.0.1 65536 80\r\n')],
        ['v1 port with a leading zero', Buffer.from('PROXY TCP4 192.0.2.1 127.0.0.1 01 80\r\n')],
        ['v1 bad address', Buffer.from('PROXY TCP4 192.0.2.300 127.0.0.1 1 80\r\n')],
        ['v1 IPv6 address under TCP4', Buffer.from('PROXY TCP4 ::1 127.0.0.1 1 80\r\n')],
        ['v1 LF only', Buffer.from('PROXY TCP4 192.0.2.1 127.0.0.1 1 80\n')],
        ['v1 bad protocol', Buffer.from('PROXY SCTP 192.0.2.1 127.0.0.1 1 80\r\n')],
      ];
      for (const [name, header] of cases) {
        const r = await tcpExchange(sy!.port, [header, GET], { timeoutMs: 5000 });
        assert.equal(r.data.length, 0, `${name}: answered ${JSON.stringify(r.data.toString().slice(0, 80))}`);
        assert.notEqual(r.error, 'test timeout', `${name}: connection left open`);
      }
      // A header cut short by the client's FIN.
      const truncated = await tcpExchange(sy!.port, v2(0x21, 0x11, good).subarray(0, 20), { timeoutMs: 5000 });
      assert.equal(truncated.data.length, 0);
      assert.ok(truncated.ms < 600, `a truncated header was held ${truncated.ms} ms after the client's FIN`);
      assert.equal(backend.requests.length, 0, 'a request reached the server');
      assert.equal(backend.connections.length, 0, 'a connection reached the server');
      // The worker survived all of it and still serves a good header.
      const ok = await tcpExchange(sy!.port, [v2(0x21, 0x11, good), GET]);
      assert.equal(bodyOf(ok.data), 'xff=192.0.2.1');
      assert.match(sy!.output(), /PROXY header refused/);
    }),
  );

  test('an untrusted sender is closed at once, whatever it sends', { timeout: 30_000 }, () =>
    diagnosed(async () => {
      const backend = await xffBackend();
      await startAcceptProxy([backend]);
      for (const payload of [Buffer.from('PROXY TCP4 10.0.0.1 127.0.0.1 1 80\r\n'), v2(0x21, 0x11, inet('10.0.0.1', '127.0.0.1', 1, 80)), Buffer.alloc(0)]) {
        // 127.0.0.3 is not in trusted_proxies (127.0.0.1 is).
        const r = await tcpExchange(sy!.port, [payload, GET], { localAddress: '127.0.0.3', timeoutMs: 5000 });
        assert.equal(r.data.length, 0);
        assert.ok(r.ms < 1000, `held ${r.ms} ms`);
      }
      assert.equal(backend.connections.length, 0);
    }),
  );

  test('slowloris: a header not complete within proxy_timeout is closed at the deadline', { timeout: 30_000 }, () =>
    diagnosed(async () => {
      const backend = await xffBackend();
      await startAcceptProxy([backend]);
      const line = Buffer.from('PROXY TCP4 192.0.2.1 127.0.0.1 1000 80\r\n');
      // One byte every 100 ms: 4 s for the line, the deadline is 700 ms.
      const r = await slowSend(sy!.port, [...line].map((b) => Buffer.from([b])), 100, 6000);
      assert.equal(r.data.length, 0);
      assert.ok(r.ms >= 600 && r.ms < 2000, `closed after ${r.ms} ms (proxy_timeout 700ms)`);
      // Silence after connecting is the same.
      const silent = await slowSend(sy!.port, [], 0, 6000);
      assert.ok(silent.ms >= 600 && silent.ms < 2000, `a silent connection closed after ${silent.ms} ms`);
      assert.equal(backend.connections.length, 0);
    }),
  );
});

describe('PROXY protocol sent (proxy_protocol)', () => {
  for (const version of ['v1', 'v2'] as const) {
    test(`${version} to a tcp server: exactly one header naming the client, then the client's bytes`, { timeout: 30_000 }, () =>
      diagnosed(async () => {
        const server = await startTcpBackend('S');
        tcpBackends.push(server);
        const port = await freePort();
        sy = await startSwitchyard({
          listen: [{ host: '127.0.0.1', port, mode: 'tcp', upstream: 'db' }],
          upstreams: { db: { proxy_protocol: version, servers: [{ address: server.address }] } },
          routes: [{ match: { path: '/' }, upstream: 'db' }],
        });
        await sleep(200);
        server.received.length = 0;
        const socket = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.9' });
        await new Promise((resolve) => socket.once('connect', resolve));
        const clientPort = socket.localPort!;
        socket.end('payload bytes');
        await new Promise((resolve) => socket.once('close', resolve).resume());
        const expected =
          version === 'v1'
            ? Buffer.from(`PROXY TCP4 127.0.0.9 127.0.0.1 ${clientPort} ${port}\r\n`)
            : v2(0x21, 0x11, inet('127.0.0.9', '127.0.0.1', clientPort, port));
        assert.deepEqual(server.received, [Buffer.concat([expected, Buffer.from('payload bytes')])]);
      }),
    );
  }

  test('tcp listener with accept_proxy and proxy_protocol passes the original client on', { timeout: 30_000 }, () =>
    diagnosed(async () => {
      const server = await startTcpBackend('S');
      tcpBackends.push(server);
      const port = await freePort();
      sy = await startSwitchyard({
        listen: [{ host: '127.0.0.1', port, mode: 'tcp', upstream: 'db', accept_proxy: true }],
        trusted_proxies: ['127.0.0.0/8'],
        upstreams: { db: { proxy_protocol: 'v1', servers: [{ address: server.address }] } },
        routes: [{ match: { path: '/' }, upstream: 'db' }],
      });
      await sleep(200);
      server.received.length = 0;
      const r = await tcpExchange(port, [v2(0x21, 0x11, inet('203.0.113.77', '192.0.2.1', 61000, 5432)), 'SELECT 1']);
      assert.equal(r.data.toString(), 'PROXY TCP4 203.0.113.77 192.0.2.1 61000 5432\r\nSELECT 1\n[S]');
      const bad = await tcpExchange(port, [Buffer.from('PROXY TCP4 203.0.113.77 192.0.2.1 61000\r\n'), 'SELECT 1']);
      assert.equal(bad.data.length, 0);
      assert.equal(server.received.length, 1, 'the malformed header opened a server connection');
    }),
  );

  test('HTTP upstream behind nginx proxy_protocol: each client is named, pooled connections are never shared between clients, health checks pass', { timeout: 60_000 }, () =>
    diagnosed(async () => {
      for (const version of ['v1', 'v2'] as const) {
        const nginx = await startNginxReceiver(await freePort());
        peers.push(nginx);
        const port = await freePort(new Set([nginx.port]));
        sy = await startSwitchyard({
          workers: 1,
          listen: [{ host: '127.0.0.1', port }],
          upstreams: {
            web: { proxy_protocol: version, health: { path: '/', interval: '200ms', timeout: '150ms', fall: 1 }, servers: [{ address: `127.0.0.1:${nginx.port}` }] },
          },
          routes: [{ match: { path: '/' }, upstream: 'web' }],
        });
        // Keep-alive clients from two addresses, interleaved: pooled upstream connections would mix them up.
        const clients = ['127.0.0.21', '127.0.0.22'].map((addr) => keepAliveClient(port, addr));
        for (let round = 0; round < 4; round++) {
          for (const c of clients) {
            const body = await c.get('/');
            assert.equal(body, `proxy=${c.address}:${c.port()} remote=127.0.0.1\n`, `${version} round ${round}`);
          }
        }
        for (const c of clients) c.close();
        await sleep(800);
        const s = await getStatus(sy.adminPort);
        assert.equal(s.upstreams.web!.servers[0]!.healthy, true, `${version}: health checks failed against nginx: ${nginx.log().slice(-500)}`);
        assert.doesNotMatch(nginx.log(), /broken header/, `${version}: nginx refused a header`);
        await sy.stop();
        sy = undefined;
      }
    }),
  );
});

/** Sends `pieces` with `gapMs` between them, then waits for the close; never half-closes. */
function slowSend(port: number, pieces: Buffer[], gapMs: number, timeoutMs = 5000): Promise<{ data: Buffer; ms: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), ms: Date.now() - started });
    });
    const writeNext = (i: number): void => {
      if (socket.destroyed || i >= pieces.length) return;
      socket.write(pieces[i]!);
      setTimeout(() => writeNext(i + 1), gapMs);
    };
    socket.once('connect', () => writeNext(0));
  });
}

/** An HTTP/1.1 keep-alive client bound to a local address, one request at a time. */
function keepAliveClient(port: number, address: string): { address: string; port(): number; get(path: string): Promise<string>; close(): void } {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress: address });
  let buffered = '';
  let wake: (() => void) | undefined;
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => {
    buffered += d;
    wake?.();
  });
  return {
    address,
    port: () => socket.localPort!,
    async get(path) {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: test\r\n\r\n`);
      for (;;) {
        const head = /^HTTP\/1\.1 \d{3}[^]*?\r\n\r\n/.exec(buffered)?.[0];
        const m = head === undefined ? null : /\r\ncontent-length: *(\d+)\r\n/i.exec(head);
        if (head !== undefined && m) {
          const start = head.length;
          const length = Number(m[1]);
          if (buffered.length >= start + length) {
            const body = buffered.slice(start, start + length);
            buffered = buffered.slice(start + length);
            return body;
          }
        }
        if (socket.destroyed) throw new Error(`connection closed: ${buffered}`);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 200);
        });
      }
    },
    close: () => socket.destroy(),
  };
}
