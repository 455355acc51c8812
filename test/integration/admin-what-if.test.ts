// Issue 14, item 4: GET /upstreams/{name}/what-if on the real CLI. The
// numbers are checked against an independent computation (the TypeScript
// Maglev reference, test/helpers/maglev-reference.ts), the prediction against
// what the proxy then really does after the reload (which backend each of
// 400 clients reaches before and after), and the query against every
// malformed or ambiguous form we could think of.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { MaglevReference } from '../helpers/maglev-reference.js';
import { startIdentityBackends, type IdentityBackend } from '../helpers/identity-backends.js';
import { admin, getStatus, waitForStatus, workersReady } from '../helpers/admin-status.js';
import { request } from '../helpers/process.js';
import { startSwitchyard, type Switchyard } from '../helpers/switchyard.js';

interface Share {
  address: string;
  weight: { before: number; after: number };
  share: { before: number; after: number };
}
interface HashedAnswer {
  hashed: true;
  moved: number;
  flows: Array<{ from: string; to: string; share: number }>;
  servers: Share[];
  tableSize: { before: number; after: number };
}

const HASHED = [
  { address: '10.9.0.1:80', weight: 1 },
  { address: '10.9.0.2:80', weight: 1 },
  { address: '10.9.0.3:80', weight: 2 },
  { address: 'app-4.internal:8080', weight: 1 },
];
const SPREAD = [
  { address: '10.8.0.1:80', weight: 1 },
  { address: '10.8.0.2:80', weight: 2 },
  { address: '10.8.0.3:80', weight: 3 },
];

async function whatIf(sy: Switchyard, upstream: string, query: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await admin(sy.adminPort, `/upstreams/${upstream}/what-if${query}`);
  return { status: res.status, body: JSON.parse(res.body) as Record<string, unknown> };
}

/** The same question answered by the reference implementation: entry by entry. */
function reference(beforeList: typeof HASHED, afterList: typeof HASHED) {
  const build = (l: typeof HASHED) => MaglevReference.build(l.map((s) => s.address), l.map((s) => s.weight));
  const a = build(beforeList);
  const b = build(afterList);
  assert.equal(a.size, b.size);
  const flows = new Map<string, number>();
  const counts = new Map<string, number>();
  let moved = 0;
  for (let i = 0; i < a.size; i++) {
    const from = beforeList[a.entries[i]!]!.address;
    const to = afterList[b.entries[i]!]!.address;
    counts.set(to, (counts.get(to) ?? 0) + 1);
    if (from === to) continue;
    moved++;
    flows.set(`${from}>${to}`, (flows.get(`${from}>${to}`) ?? 0) + 1);
  }
  return { size: a.size, moved, flows, counts };
}

function checkAgainstReference(answer: HashedAnswer, beforeList: typeof HASHED, afterList: typeof HASHED): void {
  const ref = reference(beforeList, afterList);
  const close = (x: number, y: number, what: string) => assert.ok(Math.abs(x - y) < 1e-9, `${what}: ${x} vs reference ${y}`);
  assert.deepEqual(answer.tableSize, { before: ref.size, after: ref.size });
  close(answer.moved, ref.moved / ref.size, 'moved share');
  assert.equal(answer.flows.length, ref.flows.size);
  for (const f of answer.flows) close(f.share, (ref.flows.get(`${f.from}>${f.to}`) ?? NaN) / ref.size, `flow ${f.from} -> ${f.to}`);
  for (const s of answer.servers) close(s.share.after, (ref.counts.get(s.address) ?? 0) / ref.size, `share of ${s.address}`);
}

describe('what-if', () => {
  let sy: Switchyard;
  let backends: IdentityBackend[] = [];

  before(async () => {
    backends = await startIdentityBackends(4);
    sy = await startSwitchyard({
      upstreams: {
        hashed: { balance: 'source', servers: HASHED },
        spread: { balance: 'round-robin', servers: SPREAD },
        live: { balance: 'source', hash: { key: 'header:x-client' }, servers: backends.map((b) => ({ address: b.address, weight: 1 })) },
      },
      routes: [{ match: { host: '*', path: '/' }, upstream: 'live' }],
    });
    await waitForStatus(sy.adminPort, 'workers ready', (s) => workersReady(s, 2));
  });
  after(async () => {
    await sy?.stop();
    await Promise.all(backends.map((b) => b.close()));
  });

  test('remove one server and add another: the numbers are the reference Maglev tables\'', async () => {
    const { status, body } = await whatIf(sy, 'hashed', '?remove=10.9.0.2:80&add=10.9.0.5:80:3');
    assert.equal(status, 200, JSON.stringify(body));
    const answer = body as unknown as HashedAnswer;
    assert.equal(answer.hashed, true);
    const afterList = [...HASHED.filter((s) => s.address !== '10.9.0.2:80'), { address: '10.9.0.5:80', weight: 3 }];
    checkAgainstReference(answer, HASHED, afterList);
    // Everyone on the removed server moves; the new server takes about 3/7 of the clients.
    const removed = answer.servers.find((s) => s.address === '10.9.0.2:80')!;
    assert.equal(removed.share.after, 0);
    assert.ok(answer.moved >= removed.share.before);
    const added = answer.servers.find((s) => s.address === '10.9.0.5:80')!;
    assert.deepEqual(added.weight, { before: 0, after: 3 });
    assert.ok(Math.abs(added.share.after - 3 / 7) < 0.02, `new share ${added.share.after}`);
    const sum = answer.servers.reduce((n, s) => n + s.share.after, 0);
    assert.ok(Math.abs(sum - 1) < 1e-9);
  });

  test('adding a server moves clients to it and almost no others (Maglev\'s near-minimal disruption), as the reference says', async () => {
    const { status, body } = await whatIf(sy, 'hashed', '?add=[fd00::7]:443:1');
    assert.equal(status, 200, JSON.stringify(body));
    const answer = body as unknown as HashedAnswer;
    checkAgainstReference(answer, HASHED, [...HASHED, { address: '[fd00::7]:443', weight: 1 }]);
    // Maglev is near-minimal, not minimal: a few entries change hands between staying servers.
    const collateral = answer.flows.filter((f) => f.to !== '[fd00::7]:443').reduce((n, f) => n + f.share, 0);
    assert.ok(collateral > 0 && collateral < 0.01, `moved between staying servers: ${collateral}`);
    assert.ok(answer.moved > 0.15 && answer.moved < 0.25, `moved ${answer.moved}`);
  });

  test('a weight change is remove + add of the same server (any spelling of it)', async () => {
    const { status, body } = await whatIf(sy, 'hashed', '?remove=10.9.0.3:80&add=10.9.0.3:0080:1');
    assert.equal(status, 200, JSON.stringify(body));
    const answer = body as unknown as HashedAnswer;
    const afterList = HASHED.map((s) => (s.address === '10.9.0.3:80' ? { ...s, weight: 1 } : s));
    checkAgainstReference(answer, HASHED, afterList);
    const s3 = answer.servers.find((s) => s.address === '10.9.0.3:80')!;
    assert.deepEqual(s3.weight, { before: 2, after: 1 });
    assert.equal(answer.servers.length, 4);
    const collateral = answer.flows.filter((f) => f.from !== '10.9.0.3:80').reduce((n, f) => n + f.share, 0);
    assert.ok(collateral < 0.01, `clients moved away from unchanged servers: ${collateral}`);
  });

  test('round-robin: the new weight shares', async () => {
    const { status, body } = await whatIf(sy, 'spread', '?remove=10.8.0.3:80&add=10.8.0.4:80:5');
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.hashed, false);
    const servers = body.servers as Share[];
    const byAddress = new Map(servers.map((s) => [s.address, s.share]));
    assert.deepEqual(byAddress.get('10.8.0.1:80'), { before: 1 / 6, after: 1 / 8 });
    assert.deepEqual(byAddress.get('10.8.0.2:80'), { before: 2 / 6, after: 2 / 8 });
    assert.deepEqual(byAddress.get('10.8.0.3:80'), { before: 3 / 6, after: 0 });
    assert.deepEqual(byAddress.get('10.8.0.4:80'), { before: 0, after: 5 / 8 });
  });

  test('bad queries get 400 with each problem named; the live config is untouched', async () => {
    const cases: Array<[string, RegExp]> = [
      ['', /nothing to change/],
      ['?drop=10.9.0.1:80', /unknown query parameter "drop"/],
      ['?remove=10.9.0.9:80', /remove="10\.9\.0\.9:80": no such server in upstream "hashed"/],
      ['?remove=10.9.0.1:80&remove=10.9.0.1:80', /given twice/],
      ['?add=10.9.0.7:80:0', /weight 1\.\.1000/],
      ['?add=10.9.0.7:80:1001', /weight 1\.\.1000/],
      ['?add=10.9.0.7:80:x', /expected ADDR:W/],
      ['?add=10.9.0.7', /expected ADDR:W/],
      ['?add=', /expected ADDR:W/],
      ['?add=::1:80:1', /expected ADDR:W/],
      ['?add=10.9.0.7:99999:1', /expected ADDR:W/],
      ['?add=10.9.0.1:80:2', /already in upstream "hashed" as 10\.9\.0\.1:80 \(to change its weight, also remove=10\.9\.0\.1:80\)/],
      ['?add=10.9.0.7:80:1&add=10.9.0.7:80:2', /given twice/],
      ['?remove=10.9.0.1:80&remove=10.9.0.2:80&remove=10.9.0.3:80&remove=app-4.internal:8080', /without servers/],
    ];
    for (const [query, error] of cases) {
      const { status, body } = await whatIf(sy, 'hashed', query);
      assert.equal(status, 400, `${query}: ${JSON.stringify(body)}`);
      assert.match((body.errors as string[]).join('\n'), error, query);
    }
    // Several problems at once: each is reported.
    const many = await whatIf(sy, 'hashed', '?remove=nope:1&add=bad&x=1');
    assert.equal((many.body.errors as string[]).length, 3, JSON.stringify(many.body));

    assert.equal((await whatIf(sy, 'missing', '?add=10.0.0.1:80:1')).status, 404);
    assert.equal((await whatIf(sy, '__proto__', '?add=10.0.0.1:80:1')).status, 404);
    assert.equal((await admin(sy.adminPort, '/upstreams/hashed/what-if?add=10.0.0.1:80:1', 'POST')).status, 405);
    assert.equal((await admin(sy.adminPort, '/upstreams/hashed/what-if?add=10.0.0.1:80:1', 'GET', null)).status, 401);
    const s = await getStatus(sy.adminPort);
    assert.deepEqual(
      s.upstreams.hashed!.servers.map((x) => [x.address, x.weight]),
      HASHED.map((x) => [x.address, x.weight]),
    );
  });

  test('the prediction holds: after the real reload, the share of 400 clients that changed backend matches', { timeout: 60_000 }, async () => {
    const clients = Array.from({ length: 400 }, (_, i) => `client-${i}`);
    const served = async () => {
      const out = new Map<string, string>();
      for (let i = 0; i < clients.length; i += 50) {
        await Promise.all(
          clients.slice(i, i + 50).map(async (c) => {
            const res = await request({ port: sy.port, path: '/', headers: { 'x-client': c } });
            assert.equal(res.status, 200);
            out.set(c, res.body);
          }),
        );
      }
      return out;
    };
    const before = await served();
    const [gone, ...kept] = backends.map((b) => b.address);
    const { status, body } = await whatIf(sy, 'live', `?remove=${gone}&add=${kept[0]}:3&remove=${kept[0]}`);
    assert.equal(status, 200, JSON.stringify(body));
    const predicted = (body as unknown as HashedAnswer).moved;

    const config = structuredClone(sy.config) as { upstreams: { live: { servers: Array<{ address: string; weight: number }> } } };
    config.upstreams.live.servers = config.upstreams.live.servers.filter((s) => s.address !== gone).map((s) => (s.address === kept[0] ? { ...s, weight: 3 } : s));
    const oldPids = new Set((await getStatus(sy.adminPort)).workers.flatMap((w) => (w.pid === null ? [] : [w.pid])));
    writeFileSync(sy.configFile, stringify(config));
    assert.equal((await admin(sy.adminPort, '/reload', 'POST')).status, 200);
    await waitForStatus(sy.adminPort, 'reloaded', (s) => workersReady(s, 2, oldPids), 15_000);
    const afterReload = await served();
    const moved = clients.filter((c) => before.get(c) !== afterReload.get(c)).length / clients.length;
    // 400 samples: a standard error of at most 2.5 points; 4 of them is a wrong prediction, not chance.
    assert.ok(Math.abs(moved - predicted) < 0.1, `measured ${moved}, predicted ${predicted}`);
    assert.ok(predicted > 0.3, `predicted ${predicted}`);
  });
});
