// Issue 14, safer retries, through the real CLI: an upstream of two servers,
// one resetting every connection as soon as the request arrives, the other
// answering. A POST or PATCH carrying an Idempotency-Key is retried on the
// other server (its body replayed intact, exactly once there) and counted in
// switchyard_upstream_idempotency_key_retries_total; without the header, with
// an empty one, or on an upstream with retry_idempotency_key: false, it is
// not retried (502). And with source hashing and hash.balance_factor, the
// requests the bound moves off their first choice are counted in
// switchyard_balance_factor_diversions_total, exactly as many as reached the
// other server.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startBackend, startRawBackend, type Backend, type RawBackend } from '../helpers/backend.js';
import { mapLimit, metricsText, metricValue, send, waitWorkersReady } from '../helpers/gateway.js';
import { startSwitchyard, type Switchyard } from '../helpers/switchyard.js';

const N = 24;

describe('retries of POST and PATCH with an Idempotency-Key', () => {
  let reset: RawBackend;
  let ok: Backend;
  let slowA: Backend;
  let slowB: Backend;
  let sy: Switchyard;

  before(async () => {
    reset = await startRawBackend((s) => s.once('data', () => s.resetAndDestroy()));
    ok = await startBackend();
    const slow = (name: string) => () => new Promise<{ status: number; headers: Array<[string, string]>; body: string }>((resolve) => setTimeout(() => resolve({ status: 200, headers: [['x-server', name]], body: name }), 300));
    slowA = await startBackend({ respond: slow('a') });
    slowB = await startBackend({ respond: slow('b') });
    // Never ejected (passive health would take the resetting server out after 5 failures and hide the difference).
    const pair = { servers: [{ address: reset.address }, { address: ok.address }], retries: 1, retry_budget: { percent: 100, min_per_second: 1000 }, outlier: { consecutive_failures: 100000 } };
    sy = await startSwitchyard(
      {
        workers: 2,
        upstreams: {
          keyed: pair,
          strict: { ...pair, retry_idempotency_key: false },
          bounded: { balance: 'source', hash: { key: 'header:X-Client', balance_factor: 1.25 }, servers: [{ address: slowA.address }, { address: slowB.address }], retries: 0 },
        },
        routes: [
          { match: { path: '/keyed' }, upstream: 'keyed' },
          { match: { path: '/strict' }, upstream: 'strict' },
          { match: { path: '/bounded' }, upstream: 'bounded' },
        ],
      },
    );
    await waitWorkersReady(sy.adminPort, 2);
  });

  after(async () => {
    await sy?.stop();
    await Promise.all([reset?.close(), ok?.close(), slowA?.close(), slowB?.close()]);
  });

  /** N requests (fresh connections, so round-robin sends about half to the resetting server first); statuses counted. */
  async function burst(path: string, method: string, headers: Record<string, string>, tag: string): Promise<Record<string, number>> {
    const statuses: Record<string, number> = {};
    await mapLimit(Array.from({ length: N }, (_, i) => i), 4, async (i) => {
      const body = `${tag}-${i}-${'x'.repeat(2000)}`;
      const r = await send({ port: sy.port, path, method, headers, body });
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    });
    return statuses;
  }

  const keyedRetries = async (upstream: string) => metricValue(await metricsText(sy.adminPort), 'switchyard_upstream_idempotency_key_retries_total', { upstream }) ?? 0;

  test('POST and PATCH with an Idempotency-Key: retried on the other server, body intact and delivered once', async () => {
    const resetsBefore = reset.connections.length;
    const post = await burst('/keyed', 'POST', { 'idempotency-key': 'k-1' }, 'post');
    const patch = await burst('/keyed', 'PATCH', { 'Idempotency-Key': '"8e03978e-40d5-43e8-bc93-6894a57f9324"' }, 'patch');
    assert.deepEqual(post, { 200: N }, 'every keyed POST answered');
    assert.deepEqual(patch, { 200: N }, 'every keyed PATCH answered');
    const hitReset = reset.connections.length - resetsBefore;
    assert.ok(hitReset > 0, 'some requests went to the resetting server first');
    for (const tag of ['post', 'patch']) {
      for (let i = 0; i < N; i++) {
        const copies = ok.requests.filter((q) => q.body.toString('latin1').startsWith(`${tag}-${i}-`));
        assert.equal(copies.length, 1, `${tag} ${i} reached the answering server exactly once`);
        assert.equal(copies[0]!.body.toString('latin1'), `${tag}-${i}-${'x'.repeat(2000)}`, `${tag} ${i}: the whole body, replayed intact`);
      }
    }
    assert.equal(await keyedRetries('keyed'), hitReset, 'each retry of a keyed request counted once');
  });

  test('without the header, with an empty one, or with retry_idempotency_key: false: no retry', async () => {
    const before = await keyedRetries('keyed');
    const plain = await burst('/keyed', 'POST', {}, 'plain');
    const empty = await burst('/keyed', 'PATCH', { 'idempotency-key': '' }, 'empty');
    const strict = await burst('/strict', 'POST', { 'idempotency-key': 'k-2' }, 'strict');
    for (const [what, s] of Object.entries({ plain, empty, strict })) {
      assert.ok((s['502'] ?? 0) > 0 && (s['200'] ?? 0) > 0 && (s['502'] ?? 0) + (s['200'] ?? 0) === N, `${what}: the ones sent to the resetting server fail (502), the others pass: ${JSON.stringify(s)}`);
    }
    assert.equal(await keyedRetries('keyed'), before, 'nothing counted');
    assert.equal(await keyedRetries('strict'), 0);
  });

  test('balance_factor: requests the bound moves off their first choice are counted', async () => {
    const first = (await send({ port: sy.port, path: '/bounded', headers: { 'x-client': 'one-client' } })).body;
    assert.ok(first === 'a' || first === 'b');
    const before = metricValue(await metricsText(sy.adminPort), 'switchyard_balance_factor_diversions_total', { upstream: 'bounded' }) ?? 0;
    assert.equal(before, 0, 'an idle upstream diverts nothing');
    // 20 at once for one key: the first choice takes its bounded share, the rest go to the other server.
    const answers = await mapLimit(Array.from({ length: 20 }), 20, () => send({ port: sy.port, path: '/bounded', headers: { 'x-client': 'one-client' } }));
    const elsewhere = answers.filter((r) => r.body !== first).length;
    assert.ok(elsewhere > 0, 'the bound moved some requests');
    const counted = metricValue(await metricsText(sy.adminPort), 'switchyard_balance_factor_diversions_total', { upstream: 'bounded' });
    assert.equal(counted, elsewhere, 'every request the bound moved, and only those');
    assert.equal(metricValue(await metricsText(sy.adminPort), 'switchyard_balance_factor_diversions_total', { upstream: 'keyed' }), undefined, 'no series without balance_factor');
  });
});
