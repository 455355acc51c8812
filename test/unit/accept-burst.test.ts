// A burst of connections waiting in a listen queue is accepted within one
// event-loop iteration (src/proxy/accept-burst.ts), and each one is handed to
// the server as its own accept would: served, counted against maxConnections,
// wrapped by TLS. Real listening sockets; the clients connect from a worker
// thread while this thread's loop is held, so the kernel queues them all
// before the server can accept any.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, test } from 'node:test';
import tls from 'node:tls';
import { Worker } from 'node:worker_threads';
import { ACCEPT_PER_ITERATION, acceptBursts } from '../../src/proxy/accept-burst.js';
import { Pki } from '../helpers/certs.js';

const pki = new Pki();
after(() => pki.cleanup());

// Connects `count` clients (TLS when `servername` is set) and writes "ping" on each; signals once every TCP
// connection is up (queued on the server side), then reports how many got "ping" echoed back.
const CLIENTS = `
const { workerData, parentPort } = require('node:worker_threads');
const net = require('node:net');
const tls = require('node:tls');
const { port, count, servername, flag } = workerData;
const signal = new Int32Array(flag);
const sockets = [];
let connected = 0, echoed = 0, ended = 0;
const finish = () => { if (++ended === count) parentPort.postMessage({ echoed }); };
for (let i = 0; i < count; i++) {
  const raw = net.connect(port, '127.0.0.1', () => {
    if (++connected === count) { Atomics.store(signal, 0, 1); Atomics.notify(signal, 0); }
  });
  const s = servername ? tls.connect({ socket: raw, servername, rejectUnauthorized: false }) : raw;
  s.on('error', () => {});
  s.write('ping');
  s.on('data', (d) => { if (d.toString() === 'ping') { echoed++; s.end(); } });
  s.on('close', finish);
  sockets.push(s);
}
parentPort.on('message', () => { for (const s of sockets) s.destroy(); });
`;

interface Burst {
  /** The most 'connection' events in one loop iteration, and in all. */
  perIteration: number;
  total: number;
  drops: number;
  /** Clients that had their bytes echoed. */
  echoed: Promise<number>;
  release(): void;
}

async function burst(server: net.Server, count: number, servername?: string): Promise<Burst> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  let total = 0;
  let drops = 0;
  server.on('connection', () => total++);
  server.on('drop', () => drops++);
  const flag = new SharedArrayBuffer(4);
  const worker = new Worker(CLIENTS, { eval: true, workerData: { port, count, servername, flag } });
  const echoed = new Promise<number>((resolve) => worker.once('message', (m: { echoed: number }) => resolve(m.echoed)));
  // Hold this loop until the kernel has completed every handshake: all wait in the listen queue.
  const signal = new Int32Array(flag);
  assert.notEqual(Atomics.wait(signal, 0, 0, 10_000), 'timed-out', 'the clients connected');
  // setImmediate runs once per iteration, after its poll phase (where the accepts happen).
  const perIteration = await new Promise<number>((resolve) => {
    let most = 0;
    let seen = 0;
    const tick = (left: number): void => {
      most = Math.max(most, total + drops - seen);
      seen = total + drops;
      if (seen >= count || left === 0) resolve(most);
      else setImmediate(tick, left - 1);
    };
    setImmediate(tick, 1000);
  });
  return {
    perIteration,
    get total() {
      return total;
    },
    get drops() {
      return drops;
    },
    echoed: echoed.then(async (n) => {
      await worker.terminate();
      return n;
    }),
    release: () => worker.postMessage('close'),
  };
}

const echo = (socket: net.Socket): void => {
  socket.on('error', () => {});
  socket.on('data', (d) => socket.write(d));
  socket.on('end', () => socket.end());
};

function closed(server: net.Server): Promise<void> {
  return new Promise((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
}

test('a queued burst is accepted in one iteration (up to the bound), and every connection is served', async () => {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, echo);
  const errors: Error[] = [];
  acceptBursts(server, 1, (err) => errors.push(err));
  const b = await burst(server, 100);
  // libuv alone accepts one connection per iteration.
  assert.equal(b.perIteration, ACCEPT_PER_ITERATION);
  assert.equal(await b.echoed, 100);
  assert.equal(b.total, 100);
  assert.deepEqual(errors, []);
  // The adopted connections were counted and uncounted as the server's own: close() completes.
  await closed(server);
});

test('with two workers on the socket, one takes at most half of a queued burst per iteration, not the whole of it', async () => {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, echo);
  acceptBursts(server, 2, () => {});
  const b = await burst(server, 60);
  // libuv's one, then half of the 59 behind it (rounded up).
  assert.equal(b.perIteration, 1 + 30);
  assert.equal(await b.echoed, 60);
  await closed(server);
});

test('adopted connections count against maxConnections: the rest are dropped, as by net.Server itself', async () => {
  const server = net.createServer(echo);
  server.maxConnections = 10;
  acceptBursts(server, 1, () => {});
  const b = await burst(server, 30);
  assert.equal(b.perIteration, 30);
  assert.equal(b.drops, 20);
  assert.equal(await b.echoed, 10);
  await closed(server);
});

test('a TLS server wraps the adopted connections: every handshake completes and is served', async () => {
  const ca = pki.ca('burst-ca');
  const leaf = pki.issue(ca, 'burst', { subject: '/CN=burst.test', sans: ['DNS:burst.test'] });
  const server = tls.createServer({ cert: leaf.certPem, key: leaf.keyPem }, echo);
  acceptBursts(server, 1, () => {});
  const b = await burst(server, 40, 'burst.test');
  assert.equal(b.perIteration, 40);
  assert.equal(await b.echoed, 40);
  b.release();
  await closed(server);
});
