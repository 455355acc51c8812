// Issue 4 acceptance, black-box against the real CLI: admin drain and enable.
// A drained server takes no new requests while the ones it holds finish; an
// enabled one takes requests again; unknown upstreams and servers get 404.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { admin, getStatus, waitForStatus, workersReady } from '../helpers/admin-status.js';
import { startKillableBackend, type KillableBackend } from '../helpers/killable-backend.js';
import { request, type Response } from '../helpers/process.js';
import { startSwitchyard, withOutput, type Switchyard } from '../helpers/switchyard.js';

async function drainedFlag(sy: Switchyard, address: string): Promise<unknown> {
  const s = await getStatus(sy.adminPort);
  return (s.upstreams.app?.servers.find((x) => x.address === address) as { drained?: unknown } | undefined)?.drained;
}

/** `count` sequential GETs, each on its own connection; their bodies (the answering server's address). */
async function servedBy(sy: Switchyard, count: number): Promise<string[]> {
  const bodies: string[] = [];
  for (let i = 0; i < count; i++) {
    const res = await request({ port: sy.port, path: `/n/${i}` });
    assert.equal(res.status, 200, `request ${i}: ${res.status} ${res.body}`);
    bodies.push(res.body);
  }
  return bodies;
}

describe('admin drain and enable', () => {
  let a: KillableBackend | undefined;
  let b: KillableBackend | undefined;
  let sy: Switchyard | undefined;

  before(async () => {
    a = await startKillableBackend();
    b = await startKillableBackend();
    a.holdPath = '/hold';
    sy = await startSwitchyard({
      upstreams: { app: { balance: 'round-robin', servers: [{ address: a.address }, { address: b.address }] } },
      routes: [{ match: { host: '*', path: '/' }, upstream: 'app' }],
    });
    await waitForStatus(sy.adminPort, 'both workers ready', (s) => workersReady(s, 2));
  });
  after(async () => {
    await sy?.stop();
    await a?.close();
    await b?.close();
  });

  test('a drained server finishes its in-flight request and gets no new ones; enabled, it gets requests again', { timeout: 30_000 }, () =>
    withOutput(sy, async () => {
      // Hold one request open on A (B answers /hold at once).
      let held: Promise<Response> | undefined;
      for (let i = 0; i < 10 && a!.held === 0; i++) {
        const pending = request({ port: sy!.port, path: '/hold', timeoutMs: 15_000 });
        const first = await Promise.race([pending.then(() => 'answered'), new Promise((r) => setTimeout(() => r('pending'), 300))]);
        if (first === 'pending') held = pending;
      }
      assert.ok(held && a!.held === 1, `no request held on ${a!.address} after 10 tries`);

      const drain = await admin(sy!.adminPort, `/servers/app/${a!.address}/drain`, 'POST');
      assert.equal(drain.status, 200, drain.body);
      assert.equal(await drainedFlag(sy!, a!.address), true, 'GET /status does not show drained: true');

      const arrivedBefore = a!.arrivals.length;
      const whileDrained = await servedBy(sy!, 20);
      assert.deepEqual([...new Set(whileDrained)], [b!.address], 'requests answered while A was drained');
      assert.equal(a!.arrivals.length, arrivedBefore, 'a drained server received new requests');

      a!.release();
      const finished = await held;
      assert.equal(finished.status, 200, `the in-flight request on the drained server: ${finished.status} ${finished.body}`);
      assert.equal(finished.body, a!.address);

      const enable = await admin(sy!.adminPort, `/servers/app/${a!.address}/enable`, 'POST');
      assert.equal(enable.status, 200, enable.body);
      assert.equal(await drainedFlag(sy!, a!.address), false, 'GET /status still shows drained after enable');
      const afterEnable = await servedBy(sy!, 20);
      const toA = afterEnable.filter((body) => body === a!.address).length;
      assert.ok(toA >= 5, `only ${toA} of 20 requests reached the re-enabled server`);
    }),
  );

  test('drain and enable answer 404 for an unknown upstream or server, and 401 without the token', { timeout: 10_000 }, async () => {
    for (const action of ['drain', 'enable']) {
      const noUpstream = await admin(sy!.adminPort, `/servers/nope/${a!.address}/${action}`, 'POST');
      assert.equal(noUpstream.status, 404, `unknown upstream, ${action}: ${noUpstream.body}`);
      const noServer = await admin(sy!.adminPort, `/servers/app/127.0.0.1:1/${action}`, 'POST');
      assert.equal(noServer.status, 404, `unknown server, ${action}: ${noServer.body}`);
      const noToken = await admin(sy!.adminPort, `/servers/app/${a!.address}/${action}`, 'POST', null);
      assert.equal(noToken.status, 401, `no token, ${action}: ${noToken.body}`);
    }
    assert.equal(await drainedFlag(sy!, a!.address), false, 'a refused action changed the drain state');
  });
});
