// The native relay of mode: tcp (native/tcp_relay.h), black-box through the
// CLI with raw TCP servers written for each case: a server that half-closes
// first, resets from either side passed on as resets, backpressure from a
// client that does not read, the idle timeout resetting both sides, a reload
// whose tunnel_max_age cuts a relayed connection, bytes counted across the
// hand-over, and descriptors given back after thousands of connections (an
// early version, with a relay thread, returned a freed session's id and left
// every fourth session's sockets open).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { afterEach, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { admin, getStatus, waitForStatus, workersReady } from '../helpers/admin-status.js';
import { isAlive, sleep } from '../helpers/process.js';
import { freePort, startSwitchyard, type Switchyard } from '../helpers/switchyard.js';
import { tcpExchange } from '../helpers/tcp.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const rssBytes = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) * 1024;

interface RawServer {
  address: string;
  /** Every accepted socket, in order. */
  sockets: net.Socket[];
  close(): Promise<void>;
}

let sy: Switchyard | undefined;
let servers: RawServer[] = [];
let clients: net.Socket[] = [];

afterEach(async () => {
  for (const c of clients) c.destroy();
  clients = [];
  await sy?.stop();
  sy = undefined;
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});

/** A TCP server running `onSocket` for each connection (half-open allowed). */
async function rawServer(onSocket: (socket: net.Socket) => void): Promise<RawServer> {
  const sockets: net.Socket[] = [];
  // Every connection, also those startTcp's readiness probe made before `sockets` was cleared.
  const all = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.push(socket);
    all.add(socket);
    socket.on('close', () => all.delete(socket));
    socket.on('error', () => {});
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const s: RawServer = {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of all) socket.destroy();
        server.close(() => resolve());
      }),
  };
  servers.push(s);
  return s;
}

async function startTcp(server: RawServer, listen: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Promise<Switchyard> {
  const port = await freePort();
  sy = await startSwitchyard({
    listen: [{ host: '127.0.0.1', port, mode: 'tcp', upstream: 'db', ...listen }],
    upstreams: { db: { servers: [{ address: server.address }] } },
    routes: [{ match: { path: '/' }, upstream: 'db' }],
    ...extra,
  });
  await waitForStatus(sy.adminPort, 'workers ready', (s) => workersReady(s, (extra.workers as number | undefined) ?? 2));
  await sleep(100);
  server.sockets.length = 0;
  return sy;
}

function connect(port: number, allowHalfOpen = false): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen });
    clients.push(socket);
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** How a socket ended: its error code (a reset) or 'closed' (FIN), with what it read. */
function ending(socket: net.Socket): Promise<{ how: string; data: Buffer }> {
  const chunks: Buffer[] = [];
  let error: string | undefined;
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', (err: NodeJS.ErrnoException) => (error ??= err.code ?? err.message));
  return new Promise((resolve) => socket.on('close', () => resolve({ how: error ?? 'closed', data: Buffer.concat(chunks) })));
}

async function waitFor(ok: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await sleep(25);
  }
}

const nextSocket = async (server: RawServer, index: number): Promise<net.Socket> => {
  await waitFor(() => server.sockets.length > index, `server connection ${index}`);
  return server.sockets[index]!;
};

describe('mode: tcp native relay', () => {
  test('the server half-closes first: the client sees its FIN, keeps sending, and the server gets every byte', { timeout: 30_000 }, async () => {
    const received = new Map<net.Socket, Buffer[]>();
    const ended = new Map<net.Socket, Promise<void>>();
    const server = await rawServer((socket) => {
      socket.end('hello, then FIN');
      received.set(socket, []);
      socket.on('data', (c: Buffer) => received.get(socket)!.push(c));
      ended.set(socket, new Promise((resolve) => socket.on('end', resolve)));
    });
    await startTcp(server);
    const client = await connect(sy!.port, true);
    const greeting: Buffer[] = [];
    client.on('data', (c: Buffer) => greeting.push(c));
    const closed = new Promise<boolean>((resolve) => client.once('close', resolve));
    await new Promise((resolve) => client.once('end', resolve));
    assert.equal(Buffer.concat(greeting).toString(), 'hello, then FIN');
    const payload = randomBytes(2 * 1024 * 1024);
    for (let i = 0; i < payload.length; i += 65536) client.write(payload.subarray(i, i + 65536));
    client.end();
    const serverSide = await nextSocket(server, 0);
    await ended.get(serverSide);
    assert.equal(sha(Buffer.concat(received.get(serverSide)!)), sha(payload), 'bytes sent after the server half-closed');
    assert.equal(await closed, false, 'closed without an error');
  });

  test('a reset from the client reaches the server as a reset, and one from the server the client', { timeout: 30_000 }, async () => {
    const server = await rawServer((socket) => {
      socket.on('data', (c: Buffer) => (c.toString() === 'reset me' ? socket.resetAndDestroy() : socket.write(c)));
      socket.on('end', () => socket.end());
    });
    await startTcp(server);
    const a = await connect(sy!.port);
    a.write('ping');
    await new Promise((resolve) => a.once('data', resolve));
    const serverSide = ending(await nextSocket(server, 0));
    a.resetAndDestroy();
    const seen = await Promise.race([serverSide, sleep(3000).then(() => ({ how: 'still open', data: Buffer.alloc(0) }))]);
    assert.equal(seen.how, 'ECONNRESET', 'the server saw the client reset');

    const b = await connect(sy!.port);
    const clientSide = ending(b);
    b.write('reset me');
    const got = await Promise.race([clientSide, sleep(3000).then(() => ({ how: 'still open', data: Buffer.alloc(0) }))]);
    assert.equal(got.how, 'ECONNRESET', 'the client saw the server reset');
    await waitFor(async () => (await getStatus(sy!.adminPort)).upstreams.db!.servers[0]!.activeConnections === 0, 'connections counted in shared memory back to 0');
  });

  test('a client that does not read holds the server back (backpressure); every byte then arrives in order', { timeout: 60_000 }, async () => {
    // More than the kernel buffers on the way can hold (loopback autotunes receive buffers up to tcp_rmem's 32 MB).
    const payload = randomBytes(128 * 1024 * 1024);
    const server = await rawServer((socket) => socket.end(payload));
    await startTcp(server, {}, { workers: 1 });
    const worker = sy!.workerPids()[0]!;
    const rssBefore = rssBytes(worker);
    const client = await connect(sy!.port);
    client.pause();
    await sleep(1500);
    // What the server could not write stays with it: the proxy holds its socket buffers and one 64 KB chunk.
    const pending = (await nextSocket(server, 0)).writableLength;
    assert.ok(pending > 32 * 1024 * 1024, `only ${pending} bytes held back at the server`);
    const grown = rssBytes(worker) - rssBefore;
    assert.ok(grown < 16 * 1024 * 1024, `the worker grew by ${grown} bytes while its client did not read`);
    const result = ending(client);
    client.resume();
    const { how, data } = await result;
    assert.equal(how, 'closed');
    assert.equal(data.length, payload.length);
    assert.equal(sha(data), sha(payload));
  });

  test('idle_timeout resets both sides of a relayed connection', { timeout: 30_000 }, async () => {
    const server = await rawServer((socket) => socket.on('data', (c: Buffer) => socket.write(c)));
    await startTcp(server, { idle_timeout: '500ms' });
    const client = await connect(sy!.port);
    const clientSide = ending(client);
    client.write('one');
    const t0 = Date.now();
    const serverSide = ending(await nextSocket(server, 0));
    const [c, s] = await Promise.all([clientSide, serverSide]);
    const ms = Date.now() - t0;
    assert.equal(c.how, 'ECONNRESET');
    assert.equal(s.how, 'ECONNRESET');
    assert.equal(c.data.toString(), 'one');
    assert.ok(ms >= 400 && ms < 2500, `closed after ${ms} ms for a 500 ms idle timeout`);

  });

  test('reload: a relayed connection outliving tunnel_max_age is reset on both sides, and the old worker exits', { timeout: 60_000 }, async () => {
    const server = await rawServer((socket) => {
      socket.on('data', (c: Buffer) => socket.write(c));
      socket.on('end', () => socket.end());
    });
    await startTcp(server, {}, { workers: 1, tunnel_max_age: '1500ms', shutdown_timeout: '20s' });
    const client = await connect(sy!.port);
    const clientSide = ending(client);
    client.write('before');
    await waitFor(() => server.sockets.length === 1, 'relayed');
    const serverSide = ending(server.sockets[0]!);
    const [oldPid] = sy!.workerPids();
    const config = structuredClone(sy!.config);
    (config.upstreams as { db: { servers: Array<Record<string, unknown>> } }).db.servers[0]!.weight = 2;
    writeFileSync(sy!.configFile, stringify(config));
    const res = await admin(sy!.adminPort, '/reload', 'POST');
    assert.equal(res.status, 200, res.body);
    // Until the deadline the old worker relays on.
    client.write(' during');
    await sleep(300);
    assert.ok(isAlive(oldPid!), 'the old worker left before tunnel_max_age');
    const [c, s] = await Promise.all([clientSide, serverSide]);
    assert.equal(c.how, 'ECONNRESET');
    assert.equal(s.how, 'ECONNRESET');
    assert.equal(c.data.toString(), 'before during');
    await waitFor(() => !isAlive(oldPid!), 'the old worker exited', 10_000);
    // The new worker relays.
    const r = await tcpExchange(sy!.port, 'after');
    assert.equal(r.error, undefined);
    assert.equal(r.data.toString(), 'after');
  });

  test('the access log counts every byte, also those sent with the PROXY header before the relay took over', { timeout: 30_000 }, async () => {
    const server = await rawServer((socket) => {
      socket.on('data', (c: Buffer) => socket.write(c));
      socket.on('end', () => socket.end('!'));
    });
    await startTcp(server, { accept_proxy: true }, { workers: 1, trusted_proxies: ['127.0.0.1'], logging: { level: 'info', access: true } });
    const early = 'sent in the same packet as the header';
    const later = randomBytes(300_000);
    const client = await connect(sy!.port);
    const result = ending(client);
    client.write(Buffer.concat([Buffer.from(`PROXY TCP4 192.0.2.7 127.0.0.1 40000 ${sy!.port}\r\n`), Buffer.from(early)]));
    await sleep(200);
    client.end(later);
    const { how, data } = await result;
    assert.equal(how, 'closed');
    const bytesIn = early.length + later.length;
    assert.equal(data.length, bytesIn + 1);
    await waitFor(() => sy!.output().includes('"client":"192.0.2.7"'), 'the tcp access line');
    const line = sy!.output().split('\n').find((l) => l.includes('"msg":"tcp"') && l.includes('192.0.2.7'))!;
    const logged = JSON.parse(line) as { bytesIn: number; bytesOut: number; aborted: boolean };
    assert.deepEqual([logged.bytesIn, logged.bytesOut, logged.aborted], [bytesIn, bytesIn + 1, false], line);
  });

  test('thousands of short connections give back every descriptor; /status counts none left', { timeout: 60_000 }, async () => {
    const server = await rawServer((socket) => {
      socket.on('data', (c: Buffer) => socket.write(c));
      socket.on('end', () => socket.end());
    });
    await startTcp(server, {}, { workers: 1 });
    const worker = sy!.workerPids()[0]!;
    const fds = (): number => readdirSync(`/proc/${worker}/fd`).length;
    const before = fds();
    let failed = 0;
    // 16 at a time, 2,000 in all.
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let i = 0; i < 125; i++) {
          const r = await tcpExchange(sy!.port, 'x');
          if (r.error !== undefined || r.data.toString() !== 'x') failed++;
        }
      }),
    );
    assert.equal(failed, 0);
    await waitFor(() => fds() <= before + 2, `worker descriptors back to ${before} (now ${fds()})`);
    await waitFor(async () => (await getStatus(sy!.adminPort)).upstreams.db!.servers[0]!.activeConnections === 0, 'connections counted in shared memory back to 0');
  });
});
