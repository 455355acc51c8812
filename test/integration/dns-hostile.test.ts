// Hostile DNS answers for `servers: { dns }` (src/discovery/dns.ts), from a
// DNS server that says whatever the test wants (helpers/dns-server.ts):
// thousands of records, TTL 0 and 2^32-1, SRV records with port 0, weight 0
// and targets that do not resolve, addresses no backend has or that are the
// proxy's own sockets, a resolver that goes silent, and answers that change
// on every query. Each is bounded and logged; the proxy keeps serving and
// keeps the last good set.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { getStatus, waitForStatus, workersReady, type Status } from '../helpers/admin-status.js';
import { startBackend, type Backend } from '../helpers/backend.js';
import { startDnsServer, type DnsRecord, type DnsServer } from '../helpers/dns-server.js';
import { isAlive, request, sleep } from '../helpers/process.js';
import { ADMIN_TOKEN, freePort, startSwitchyard, type Switchyard } from '../helpers/switchyard.js';

const WAIT_MS = 60_000;
const MAX_SERVERS = 256;
const FLIPPERS = ['f1', 'f2', 'f3', 'f4'] as const;

interface DiscoveryStatus {
  servers: string[];
  stale: boolean;
  lastError?: string;
  nextResolveInMs: number;
}
const discovery = (s: Status): Record<string, DiscoveryStatus> => (s as Status & { discovery: Record<string, DiscoveryStatus> }).discovery;
const servers = (s: Status, upstream: string): string[] => s.upstreams[upstream]!.servers.map((x) => (x.weight === 1 ? x.address : `${x.address}*${x.weight}`)).sort();

describe('hostile DNS answers', () => {
  let dns: DnsServer;
  let backend: Backend;
  let sy: Switchyard;
  let proxyPort: number;
  let adminPort: number;
  let silent = false;
  let flipping = false;
  const flipped = new Map<string, number>();
  const big: DnsRecord[] = Array.from({ length: 3000 }, (_, i) => ({ type: 'A', address: `10.${(i >> 8) & 255}.${i & 255}.${1 + (i % 7)}`, ttl: 0 }));

  before(async () => {
    backend = await startBackend();
    proxyPort = await freePort();
    adminPort = await freePort(new Set([proxyPort]));
    dns = await startDnsServer((name) => {
      switch (name) {
        case 'big.test':
          return big;
        case 'long.test':
          return [{ type: 'A', address: '127.0.0.51', ttl: 0xffffffff }];
        case 'self.test': // the proxy's own listener, and one real server
          return [{ type: 'A', address: '127.0.0.1' }, { type: 'A', address: '127.0.0.31' }];
        case 'mixed.test': // on the admin port: the admin API, addresses no backend has, one real server
          return ['127.0.0.1', '0.0.0.0', '0.1.2.3', '224.0.0.1', '239.255.255.250', '255.255.255.255', '169.254.169.254', '127.0.0.32'].map((address) => ({ type: 'A', address }));
        case 'six.test':
          return ['ff02::1', '::', 'fe80::1', '::ffff:a9fe:a9fe', '::1'].map((address) => ({ type: 'AAAA', address }));
        case '_http._tcp.srv.test':
          return [
            { type: 'SRV', target: 'a.test', port: 0, weight: 5 },
            { type: 'SRV', target: 'nx.test', port: 8080, weight: 50 },
            { type: 'SRV', target: 'b.test', port: 8081, weight: 0 },
            { type: 'SRV', target: 'c.test', port: 8082, weight: 10 },
          ];
        case 'a.test':
          return [{ type: 'A', address: '127.0.0.41' }];
        case 'b.test':
          return [{ type: 'A', address: '127.0.0.42' }];
        case 'c.test':
          return [{ type: 'A', address: '127.0.0.43' }];
        case 'quiet.test':
          return silent ? 'silent' : [{ type: 'A', address: '127.0.0.1' }];
        default:
          if (FLIPPERS.some((f) => name === `${f}.test`)) {
            if (!flipping) return [{ type: 'A', address: '127.0.0.1' }];
            // Each name's own count: its every answer differs from its last.
            const n = (flipped.get(name) ?? 0) + 1;
            flipped.set(name, n);
            return [{ type: 'A', address: n % 2 === 0 ? '127.0.0.1' : '127.0.0.2', ttl: 0 }];
          }
          return [];
      }
    });
    const dnsUpstream = (name: string, port?: number, type?: string) => ({ retries: 0, servers: { dns: name, ...(port === undefined ? {} : { port }), ...(type ? { type } : {}), interval: '1s', resolvers: [dns.address] } });
    sy = await startSwitchyard(
      {
        workers: 2,
        listen: [{ host: '127.0.0.1', port: proxyPort }],
        admin: { host: '127.0.0.1', port: adminPort, token: ADMIN_TOKEN },
        logging: { level: 'info', access: false },
        upstreams: {
          stable: { servers: [{ address: `127.0.0.1:${backend.port}` }] },
          big: dnsUpstream('big.test', 80),
          long: { ...dnsUpstream('long.test', 80), servers: { ...dnsUpstream('long.test', 80).servers, interval: '2s' } },
          self: dnsUpstream('self.test', proxyPort),
          mixed: dnsUpstream('mixed.test', adminPort),
          six: dnsUpstream('six.test', 80, 'AAAA'),
          srv: dnsUpstream('_http._tcp.srv.test', undefined, 'SRV'),
          quiet: dnsUpstream('quiet.test', backend.port),
          ...Object.fromEntries(FLIPPERS.map((f) => [f, dnsUpstream(`${f}.test`, backend.port)])),
        },
        routes: [{ match: { path: '/' }, upstream: 'stable' }],
      },
      { outputBytes: 16 << 20 },
    );
    await waitForStatus(sy.adminPort, '2 ready workers', (s) => workersReady(s, 2), WAIT_MS);
  });

  after(async () => {
    await sy?.stop();
    await dns?.stop();
    await backend?.close();
  });

  test('an answer is screened: at most 256 servers, no unspecified, multicast, broadcast or link-local address, not the proxy itself', async () => {
    const s = await getStatus(sy.adminPort);
    const bigSet = servers(s, 'big');
    assert.equal(bigSet.length, MAX_SERVERS, '3000 A records: the first 256');
    assert.deepEqual(bigSet, [...new Set(big.map((r) => `${r.type === 'A' ? r.address : ''}:80`))].sort().slice(0, MAX_SERVERS), 'the first in address order (the same in every instance)');
    assert.deepEqual(servers(s, 'self'), [`127.0.0.31:${proxyPort}`], "the proxy's own listener is no server");
    assert.deepEqual(servers(s, 'mixed'), [`127.0.0.32:${adminPort}`], 'neither the admin API nor 0/8, multicast, broadcast, link-local');
    assert.deepEqual(servers(s, 'six'), ['[::1]:80'], 'IPv6: neither ::, multicast, link-local nor mapped link-local');
    assert.match(sy.output(), /dns answer: records left out/);
    assert.match(sy.output(), /2744 of 3000 addresses \(at most 256\)/);
  });

  test('SRV: port 0 left out, weight 0 is weight 1, a target that does not resolve is left out and the others count', async () => {
    const s = await getStatus(sy.adminPort);
    assert.deepEqual(servers(s, 'srv'), ['127.0.0.42:8081', '127.0.0.43:8082*10']);
    assert.equal(discovery(s).srv!.stale, false);
    assert.match(sy.output(), /a\.test: port 0/);
    assert.match(sy.output(), /nx\.test: ENOTFOUND/);
  });

  test('TTL 0 does not make the primary ask in a loop; TTL 2^32-1 does not stop it asking', async () => {
    const before = { big: dns.queries.get('A big.test') ?? 0, long: dns.queries.get('A long.test') ?? 0 };
    const t0 = Date.now();
    await sleep(5000);
    const seconds = (Date.now() - t0) / 1000;
    const big = (dns.queries.get('A big.test') ?? 0) - before.big;
    const long = (dns.queries.get('A long.test') ?? 0) - before.long;
    // c-ares asks over UDP, is told to use TCP: 2 queries per resolution, at most one resolution a second.
    assert.ok(big >= 2 && big <= 2 * (seconds + 1), `TTL 0: ${big} queries in ${seconds.toFixed(1)} s`);
    assert.ok(long >= 1 && long <= seconds, `TTL 2^32-1, interval 2s: ${long} queries in ${seconds.toFixed(1)} s`);
    const s = await getStatus(sy.adminPort);
    assert.ok(discovery(s).long!.nextResolveInMs <= 2000, `next in ${discovery(s).long!.nextResolveInMs} ms`);
  });

  test('a resolver that stops answering: the last good set stays, /status says it timed out', async () => {
    silent = true;
    try {
      const s = await waitForStatus(sy.adminPort, 'quiet.test timed out', (x) => /ETIMEOUT/.test(discovery(x).quiet?.lastError ?? ''), WAIT_MS);
      assert.equal(discovery(s).quiet!.stale, true);
      assert.deepEqual(servers(s, 'quiet'), [`127.0.0.1:${backend.port}`], 'kept');
      assert.equal((await request({ port: proxyPort })).status, 200);
    } finally {
      silent = false;
    }
    await waitForStatus(sy.adminPort, 'quiet.test answers again', (x) => discovery(x).quiet?.stale === false, WAIT_MS);
  });

  test('answers that change on every query: reloads do not queue up, the proxy serves throughout', async (t) => {
    const marks = () => (sy.output().match(/reload complete/g) ?? []).length;
    flipping = true;
    const until = Date.now() + 8000;
    let served = 0;
    try {
      while (Date.now() < until) {
        const r = await request({ port: proxyPort, timeoutMs: 10_000 });
        assert.equal(r.status, 200, `served while the answers flip: ${r.body}`);
        served++;
        await sleep(100);
      }
    } finally {
      flipping = false;
    }
    const changes = (sy.output().match(/dns servers changed: applying/g) ?? []).length;
    const atStop = marks();
    // Settled: no reload completes for 4 s.
    let last = atStop;
    let quietSince = Date.now();
    const deadline = Date.now() + WAIT_MS;
    while (Date.now() - quietSince < 4000) {
      assert.ok(Date.now() < deadline, `reloads still completing ${WAIT_MS} ms after the answers settled (${marks() - atStop} so far)`);
      await sleep(250);
      if (marks() !== last) {
        last = marks();
        quietSince = Date.now();
      }
    }
    const after = marks() - atStop;
    t.diagnostic(`${changes} changes seen while flipping, ${atStop} reloads by then, ${after} after`);
    // One reload running and one waiting (which applies the settled answers), then one more for a flip it caught: at most 3.
    assert.ok(after <= 3, `${after} reloads completed after the answers settled (${changes} changes seen, ${[...flipped.values()].reduce((a, b) => a + b, 0)} flipped answers): they queued`);
    assert.ok(served >= 5, `${served} requests served in 8 s`);
    assert.ok(isAlive(sy.pid), 'the primary lives');
    const s = await waitForStatus(sy.adminPort, 'flippers settled', (x) => FLIPPERS.every((f) => servers(x, f).join() === `127.0.0.1:${backend.port}`), WAIT_MS);
    assert.ok(workersReady(s, 2));
  });
});
