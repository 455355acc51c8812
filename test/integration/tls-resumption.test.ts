// Session resumption across workers: the primary makes the ticket keys and
// every worker uses them, so a ticket issued by one worker resumes on the
// other. Which worker served a request is read from the kernel, not from
// anything Switchyard says: the upstream reports the source port of the
// connection the request came on, and /proc says which worker process owns
// the socket with that port. Rotation keeps the previous key for one period.
//
// Timing: a ticket expires after two rotation periods, so a test that is not
// about rotation runs against a proxy that does not rotate during the test,
// and the rotation test watches the rotations happen (the name of the key in
// freshly issued tickets) instead of sleeping, so a slow machine cannot make
// it cross a rotation it did not expect.

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
/** Never rotates while the tests run. */
let sy: Switchyard;
let cert: { cert: string; key: string };
let upstreamPort: number;
const ROTATE_MS = 3000;

before(async () => {
  pki = new Pki();
  ca = pki.ca('resume-ca');
  cert = pki.issue(ca, 'r', { subject: '/CN=r.test', sans: ['DNS:r.test'] });
  // Answers with the source port of the proxy's upstream connection.
  upstream = http.createServer((req, res) => res.end(String(req.socket.remotePort)));
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamPort = (upstream.address() as { port: number }).port;
  sy = await startProxy('1h');
});

async function startProxy(rotate: string): Promise<Switchyard> {
  return startSwitchyard(
    {
      workers: 2,
      listen: [{ host: '127.0.0.1', port: await freePort(new Set([upstreamPort])), tls: { certificates: [{ cert: cert.cert, key: cert.key }] } }],
      tls_tickets: { rotate },
      upstreams: { app: { servers: [{ address: `127.0.0.1:${upstreamPort}` }], retries: 0 } },
      routes: [{ match: { host: '*', path: '/' }, upstream: 'app' }],
    },
  );
}

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

async function served(session: Buffer | undefined, maxVersion: 'TLSv1.2' | 'TLSv1.3', proxy = sy) {
  const res = await tlsRequest({ port: proxy.port, servername: 'r.test', ca: ca.certPem, maxVersion, ...(session ? { session } : {}), headers: { connection: 'close' } });
  assert.equal(res.status, 200);
  // OpenSSL's ticket format: the 16-byte key name comes first. A resumption under the current key may bring no new ticket.
  return { ...res, worker: ownerOfPort(Number(res.body), proxy.workerPids()), keyName: res.ticket?.subarray(0, 16).toString('hex') };
}

/**
 * Full handshakes until every worker of `proxy` issues tickets under a key
 * that `isNew` accepts (the kernel spreads connections over the workers, so
 * each is reached after a few tries); returns that key's name. The rotation
 * reaches each worker by its own IPC message, so one worker may lag.
 */
async function untilEveryWorkerIssues(proxy: Switchyard, isNew: (keyName: string | undefined) => boolean, what: string): Promise<string> {
  const pids = proxy.workerPids();
  const seen = new Map<number, string>();
  const deadline = Date.now() + 10 * ROTATE_MS;
  while (Date.now() < deadline) {
    const fresh = await served(undefined, 'TLSv1.3', proxy);
    assert.ok(fresh.keyName, 'a full handshake brings a ticket');
    if (fresh.worker !== undefined && isNew(fresh.keyName)) seen.set(fresh.worker, fresh.keyName);
    else if (fresh.worker !== undefined) seen.delete(fresh.worker);
    if (pids.every((pid) => seen.has(pid))) {
      const names = new Set(seen.values());
      if (names.size === 1) return [...names][0]!;
      seen.clear(); // one worker is a rotation ahead: look again
    }
    await sleep(50);
  }
  assert.fail(`no ${what} on every worker within ${10 * ROTATE_MS} ms (seen: ${JSON.stringify([...seen])})`);
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
  const rot = await startProxy(`${ROTATE_MS}ms`);
  try {
    // A try is conclusive when the resumption came after the first rotation and
    // before the second (the renewed ticket is under the first rotation's key)
    // and the ticket was younger than its lifetime (two periods, whole seconds).
    // A machine paused past that window makes the try inconclusive, not failed.
    for (let attempt = 1; ; attempt++) {
      const issued = Date.now();
      const first = await served(undefined, 'TLSv1.3', rot);
      const k0 = first.keyName;
      assert.ok(k0, 'the server sent a ticket');
      const k1 = await untilEveryWorkerIssues(rot, (k) => k !== k0, 'rotated key');
      const afterOne = await served(first.session, 'TLSv1.3', rot);
      const age = Date.now() - issued;
      const conclusive = afterOne.keyName === k1 && age < 2 * ROTATE_MS - 1000;
      if (conclusive) {
        assert.equal(afterOne.resumed, true, `a ticket ${age} ms old, one rotation behind, resumed with the previous key`);
        await untilEveryWorkerIssues(rot, (k) => k !== k0 && k !== k1, 'second rotated key');
        const afterTwo = await served(first.session, 'TLSv1.3', rot);
        assert.equal(afterTwo.resumed, false, 'a ticket two keys old is not accepted');
        assert.notEqual(afterTwo.keyName, k0);
        assert.notEqual(afterTwo.keyName, k1);
        return;
      }
      assert.ok(attempt < 5, `no conclusive try in ${attempt} (last: ticket ${age} ms old, renewed under ${afterOne.keyName}, rotated key ${k1})`);
    }
  } finally {
    await rot.stop();
  }
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
