// A reload must not reset a TLS connection the old worker accepted but whose
// handshake ends after the worker stopped accepting (found under load by
// acme-reload-canary.test.ts: 'read ECONNRESET' / 'socket hang up' in 2 of 4
// runs). Before, the worker destroyed such a connection at the end of its
// handshake, or exited before it ended. The test holds the state in place:
// a TCP connection that the (only) worker has accepted, with no ClientHello
// yet; a reload; the old worker seen closing its listening socket (from
// /proc, not from anything Switchyard says); only then the handshake and a
// request, which must be answered.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { admin } from '../helpers/admin-status.js';
import { Pki, type Ca } from '../helpers/certs.js';
import { freePort, startSwitchyard, type Switchyard } from '../helpers/switchyard.js';

let pki: Pki;
let ca: Ca;
let upstream: http.Server;
let sy: Switchyard;

before(async () => {
  pki = new Pki();
  ca = pki.ca('drain-ca');
  const cert = pki.issue(ca, 'd', { subject: '/CN=d.test', sans: ['DNS:d.test'] });
  upstream = http.createServer((_req, res) => res.end('answered'));
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const port = (upstream.address() as { port: number }).port;
  sy = await startSwitchyard(
    {
      workers: 1,
      listen: [{ host: '127.0.0.1', port: await freePort(new Set([port])), tls: { certificates: [{ cert: cert.cert, key: cert.key }] } }],
      upstreams: { app: { servers: [{ address: `127.0.0.1:${port}` }], retries: 0 } },
      routes: [{ match: { host: '*', path: '/' }, upstream: 'app' }],
    },
    { startTimeoutMs: 60_000 },
  );
});

after(async () => {
  await sy?.stop();
  upstream?.close();
  pki?.cleanup();
});

/** Socket inodes in /proc/net/tcp with local port `port` and, when given, this state (hex) and peer port. */
function inodes(port: number, state?: string, peerPort?: number): Set<string> {
  const hex = (p: number) => `:${p.toString(16).toUpperCase().padStart(4, '0')}`;
  const out = new Set<string>();
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (!f[1]?.endsWith(hex(port))) continue;
    if (state !== undefined && f[3] !== state) continue;
    if (peerPort !== undefined && !f[2]?.endsWith(hex(peerPort))) continue;
    out.add(f[9]!);
  }
  return out;
}

/** Whether process `pid` holds one of `wanted` (false once it is gone). */
function holds(pid: number, wanted: Set<string>): boolean {
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        return m !== null && wanted.has(m[1]!);
      } catch {
        return false; // closed meanwhile
      }
    });
  } catch {
    return false;
  }
}

async function until(what: string, ok: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await sleep(20);
  }
}

test('a TLS connection accepted before a reload and handshaking after the old worker stopped accepting is answered', async () => {
  const [oldPid] = sy.workerPids();
  assert.ok(oldPid !== undefined);
  const raw = net.connect(sy.port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => raw.once('connect', resolve).once('error', reject));
  const clientPort = raw.localPort!;
  // 01 = ESTABLISHED: the worker's end of this very connection, in the worker's fd table once it accepted.
  await until('the worker accepted the connection', () => holds(oldPid, inodes(sy.port, '01', clientPort)));

  const reload = await admin(sy.adminPort, '/reload', 'POST');
  assert.equal(reload.status, 200, reload.body);
  // 0A = LISTEN: the old worker has closed its listener (or is gone, which the request below then shows).
  await until('the old worker stopped accepting', () => !holds(oldPid, inodes(sy.port, '0A')));

  const socket = tls.connect({ socket: raw, servername: 'd.test', ca: ca.certPem });
  const answer = await new Promise<string>((resolve, reject) => {
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (data += d));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
    socket.once('secureConnect', () => socket.write('GET / HTTP/1.1\r\nHost: d.test\r\n\r\n'));
  });
  assert.match(answer, /^HTTP\/1\.1 200 /, answer);
  assert.match(answer, /\r\nconnection: close\r\n/i, 'the draining worker closes the connection after the answer');
  assert.match(answer, /answered$/);
});
