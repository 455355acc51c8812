// Black-box streaming through the data path: big responses and uploads flow
// with backpressure instead of being buffered, chunked responses arrive intact
// and as they are produced, and an upstream that dies mid-response never
// yields a complete-looking response to the client.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { after, before, beforeEach, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { patternBytes, patternSha256, startBackend, startRawBackend } from '../helpers/backend.js';
import type { Backend } from '../helpers/backend.js';
import { RawConnection } from '../helpers/raw-client.js';
import { rssKb, startSwitchyard } from '../helpers/switchyard.js';
import type { Switchyard } from '../helpers/switchyard.js';

const MB = 1024 * 1024;
const BIG_RESPONSE = 50 * MB;
const BIG_UPLOAD = 20 * MB;
/**
 * A worker holding the unread response would grow by 40+ MB of live buffers
 * plus garbage; a streaming worker was measured at 2-36 MB (lazy GC of its
 * 64 KiB read buffers). The backpressure assertion below is the precise one.
 */
const MAX_RSS_GROWTH_KB = 48 * 1024;
const H = 'Host: app.test\r\n';

let backend: Backend;
let sy: Switchyard;

before(async () => {
  backend = await startBackend({ keepBodyBytes: 0 });
  sy = await startSwitchyard({
    limits: { max_body_bytes: 64 * MB },
    upstreams: { app: { servers: [{ address: backend.address }], retries: 0, timeouts: { response: '10s', idle: '30s' } } },
    routes: [{ match: { host: '*', path: '/' }, upstream: 'app' }],
  });
});

after(async () => {
  await sy?.stop();
  await backend?.close();
});

beforeEach(() => {
  backend.reset();
  backend.respond = () => ({ status: 200, body: 'ok' });
});

function request(opts: http.RequestOptions): http.ClientRequest {
  return http.request({ host: sy.host, port: sy.port, agent: false, ...opts, headers: { host: 'app.test', ...opts.headers } });
}

function responseOf(req: http.ClientRequest): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => req.once('response', resolve).once('error', reject));
}

async function workerPids(): Promise<number[]> {
  for (let i = 0; i < 100; i++) {
    const pids = sy.workerPids();
    if (pids.length >= 2) return pids;
    await sleep(50);
  }
  throw new Error('switchyard has no worker processes');
}

test('a 50 MB response streams to a slow reader with backpressure and bounded worker memory', async (t) => {
  backend.respond = (req) => ({ status: 200, bodySize: req.url === '/warm-up' ? 10 * MB : BIG_RESPONSE });
  const pids = await workerPids();
  // Warm both workers' allocators first so the baseline is steady state.
  for (let i = 0; i < 2; i++) {
    const warm = request({ path: '/warm-up' });
    warm.end();
    const res = await responseOf(warm);
    res.resume();
    await new Promise((resolve) => res.once('end', resolve));
  }
  backend.reset();
  const baseline = new Map(pids.map((p) => [p, rssKb(p) ?? 0]));
  let maxGrowthKb = 0;
  const sampler = setInterval(() => {
    for (const p of pids) maxGrowthKb = Math.max(maxGrowthKb, (rssKb(p) ?? 0) - baseline.get(p)!);
  }, 50);

  const started = Date.now();
  const timeline: Array<[number, number]> = [];
  const hash = createHash('sha256');
  let received = 0;
  try {
    const req = request({ path: '/big' });
    req.end();
    const res = await responseOf(req);
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-length'], String(BIG_RESPONSE));
    // About 12 MB/s: far slower than loopback, so an unbounded proxy would pile up the rest.
    let nextPause = 128 * 1024;
    for await (const chunk of res as AsyncIterable<Buffer>) {
      hash.update(chunk);
      received += chunk.length;
      timeline.push([Date.now(), received]);
      if (received >= nextPause) {
        nextPause += 128 * 1024;
        await sleep(10);
      }
      assert.ok(Date.now() - started < 30_000, 'transfer took too long');
    }
  } finally {
    clearInterval(sampler);
  }
  assert.equal(received, BIG_RESPONSE);
  assert.equal(hash.digest('hex'), patternSha256(BIG_RESPONSE), 'body intact');

  const answeredAt = backend.requests[0]?.answeredAt;
  assert.ok(answeredAt, 'backend finished writing');
  const clientHadAtBackendEnd = timeline.filter(([at]) => at <= answeredAt).at(-1)?.[1] ?? 0;
  t.diagnostic(`transfer ${Date.now() - started} ms; client had ${(clientHadAtBackendEnd / MB).toFixed(1)} MB when the backend finished; max worker RSS growth ${(maxGrowthKb / 1024).toFixed(1)} MB`);
  // With backpressure the backend can only run ahead of the client by the socket buffers.
  assert.ok(clientHadAtBackendEnd >= 15 * MB, `backend finished when the client had only ${clientHadAtBackendEnd} bytes: no backpressure`);
  assert.ok(maxGrowthKb < MAX_RSS_GROWTH_KB, `worker RSS grew by ${maxGrowthKb} KiB`);
});

test('a 20 MB upload streams to the backend before the client has finished sending', async () => {
  const req = request({ method: 'POST', path: '/upload', headers: { 'content-length': String(BIG_UPLOAD) } });
  const responded = responseOf(req);
  const write = async (from: number, to: number): Promise<void> => {
    for (let off = from; off < to; off += 65536) {
      if (!req.write(patternBytes(off, Math.min(65536, to - off)))) await new Promise((r) => req.once('drain', r));
    }
  };
  await write(0, BIG_UPLOAD / 2);
  // A proxy that buffers whole bodies would show the backend nothing yet.
  for (let i = 0; i < 60 && (backend.requests[0]?.bodyBytes ?? 0) === 0; i++) await sleep(50);
  assert.ok((backend.requests[0]?.bodyBytes ?? 0) > 0, 'backend got body bytes while the upload was still going');
  await write(BIG_UPLOAD / 2, BIG_UPLOAD);
  req.end();
  const res = await responded;
  res.resume();
  assert.equal(res.statusCode, 200);
  const got = backend.requests[0]!;
  assert.equal(got.bodyBytes, BIG_UPLOAD);
  assert.equal(got.bodySha256, patternSha256(BIG_UPLOAD), 'upload intact');
});

test('a chunked upload of unknown length arrives intact', async () => {
  const size = 5 * MB + 123;
  const req = request({ method: 'POST', path: '/chunked-upload' });
  const responded = responseOf(req);
  for (let off = 0; off < size; off += 50_000) {
    if (!req.write(patternBytes(off, Math.min(50_000, size - off)))) await new Promise((r) => req.once('drain', r));
  }
  req.end();
  const res = await responded;
  res.resume();
  assert.equal(res.statusCode, 200);
  assert.equal(backend.requests[0]?.bodyBytes, size);
  assert.equal(backend.requests[0]?.bodySha256, patternSha256(size));
});

test('a chunked response is delivered intact and as it is produced', async () => {
  const chunks = ['first-', 'second-', 'x'.repeat(100_000), '-last'];
  backend.respond = () => ({ status: 200, chunks, chunkDelayMs: 300 });
  const conn = await RawConnection.open(sy.port);
  try {
    conn.write(`GET /chunked HTTP/1.1\r\n${H}\r\n`);
    for (let i = 0; i < 40 && !conn.received.includes('first-'); i++) await sleep(25);
    assert.ok(conn.received.includes('first-'), 'first chunk arrived');
    assert.equal(backend.requests[0]?.answeredAt, undefined, 'first chunk arrived before the backend finished: not buffered');
    const res = await conn.expectResponse({ timeoutMs: 5000 });
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), chunks.join(''));
  } finally {
    conn.destroy();
  }
});

test('a backend reset mid-response (Content-Length) aborts the client connection', async () => {
  backend.respond = () => ({ status: 200, bodySize: 1_000_000, resetAfterBytes: 100_000 });
  const conn = await RawConnection.open(sy.port);
  try {
    conn.write(`GET /reset-cl HTTP/1.1\r\n${H}\r\n`);
    const res = await conn.read({ timeoutMs: 5000 });
    assert.ok(res, 'the response head arrived');
    if (res.status === 200) {
      assert.equal(res.complete, false, 'the client must not see a complete response');
      assert.ok(res.body.length < 1_000_000);
    } else {
      assert.equal(res.status, 502);
    }
    assert.ok(await conn.waitClosed(3000), 'client connection closed');
  } finally {
    conn.destroy();
  }
});

test('a backend reset mid-response (chunked) never sends the terminating chunk', async () => {
  backend.respond = () => ({ status: 200, chunked: true, bodySize: 1_000_000, resetAfterBytes: 100_000 });
  const conn = await RawConnection.open(sy.port);
  try {
    conn.write(`GET /reset-chunked HTTP/1.1\r\n${H}\r\n`);
    const res = await conn.read({ timeoutMs: 5000 });
    assert.ok(res, 'the response head arrived');
    if (res.status === 200) {
      assert.equal(res.complete, false, 'no terminating 0-chunk after an upstream reset');
    } else {
      assert.equal(res.status, 502);
    }
    assert.ok(await conn.waitClosed(3000), 'client connection closed');
  } finally {
    conn.destroy();
  }
});

test('the proxy still serves after the resets', async () => {
  const req = request({ path: '/after' });
  req.end();
  const res = await responseOf(req);
  res.resume();
  assert.equal(res.statusCode, 200);
});

test('Content-Length bodies in pieces or whole, head alone or with the body: intact, over one kept-alive upstream connection', async () => {
  // Answers /split-N with the head alone, then the body in two later writes;
  // anything else with head and body in one write.
  const pieces = await startRawBackend((socket) => {
    let pending = '';
    socket.on('data', (d: Buffer) => {
      pending += d.toString('latin1');
      for (let end = pending.indexOf('\r\n\r\n'); end >= 0; end = pending.indexOf('\r\n\r\n')) {
        const path = pending.split(' ')[1] ?? '';
        pending = pending.slice(end + 4);
        const body = `body-of-${path}`;
        const head = `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`;
        if (!path.startsWith('/split')) {
          socket.write(head + body);
          continue;
        }
        socket.write(head);
        setTimeout(() => socket.write(body.slice(0, 4)), 20);
        setTimeout(() => socket.write(body.slice(4)), 40);
      }
    });
  });
  const local = await startSwitchyard({
    workers: 1,
    upstreams: { app: { servers: [{ address: pieces.address }], retries: 0 } },
    routes: [{ match: { host: '*', path: '/' }, upstream: 'app' }],
  });
  const conn = await RawConnection.open(local.port);
  try {
    for (const path of ['/split-1', '/whole-1', '/split-2', '/whole-2', '/whole-3']) {
      conn.write(`GET ${path} HTTP/1.1\r\n${H}\r\n`);
      const res = await conn.expectResponse();
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), `body-of-${path}`);
    }
    assert.equal(pieces.connections.length, 1, 'every response left the upstream connection reusable');
  } finally {
    conn.destroy();
    await local.stop();
    await pieces.close();
  }
});

