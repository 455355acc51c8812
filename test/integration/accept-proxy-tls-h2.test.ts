// accept_proxy beyond plain HTTP/1.1 (issues 12 and 13):
// - on a TLS listener the PROXY header comes before the ClientHello (an L4
//   balancer passing TLS through, HAProxy `mode tcp` + send-proxy here): the
//   client it names is X-Forwarded-For over HTTP/1.1 and HTTP/2, SNI still
//   picks the certificate, and every way to get around it is closed;
// - HTTP/2 streams (h2c and h2 over TLS) behind a PROXY header use the
//   reported client for X-Forwarded-For, the access log, rate limits and
//   source hashing, as HTTP/1.1 does.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http2, { type ClientHttp2Session } from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { after, afterEach, before, describe, test } from 'node:test';
import { waitForStatus, workersReady } from '../helpers/admin-status.js';
import { startBackend, type Backend } from '../helpers/backend.js';
import { Pki, type Ca } from '../helpers/certs.js';
import { h2Request } from '../helpers/h2-client.js';
import { startHaproxySender, type Peer } from '../helpers/peers.js';
import { sleep } from '../helpers/process.js';
import { freePort, startSwitchyard, withOutput, type Switchyard } from '../helpers/switchyard.js';

const run = promisify(execFile);

let pki: Pki;
let ca: Ca;
let sy: Switchyard | undefined;
let backends: Backend[] = [];
let peers: Peer[] = [];
let tlsPort: number;
let h2cPort: number;

before(() => {
  pki = new Pki();
  ca = pki.ca('accept-proxy-ca');
  pki.issue(ca, 'a', { subject: '/CN=a.test', sans: ['DNS:a.test'] });
  pki.issue(ca, 'b', { subject: '/CN=b.test', sans: ['DNS:b.test'] });
});
afterEach(async () => {
  await sy?.stop();
  sy = undefined;
  await Promise.all([...backends.map((b) => b.close()), ...peers.map((p) => p.stop())]);
  backends = [];
  peers = [];
});
after(() => pki?.cleanup());

/** Fails with what the Switchyard of the moment printed too (tests start their own, into `sy`). */
const diagnosed = (fn: () => Promise<void>): Promise<void> => withOutput({ output: () => sy?.output() ?? '' }, fn);

/** An HTTP backend answering with the X-Forwarded-For it received. */
async function xffBackend(): Promise<Backend> {
  const b = await startBackend({ respond: (req) => ({ status: 200, body: `xff=${String(req.headers['x-forwarded-for'])}` }) });
  backends.push(b);
  return b;
}

/** A TLS listener (a.test default, b.test by SNI) and an h2c listener, both with http2 and accept_proxy. */
async function start(servers: Backend[], route: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Promise<void> {
  tlsPort = await freePort();
  h2cPort = await freePort(new Set([tlsPort]));
  const certificates = ['a', 'b'].map((n) => ({ cert: pki.file(`${n}.pem`), key: pki.file(`${n}.key`) }));
  sy = await startSwitchyard(
    {
      workers: 1,
      listen: [
        { host: '127.0.0.1', port: tlsPort, http2: true, accept_proxy: true, proxy_timeout: '700ms', tls: { certificates } },
        { host: '127.0.0.1', port: h2cPort, http2: true, accept_proxy: true, proxy_timeout: '700ms' },
      ],
      trusted_proxies: ['127.0.0.1'],
      upstreams: { app: { balance: 'source', servers: servers.map((b) => ({ address: b.address })) } },
      routes: [{ match: { path: '/' }, upstream: 'app', ...route }],
      ...extra,
    },
  );
  await waitForStatus(sy.adminPort, 'workers ready', (s) => workersReady(s, 1));
}

const v1 = (client: string, port = 40000): Buffer => Buffer.from(`PROXY TCP4 ${client} 127.0.0.1 ${port} 443\r\n`);

/** A TCP connection to `port` that has sent `prelude` (a PROXY header) and nothing else yet. */
function connectWith(port: number, prelude: Buffer, localAddress?: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) }, () => {
      if (prelude.length > 0) socket.write(prelude);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** TLS over `socket` (after its prelude): the certificate's CN, or the error that ended the handshake. */
function tlsOver(socket: net.Socket, servername: string, alpn: string[] = ['http/1.1']): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const t = tls.connect({ socket, servername, ca: ca.certPem, ALPNProtocols: alpn });
    t.once('secureConnect', () => resolve(t));
    t.once('error', reject);
    t.once('close', () => reject(new Error('closed during the handshake')));
  });
}

/** One HTTP/1.1 request (Connection: close) on an open stream: the raw response. */
function h1Over(socket: net.Socket, path = '/who'): Promise<string> {
  return new Promise((resolve) => {
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (data += d));
    socket.on('close', () => resolve(data));
    socket.on('error', () => {});
    socket.write(`GET ${path} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n`);
  });
}

/** An HTTP/2 session over a connection that has sent its PROXY header: h2c, or h2 over TLS with SNI. */
async function h2Behind(kind: 'h2c' | 'tls', header: Buffer): Promise<ClientHttp2Session> {
  const raw = await connectWith(kind === 'tls' ? tlsPort : h2cPort, header);
  const transport = kind === 'tls' ? await tlsOver(raw, 'a.test', ['h2']) : raw;
  const session = http2.connect(kind === 'tls' ? 'https://a.test' : 'http://a.test', { createConnection: () => transport });
  session.on('error', () => {});
  return session;
}

const bodyOf = (response: string): string => response.split('\r\n\r\n').slice(1).join('\r\n\r\n');

describe('accept_proxy on a TLS listener: the PROXY header precedes the ClientHello', () => {
  for (const version of ['v1', 'v2'] as const) {
    test(`behind HAProxy mode tcp send-proxy${version === 'v2' ? '-v2' : ''} passing TLS through: curl over HTTP/1.1 and HTTP/2 is seen as its own address`, { timeout: 60_000 }, () =>
      diagnosed(async () => {
        await start([await xffBackend()]);
        const haproxy = await startHaproxySender(await freePort(), tlsPort, version);
        peers.push(haproxy);
        for (const [client, httpVersion] of [['127.0.0.5', '--http1.1'], ['127.0.0.6', '--http2']] as const) {
          const { stdout } = await run('curl', ['-sS', httpVersion, '--interface', client, '--cacert', ca.cert, '--resolve', `b.test:${haproxy.port}:127.0.0.1`, '-w', '\n%{http_version}', `https://b.test:${haproxy.port}/who`]);
          assert.equal(stdout, `xff=${client}\n${httpVersion === '--http2' ? '2' : '1.1'}`, `${client} ${httpVersion}`);
        }
      }),
    );
  }

  test('SNI after the header picks the certificate; keep-alive and h2 see the reported client', { timeout: 30_000 }, () =>
    diagnosed(async () => {
      await start([await xffBackend()]);
      for (const name of ['a.test', 'b.test']) {
        const t = await tlsOver(await connectWith(tlsPort, v1('203.0.113.7')), name);
        assert.match(t.getPeerX509Certificate()!.subject, new RegExp(`CN=${name.replace('.', '\\.')}`));
        assert.equal(bodyOf(await h1Over(t)), 'xff=203.0.113.7');
      }
      const session = await h2Behind('tls', v1('203.0.113.8'));
      const r = await h2Request(session, { ':path': '/who', ':authority': 'a.test' });
      session.close();
      assert.equal(r.body.toString(), 'xff=203.0.113.8');
    }),
  );

  test('every way around the header is closed before TLS, and nothing reaches the server', { timeout: 60_000 }, () =>
    diagnosed(async () => {
      const backend = await xffBackend();
      await start([backend]);
      const refused = async (name: string, prelude: Buffer, localAddress?: string): Promise<void> => {
        const started = Date.now();
        const raw = await connectWith(tlsPort, prelude, localAddress);
        await assert.rejects(tlsOver(raw, 'a.test'), `${name}: the TLS handshake completed`);
        assert.ok(Date.now() - started < 2000, `${name}: held ${Date.now() - started} ms`);
      };
      // A ClientHello straight from a trusted peer: its first bytes are not a PROXY header.
      await refused('no header', Buffer.alloc(0));
      // A valid header from a peer outside trusted_proxies (127.0.0.3).
      await refused('untrusted sender', v1('192.0.2.1'), '127.0.0.3');
      await refused('malformed v1', Buffer.from('PROXY TCP4 192.0.2.300 127.0.0.1 1 443\r\n'));
      await refused('v1 with LF only', Buffer.from('PROXY TCP4 192.0.2.1 127.0.0.1 1 443\n'));
      // Two headers: the second is not a ClientHello, and the handshake fails.
      await refused('a second header', Buffer.concat([v1('192.0.2.1'), v1('192.0.2.2')]));
      // A header, then plain HTTP instead of TLS: never served in the clear.
      const raw = await connectWith(tlsPort, Buffer.concat([v1('192.0.2.1'), Buffer.from('GET /who HTTP/1.1\r\nHost: a.test\r\n\r\n')]));
      const clear = await new Promise<string>((resolve) => {
        let data = '';
        raw.on('data', (d: Buffer) => (data += d.toString('latin1')));
        raw.on('close', () => resolve(data));
        raw.on('error', () => {});
      });
      assert.doesNotMatch(clear, /HTTP\/1\.1/);
      // Slowloris: the header one byte every 100 ms is closed at proxy_timeout (700 ms).
      const slow = await connectWith(tlsPort, Buffer.alloc(0));
      const started = Date.now();
      const closed = new Promise<number>((resolve) => slow.on('close', () => resolve(Date.now() - started)));
      slow.on('error', () => {});
      const line = v1('192.0.2.1');
      for (let i = 0; i < line.length && !slow.destroyed; i++) {
        slow.write(line.subarray(i, i + 1));
        await sleep(100);
      }
      const ms = await closed;
      assert.ok(ms >= 600 && ms < 2000, `a slow header was closed after ${ms} ms`);
      assert.equal(backend.connections.length, 0, 'a connection reached the server');
      // The worker is still up and serves a good header.
      const t = await tlsOver(await connectWith(tlsPort, v1('192.0.2.9')), 'a.test');
      assert.equal(bodyOf(await h1Over(t)), 'xff=192.0.2.9');
      assert.match(sy!.output(), /PROXY header refused/);
    }),
  );
});

describe('HTTP/2 streams behind a PROXY header use the reported client', () => {
  test('X-Forwarded-For, source hashing, rate-limit keys and the access log, over h2c and h2 over TLS', { timeout: 60_000 }, () =>
    diagnosed(async () => {
      const a = await xffBackend();
      const b = await xffBackend();
      await start([a, b], { rate_limit: { rate: '1/m', burst: 2, key: 'client-ip' } }, { logging: { level: 'info', access: true } });
      const servedBy = new Set<Backend>();
      let n = 0;
      for (const kind of ['h2c', 'tls'] as const) {
        for (let i = 1; i <= 8; i++) {
          const client = `198.51.100.${kind === 'tls' ? 100 + i : i}`;
          // Two streams on one session behind one header...
          const session = await h2Behind(kind, v1(client, 40000 + n++));
          const first = await Promise.all([1, 2].map(() => h2Request(session, { ':path': '/who', ':authority': 'a.test' })));
          session.close();
          for (const r of first) {
            assert.equal(r.status, 200, `${kind} ${client}`);
            assert.equal(r.body.toString(), `xff=${client}`, `${kind} ${client}`);
          }
          // ...then the third request of the same client, on a new session: over its burst of 2.
          const again = await h2Behind(kind, v1(client, 40000 + n++));
          const third = await h2Request(again, { ':path': '/who', ':authority': 'a.test' });
          again.close();
          assert.equal(third.status, 429, `${kind} ${client}: third request`);
          const servers = [a, b].filter((s) => s.requests.some((r) => r.headers['x-forwarded-for'] === client));
          assert.equal(servers.length, 1, `${kind} ${client} was spread over servers`);
          servedBy.add(servers[0]!);
        }
      }
      // Hashing the real peer (127.0.0.1) would put every client on one server.
      assert.equal(servedBy.size, 2, 'source hashing ignored the PROXY client address');
      await sleep(300);
      assert.match(sy!.output(), /"client":"198\.51\.100\.3"[^\n]*"msg":"access"/, 'h2c access log without the reported client');
      assert.match(sy!.output(), /"client":"198\.51\.100\.105"[^\n]*"msg":"access"/, 'h2 over TLS access log without the reported client');
    }),
  );
});

describe('the access log says how the client spoke', () => {
  test('proto (HTTP/1.0, HTTP/1.1, HTTP/2) and tls on each line', { timeout: 30_000 }, () =>
    diagnosed(async () => {
      await start([await xffBackend()], {}, { logging: { level: 'info', access: true } });
      const t = await tlsOver(await connectWith(tlsPort, v1('203.0.113.21')), 'a.test');
      assert.equal(bodyOf(await h1Over(t)), 'xff=203.0.113.21');
      for (const [kind, client] of [['tls', '203.0.113.22'], ['h2c', '203.0.113.23']] as const) {
        const session = await h2Behind(kind, v1(client));
        assert.equal((await h2Request(session, { ':path': '/who', ':authority': 'a.test' })).status, 200);
        session.close();
      }
      // HTTP/1.0 on the h2c listener (no preface: the HTTP/1.x path).
      const plain = await connectWith(h2cPort, v1('203.0.113.24'));
      plain.write('GET /who HTTP/1.0\r\nHost: a.test\r\n\r\n');
      await new Promise((resolve) => plain.on('close', resolve).resume());
      await sleep(300);
      const line = (client: string): string => sy!.output().split('\n').find((l) => l.includes(`"client":"${client}"`) && l.includes('"msg":"access"')) ?? `no access line for ${client}`;
      const spoke = (client: string): unknown => {
        const entry = JSON.parse(line(client)) as { proto: unknown; tls: unknown };
        return [entry.proto, entry.tls];
      };
      assert.deepEqual(spoke('203.0.113.21'), ['HTTP/1.1', true]);
      assert.deepEqual(spoke('203.0.113.22'), ['HTTP/2', true]);
      assert.deepEqual(spoke('203.0.113.23'), ['HTTP/2', false]);
      assert.deepEqual(spoke('203.0.113.24'), ['HTTP/1.0', false]);
    }),
  );
});
