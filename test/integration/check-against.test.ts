// Issue 14, item 4: `switchyard --check NEW --against CURRENT`. A change that
// hides every kind of weakening we know (a new API key, a raised rate limit,
// authorize rules dropped, an open route carved under an authenticated one,
// an authenticated route removed so its requests fall to an open one, a
// trusted proxy added) must name each one; the share of clients a hashed
// upstream moves must match an independent Maglev computation; a change that
// only tightens must report nothing weakened.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MaglevReference } from '../helpers/maglev-reference.js';
import { tempDir, type TempDir } from '../helpers/process.js';
import { baseConfig, runCli } from '../helpers/switchyard.js';

/** Each run builds Maglev tables and audits the routes: generous on a loaded machine. */
const CLI_TIMEOUT_MS = 60_000;
const K1 = { name: 'k1', key: 'first-key-of-enough-length', scopes: ['orders'] };
const K2 = { name: 'k2', key: 'second-key-of-enough-length', scopes: ['orders'] };
const OPS = { name: 'ops', hash: `$2b$10$${'a'.repeat(53)}` };
const APP = ['10.1.0.1:80', '10.1.0.2:80', '10.1.0.3:80', '10.1.0.4:80'];

function config(routes: unknown[], extra: { app?: Array<{ address: string; weight?: number }>; trusted?: string[] } = {}): Record<string, unknown> {
  const base = baseConfig({ proxyPort: 18081, adminPort: 19091, servers: ['127.0.0.1:9001'] });
  return {
    ...base,
    trusted_proxies: extra.trusted ?? [],
    upstreams: {
      app: { balance: 'source', servers: extra.app ?? APP.map((address) => ({ address, weight: 1 })) },
      web: { servers: [{ address: '10.2.0.1:80' }, { address: '10.2.0.2:80' }] },
    },
    routes,
  };
}

const ordersWrite = (keys: unknown[], rate: string) => ({
  name: 'orders-write',
  match: { host: 'api.example.test', path: '/v1/orders', methods: ['POST', 'PUT'] },
  upstream: 'app',
  auth: { api_key: { keys } },
  rate_limit: { rate, burst: 5, key: 'client-ip' },
});
const adminUi = (authorize?: unknown) => ({
  name: 'admin-ui',
  match: { host: '*', path: '/admin' },
  upstream: 'web',
  auth: { basic: { users: [OPS] } },
  ...(authorize ? { authorize } : {}),
});
const reports = { name: 'reports', match: { host: '*', path: '/reports' }, upstream: 'web', auth: { api_key: { keys: [K1] } } };
const site = { name: 'site', match: { host: '*', path: '/' }, upstream: 'web' };

describe('--check --against', { timeout: 300_000 }, () => {
  let tmp: TempDir;
  let current: string;
  let weakening: string;
  let tightening: string;
  before(async () => {
    tmp = await tempDir();
    current = await tmp.writeConfig(config([ordersWrite([K1], '10/s'), adminUi({ cidrs: ['10.0.0.0/8'] }), reports, site]), 'current.yaml');
    weakening = await tmp.writeConfig(
      config(
        [
          ordersWrite([K1, K2], '50/s'),
          adminUi(),
          { name: 'admin-debug', match: { host: '*', path: '/admin/debug' }, upstream: 'web' },
          { name: 'v2', match: { host: '*', path: '/v2' }, upstream: 'app' },
          site,
        ],
        { app: [...APP.slice(0, 3).map((address) => ({ address, weight: 1 })), { address: '10.1.0.5:80', weight: 2 }], trusted: ['10.0.0.0/8'] },
      ),
      'weakening.yaml',
    );
    tightening = await tmp.writeConfig(
      config([ordersWrite([K1], '5/s'), adminUi({ cidrs: ['10.0.0.0/16', '10.200.0.7'] }), reports, site], { trusted: [] }),
      'tightening.yaml',
    );
  });
  after(() => tmp.remove());

  test('every weakening is named; routes and upstreams are listed; exit 0, or 1 with --strict', async () => {
    const r = await runCli(['--check', weakening, '--against', current], CLI_TIMEOUT_MS);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const out = r.stdout;
    assert.match(out, /routes: 2 added, 1 removed, 2 changed/);
    assert.match(out, /\+ admin-debug \(any method \* \/admin\/debug\)/);
    assert.match(out, /\+ v2 \(any method \* \/v2\)/);
    assert.match(out, /- reports \(any method \* \/reports\)/);
    assert.match(out, /~ orders-write \(POST,PUT api\.example\.test \/v1\/orders\): auth, rate_limit/);
    assert.match(out, /~ admin-ui \(any method \* \/admin\): authorize/);
    const weakened = out.split('\n').filter((l) => l.includes('  weakened: '));
    const expect = [
      /orders-write .*: api_key accepts new keys: k2/,
      /orders-write .*: rate limit raised from 10\/s to 50\/s/,
      /admin-ui .*: authorize rules removed/,
      /reports .* removed: its requests now reach site .* \(upstream "web"\): auth removed \(was api_key\)/,
      /new route admin-debug .* takes requests under admin-ui .* to upstream "web" without auth/,
      /trusted_proxies adds 10\.0\.0\.0\/8/,
    ];
    for (const re of expect) assert.ok(weakened.some((l) => re.test(l)), `missing ${re} in:\n${out}`);
    assert.match(out, new RegExp(`weakened: ${weakened.length}\\n`));

    const strict = await runCli(['--check', weakening, '--against', current, '--strict'], CLI_TIMEOUT_MS);
    assert.equal(strict.code, 1);
  });

  test('the share of clients the hashed upstream moves is the reference Maglev tables\'', async () => {
    const r = await runCli(['--check', weakening, '--against', current], CLI_TIMEOUT_MS);
    const m = /~ app: servers (.*): ([\d.]+)% of clients move \((.*)\)/.exec(r.stdout);
    assert.ok(m, r.stdout);
    assert.match(m[1]!, /-10\.1\.0\.4:80/);
    assert.match(m[1]!, /\+10\.1\.0\.5:80 \(weight 2\)/);
    const a = MaglevReference.build(APP, [1, 1, 1, 1]);
    const nextList = [...APP.slice(0, 3), '10.1.0.5:80'];
    const b = MaglevReference.build(nextList, [1, 1, 1, 2]);
    let moved = 0;
    for (let i = 0; i < a.size; i++) if (APP[a.entries[i]!] !== nextList[b.entries[i]!]) moved++;
    assert.equal(m[2], ((moved / a.size) * 100).toFixed(2));
    // The largest flow: the removed server's clients to the new one.
    assert.match(m[3]!, /^10\.1\.0\.4:80 -> 10\.1\.0\.5:80 /);
    // The round-robin upstream did not change; the unchanged one is not listed.
    assert.doesNotMatch(r.stdout, /~ web:/);
  });

  test('a change that only tightens checks weakens nothing, even for --strict', async () => {
    const r = await runCli(['--check', tightening, '--against', current, '--strict'], CLI_TIMEOUT_MS);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /routes: 0 added, 0 removed, 2 changed/);
    assert.match(r.stdout, /weakened: nothing/);
    const same = await runCli(['--check', current, '--against', current, '--strict'], CLI_TIMEOUT_MS);
    assert.equal(same.code, 0);
    assert.match(same.stdout, /routes: 0 added, 0 removed, 0 changed\nupstreams: 0 added, 0 removed, 0 changed\nweakened: nothing/);
  });

  test('a shorter prefix is a wider CIDR: 10.0.0.0/8 -> 10.0.0.0/7 and a new trusted proxy inside nothing are named', async () => {
    const wider = await tmp.writeConfig(config([ordersWrite([K1], '10/s'), adminUi({ cidrs: ['10.0.0.0/7'] }), reports, site], { trusted: ['192.0.2.1'] }), 'wider.yaml');
    const r = await runCli(['--check', wider, '--against', current, '--strict'], CLI_TIMEOUT_MS);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /admin-ui .*: authorize client addresses widened: 10\.0\.0\.0\/7/);
    assert.match(r.stdout, /trusted_proxies adds 192\.0\.2\.1/);
  });

  test('bad use: --against without --check, or an invalid file to compare with', async () => {
    const usage = await runCli(['--against', current], CLI_TIMEOUT_MS);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--against applies to --check only/);
    const broken = await tmp.writeText('workers: 2\nlmits: {}\n', 'broken.yaml');
    const r = await runCli(['--check', current, '--against', broken], CLI_TIMEOUT_MS);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--against .*broken\.yaml is not a valid config:\n(.*\n)*.*broken\.yaml:2:1 lmits: unknown key/);
  });
});
