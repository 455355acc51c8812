// Black-box framing tests of the HTTP data path: request smuggling and
// malformed messages must be answered 400 (never forwarded), and the valid
// framing cases (HEAD, 204/304, keep-alive, pipelining, 100-continue,
// absolute-form) must reach the backend intact. Raw sockets on both sides.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, beforeEach, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startBackend } from '../helpers/backend.js';
import type { Backend } from '../helpers/backend.js';
import { RawConnection, exchange } from '../helpers/raw-client.js';
import { startSwitchyard } from '../helpers/switchyard.js';
import type { Switchyard } from '../helpers/switchyard.js';

/** Upper bound for the "short body" of a generated error. */
const SHORT_BODY = 1024;
const H = 'Host: app.test\r\n';

let backend: Backend;
/** Answers every request with these bytes, then closes: responses the test backend would not write. */
let rawUpstream: net.Server;
let rawResponse = '';
let sy: Switchyard;

before(async () => {
  backend = await startBackend();
  rawUpstream = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', () => socket.end(rawResponse));
  });
  await new Promise<void>((resolve) => rawUpstream.listen(0, '127.0.0.1', resolve));
  const timeouts = { connect: '1s', response: '5s', idle: '10s' };
  sy = await startSwitchyard({
    upstreams: {
      app: { balance: 'round-robin', servers: [{ address: backend.address }], retries: 0, timeouts },
      raw: { servers: [{ address: `127.0.0.1:${(rawUpstream.address() as net.AddressInfo).port}` }], retries: 0, timeouts },
    },
    routes: [
      { match: { host: '*', path: '/' }, upstream: 'app' },
      { match: { host: '*', path: '/raw' }, upstream: 'raw' },
    ],
  });
});

after(async () => {
  await sy?.stop();
  await backend?.close();
  rawUpstream?.close();
});

beforeEach(() => {
  backend.reset();
  backend.respond = (req) => ({ status: 200, headers: [['content-type', 'text/plain']], body: `${req.method} ${req.url}` });
});

const seen = (): string[] => backend.requests.map((r) => `${r.method} ${r.url}`);

/**
 * A request the proxy must refuse before forwarding: the given status, a
 * request id, a short body, the connection closed, and nothing upstream.
 * A valid request goes first on the same connection, so the worker holds an
 * idle upstream connection: forwarding would be immediate, not racing a connect.
 */
async function expectRejected(bytes: string, statuses: number[] = [400]): Promise<void> {
  const conn = await RawConnection.open(sy.port);
  try {
    conn.write(`GET /warm-up HTTP/1.1\r\n${H}\r\n`);
    assert.equal((await conn.expectResponse()).status, 200, 'warm-up request');
    backend.reset();
    conn.write(bytes);
    const response = await conn.read({ timeoutMs: 3000 });
    assert.ok(response, 'expected an error response, got a close without one');
    assert.ok(statuses.includes(response.status), `expected ${statuses.join('/')}, got ${response.status} ${response.reason}`);
    assert.ok(response.header('x-request-id'), 'generated errors carry x-request-id');
    assert.ok(response.body.length <= SHORT_BODY, `error body is short (${response.body.length} bytes)`);
    assert.ok(await conn.waitClosed(2000), 'connection closed after the error');
  } finally {
    conn.destroy();
  }
  await sleep(100);
  assert.deepEqual(seen(), [], 'the backend received nothing');
}

/** expectRejected for each request; reports every one that was not, not just the first. */
async function expectAllRejected(requests: string[]): Promise<void> {
  const failures: string[] = [];
  for (const bytes of requests) {
    backend.reset();
    await expectRejected(bytes).catch((err: Error) => {
      const where = bytes.split('\r\n').find((l) => !/^(GET|POST) \/ HTTP|^Host:/.test(l));
      failures.push(`${JSON.stringify(where)}: ${err.message.split('\n')[0]} ${seen().join(',')}`);
    });
  }
  assert.deepEqual(failures, []);
}

test('a well-formed request is forwarded and answered (baseline)', async () => {
  const { response } = await exchange(sy.port, `GET /hello?x=1 HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
  assert.equal(response?.status, 200);
  assert.equal(response?.body.toString(), 'GET /hello?x=1');
  assert.deepEqual(seen(), ['GET /hello?x=1']);
});

test('Content-Length together with Transfer-Encoding is rejected (both orders)', async () => {
  await expectRejected(`POST / HTTP/1.1\r\n${H}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG`);
  await expectRejected(`POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n`);
});

test('duplicate Content-Length is rejected, differing or equal', async () => {
  await expectRejected(`POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`);
  await expectRejected(`POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello`);
});

test('non-numeric or signed Content-Length is rejected', async () => {
  await expectRejected(`POST / HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n`);
  await expectRejected(`POST / HTTP/1.1\r\n${H}Content-Length: +5\r\n\r\nhello`);
  await expectRejected(`POST / HTTP/1.1\r\n${H}Content-Length: 0x5\r\n\r\nhello`);
});

test('Transfer-Encoding other than plain chunked is rejected and never forwarded', async () => {
  const lines = ['Transfer-Encoding: gzip', 'Transfer-Encoding: chunked, identity', 'Transfer-Encoding: xchunked', 'Transfer-Encoding : chunked'];
  await expectAllRejected(lines.map((te) => `POST / HTTP/1.1\r\n${H}${te}\r\n\r\n0\r\n\r\n`));
});

test('an HTTP/1.0 request with Transfer-Encoding is faulty framing (RFC 9112 §6.1): 400 and closed, never forwarded', async () => {
  const smuggled = `GET /smuggled HTTP/1.1\r\n${H}\r\n`;
  await expectAllRejected([
    `POST / HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n${smuggled}`,
    // Content-Length does not make it any less faulty.
    `POST / HTTP/1.0\r\n${H}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    `GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
  ]);
  const { response } = await exchange(sy.port, `POST / HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`);
  assert.equal(response?.status, 400);
  assert.match(response.body.toString(), /\(http10-transfer-encoding\)/);
  assert.equal(response.header('connection'), 'close');
});

test('an HTTP/1.0 response with Transfer-Encoding is a malformed response: 502, its body never reaches the client', async () => {
  rawResponse = 'HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\nframing\r\n0\r\n\r\n';
  const { response } = await exchange(sy.port, `GET /raw HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
  assert.equal(response?.status, 502);
  assert.match(response.body.toString(), /\(upstream-bad-response\)/);
  assert.doesNotMatch(response.body.toString(), /framing/);
  // The same response without Transfer-Encoding is framed by the close, and relayed.
  rawResponse = 'HTTP/1.0 200 OK\r\n\r\nread until close';
  const plain = await exchange(sy.port, `GET /raw HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
  assert.equal(plain.response?.status, 200);
  assert.equal(plain.response.body.toString(), 'read until close');
});

test('malformed chunked bodies end the connection and never smuggle a second request', async () => {
  const smuggled = `GET /smuggled HTTP/1.1\r\n${H}\r\n`;
  const bodies: Record<string, string> = {
    'invalid chunk size': `ZZ\r\nhello\r\n0\r\n\r\n${smuggled}`,
    'chunk-extension garbage': `5;\x01\x02\r\nhello\r\n0\r\n\r\n${smuggled}`,
    'missing CRLF after chunk data': `5\r\nhelloXX0\r\n\r\n${smuggled}`,
    'chunk size overflow': `1${'0'.repeat(16)}5\r\nhello\r\n0\r\n\r\n${smuggled}`,
  };
  for (const [name, body] of Object.entries(bodies)) {
    backend.reset();
    const { response, closed } = await exchange(sy.port, `POST /upload HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${body}`, {
      timeoutMs: 3000,
      closeWaitMs: 2000,
    });
    // The head is valid, so the request may already be on its way upstream:
    // a 400 or a bare close are both fine, a success is not.
    if (response) {
      assert.equal(response.status, 400, `${name}: status`);
      assert.ok(response.header('x-request-id'), `${name}: x-request-id`);
    }
    assert.ok(closed, `${name}: connection closed`);
    await sleep(100);
    assert.ok(!seen().includes('GET /smuggled'), `${name}: smuggled request reached the backend: ${seen().join(', ')}`);
    for (const r of backend.requests) assert.equal(r.complete, false, `${name}: a broken body must not reach the backend as complete`);
  }
});

test('obs-fold header continuation is rejected', async () => {
  await expectRejected(`GET / HTTP/1.1\r\n${H}X-Folded: a\r\n  b\r\n\r\n`);
});

test('invalid header names and NUL/CR in values are rejected', async () => {
  const lines = ['X Space: a', 'X-At@: a', 'X-Paren(: a', 'X-Nul\x00: a', 'X-Value: a\x00b', 'X-Value: a\rb'];
  await expectAllRejected(lines.map((line) => `GET / HTTP/1.1\r\n${H}${line}\r\n\r\n`));
});

test('bare LF line endings are rejected', async () => {
  await expectRejected('GET / HTTP/1.1\nHost: app.test\n\n');
  await expectRejected('GET / HTTP/1.1\r\nHost: app.test\nX-After-Bare-LF: 1\r\n\r\n');
});

test('HTTP/1.1 without Host, or with two Host headers, is rejected', async () => {
  await expectRejected('GET / HTTP/1.1\r\nX-No-Host: 1\r\n\r\n');
  await expectRejected('GET / HTTP/1.1\r\nHost: app.test\r\nHost: other.test\r\n\r\n');
  await expectRejected('GET / HTTP/1.1\r\nHost: app.test\r\nHost: app.test\r\n\r\n');
});

test('HTTP/1.0 without Host is valid and forwarded', async () => {
  const { response } = await exchange(sy.port, 'GET /old HTTP/1.0\r\n\r\n');
  assert.equal(response?.status, 200);
  assert.deepEqual(seen(), ['GET /old']);
});

test('CONNECT is rejected with 400', async () => {
  await expectRejected('CONNECT backend.test:443 HTTP/1.1\r\nHost: backend.test:443\r\n\r\n');
});

test('absolute-form to another host is rejected and never reaches a backend', async () => {
  await expectRejected(`GET http://evil.example/ HTTP/1.1\r\n${H}\r\n`);
  await expectRejected(`GET http://evil.example/steal?x=1 HTTP/1.1\r\n${H}Connection: keep-alive\r\n\r\n`);
  assert.ok(!backend.rawText().includes('evil.example'), 'no byte of the request reached the backend');
});

test('absolute-form to the Host itself is forwarded in origin-form', async () => {
  const { response } = await exchange(sy.port, `GET http://app.test/x/y?q=1 HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
  assert.equal(response?.status, 200);
  assert.deepEqual(seen(), ['GET /x/y?q=1']);
  assert.equal(backend.requests[0]!.headers.host, 'app.test');
  assert.ok(!backend.rawText().includes('http://app.test'), 'request line is origin-form');
});

test('invalid HTTP versions get 400 or 505', async () => {
  await expectRejected(`GET / HTTP/2.0\r\n${H}\r\n`, [400, 505]);
  await expectRejected(`GET / HTTP/1.2\r\n${H}\r\n`, [400, 505]);
  await expectRejected(`GET / HTTP/3.7\r\n${H}\r\n`, [400, 505]);
});

test('a request hidden in a Content-Length body is body, not a second request', async () => {
  const hidden = `GET /smuggled HTTP/1.1\r\n${H}\r\n`;
  const conn = await RawConnection.open(sy.port);
  try {
    conn.write(`POST /form HTTP/1.1\r\n${H}Content-Length: ${hidden.length}\r\n\r\n${hidden}`);
    const res = await conn.expectResponse();
    assert.equal(res.status, 200);
    conn.write(`GET /after HTTP/1.1\r\n${H}\r\n`);
    assert.equal((await conn.expectResponse()).body.toString(), 'GET /after', 'connection still in sync');
    assert.deepEqual(seen(), ['POST /form', 'GET /after']);
    assert.equal(backend.requests[0]!.body.toString('latin1'), hidden);
  } finally {
    conn.destroy();
  }
});

test('pipelined requests are all forwarded and answered in order', async () => {
  backend.respond = (req) => ({ status: 200, body: `${req.method} ${req.url}`, delayMs: req.url === '/p1' ? 300 : 0 });
  const conn = await RawConnection.open(sy.port);
  try {
    conn.write(`GET /p1 HTTP/1.1\r\n${H}\r\nPOST /p2 HTTP/1.1\r\n${H}Content-Length: 4\r\n\r\nbodyGET /p3 HTTP/1.1\r\n${H}\r\n`);
    const bodies: string[] = [];
    for (let i = 0; i < 3; i++) bodies.push((await conn.expectResponse()).body.toString());
    assert.deepEqual(bodies, ['GET /p1', 'POST /p2', 'GET /p3']);
    assert.deepEqual(seen().sort(), ['GET /p1', 'GET /p3', 'POST /p2']);
    assert.equal(backend.requests.find((r) => r.url === '/p2')!.body.toString(), 'body');
  } finally {
    conn.destroy();
  }
});

test('keep-alive: several requests reuse one client connection', async () => {
  const conn = await RawConnection.open(sy.port);
  try {
    for (let i = 0; i < 5; i++) {
      conn.write(`GET /ka/${i} HTTP/1.1\r\n${H}\r\n`);
      const res = await conn.expectResponse();
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), `GET /ka/${i}`);
    }
    assert.equal(conn.closed, false);
  } finally {
    conn.destroy();
  }
});

test('upstream connections are kept alive and reused', async () => {
  const conn = await RawConnection.open(sy.port);
  try {
    for (let i = 0; i < 5; i++) {
      conn.write(`GET /reuse/${i} HTTP/1.1\r\n${H}\r\n`);
      assert.equal((await conn.expectResponse()).status, 200);
    }
  } finally {
    conn.destroy();
  }
  // One client connection means one worker; sequential requests need one upstream connection.
  const used = new Set(backend.requests.map((r) => r.connection));
  assert.equal(used.size, 1, `5 sequential requests used ${used.size} upstream connections`);
});

test('Connection: close from the client is honoured after the response', async () => {
  const { response, closed } = await exchange(sy.port, `GET /bye HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
  assert.equal(response?.status, 200);
  assert.ok(closed, 'proxy closed the connection');
});

test('HEAD: headers with Content-Length, no body, connection stays usable', async () => {
  backend.respond = (req) => (req.method === 'HEAD' ? { status: 200, bodySize: 1234 } : { status: 200, body: 'after-head' });
  const conn = await RawConnection.open(sy.port);
  try {
    conn.write(`HEAD /file HTTP/1.1\r\n${H}\r\n`);
    const head = await conn.expectResponse({ method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.header('content-length'), '1234');
    await sleep(200);
    assert.equal(conn.pending.length, 0, 'no body bytes after a HEAD response');
    conn.write(`GET /next HTTP/1.1\r\n${H}\r\n`);
    assert.equal((await conn.expectResponse()).body.toString(), 'after-head');
  } finally {
    conn.destroy();
  }
});

test('204 and 304 have no body and keep-alive keeps working', async () => {
  backend.respond = (req) =>
    req.url === '/204' ? { status: 204 } : req.url === '/304' ? { status: 304, headers: [['etag', '"v1"']] } : { status: 200, body: 'fine' };
  const conn = await RawConnection.open(sy.port);
  try {
    conn.write(`GET /204 HTTP/1.1\r\n${H}\r\n`);
    const r204 = await conn.expectResponse();
    assert.equal(r204.status, 204);
    assert.equal(r204.header('transfer-encoding'), undefined, '204 is not chunked');
    conn.write(`GET /304 HTTP/1.1\r\n${H}If-None-Match: "v1"\r\n\r\n`);
    const r304 = await conn.expectResponse();
    assert.equal(r304.status, 304);
    assert.equal(r304.header('transfer-encoding'), undefined, '304 is not chunked');
    await sleep(200);
    assert.equal(conn.pending.length, 0, 'no stray body bytes');
    conn.write(`GET /ok HTTP/1.1\r\n${H}\r\n`);
    const ok = await conn.expectResponse();
    assert.equal(ok.body.toString(), 'fine');
  } finally {
    conn.destroy();
  }
});

test('Expect: 100-continue gets 100 before the body is sent, and the body arrives', async () => {
  const conn = await RawConnection.open(sy.port);
  try {
    conn.write(`POST /expect HTTP/1.1\r\n${H}Content-Length: 11\r\nExpect: 100-continue\r\n\r\n`);
    const interim = await conn.expectResponse({ timeoutMs: 3000 });
    assert.equal(interim.status, 100, `expected 100 Continue before the body, got ${interim.status}`);
    conn.write('hello world');
    const final = await conn.expectResponse();
    assert.equal(final.status, 200);
    assert.equal(backend.requests.length, 1);
    assert.equal(backend.requests[0]!.body.toString(), 'hello world');
  } finally {
    conn.destroy();
  }
});

test('the proxy still serves normally after all the malformed input', async () => {
  const { response } = await exchange(sy.port, `GET /still-alive HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
  assert.equal(response?.status, 200);
  assert.equal(response?.body.toString(), 'GET /still-alive');
});
