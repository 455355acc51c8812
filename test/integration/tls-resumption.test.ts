// Session resumption across workers: the primary makes the ticket keys and
// every worker uses them, so a ticket issued by one worker resumes on the
// other. Which worker served a request is read from the kernel, not from
// anything Switchyard says: the upstream reports the source port of the
// connection the request came on, and /proc says which worker process owns
// the socket with that port. Rotation keeps the previous key for one period.

import assert from 'node:assert/strict';
import http from 'node:http';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pki, type Ca } from '../helpers/certs.js';
import { freePort, startSwitchyard, type Switchyard } from '../helpers/switchyard.js';
import { tlsRequest } from '../helpers/tls-client.js';

let pki: Pki;
let ca: Ca;
let upstream: http.Server;
let sy: Switchyard;
const ROTATE_MS = 3000;

before(async () => {
  pki = new Pki();
  ca = pki.ca('resume-ca');
  const cert = pki.issue(ca, 'r', { subject: '/CN=r.test', sans: ['DNS:r.test'] });
  // Answers with the source port of the proxy's upstream connection.
  upstream = http.createServer((req, res) => res.end(String(req.socket.remotePort)));
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const port = (upstream.address() as { port: number }).port;
  sy = await startSwitchyard(
    {
      workers: 2,
      listen: [{ host: '127.0.0.1', port: await freePort(new Set([port])), tls: { certificates: [{ cert: cert.cert, key: cert.key }] } }],
      tls_tickets: { rotate: `${ROTATE_MS}ms` },
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

/** The pid (among `pids`) owning the TCP socket bound to local port `port` on 127.0.0.1. */
function ownerOfPort(port: number, pids: number[]): number | undefined {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set<string>();
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1]?.endsWith(`:${hex}`)) inodes.add(f[9]!);
  }
  for (const pid of pids) {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m && inodes.has(m[1]!)) return pid;
      } catch {
        // closed meanwhile
      }
    }
  }
  return undefined;
}

async function served(session: Buffer | undefined, maxVersion: 'TLSv1.2' | 'TLSv1.3') {
  const res = await tlsRequest({ port: sy.port, servername: 'r.test', ca: ca.certPem, maxVersion, ...(session ? { session } : {}), headers: { connection: 'close' } });
  assert.equal(res.status, 200);
  return { ...res, worker: ownerOfPort(Number(res.body), sy.workerPids()) };
}

for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
  test(`${version}: a ticket from one worker resumes on the other`, async () => {
    const first = await served(undefined, version);
    assert.equal(first.resumed, false);
    assert.ok(first.worker !== undefined, 'the serving worker was found');
    assert.ok(first.session, 'the server sent a ticket');
    let crossWorker = 0;
    let notResumed = 0;
    // The kernel spreads connections over both workers; keep going until several landed on the other one.
    for (let i = 0; i < 60 && crossWorker < 3; i++) {
      const next = await served(first.session, version);
      if (!next.resumed) notResumed++;
      if (next.worker !== undefined && next.worker !== first.worker) crossWorker++;
    }
    assert.ok(crossWorker >= 3, `only ${crossWorker} connections reached the other worker`);
    assert.equal(notResumed, 0, `${notResumed} handshakes were not resumed`);
  });
}

test('after a rotation a ticket still resumes (previous key kept); after two, the handshake is full', async () => {
  const first = await served(undefined, 'TLSv1.3');
  await sleep(ROTATE_MS + 500);
  const afterOne = await served(first.session, 'TLSv1.3');
  assert.equal(afterOne.resumed, true, 'resumed with the previous key');
  await sleep(2 * ROTATE_MS + 500);
  const afterTwo = await served(first.session, 'TLSv1.3');
  assert.equal(afterTwo.resumed, false, 'a ticket two keys old is not accepted');
  assert.equal(afterTwo.status, 200);
});

test('attack: a forged ticket (random bytes) is not resumed and the connection still works', async () => {
  const first = await served(undefined, 'TLSv1.2');
  // Flip bytes inside the ticket: the HMAC check must fail, and OpenSSL falls back to a full handshake.
  const forged = Buffer.from(first.session!);
  for (let i = forged.length - 40; i < forged.length - 20; i++) forged[i] = forged[i]! ^ 0xff;
  const res = await tlsRequest({ port: sy.port, servername: 'r.test', ca: ca.certPem, maxVersion: 'TLSv1.2', session: forged }).catch((err: Error) => err);
  if (res instanceof Error) assert.match(res.message, /./); // a session the client itself cannot parse: refused client-side
  else {
    assert.equal(res.status, 200);
    assert.equal(res.resumed, false);
  }
});
