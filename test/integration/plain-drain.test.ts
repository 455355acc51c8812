// A reload must not reset a connection the old worker accepted on a plain
// listener while it was still reading what comes before the request: a PROXY
// header (accept_proxy, on HTTP and tcp listeners) or the first bytes that
// tell h2c from HTTP/1.1 (http2 on a plain listener). Before, such a
// connection belonged to no front end yet: the worker did not wait for it and
// exited under it, or destroyed it when the preface came. The test holds the
// state in place as tls-drain.test.ts does: connections the (only) worker has
// accepted with nothing sent; a reload; the old worker seen closing its
// listening sockets (from /proc); only then the preamble and a request, which
// must be answered, and on HTTP with Connection: close.
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import { after, before, test } from 'node:test';
import { admin } from '../helpers/admin-status.js';
import { acceptedBy, stoppedListening } from '../helpers/proc-sockets.js';
import { freePort, startSwitchyard, type Switchyard } from '../helpers/switchyard.js';
import { startTcpBackend, type TcpBackend } from '../helpers/tcp.js';

let upstream: http.Server;
let echo: TcpBackend;
let sy: Switchyard;
const ports = { proxyH1: 0, h2c: 0, proxyH2c: 0, proxyTcp: 0 };

before(async () => {
  upstream = http.createServer((_req, res) => res.end('answered'));
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const port = (upstream.address() as { port: number }).port;
  echo = await startTcpBackend('echo');
  const taken = new Set([port, echo.port]);
  for (const k of Object.keys(ports) as Array<keyof typeof ports>) taken.add((ports[k] = await freePort(taken)));
  const host = '127.0.0.1';
  sy = await startSwitchyard(
    {
      workers: 1,
      trusted_proxies: ['127.0.0.1/32'],
      listen: [
        { host, port: ports.proxyH1, accept_proxy: true },
        { host, port: ports.h2c, http2: true },
        { host, port: ports.proxyH2c, http2: true, accept_proxy: true },
        { host, port: ports.proxyTcp, mode: 'tcp', upstream: 'echo', accept_proxy: true },
      ],
      upstreams: { app: { servers: [{ address: `127.0.0.1:${port}` }], retries: 0 }, echo: { servers: [{ address: echo.address }] } },
      routes: [{ match: { host: '*', path: '/' }, upstream: 'app' }],
    },
  );
});

after(async () => {
  await sy?.stop();
  upstream?.close();
  await echo?.close();
});

const PROXY_HEADER = 'PROXY TCP4 192.0.2.7 127.0.0.1 40000 80\r\n';

/** Sends `bytes`, half-closes, and reads to the end (an error, a reset, fails). */
function exchange(raw: net.Socket, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    raw.setEncoding('utf8');
    raw.on('data', (d: string) => (data += d));
    raw.on('end', () => resolve(data));
    raw.on('error', reject);
    raw.end(bytes);
  });
}

/** One h2c request over `raw` (after `prelude`), and whether the server then sent GOAWAY. */
async function h2cGet(raw: net.Socket, prelude: string): Promise<{ status: number; body: string; goaway: boolean }> {
  if (prelude !== '') raw.write(prelude);
  const session = http2.connect('http://d.test', { createConnection: () => raw });
  let goaway = false;
  session.on('goaway', () => (goaway = true));
  try {
    return await new Promise((resolve, reject) => {
      session.on('error', reject);
      const stream = session.request({ ':path': '/' });
      let body = '';
      let status = 0;
      stream.setEncoding('utf8');
      stream.on('response', (h) => (status = Number(h[':status'])));
      stream.on('data', (d: string) => (body += d));
      stream.on('end', () => setImmediate(() => resolve({ status, body, goaway })));
      stream.on('error', reject);
    });
  } finally {
    session.close();
  }
}

test('connections accepted before a reload whose PROXY header or h2c preface comes after the old worker stopped accepting are answered', async () => {
  const [oldPid] = sy.workerPids();
  assert.ok(oldPid !== undefined);
  const raws = {
    proxyH1: await acceptedBy(oldPid, ports.proxyH1),
    h2c: await acceptedBy(oldPid, ports.h2c),
    h2cH1: await acceptedBy(oldPid, ports.h2c),
    proxyH2c: await acceptedBy(oldPid, ports.proxyH2c),
    proxyTcp: await acceptedBy(oldPid, ports.proxyTcp),
  };

  const reload = await admin(sy.adminPort, '/reload', 'POST');
  assert.equal(reload.status, 200, reload.body);
  for (const port of Object.values(ports)) await stoppedListening(oldPid, port);

  const request = 'GET / HTTP/1.1\r\nHost: d.test\r\n\r\n';
  const outcomes = await Promise.allSettled([
    exchange(raws.proxyH1, PROXY_HEADER + request),
    // An HTTP/1.1 request on the listener that sniffs for h2c.
    exchange(raws.h2cH1, request),
    h2cGet(raws.h2c, ''),
    h2cGet(raws.proxyH2c, PROXY_HEADER),
    exchange(raws.proxyTcp, `${PROXY_HEADER}ping`),
  ]);
  const [proxyH1, h2cH1, h2c, proxyH2c, proxyTcp] = outcomes.map((o) => (o.status === 'fulfilled' ? o.value : `failed: ${String(o.reason)}`));
  for (const [what, answer] of [['accept_proxy HTTP/1.1', proxyH1], ['HTTP/1.1 on an http2 listener', h2cH1]] as const) {
    assert.equal(typeof answer, 'string', what);
    assert.match(answer as string, /^HTTP\/1\.1 200 /, `${what}: ${answer as string}`);
    assert.match(answer as string, /\r\nconnection: close\r\n/i, `${what}: the draining worker closes the connection after the answer`);
    assert.match(answer as string, /answered$/, what);
  }
  for (const [what, answer] of [['h2c', h2c], ['accept_proxy h2c', proxyH2c]] as const) {
    assert.equal(typeof answer, 'object', `${what}: ${String(answer)}`);
    const a = answer as { status: number; body: string; goaway: boolean };
    assert.equal(a.status, 200, what);
    assert.equal(a.body, 'answered', what);
    assert.ok(a.goaway, `${what}: the draining worker sends GOAWAY`);
  }
  assert.equal(proxyTcp, 'ping\n[echo]', 'accept_proxy tcp: the session is relayed');
});
