// Black-box request limits: 431 for big headers, 414 for long URLs, 413 for
// bodies over max_body_bytes (declared or chunked), and slow headers cut off
// after headers_timeout. None of it may disturb a normal client: a canary
// keep-alive connection is checked after every test and during the trickle.

import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startBackend } from '../helpers/backend.js';
import type { Backend } from '../helpers/backend.js';
import { RawConnection, exchange } from '../helpers/raw-client.js';
import type { RawResponse } from '../helpers/raw-client.js';
import { startSwitchyard } from '../helpers/switchyard.js';
import type { Switchyard } from '../helpers/switchyard.js';

const MAX_HEADER_BYTES = 4096;
const MAX_URL_BYTES = 1024;
const MAX_BODY_BYTES = 65536;
const HEADERS_TIMEOUT_MS = 1000;
const SHORT_BODY = 1024;
const H = 'Host: app.test\r\n';

let backend: Backend;
let sy: Switchyard;
let canary: RawConnection;
let canaryCount = 0;

before(async () => {
  backend = await startBackend();
  sy = await startSwitchyard({
    limits: {
      max_header_bytes: MAX_HEADER_BYTES,
      max_url_bytes: MAX_URL_BYTES,
      max_body_bytes: MAX_BODY_BYTES,
      headers_timeout: `${HEADERS_TIMEOUT_MS}ms`,
      request_timeout: '10s',
    },
    upstreams: { app: { servers: [{ address: backend.address }], retries: 0 } },
    routes: [{ match: { host: '*', path: '/' }, upstream: 'app' }],
  });
  canary = await RawConnection.open(sy.port);
});

after(async () => {
  canary?.destroy();
  await sy?.stop();
  await backend?.close();
});

beforeEach(() => {
  backend.reset();
  backend.respond = (req) => ({ status: 200, body: `${req.method} ${req.url}` });
});

/** A normal request on the long-lived canary connection still works. */
async function canaryOk(): Promise<void> {
  const n = canaryCount++;
  canary.write(`GET /canary/${n} HTTP/1.1\r\n${H}\r\n`);
  const res = await canary.expectResponse();
  assert.equal(res.status, 200, 'canary request');
  assert.equal(res.body.toString(), `GET /canary/${n}`);
}

afterEach(canaryOk);

const nonCanary = (): string[] => backend.requests.filter((r) => !r.url.startsWith('/canary/')).map((r) => `${r.method} ${r.url}`);

function assertRejection(res: RawResponse | undefined, status: number): void {
  assert.ok(res, `expected ${status}, got a close without a response`);
  assert.equal(res.status, status, `expected ${status}, got ${res.status}`);
  assert.ok(res.header('x-request-id'), 'x-request-id');
  assert.ok(res.body.length <= SHORT_BODY, 'short body');
}

test('headers over max_header_bytes → 431, never forwarded', async () => {
  const big = `X-Big: ${'a'.repeat(MAX_HEADER_BYTES * 2)}\r\n`;
  const r1 = await exchange(sy.port, `GET /big HTTP/1.1\r\n${H}${big}\r\n`);
  assertRejection(r1.response, 431);
  assert.ok(r1.closed, 'closed after 431');
  const many = Array.from({ length: 100 }, (_, i) => `X-Many-${i}: ${'b'.repeat(60)}\r\n`).join('');
  const r2 = await exchange(sy.port, `GET /many HTTP/1.1\r\n${H}${many}\r\n`);
  assertRejection(r2.response, 431);
  await sleep(100);
  assert.deepEqual(nonCanary(), []);
});

test('headers under max_header_bytes pass', async () => {
  const fine = `X-Fine: ${'c'.repeat(MAX_HEADER_BYTES / 2)}\r\n`;
  const { response } = await exchange(sy.port, `GET /fine HTTP/1.1\r\n${H}${fine}Connection: close\r\n\r\n`);
  assert.equal(response?.status, 200);
});

test('URL over max_url_bytes → 414, never forwarded; a shorter one passes', async () => {
  const long = `/long?${'u'.repeat(MAX_URL_BYTES + 500)}`;
  const r = await exchange(sy.port, `GET ${long} HTTP/1.1\r\n${H}\r\n`);
  assertRejection(r.response, 414);
  await sleep(100);
  assert.deepEqual(nonCanary(), []);
  const ok = `/ok?${'u'.repeat(MAX_URL_BYTES - 100)}`;
  const { response } = await exchange(sy.port, `GET ${ok} HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
  assert.equal(response?.status, 200);
});

test('Content-Length over max_body_bytes → 413 before the body, never forwarded', async () => {
  const conn = await RawConnection.open(sy.port);
  try {
    // Only the head: the answer must not wait for a body it will refuse.
    conn.write(`POST /upload HTTP/1.1\r\n${H}Content-Length: ${MAX_BODY_BYTES * 4}\r\n\r\n`);
    assertRejection(await conn.read({ timeoutMs: 3000 }), 413);
    assert.ok(await conn.waitClosed(2000), 'closed after 413');
  } finally {
    conn.destroy();
  }
  await sleep(100);
  assert.deepEqual(nonCanary(), []);
});

test('a body of exactly max_body_bytes is forwarded whole', async () => {
  const body = Buffer.alloc(MAX_BODY_BYTES, 0x61);
  const conn = await RawConnection.open(sy.port);
  try {
    conn.write(`POST /exact HTTP/1.1\r\n${H}Content-Length: ${body.length}\r\n\r\n`);
    conn.write(body);
    assert.equal((await conn.expectResponse()).status, 200);
  } finally {
    conn.destroy();
  }
  const got = backend.requests.find((r) => r.url === '/exact');
  assert.equal(got?.bodyBytes, MAX_BODY_BYTES);
  assert.equal(got?.complete, true);
});

test('a chunked body growing past max_body_bytes → 413 or abort; the backend never gets more than the limit', async () => {
  const conn = await RawConnection.open(sy.port);
  const chunk = Buffer.alloc(16384, 0x62);
  try {
    conn.write(`POST /chunked-upload HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n`);
    // Up to 4x the limit, slowly enough that the proxy has long since forwarded the head.
    for (let sent = 0; sent < MAX_BODY_BYTES * 4 && !conn.closed; sent += chunk.length) {
      conn.write(`${chunk.length.toString(16)}\r\n`);
      conn.write(chunk);
      conn.write('\r\n');
      await sleep(20);
    }
    conn.write('0\r\n\r\n');
    const res = await conn.read({ timeoutMs: 3000 }).catch(() => undefined);
    if (res) assert.equal(res.status, 413, `expected 413 or an abort, got ${res.status}`);
    assert.ok(await conn.waitClosed(2000), 'connection closed');
  } finally {
    conn.destroy();
  }
  await sleep(200);
  for (const r of backend.requests.filter((q) => q.url === '/chunked-upload')) {
    assert.ok(r.bodyBytes <= MAX_BODY_BYTES, `backend received ${r.bodyBytes} body bytes`);
    assert.equal(r.complete, false, 'a cut-off upload must not look complete upstream');
  }
});

test('headers trickled 1 byte / 200 ms are cut off after headers_timeout; other clients unaffected', async () => {
  const conn = await RawConnection.open(sy.port);
  const started = Date.now();
  const head = Buffer.from(`GET /trickle HTTP/1.1\r\n${H}X-Slow: ${'s'.repeat(100)}\r\n\r\n`, 'latin1');
  const trickle = (async () => {
    for (let i = 0; i < head.length && !conn.closed && Date.now() - started < 5000; i++) {
      conn.write(head.subarray(i, i + 1));
      await sleep(200);
    }
  })();
  const normal = (async () => {
    const statuses: number[] = [];
    while (!conn.closed && Date.now() - started < 5000) {
      const { response } = await exchange(sy.port, `GET /normal HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
      statuses.push(response?.status ?? 0);
      await sleep(100);
    }
    return statuses;
  })();
  try {
    const closed = await conn.waitClosed(5000);
    const elapsed = Date.now() - started;
    assert.ok(closed, 'slow client was cut off');
    assert.ok(elapsed >= HEADERS_TIMEOUT_MS - 100, `not before headers_timeout (${elapsed} ms)`);
    assert.ok(elapsed <= HEADERS_TIMEOUT_MS + 2000, `within headers_timeout + 2 s (${elapsed} ms)`);
    const res = await conn.read({ timeoutMs: 100 }).catch(() => undefined);
    if (res) assert.equal(res.status, 408, `a response to a slow client is 408, got ${res.status}`);
    await trickle;
    const statuses = await normal;
    assert.ok(statuses.length > 0, 'normal requests ran meanwhile');
    assert.deepEqual(statuses.filter((s) => s !== 200), [], 'normal requests unaffected');
    assert.ok(!nonCanary().includes('GET /trickle'), 'the trickled request was never forwarded');
  } finally {
    conn.destroy();
  }
});
