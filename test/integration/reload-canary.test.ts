// Issue 14, item 4: canary reloads on the real CLI under real traffic. A new
// config that sends requests to a dead upstream (5xx) or to a slow one (p99)
// is tried on one worker, judged against the other and rolled back by itself;
// a good one is rolled out to every worker. The answer, /status and the log
// carry the decision and its figures; the query is checked strictly.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { closedPort } from '../helpers/backend.js';
import { startIdentityBackend, type IdentityBackend } from '../helpers/identity-backends.js';
import { admin, getStatus, waitForStatus, workersReady } from '../helpers/admin-status.js';
import { request } from '../helpers/process.js';
import { startSwitchyard, type Switchyard } from '../helpers/switchyard.js';

interface Figures {
  requests: number;
  errors5xx: number;
  errorRate: number;
  p99Ms: number | null;
}
interface CanaryAnswer {
  ok: boolean;
  errors?: string[];
  canary?: { state: string; reason: string; canaryPid: number; canary?: Figures; others?: Figures };
}

/** Requests on fresh connections (so both workers get some) until stop(); what each answered. */
function traffic(port: number, concurrency = 6) {
  let running = true;
  const answers: Array<{ status: number; gen: string | undefined; body: string }> = [];
  const loops = Array.from({ length: concurrency }, async () => {
    while (running) {
      try {
        const res = await request({ port, path: '/', timeoutMs: 5000 });
        answers.push({ status: res.status, gen: res.headers['x-gen'] as string | undefined, body: res.body });
      } catch {
        answers.push({ status: 0, gen: undefined, body: '' });
      }
    }
  });
  return {
    answers,
    async stop() {
      running = false;
      await Promise.all(loops);
      return answers;
    },
  };
}

describe('canary reloads', () => {
  let fast: IdentityBackend;
  let slow: IdentityBackend;
  let dead: string;
  let sy: Switchyard;
  let base: Record<string, unknown>;

  const withRoute = (upstream: string, gen: string) => ({
    ...base,
    routes: [{ match: { host: '*', path: '/' }, upstream, response_headers: { set: { 'X-Gen': gen } } }],
  });

  async function canaryReload(config: Record<string, unknown>, query: string): Promise<{ status: number; body: CanaryAnswer }> {
    writeFileSync(sy.configFile, stringify(config));
    const res = await admin(sy.adminPort, `/reload${query}`, 'POST');
    return { status: res.status, body: JSON.parse(res.body) as CanaryAnswer };
  }

  before(async () => {
    fast = await startIdentityBackend();
    slow = await startIdentityBackend();
    slow.delayMs = 400;
    dead = `127.0.0.1:${await closedPort()}`;
    sy = await startSwitchyard({
      workers: 2,
      logging: { level: 'info', access: false },
      upstreams: {
        fast: { servers: [{ address: fast.address }] },
        slow: { servers: [{ address: slow.address }] },
        dead: { servers: [{ address: dead }], retries: 0 },
      },
      routes: [{ match: { host: '*', path: '/' }, upstream: 'fast', response_headers: { set: { 'X-Gen': '1' } } }],
    });
    base = sy.config;
    await waitForStatus(sy.adminPort, 'workers ready', (s) => workersReady(s, 2));
  });
  after(async () => {
    await sy?.stop();
    await fast?.close();
    await slow?.close();
  });

  async function expectOldConfigEverywhere(): Promise<void> {
    await waitForStatus(sy.adminPort, 'two ready workers, no canary', (s) => workersReady(s, 2) && s.workers.every((w) => !(w as { canary?: boolean }).canary), 15_000);
    for (let i = 0; i < 20; i++) {
      const res = await request({ port: sy.port, path: '/' });
      assert.equal(res.status, 200);
      assert.equal(res.headers['x-gen'], '1');
    }
  }

  test('a config that routes to a dead upstream fails on the canary (5xx) and is rolled back', { timeout: 90_000 }, async () => {
    const load = traffic(sy.port);
    const { status, body } = await canaryReload(withRoute('dead', 'dead'), '?canary=4s');
    const answers = await load.stop();
    assert.equal(status, 409, JSON.stringify(body));
    assert.equal(body.ok, false);
    const c = body.canary!;
    assert.equal(c.state, 'rolled-back');
    assert.match(c.reason, /5xx rate \d+\.\d+% on the canary against 0\.00% on the others/);
    assert.ok(c.canary!.requests >= 20 && c.canary!.errorRate > 0.9, JSON.stringify(c));
    assert.ok(c.others!.requests > 0 && c.others!.errors5xx === 0, JSON.stringify(c));
    assert.match(body.errors![0]!, /canary rolled back: 5xx rate/);
    // Only the canary served the new config during the window: the others kept answering 200.
    assert.ok(answers.some((a) => a.status === 502) && answers.some((a) => a.status === 200 && a.gen === '1'));
    const status1 = await getStatus(sy.adminPort);
    assert.equal((status1 as unknown as { canary: { state: string } }).canary.state, 'rolled-back');
    await expectOldConfigEverywhere();
    assert.match(sy.output(), /"decision":"rolled-back".*canary failed: rolling back/);
  });

  test('a config whose upstream is slow fails on p99 and is rolled back', { timeout: 90_000 }, async () => {
    const load = traffic(sy.port);
    const { status, body } = await canaryReload(withRoute('slow', 'slow'), '?canary=4s&min_requests=5');
    await load.stop();
    assert.equal(status, 409, JSON.stringify(body));
    const c = body.canary!;
    assert.equal(c.state, 'rolled-back');
    assert.match(c.reason, /p99 \d+\.\d ms on the canary against \d+\.\d ms on the others/);
    assert.ok(c.canary!.p99Ms! >= 250, JSON.stringify(c));
    await expectOldConfigEverywhere();
  });

  test('a good config passes on the canary and is rolled out to every worker', { timeout: 90_000 }, async () => {
    const before = new Set((await getStatus(sy.adminPort)).workers.flatMap((w) => (w.pid === null ? [] : [w.pid])));
    const load = traffic(sy.port);
    const { status, body } = await canaryReload(withRoute('fast', '2'), '?canary=4s');
    const answers = await load.stop();
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.ok, true);
    assert.equal(body.canary!.state, 'rolled-out');
    assert.match(body.canary!.reason, /within bounds/);
    assert.ok(answers.every((a) => a.status === 200), 'no request failed during the canary and the roll-out');
    assert.ok(answers.some((a) => a.gen === '1') && answers.some((a) => a.gen === '2'), 'both configs served during the window');
    await waitForStatus(sy.adminPort, 'new workers everywhere', (s) => workersReady(s, 2, before), 15_000);
    for (let i = 0; i < 20; i++) assert.equal((await request({ port: sy.port, path: '/' })).headers['x-gen'], '2');
    assert.match(sy.output(), /"decision":"rolled-out".*canary passed: rolling the new config out/);
    base = withRoute('fast', '1'); // back to generation 1 for the next tests
    writeFileSync(sy.configFile, stringify(base));
    assert.equal((await admin(sy.adminPort, '/reload', 'POST')).status, 200);
  });

  test('a canary without traffic cannot be judged: rolled back, saying so', { timeout: 60_000 }, async () => {
    const { status, body } = await canaryReload(withRoute('fast', '3'), '?canary=1s');
    assert.equal(status, 409, JSON.stringify(body));
    assert.match(body.canary!.reason, /answered 0 requests in the window, fewer than the 20 needed/);
    await expectOldConfigEverywhere();
  });

  test('a canary worker that dies in the window is a rollback; its slot comes back with the running config', { timeout: 90_000 }, async () => {
    const load = traffic(sy.port, 2);
    writeFileSync(sy.configFile, stringify(withRoute('fast', 'doomed')));
    const pending = admin(sy.adminPort, '/reload?canary=6s', 'POST');
    const s = await waitForStatus(sy.adminPort, 'a canary worker', (st) => st.workers.some((w) => (w as { canary?: boolean }).canary), 20_000);
    const canaryPid = s.workers.find((w) => (w as { canary?: boolean }).canary)!.pid!;
    process.kill(canaryPid, 'SIGKILL');
    const res = await pending;
    await load.stop();
    assert.equal(res.status, 409, res.body);
    const body = JSON.parse(res.body) as CanaryAnswer;
    assert.equal(body.canary!.state, 'rolled-back');
    assert.equal(body.canary!.reason, 'the canary worker died during the window');
    await expectOldConfigEverywhere();
  });

  test('while a canary decides, other reloads are refused (409), not queued to run later; a client that hangs up does not stop it; every canary request needs the token', { timeout: 90_000 }, async () => {
    const statusCanary = async () => (await getStatus(sy.adminPort)) as unknown as { canary?: { state: string; startedAt: string } };
    const lastStarted = (await statusCanary()).canary?.startedAt;
    // Without the token, or with a wrong one: 401, no canary starts.
    for (const token of [null, 'wrong', '']) {
      const res = await admin(sy.adminPort, '/reload?canary=2s', 'POST', token);
      assert.equal(res.status, 401, `token ${JSON.stringify(token)}: ${res.body}`);
    }
    assert.equal((await statusCanary()).canary?.startedAt, lastStarted, 'no canary started without the token');

    const load = traffic(sy.port, 2);
    writeFileSync(sy.configFile, stringify(withRoute('fast', 'c1')));
    // The client hangs up at once: the canary goes on and decides.
    const hungUp = request({ port: sy.adminPort, path: '/reload?canary=5s&min_requests=1', method: 'POST', headers: { authorization: 'Bearer test-token' }, timeoutMs: 300 }).catch((err: Error) => err);
    await waitForStatus(sy.adminPort, 'a canary worker', (st) => st.workers.some((w) => (w as { canary?: boolean }).canary), 20_000);
    assert.match(String(await hungUp), /timed out/);
    writeFileSync(sy.configFile, stringify(withRoute('fast', 'c2')));
    const [second, plain] = await Promise.all([admin(sy.adminPort, '/reload?canary=2s', 'POST'), admin(sy.adminPort, '/reload', 'POST')]);
    for (const res of [second, plain]) {
      assert.equal(res.status, 409, res.body);
      assert.match(res.body, /a canary reload is running or waiting/);
    }
    // Back to the running config before the canary decides: nothing else may run after it.
    writeFileSync(sy.configFile, stringify(base));
    const decided = await waitForStatus(sy.adminPort, 'the canary decided', (st) => (st as unknown as { canary?: { state: string } }).canary?.state !== 'running', 30_000);
    const state = (decided as unknown as { canary: { state: string } }).canary.state;
    await load.stop();
    await waitForStatus(sy.adminPort, 'two ready workers, no canary', (st) => workersReady(st, 2) && st.workers.every((w) => !(w as { canary?: boolean }).canary), 15_000);
    // Whatever the verdict, c2 never runs: the refused reloads were not queued.
    const pids = new Set((await getStatus(sy.adminPort)).workers.map((w) => w.pid));
    await new Promise((resolve) => setTimeout(resolve, 3000));
    assert.deepEqual(new Set((await getStatus(sy.adminPort)).workers.map((w) => w.pid)), pids, 'no reload ran after the canary');
    const gens = new Set<string>();
    for (let i = 0; i < 20; i++) gens.add(String((await request({ port: sy.port, path: '/' })).headers['x-gen']));
    assert.deepEqual([...gens], [state === 'rolled-out' ? 'c1' : '1'], `the canary's verdict (${state}) decides, nothing else`);
    if (state === 'rolled-out') {
      writeFileSync(sy.configFile, stringify(base));
      assert.equal((await admin(sy.adminPort, '/reload', 'POST')).status, 200, 'reloads are accepted again');
    }
    await expectOldConfigEverywhere();
  });

  test('the query is checked: each problem named, nothing started', async () => {
    const cases: Array<[string, RegExp]> = [
      ['?canary=abc', /canary: expected a duration from 1s to 1h/],
      ['?canary=500ms', /canary: expected a duration from 1s to 1h/],
      ['?canary=2h', /canary: expected a duration from 1s to 1h/],
      ['?canary=', /canary: expected a duration/],
      ['?canary=5s&canary=6s', /canary: given twice/],
      ['?canary=5s&min_requests=0', /min_requests: expected an integer/],
      ['?min_requests=5', /min_requests applies to a canary reload only/],
      ['?canary=5s&dry=1', /unknown query parameter "dry"/],
    ];
    for (const [query, error] of cases) {
      const res = await admin(sy.adminPort, `/reload${query}`, 'POST');
      assert.equal(res.status, 400, `${query}: ${res.body}`);
      assert.match((JSON.parse(res.body) as { errors: string[] }).errors.join('\n'), error, query);
    }
    // An invalid file with a canary: 400 with the config errors, as a plain reload.
    writeFileSync(sy.configFile, 'workers: 2\nlmits: {}\n');
    const res = await admin(sy.adminPort, '/reload?canary=5s', 'POST');
    assert.equal(res.status, 400);
    assert.match(res.body, /lmits: unknown key/);
    writeFileSync(sy.configFile, stringify(base));
    await expectOldConfigEverywhere();
  });

  test('one worker cannot be a canary and its own baseline: 400, nothing changed', { timeout: 60_000 }, async () => {
    // Its own ports: the helper fills in listen and admin.
    const { listen: _listen, admin: _admin, ...rest } = base;
    const single = await startSwitchyard({ ...rest, workers: 1 });
    try {
      await waitForStatus(single.adminPort, 'worker ready', (s) => workersReady(s, 1));
      const res = await admin(single.adminPort, '/reload?canary=2s', 'POST');
      assert.equal(res.status, 400, res.body);
      assert.match(res.body, /a canary needs at least 2 ready workers/);
    } finally {
      await single.stop();
    }
  });
});
