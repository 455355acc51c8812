// Issue 14, servers from DNS: a real dnsmasq on a loopback port answers for
// api.test; three backends listen on 127.0.0.11-13 on one port. Under a
// steady load the A records change (a server added, one removed): no request
// fails, the workers pick the new set up, and with source hashing the
// clients the change must move do move (to the new server / off the removed
// one) and hardly any other: Maglev is near-minimal, not minimal (README),
// so a few clients of the servers that stay may change hands too. How many
// depends on the table, i.e. on the backends' random port: over 5000 ports,
// removing one of three moved at most 9 % of the others' clients (99.9 % of
// ports: under 2 %), adding a third sent at most 3 % of all clients to an old
// server. Modulo hashing or a reshuffled table moves about half of them. An empty answer and a dead DNS server keep the last good set, and
// /status says so. SRV weights become server weights; records of a worse
// priority are left out.
import assert from 'node:assert/strict';
import http from 'node:http';
import type net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { getStatus, waitForStatus, workersReady, type Status as BalancingStatus } from '../helpers/admin-status.js';
import { startDnsmasq, type Dnsmasq } from '../helpers/dnsmasq.js';
import { mapLimit } from '../helpers/gateway.js';
import { describeLoad, startLoad } from '../helpers/load.js';
import { freePort, startSwitchyard, type Switchyard } from '../helpers/switchyard.js';

const IPS = ['127.0.0.11', '127.0.0.12', '127.0.0.13'] as const;
const KEYS = Array.from({ length: 400 }, (_, i) => `client-${i}`);
const WAIT_MS = 90_000; // a reload on this shared 2-core machine can take 10 s and more

interface DiscoveryStatus {
  servers: string[];
  stale: boolean;
  lastError?: string;
}
type StatusWithDiscovery = BalancingStatus & { discovery?: Record<string, DiscoveryStatus> };

interface Backends {
  port: number;
  /** Requests answered, by server IP. */
  served: Map<string, number>;
  close(): Promise<void>;
}

/** One small HTTP server per IP on the same port, answering with its IP after 5 ms (so requests are in flight during changes). */
async function startBackends(): Promise<Backends> {
  const port = await freePort();
  const served = new Map<string, number>();
  const sockets = new Set<net.Socket>();
  const servers = await Promise.all(
    IPS.map(
      (ip) =>
        new Promise<http.Server>((resolve, reject) => {
          const server = http.createServer((req, res) => {
            served.set(ip, (served.get(ip) ?? 0) + 1);
            req.resume();
            setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain', 'x-server': ip }).end(ip), 5);
          });
          server.on('connection', (s: net.Socket) => {
            sockets.add(s);
            s.on('close', () => sockets.delete(s));
          });
          server.once('error', reject);
          server.listen(port, ip, () => resolve(server));
        }),
    ),
  );
  return {
    port,
    served,
    close: async () => {
      for (const s of sockets) s.destroy();
      await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
    },
  };
}

/** Which server answers each key (source hashing on X-Client), over keep-alive connections. */
async function assignment(sy: Switchyard): Promise<Map<string, string>> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const out = await mapLimit(KEYS, 8, (key) => get(sy.port, '/', { 'x-client': key }, agent));
  agent.destroy();
  return new Map(KEYS.map((k, i) => [k, out[i]!]));
}

function get(port: number, path: string, headers: Record<string, string>, agent: http.Agent | false): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`GET ${path} -> ${res.statusCode}: ${body}`))));
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${path}: no answer in 10 s`)));
    req.on('error', reject);
  });
}

const addresses = (s: StatusWithDiscovery, upstream: string): string[] => s.upstreams[upstream]!.servers.map((x) => x.address).sort();

describe('servers from DNS (dnsmasq on loopback)', () => {
  let dns: Dnsmasq;
  let backends: Backends;
  let sy: Switchyard;
  const at = (ips: readonly string[]): string[] => ips.map((ip) => `${ip}:${backends.port}`).sort();

  before(async () => {
    backends = await startBackends();
    dns = await startDnsmasq({ 'api.test': [IPS[0], IPS[1]] }, [
      // Authoritative for .test: a name without records is "no such name", not "refused".
      'local=/test/',
      `host-record=a.api.test,${IPS[0]}`,
      `host-record=b.api.test,${IPS[1]}`,
      `host-record=c.api.test,${IPS[2]}`,
      `srv-host=_http._tcp.api.test,a.api.test,${backends.port},0,10`,
      `srv-host=_http._tcp.api.test,b.api.test,${backends.port},0,30`,
      // A fallback (worse priority): not used while the others answer.
      `srv-host=_http._tcp.api.test,c.api.test,${backends.port},1,50`,
    ]);
    sy = await startSwitchyard(
      {
        workers: 2,
        logging: { level: 'info', access: false },
        shutdown_timeout: '10s',
        upstreams: {
          app: { balance: 'source', hash: { key: 'header:X-Client' }, retries: 0, servers: { dns: 'api.test', port: backends.port, interval: '1s', resolvers: [dns.address] } },
          weighted: { balance: 'round-robin', retries: 0, servers: { dns: '_http._tcp.api.test', type: 'SRV', interval: '1s', resolvers: [dns.address] } },
        },
        routes: [
          { match: { path: '/' }, upstream: 'app' },
          { match: { path: '/weighted' }, upstream: 'weighted' },
        ],
      },
      { outputBytes: 16 << 20 },
    );
    await waitForStatus(sy.adminPort, '2 ready workers', (s) => workersReady(s, 2), WAIT_MS);
  });

  after(async () => {
    await sy?.stop();
    await dns?.stop();
    await backends?.close();
  });

  /**
   * Changes the records, then waits until the new set runs in every worker:
   * /status lists it and no worker predates the change.
   */
  async function change(hosts: Record<string, string[]>, upstream: string, want: string[], what: string): Promise<StatusWithDiscovery> {
    const before = new Set((await getStatus(sy.adminPort)).workers.map((w) => w.pid ?? -1));
    await dns.setHosts(hosts);
    return (await waitForStatus(sy.adminPort, what, (s) => JSON.stringify(addresses(s, upstream)) === JSON.stringify(want) && workersReady(s, 2, before), WAIT_MS)) as StatusWithDiscovery;
  }

  test('A records change under load: no failed request, only the clients that must move do', async (t) => {
    const initial = (await getStatus(sy.adminPort)) as StatusWithDiscovery;
    assert.deepEqual(addresses(initial, 'app'), at([IPS[0], IPS[1]]), 'the first answer is the set');
    assert.equal(initial.discovery?.app?.stale, false);
    const first = await assignment(sy);

    const load = startLoad({ port: sy.port, connections: 8, maxDurationMs: 4 * WAIT_MS });
    try {
      // A server added: a third of the clients move, all of them to it.
      await change({ 'api.test': [IPS[0], IPS[1], IPS[2]] }, 'app', at(IPS), 'three servers from DNS');
      const second = await assignment(sy);
      const moved = KEYS.filter((k) => first.get(k) !== second.get(k));
      t.diagnostic(`server added: ${moved.length} of ${KEYS.length} clients moved (${((moved.length / KEYS.length) * 100).toFixed(1)} %; ideal 33.3 %)`);
      const elsewhere = moved.filter((k) => second.get(k) !== IPS[2]);
      assert.ok(elsewhere.length <= KEYS.length * 0.06, `clients move (nearly) only to the new server: ${elsewhere.length} went to an old one`);
      assert.ok(moved.length > KEYS.length * 0.2 && moved.length < KEYS.length * 0.42, `about a third move: ${moved.length}`);

      // A server removed: its clients spread, nobody else moves.
      await change({ 'api.test': [IPS[1], IPS[2]] }, 'app', at([IPS[1], IPS[2]]), 'server .11 gone from DNS');
      const third = await assignment(sy);
      const stayed = KEYS.filter((k) => second.get(k) !== IPS[0]);
      const reshuffled = stayed.filter((k) => third.get(k) !== second.get(k));
      t.diagnostic(`server removed: ${reshuffled.length} of ${stayed.length} clients of the servers that stay moved`);
      assert.ok(reshuffled.length <= stayed.length * 0.15, `clients of the servers that stay (nearly) do not move: ${reshuffled.length} of ${stayed.length} did`);
      assert.ok(KEYS.every((k) => third.get(k) !== IPS[0]), 'nobody goes to the removed server');
    } finally {
      const r = await load.stop();
      t.diagnostic(`load during the changes: ${describeLoad(r)}`);
      assert.equal(r.failed, 0, `no failed request while the records changed: ${describeLoad(r)}`);
      assert.ok(r.ok > 100, `the load ran: ${describeLoad(r)}`);
    }
  });

  test('an empty answer, then a dead DNS server: the last good set stays, /status says so', async () => {
    const kept = addresses(await getStatus(sy.adminPort), 'app');
    const servedBy = kept.map((a) => a.slice(0, a.lastIndexOf(':')));
    await dns.setHosts({ 'api.test': [] });
    let s = (await waitForStatus(sy.adminPort, 'stale after an empty answer', (x) => (x as StatusWithDiscovery).discovery?.app?.stale === true, WAIT_MS)) as StatusWithDiscovery;
    assert.deepEqual(addresses(s, 'app'), kept, 'servers kept');
    assert.deepEqual([...s.discovery!.app!.servers].sort(), kept);
    assert.match(s.discovery!.app!.lastError ?? '', /ENOTFOUND|ENODATA|empty/, 'the answer was: no such name');
    assert.ok(servedBy.includes(await get(sy.port, '/', { 'x-client': 'k' }, false)), 'still served');

    await dns.kill();
    s = (await waitForStatus(sy.adminPort, 'DNS server down', (x) => /ECONNREFUSED|ETIMEOUT|ESERVFAIL/.test((x as StatusWithDiscovery).discovery?.app?.lastError ?? ''), WAIT_MS)) as StatusWithDiscovery;
    assert.equal(s.discovery!.app!.stale, true);
    assert.deepEqual(addresses(s, 'app'), kept, 'servers kept while DNS is down');
    assert.ok(servedBy.includes(await get(sy.port, '/', { 'x-client': 'k' }, false)), 'still served');

    // Back: answers are used again, without a restart.
    await dns.restart();
    s = await change({ 'api.test': [IPS[0]] }, 'app', at([IPS[0]]), 'DNS back with a new set');
    assert.equal(s.discovery?.app?.stale, false);
  });

  test('SRV: weights become server weights; a worse priority is left out', async () => {
    const s = (await getStatus(sy.adminPort)) as StatusWithDiscovery;
    const servers = s.upstreams.weighted!.servers.map((x) => `${x.address}*${x.weight}`).sort();
    assert.deepEqual(servers, [`${IPS[0]}:${backends.port}*10`, `${IPS[1]}:${backends.port}*30`]);
    const answers = await mapLimit(Array.from({ length: 200 }), 8, () => get(sy.port, '/weighted', {}, false));
    const heavy = answers.filter((a) => a === IPS[1]).length;
    const light = answers.filter((a) => a === IPS[0]).length;
    assert.equal(heavy + light, 200, 'only the priority-0 targets');
    assert.ok(heavy / light > 2 && heavy / light < 4.5, `weights 30:10 split traffic about 3:1: ${heavy}:${light}`);
  });
});
