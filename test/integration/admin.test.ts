// The admin API of the real CLI: authentication, status, reload (admin and
// SIGHUP), and that it never answers on a proxy port.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { admin, getStatus, waitForStatus } from '../helpers/admin-status.js';
import { startNamedBackend, type Backend } from '../helpers/backend.js';
import { isAlive, request, tempDir, type TempDir } from '../helpers/process.js';
import { ADMIN_TOKEN, baseConfig, freePort, startCli, type RunningCli } from '../helpers/switchyard.js';

describe('admin API', () => {
  let tmp: TempDir;
  let backend: Backend;
  let cli: RunningCli;
  let file: string;
  let proxyPort: number;
  let adminPort: number;
  let config: Record<string, unknown>;

  before(async () => {
    tmp = await tempDir();
    backend = await startNamedBackend();
    proxyPort = await freePort();
    adminPort = await freePort();
    config = baseConfig({ proxyPort, adminPort, servers: [backend.address], workers: 1 });
    file = await tmp.writeConfig(config);
    cli = await startCli(file, { waitFor: [proxyPort, adminPort] });
  });
  after(async () => {
    await cli.stop();
    await backend.close();
    await tmp.remove();
  });

  test('requests without the token, or with a wrong one, get 401 with WWW-Authenticate', async () => {
    for (const token of [null, 'wrong', `${ADMIN_TOKEN}x`, '']) {
      for (const [path, method] of [['/status', 'GET'], ['/reload', 'POST'], ['/nope', 'GET']] as const) {
        const res = await admin(adminPort, path, method, token);
        assert.equal(res.status, 401, `${method} ${path} with ${token}`);
        assert.match(res.headers['www-authenticate'] ?? '', /^Bearer/);
        assert.match(res.headers['content-type'] ?? '', /application\/json/);
        assert.ok(JSON.parse(res.body).error);
      }
    }
    const basic = await request({ port: adminPort, path: '/status', headers: { authorization: `Basic ${ADMIN_TOKEN}` } });
    assert.equal(basic.status, 401);
  });

  test('GET /status with the token describes the process, workers and upstreams', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await request({ port: proxyPort, path: `/n${i}` })).status, 200);
    const s = await getStatus(adminPort);
    assert.equal(s.pid, cli.pid);
    assert.equal(s.configFile, file);
    assert.equal(s.scheduling, 'kernel');
    assert.equal(s.crashLoop, false);
    assert.match(String(s.version), /^\d+\.\d+\.\d+/);
    assert.equal(typeof s.uptimeSeconds, 'number');
    assert.equal(s.workers.length, 1);
    assert.deepEqual(Object.keys(s.workers[0]!).sort(), ['pid', 'restarts', 'slot', 'state', 'uptimeSeconds']);
    assert.ok(s.requests >= 3, `requests ${s.requests}`);
    const server = s.upstreams.app!.servers[0]!;
    assert.equal(s.upstreams.app!.balance, 'round-robin');
    assert.equal(server.address, backend.address);
    assert.equal(server.healthy, true);
    assert.ok(server.requests >= 3);
    assert.deepEqual(s.unresponsiveWorkers, []);
  });

  test('unknown paths get 404 and wrong methods 405, as JSON', async () => {
    const missing = await admin(adminPort, '/nope');
    assert.equal(missing.status, 404);
    assert.ok(JSON.parse(missing.body).error);
    const wrongStatus = await admin(adminPort, '/status', 'POST');
    assert.equal(wrongStatus.status, 405);
    assert.equal(wrongStatus.headers.allow, 'GET');
    const wrongReload = await admin(adminPort, '/reload', 'GET');
    assert.equal(wrongReload.status, 405);
    assert.equal(wrongReload.headers.allow, 'POST');
  });

  test('the admin API never answers on the proxy port', async () => {
    const res = await request({ port: proxyPort, path: '/status', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    assert.equal(res.body, `backend ${backend.port}\n`, 'the proxy forwarded /status to the upstream');
    assert.notEqual(proxyPort, adminPort);
  });

  test('POST /reload with an invalid file answers 400 with the errors and changes nothing', async () => {
    const before = await getStatus(adminPort);
    await tmp.writeText('workers: 2\nbogus: true\n', 'switchyard.yaml');
    try {
      const res = await admin(adminPort, '/reload', 'POST');
      assert.equal(res.status, 400);
      const body = JSON.parse(res.body) as { ok: boolean; errors: string[] };
      assert.equal(body.ok, false);
      assert.ok(body.errors.some((e) => e.startsWith(`${file}:2:1`) && e.includes('bogus')), res.body);
      const after = await getStatus(adminPort);
      assert.deepEqual(
        after.workers.map((w) => w.pid),
        before.workers.map((w) => w.pid),
      );
      assert.equal((await request({ port: proxyPort })).status, 200);
    } finally {
      await tmp.writeConfig(config);
    }
  });

  test('POST /reload with a valid file replaces every worker and applies a new worker count', async () => {
    const before = await getStatus(adminPort);
    const oldPid = before.workers[0]!.pid!;
    await tmp.writeConfig({ ...config, workers: 2 });
    const res = await admin(adminPort, '/reload', 'POST');
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(JSON.parse(res.body), { ok: true });
    const after = await waitForStatus(adminPort, 'two ready workers after the reload', (s) => s.workers.filter((w) => w.state === 'ready').length === 2);
    // The old worker may still be listed as draining (idle keep-alive connections get a short grace).
    const ready = after.workers.filter((w) => w.state === 'ready');
    assert.deepEqual(ready.map((w) => w.slot).sort(), [0, 1]);
    assert.ok(ready.every((w) => w.pid !== oldPid && w.restarts === 0));
    // The old worker drains (no requests in flight) and exits.
    await waitForStatus(adminPort, 'two workers, the old one gone', (s) => s.workers.length === 2 && !isAlive(oldPid));
    assert.equal((await request({ port: proxyPort })).status, 200);
  });

  test('SIGHUP reloads like POST /reload', async () => {
    const before = await waitForStatus(adminPort, 'every worker ready', (s) => s.workers.every((w) => w.state === 'ready'));
    await tmp.writeConfig({ ...config, workers: 1 });
    process.kill(cli.pid, 'SIGHUP');
    const after = await waitForStatus(
      adminPort,
      'one new ready worker after SIGHUP',
      (s) => s.workers.length === 1 && s.workers[0]!.state === 'ready' && !before.workers.some((w) => w.pid === s.workers[0]!.pid),
    );
    assert.equal(after.workers[0]!.slot, 0);
    await waitForStatus(adminPort, 'the old workers gone', () => before.workers.every((w) => !isAlive(w.pid!)));
    assert.equal((await request({ port: proxyPort })).status, 200);
  });
});
