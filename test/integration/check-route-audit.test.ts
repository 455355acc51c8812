// Issue 10, defect 6: `switchyard --check` runs the route audit. The shipped
// example has no finding; the layout the issue found in it (an open route for
// the same prefix as an authenticated POST/PUT route, an authenticated
// wildcard-host route beside an open "*" route to the same upstream) is
// reported as warnings, exit 0, or exit 1 with --strict. Route paths that are
// not normalised, and routes that differ only in path case, are config errors.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { tempDir, type TempDir } from '../helpers/process.js';
import { baseConfig, freePort, runCli, startCli } from '../helpers/switchyard.js';

const EXAMPLE = fileURLToPath(new URL('../../config/examples/api-gateway.yaml', import.meta.url));
const KEY = { api_key: { keys: [{ name: 'k', key: 'a-key-of-enough-length' }] } };

describe('--check: route audit', () => {
  let tmp: TempDir;
  let bypassable: string;
  before(async () => {
    tmp = await tempDir();
    const base = baseConfig({ proxyPort: 18080, adminPort: 19090, servers: ['127.0.0.1:9001'] });
    bypassable = await tmp.writeConfig({
      ...base,
      upstreams: { ...(base.upstreams as object), web: { servers: [{ address: '127.0.0.1:9002' }] } },
      routes: [
        { name: 'orders-write', match: { host: 'api.example.test', path: '/v1/orders', methods: ['POST', 'PUT'] }, upstream: 'app', auth: KEY },
        { name: 'orders-read', match: { host: 'api.example.test', path: '/v1/orders' }, upstream: 'app' },
        { name: 'admin-ui', match: { host: '*.example.test', path: '/admin' }, upstream: 'web', auth: { basic: { users: [{ name: 'ops', hash: `$2b$10$${'a'.repeat(53)}` }] } } },
        { name: 'site', match: { host: '*', path: '/' }, upstream: 'web' },
      ],
    }, 'bypassable.yaml');
  });
  after(() => tmp.remove());

  test('the shipped API-gateway example passes the audit, even with --strict', async () => {
    const r = await runCli(['--check', EXAMPLE, '--strict']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /route audit: no route with auth can be reached with weaker checks/);
  });

  test('the bypassable layout: warnings naming both routes, the methods and the hosts; exit 0', async () => {
    const r = await runCli(['--check', bypassable]);
    assert.equal(r.code, 0, r.stderr);
    const warnings = r.stdout.split('\n').filter((l) => l.includes('warning:'));
    assert.equal(warnings.length, 2, r.stdout);
    assert.match(warnings[0]!, /routes\[0\] orders-write \(POST,PUT api\.example\.test \/v1\/orders\) has api_key auth, but GET, HEAD, PATCH, DELETE, OPTIONS, methods no route names for \/v1\/orders and below with Host api\.example\.test reach upstream "app" via routes\[1\] orders-read without auth/);
    assert.match(warnings[1]!, /routes\[2\] admin-ui .* has basic auth, but requests of any method for \/admin and below with a Host no route names reach upstream "web" via routes\[3\] site without auth/);
  });

  test('--strict turns findings into exit 1; --strict without --check is a usage error', async () => {
    assert.equal((await runCli(['--check', bypassable, '--strict'])).code, 1);
    const r = await runCli(['--strict']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--strict applies to --check only/);
  });

  test('a route whose path the normaliser reads as another (Unicode look-alikes, Windows names) can never be reached: a warning naming the route, the character and what it reads as', async () => {
    const base = baseConfig({ proxyPort: 18080, adminPort: 19090, servers: ['127.0.0.1:9001'] });
    const file = await tmp.writeConfig({
      ...base,
      routes: [
        { name: 'site', match: { path: '/' }, upstream: 'app' },
        { name: 'fullwidth', match: { path: '/%EF%BD%81dmin' }, upstream: 'app' },
        { name: 'slash-alike', match: { path: '/a%E2%88%95b' }, upstream: 'app' },
        { name: 'two-dots', match: { host: 'x.test', path: '/x/%E2%80%A5', methods: ['GET'] }, upstream: 'app' },
        { name: 'trailing-dot', match: { path: '/files.' }, upstream: 'app' },
        { name: 'cafe', match: { path: '/caf%C3%A9' }, upstream: 'app' },
      ],
    }, 'look-alikes.yaml');
    const r = await runCli(['--check', file]);
    assert.equal(r.code, 0, r.stderr);
    const warnings = r.stdout.split('\n').filter((l) => l.includes('warning:'));
    assert.equal(warnings.length, 4, r.stdout);
    assert.match(r.stdout, /route audit: 4 warnings/);
    assert.match(warnings[0]!, /routes\[1\] fullwidth \(any method \* \/%EF%BD%81dmin\) can never be reached: in its path "%EF%BD%81" \(U\+FF41 "ａ"\) reads as "a", so every request for it is also "\/admin" .* \(400 bad-path: /);
    assert.match(warnings[1]!, /routes\[2\] slash-alike .*"%E2%88%95" \(U\+2215 "∕"\) reads as "\/"/);
    assert.match(warnings[2]!, /routes\[3\] two-dots \(GET x\.test \/x\/%E2%80%A5\) .*"%E2%80%A5" \(U\+2025 "‥"\) reads as "\.\."/);
    assert.match(warnings[3]!, /routes\[4\] trailing-dot .*the name "files\." reads as "files" on Windows/);
    assert.ok(!r.stdout.includes('routes[5] cafe'), 'a composed é is what NFKC leaves as it is');
    assert.equal((await runCli(['--check', file, '--strict'])).code, 1);
  });

  test('start-up logs the same warning (the config still loads)', async () => {
    const proxyPort = await freePort();
    const base = baseConfig({ proxyPort, adminPort: await freePort(new Set([proxyPort])), servers: ['127.0.0.1:9001'] });
    const file = await tmp.writeConfig({ ...base, workers: 1, routes: [{ name: 'fullwidth', match: { path: '/%EF%BD%81dmin' }, upstream: 'app' }] }, 'start-look-alike.yaml');
    const cli = await startCli(file, { waitFor: [proxyPort], timeoutMs: 60_000 });
    try {
      const line = cli.output().split('\n').find((l) => l.includes('route audit'));
      assert.ok(line !== undefined, cli.output());
      assert.equal((JSON.parse(line) as { level: number }).level, 40, 'a warning');
      assert.match((JSON.parse(line) as { msg: string }).msg, /route audit: routes\[0\] fullwidth .*can never be reached: in its path "%EF%BD%81" \(U\+FF41 "ａ"\) reads as "a"/);
    } finally {
      await cli.stop();
    }
  });

  test('route paths must be normalised; paths that differ only in case make duplicate routes', async () => {
    const base = baseConfig({ proxyPort: 18080, adminPort: 19090, servers: ['127.0.0.1:9001'] });
    const file = await tmp.writeConfig({
      ...base,
      routes: [
        { match: { path: '/a/../b' }, upstream: 'app' },
        { match: { path: '/x;y' }, upstream: 'app' },
        { match: { path: '/%61dmin' }, upstream: 'app' },
        { match: { path: '/caf\u00e9' }, upstream: 'app' },
        { match: { path: '/Admin' }, upstream: 'app' },
        { match: { path: '/admin' }, upstream: 'app' },
      ],
    }, 'paths.yaml');
    const r = await runCli(['--check', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /routes\[0\]\.match\.path: expected a normalised path .*got "\/a\/\.\.\/b"; write "\/b"/);
    assert.match(r.stderr, /routes\[1\]\.match\.path: expected a normalised path .*got "\/x;y"\n/);
    assert.match(r.stderr, /routes\[2\]\.match\.path: .*; write "\/admin"/);
    assert.match(r.stderr, /routes\[3\]\.match\.path: .*; write "\/caf%C3%A9"/);
    assert.match(r.stderr, /routes\[5\]\.match: duplicate route \(same host, path \("\/Admin": paths match case-insensitively\), methods and headers as routes\[4\]\)/);
  });
});
