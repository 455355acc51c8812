// Regression: every closed connection used to stay on the heap, because its
// llhttp parser was freed but never closed (a global handle kept it, its
// callbacks and through them the whole connection). 4,000 requests through a
// backend that closes every connection, so each one opens and drops an
// upstream connection and a client connection: the live heap after GC must
// not grow with them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { parseConfigText } from '../../src/config/load.ts';
import { startProxyWorker } from '../../src/proxy/server.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function settledHeap(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setImmediate(r));
    gc();
  }
  return process.memoryUsage().heapUsed;
}

test('closed connections do not stay on the heap', { timeout: 120_000 }, async () => {
  const backend = http.createServer((_req, res) => {
    res.setHeader('connection', 'close');
    res.end('ok');
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const backendPort = (backend.address() as AddressInfo).port;
  const probe = http.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));

  const { config } = parseConfigText(
    `workers: 1
listen: [{ host: 127.0.0.1, port: ${port} }]
admin: { token: t, port: ${port === 65535 ? 65534 : port + 1} }
upstreams: { app: { servers: [{ address: "127.0.0.1:${backendPort}" }] } }
routes: [{ match: { path: / }, upstream: app }]
`,
    'memory.yaml',
  );
  const worker = await startProxyWorker(config, pino({ level: 'silent' }), 0);
  const agent = new http.Agent({ keepAlive: false });
  const get = () =>
    new Promise<void>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
        })
        .on('error', reject);
    });
  const run = async (n: number) => {
    for (let i = 0; i < n; i += 20) await Promise.all(Array.from({ length: 20 }, get));
  };
  try {
    // Warm-up: code, pools and caches (and the test's own client) reach their steady size.
    await run(3000);
    const before = await settledHeap();
    await run(4000);
    const after = await settledHeap();
    const growthKb = (after - before) / 1024;
    // Leaking, each of the 8,000 connections kept ~2 KB (about 16 MB); fixed, the heap stays within noise.
    assert.ok(growthKb < 2 * 1024, `heap grew ${growthKb.toFixed(0)} KB over 4,000 requests`);
  } finally {
    await worker.stopAccepting();
    await worker.drain(1000);
    agent.destroy();
    await new Promise<void>((r) => backend.close(() => r()));
  }
});
