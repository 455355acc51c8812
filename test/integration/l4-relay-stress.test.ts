// The native relay of mode: tcp under many sessions at once: hundreds of
// concurrent clients, each sending its own random payload of a random size
// (a few over 1 MB) in random pieces, must each get back exactly its own
// bytes from echo servers, with nothing lost, repeated or crossed with
// another session's, also when a reload replaces the workers while half of
// the sessions are relaying and the other half have yet to connect. Half of
// the sessions open with a PROXY header (accept_proxy) that is passed on to
// the server (proxy_protocol: v1), so their first bytes reach the relay
// through the hand-over from Node (read with the header, put back, written
// before the relay takes over) rather than straight from the socket.
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import net from 'node:net';
import { after, test } from 'node:test';
import { admin, getStatus, waitForStatus, workersReady } from '../helpers/admin-status.js';
import { sleep } from '../helpers/process.js';
import { freePort, startSwitchyard, type Switchyard } from '../helpers/switchyard.js';

/** STRESS_SESSIONS=N for a heavier run by hand. */
const SESSIONS = Number(process.env.STRESS_SESSIONS ?? 400);

let sy: Switchyard | undefined;
const echoes: net.Server[] = [];

after(async () => {
  await sy?.stop();
  for (const s of echoes) s.close();
});

/** Sends every byte back as it comes, with backpressure, and half-closes after the client did. */
async function startEcho(): Promise<string> {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  echoes.push(server);
  return `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

/** Mostly small payloads, some of hundreds of KB, one in twenty over 1 MB. */
function payloadSize(): number {
  const r = Math.random();
  if (r < 0.05) return randomInt(1 << 20, 3 << 20);
  if (r < 0.2) return randomInt(64 << 10, 1 << 20);
  return randomInt(1, 64 << 10);
}

interface Outcome {
  index: number;
  sent: number;
  received: Buffer;
  error: string | undefined;
}

/**
 * Connects, writes `payload` in random pieces (respecting backpressure),
 * half-closes, reads to the end; a `slow` reader stops reading for a moment
 * now and then, so that the relay holds bytes and waits for the client.
 */
function session(port: number, index: number, payload: Buffer, slow: boolean): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let error: string | undefined;
    const timer = setTimeout(() => {
      error = 'no end within 120 s';
      socket.destroy();
    }, 120_000);
    let at = 0;
    const pump = (): void => {
      while (at < payload.length) {
        const piece = payload.subarray(at, Math.min(payload.length, at + randomInt(1, 256 << 10)));
        at += piece.length;
        if (!socket.write(piece)) return void socket.once('drain', pump);
      }
      socket.end();
    };
    socket.once('connect', pump);
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      if (slow && Math.random() < 0.2) {
        socket.pause();
        setTimeout(() => socket.resume(), randomInt(5, 100));
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => (error ??= err.code ?? err.message));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ index, sent: payload.length, received: Buffer.concat(chunks), error });
    });
  });
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** What went wrong with one session, or undefined when it got exactly its payload back. */
function problem(o: Outcome, payload: Buffer): string | undefined {
  if (o.error !== undefined) return `session ${o.index} (${o.sent} bytes): ${o.error} after ${o.received.length} bytes back`;
  if (o.received.length !== payload.length) return `session ${o.index}: sent ${payload.length} bytes, got ${o.received.length} back`;
  if (sha(o.received) === sha(payload)) return undefined;
  let at = 0;
  while (o.received[at] === payload[at]) at++;
  return `session ${o.index} (${payload.length} bytes): bytes differ from offset ${at}`;
}

test(`${SESSIONS} concurrent relayed sessions each get exactly their own random bytes back, across a reload`, { timeout: 300_000 }, async () => {
  const servers = await Promise.all([startEcho(), startEcho()]);
  const taken = new Set(servers.map((a) => Number(a.split(':')[1])));
  const port = await freePort(taken);
  const proxyPort = await freePort(new Set([...taken, port]));
  sy = await startSwitchyard({
    trusted_proxies: ['127.0.0.1/32'],
    listen: [
      { host: '127.0.0.1', port, mode: 'tcp', upstream: 'echo' },
      { host: '127.0.0.1', port: proxyPort, mode: 'tcp', upstream: 'echo-pp', accept_proxy: true },
    ],
    upstreams: {
      echo: { balance: 'least-conn', servers: servers.map((address) => ({ address })) },
      'echo-pp': { balance: 'round-robin', proxy_protocol: 'v1', servers: servers.map((address) => ({ address })) },
    },
    routes: [{ match: { path: '/' }, upstream: 'echo' }],
    shutdown_timeout: '60s',
  });
  await waitForStatus(sy.adminPort, 'workers ready', (s) => workersReady(s, 2));
  const oldPids = new Set((await getStatus(sy.adminPort)).workers.flatMap((w) => (w.pid === null ? [] : [w.pid])));
  const payloads = Array.from({ length: SESSIONS }, () => randomBytes(payloadSize()));
  const slow = (i: number): boolean => i % 4 === 0;
  // Odd sessions: a PROXY header naming a client of their own, which the server receives (and echoes) first.
  const header = (i: number): Buffer => Buffer.from(`PROXY TCP4 192.0.2.${(i % 250) + 1} 198.51.100.1 ${10_000 + i} 5432\r\n`, 'latin1');
  const start = (i: number): Promise<Outcome> =>
    i % 2 === 0 ? session(port, i, payloads[i]!, slow(i)) : session(proxyPort, i, Buffer.concat([header(i), payloads[i]!]), slow(i));
  const expected = (i: number): Buffer => (i % 2 === 0 ? payloads[i]! : Buffer.concat([header(i), payloads[i]!]));

  // The first half all at once; the reload while they relay; the second half during and after it.
  const half = SESSIONS / 2;
  const first = payloads.slice(0, half).map((_, i) => start(i));
  await sleep(200);
  const reload = admin(sy.adminPort, '/reload', 'POST');
  const second: Array<Promise<Outcome>> = [];
  for (let i = half; i < SESSIONS; i++) {
    second.push(start(i));
    if (i % 20 === 0) await sleep(50);
  }
  const res = await reload;
  assert.equal(res.status, 200, res.body);
  const outcomes = await Promise.all([...first, ...second]);

  const problems = outcomes.flatMap((o) => problem(o, expected(o.index)) ?? []);
  const total = payloads.reduce((n, p) => n + p.length, 0);
  assert.deepEqual(problems, [], `${problems.length} of ${SESSIONS} sessions (${(total / 1e6).toFixed(0)} MB each way)`);
  assert.ok(payloads.some((p) => p.length > 1 << 20), 'at least one payload over 1 MB');
  // The reload really happened in the middle: new workers now, and the old ones gone once their sessions ended.
  await waitForStatus(sy.adminPort, 'the new workers only', (st) => workersReady(st, 2, oldPids), 30_000);
});
