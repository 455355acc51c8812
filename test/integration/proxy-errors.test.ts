// Black-box error statuses of the data path: 404 without a route, 502 when the
// upstream refuses, resets, hangs up or speaks garbage, 504 after
// timeouts.response. Every generated error carries x-request-id and a short body.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { closedPort, startBackend, startRawBackend } from '../helpers/backend.js';
import type { Backend, RawBackend } from '../helpers/backend.js';
import type { Socket } from 'node:net';
import { RawConnection, exchange } from '../helpers/raw-client.js';
import type { RawResponse } from '../helpers/raw-client.js';
import { startSwitchyard } from '../helpers/switchyard.js';
import type { Switchyard } from '../helpers/switchyard.js';

const SHORT_BODY = 1024;
const RESPONSE_TIMEOUT_MS = 1000;

let ok: Backend;
let slow: Backend;
let garbage: RawBackend;
let reset: RawBackend;
let hangup: RawBackend;
let desync: RawBackend;
let short: RawBackend;
let sy: Switchyard;

before(async () => {
  ok = await startBackend({ respond: () => ({ status: 200, body: 'ok' }) });
  slow = await startBackend({ respond: () => ({ status: 200, body: 'late', delayMs: 3000 }) });
  // Answers anything with bytes that are not HTTP, and keeps the socket open.
  garbage = await startRawBackend((s) => s.once('data', () => s.write('THIS IS NOT HTTP AT ALL\r\n\r\n')));
  reset = await startRawBackend((s) => s.once('data', () => s.resetAndDestroy()));
  hangup = await startRawBackend((s) => s.once('data', () => s.end()));
  desync = await startRawBackend(answerWithForgedExtra);
  // Promises 100 000 body bytes, sends 1 000 across two writes, then closes cleanly (FIN, no reset).
  short = await startRawBackend((s) =>
    s.once('data', () => {
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n${'a'.repeat(500)}`);
      setTimeout(() => s.end('b'.repeat(500)), 30);
    }),
  );
  const refused = await closedPort();
  const up = (address: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    servers: [{ address }],
    retries: 0,
    timeouts: { connect: '1s', response: '3s', idle: '10s' },
    ...extra,
  });
  sy = await startSwitchyard({
    upstreams: {
      ok: up(ok.address),
      refused: up(`127.0.0.1:${refused}`),
      slow: up(slow.address, { timeouts: { connect: '1s', response: `${RESPONSE_TIMEOUT_MS}ms`, idle: '10s' } }),
      garbage: up(garbage.address),
      reset: up(reset.address),
      hangup: up(hangup.address),
      desync: up(desync.address),
      short: up(short.address),
      mixed: { ...up(ok.address), servers: [{ address: `127.0.0.1:${refused}` }, { address: ok.address }], retries: 1 },
    },
    routes: [
      { match: { host: '*', path: '/ok/' }, upstream: 'ok' },
      { match: { host: 'only.test', path: '/host-only/' }, upstream: 'ok' },
      { match: { host: '*', path: '/refused/' }, upstream: 'refused' },
      { match: { host: '*', path: '/slow/' }, upstream: 'slow' },
      { match: { host: '*', path: '/garbage/' }, upstream: 'garbage' },
      { match: { host: '*', path: '/reset/' }, upstream: 'reset' },
      { match: { host: '*', path: '/hangup/' }, upstream: 'hangup' },
      { match: { host: '*', path: '/desync/' }, upstream: 'desync' },
      { match: { host: '*', path: '/short/' }, upstream: 'short' },
      { match: { host: '*', path: '/mixed/' }, upstream: 'mixed' },
    ],
  });
});

after(async () => {
  await sy?.stop();
  for (const b of [ok, slow, garbage, reset, hangup, desync, short]) await b?.close();
});

/**
 * A keep-alive upstream that answers every request with `real-N`, but adds a
 * forged extra response for some paths: in the same write after a 200
 * (/desync/200), after a chunked 200 (/desync/chunked), as a "body" of a 204
 * (/desync/204), only the start of a forged head (/desync/partial), or 50 ms
 * after the response, when the connection is idle (/desync/late).
 * Response-queue poisoning if the proxy then reuses that connection.
 */
function answerWithForgedExtra(socket: Socket): void {
  const forged = 'HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged';
  let pending = '';
  let n = 0;
  socket.on('data', (d: Buffer) => {
    pending += d.toString('latin1');
    for (let end = pending.indexOf('\r\n\r\n'); end >= 0; end = pending.indexOf('\r\n\r\n')) {
      const path = pending.split(' ')[1] ?? '';
      pending = pending.slice(end + 4);
      const real = `HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nreal-${++n % 10}`;
      if (path === '/desync/200') socket.write(real + forged);
      else if (path === '/desync/chunked') socket.write(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nreal-${++n % 10}\r\n0\r\n\r\n${forged}`);
      else if (path === '/desync/partial') socket.write(`${real}HTTP/1.1 200 OK\r\nContent-Le`);
      else if (path === '/desync/204') socket.write(`HTTP/1.1 204 No Content\r\n\r\n${forged}`);
      else if (path === '/desync/late') {
        socket.write(real);
        setTimeout(() => socket.write(forged), 50);
      } else socket.write(real);
    }
  });
}

async function get(path: string, host = 'app.test'): Promise<{ res: RawResponse; ms: number }> {
  const started = Date.now();
  const { response } = await exchange(sy.port, `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`, { timeoutMs: 8000 });
  assert.ok(response, `no response for ${path}`);
  return { res: response, ms: Date.now() - started };
}

function assertGenerated(res: RawResponse, status: number): void {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.body.toString().slice(0, 200)}`);
  assert.ok(res.header('x-request-id'), 'x-request-id on a generated error');
  assert.ok(res.body.length > 0 && res.body.length <= SHORT_BODY, `short non-empty body (${res.body.length} bytes)`);
}

test('a matching route is served (baseline)', async () => {
  const { res } = await get('/ok/x');
  assert.equal(res.status, 200);
  assert.equal(res.body.toString(), 'ok');
});

test('no route → 404', async () => {
  assertGenerated((await get('/nothing/here')).res, 404);
  assertGenerated((await get('/')).res, 404);
});

test('a route for another host does not match → 404; its own host matches', async () => {
  assertGenerated((await get('/host-only/x', 'other.test')).res, 404);
  assert.equal((await get('/host-only/x', 'only.test')).res.status, 200);
});

test('upstream port closed → 502', async () => {
  const { res, ms } = await get('/refused/x');
  assertGenerated(res, 502);
  assert.ok(ms < 2000, `refusal answered promptly (${ms} ms)`);
});

test('upstream slower than timeouts.response → 504 within response + 0.5 s', async () => {
  const { res, ms } = await get('/slow/x');
  assertGenerated(res, 504);
  assert.ok(ms >= RESPONSE_TIMEOUT_MS - 100, `not before the timeout (${ms} ms)`);
  assert.ok(ms <= RESPONSE_TIMEOUT_MS + 500, `soon after the timeout (${ms} ms)`);
});

test('upstream answering garbage instead of HTTP → 502, without waiting for the timeout', async () => {
  const { res, ms } = await get('/garbage/x');
  assertGenerated(res, 502);
  assert.ok(ms < 2000, `answered before timeouts.response (${ms} ms)`);
  assert.ok(garbage.connections.some((c) => c.toString('latin1').startsWith('GET /garbage/x ')), 'the request did reach the garbage backend');
});

test('upstream resetting the connection before answering → 502', async () => {
  assertGenerated((await get('/reset/x')).res, 502);
});

test('upstream closing the connection without answering → 502', async () => {
  assertGenerated((await get('/hangup/x')).res, 502);
});

test('an idempotent request to a refused server is retried on another server', async () => {
  for (let i = 0; i < 6; i++) {
    const { res } = await get(`/mixed/${i}`);
    assert.equal(res.status, 200, `request ${i}: ${res.status}`);
  }
});

const DESYNC_CASES = ['/desync/200', '/desync/chunked', '/desync/204', '/desync/partial', '/desync/late'];

test('extra bytes after an upstream response never answer a later request, which a fresh connection serves', async () => {
  for (const first of DESYNC_CASES) {
    const conn = await RawConnection.open(sy.port);
    try {
      conn.write(`GET ${first} HTTP/1.1\r\nHost: app.test\r\n\r\n`);
      const r1 = await conn.expectResponse();
      assert.equal(r1.status, first === '/desync/204' ? 204 : 200, `${first}: the valid response is forwarded`);
      await sleep(150); // the late forged bytes arrive while the upstream connection is idle
      // Same client connection, so the same worker and its upstream pool.
      for (let i = 0; i < 3; i++) {
        conn.write(`GET /desync/next-${i} HTTP/1.1\r\nHost: app.test\r\n\r\n`);
        const r = await conn.expectResponse();
        assert.equal(r.status, 200, `${first}: request ${i}: ${r.status} ${r.body.toString()}`);
        assert.match(r.body.toString(), /^real-/, `${first}: request ${i} got ${r.body.toString()}`);
      }
    } finally {
      conn.destroy();
    }
  }
});

test('a pipelined request right behind one followed by forged bytes gets its own response', async () => {
  // The second request is dispatched the moment the first response ends,
  // while the forged bytes are still in the same read.
  for (const first of DESYNC_CASES.filter((c) => c !== '/desync/late')) {
    const conn = await RawConnection.open(sy.port);
    try {
      conn.write(`GET ${first} HTTP/1.1\r\nHost: app.test\r\n\r\nGET /desync/next HTTP/1.1\r\nHost: app.test\r\n\r\n`);
      await conn.expectResponse();
      const r = await conn.expectResponse();
      assert.equal(r.status, 200, `${first}: ${r.status} ${r.body.toString()}`);
      assert.match(r.body.toString(), /^real-/, `${first}: the pipelined request got ${r.body.toString()}`);
    } finally {
      conn.destroy();
    }
  }
});

test('an upstream closing short of its Content-Length: the client sees the bytes that came, then a close, never a complete response', async () => {
  const conn = await RawConnection.open(sy.port);
  try {
    conn.write('GET /short/ HTTP/1.1\r\nHost: app.test\r\n\r\n');
    const res = await conn.read({ timeoutMs: 5000 });
    assert.ok(res, 'the response head arrived');
    assert.equal(res.status, 200);
    assert.equal(res.complete, false);
    assert.equal(res.body.toString(), 'a'.repeat(500) + 'b'.repeat(500));
    assert.ok(await conn.waitClosed(3000), 'client connection closed');
  } finally {
    conn.destroy();
  }
});

test('errors do not disturb later requests', async () => {
  const { res } = await get('/ok/after');
  assert.equal(res.status, 200);
});
