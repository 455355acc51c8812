// Issue 15, items 2 and 4: the first run of the real CLI. A three-line config
// (listen, one upstream, one route) starts with no admin section, says so
// once, and still reloads on SIGHUP; an unknown key names the nearest known
// one; logs are readable on a terminal (a real pty from `script`) and JSON
// otherwise; start-up says where everything is; --check prints the route
// table in match order; --help and `help config` document every command,
// signal and key, and docs/config.md is exactly `help config`.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isAlive, request, sleep, tempDir, type TempDir } from '../helpers/process.js';
import { startNamedBackend as startBackend, type Backend } from '../helpers/backend.js';
import { CLI_PATH as CLI, freePort, runCli, startCli, withOutput } from '../helpers/switchyard.js';

const CONFIG_MD = fileURLToPath(new URL('../../docs/config.md', import.meta.url));

/** The three lines a first-time user writes. */
const minimal = (port: number, server: string): string =>
  `listen: [{ port: ${port} }]\nupstreams: { app: { servers: [{ address: "${server}" }] } }\nroutes: [{ match: { path: / }, upstream: app }]\n`;

/**
 * Runs the CLI under a pseudo-terminal (util-linux `script`), so its stdout is a TTY; resolves the output once
 * `until` matches. `script` starts the command in a session of its own on the pty, so neither its exit nor its
 * process group says whether switchyard is gone (a hung-up terminal sends switchyard SIGHUP, which reloads):
 * the shell writes the primary's pid before exec, and the end stops that pid and waits until it is gone, or the
 * next run on the same port meets EADDRINUSE.
 */
async function underTty(args: string[], pidFile: string, until: RegExp, timeoutMs = 15_000): Promise<string> {
  const quote = (a: string): string => `'${a.replace(/'/g, "'\\''")}'`;
  const command = `echo $$ > ${quote(pidFile)}; exec ${[process.execPath, CLI, ...args].map(quote).join(' ')}`;
  rmSync(pidFile, { force: true });
  const child = spawn('script', ['-qfec', command, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  try {
    const deadline = Date.now() + timeoutMs;
    while (!until.test(out)) {
      if (Date.now() > deadline) throw new Error(`no ${until} within ${timeoutMs} ms; output:\n${out}`);
      if (child.exitCode !== null) throw new Error(`exited (${child.exitCode}) before ${until}; output:\n${out}`);
      await sleep(50);
    }
    return out;
  } finally {
    const primary = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : 0;
    if (primary > 0 && isAlive(primary)) process.kill(primary, 'SIGTERM');
    for (let i = 0; i < 300 && primary > 0 && isAlive(primary); i++) await sleep(50);
    assert.ok(!isAlive(primary), `switchyard ${primary} still running 15 s after SIGTERM`);
    try {
      process.kill(-child.pid!, 'SIGTERM');
    } catch {
      // script already left with its child
    }
    await new Promise((resolve) => (child.exitCode !== null ? resolve(undefined) : child.once('exit', resolve)));
  }
}

describe('first run', () => {
  let tmp: TempDir;
  let a: Backend;
  let b: Backend;
  before(async () => {
    tmp = await tempDir();
    a = await startBackend();
    b = await startBackend();
  });
  after(async () => {
    await a.close();
    await b.close();
    await tmp.remove();
  });

  test('a three-line config starts without an admin section, says so once, and SIGHUP still reloads', async () => {
    const port = await freePort();
    const file = `${tmp.dir}/minimal.yaml`;
    writeFileSync(file, minimal(port, a.address));
    assert.equal(readFileSync(file, 'utf8').trimEnd().split('\n').length, 3);
    const cli = await startCli(file, { waitFor: [port] });
    try {
      await withOutput(cli, async () => {
        assert.match((await request({ port })).body, new RegExp(`backend ${a.port}`));
        // Wait for the start-up line (logged once every worker is ready, just after the port answers).
        for (let i = 0; i < 100 && !cli.output().includes('switchyard started'); i++) await sleep(50);
        const lines = cli.output().trim().split('\n');
        // Standard output is a pipe: JSON lines.
        for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), line);
        const started = lines.map((l) => JSON.parse(l) as { msg: string; listen?: string[]; configFile?: string }).filter((l) => l.msg.startsWith('switchyard started'));
        assert.equal(started.length, 1);
        assert.deepEqual(started[0]!.listen, [`http://127.0.0.1:${port}`]);
        assert.equal(started[0]!.configFile, file);
        assert.match(started[0]!.msg, /no admin API or dashboard/);
        assert.match(started[0]!.msg, /SIGHUP reloads/);
        assert.equal(cli.output().split('no admin API').length - 1, 1, 'said once');

        writeFileSync(file, minimal(port, b.address));
        process.kill(cli.pid, 'SIGHUP');
        let body = '';
        for (let i = 0; i < 200 && !body.includes(`backend ${b.port}`); i++) {
          body = (await request({ port })).body;
          await sleep(50);
        }
        assert.match(body, new RegExp(`backend ${b.port}`), 'SIGHUP reloaded the file');
        for (let i = 0; i < 200 && !cli.output().includes('reload complete'); i++) await sleep(50);
        assert.match(cli.output(), /reload complete/);
      });
    } finally {
      await cli.stop();
    }
  });

  test('with an admin section, start-up names the proxy, the dashboard URL and the config file', async () => {
    const port = await freePort();
    let adminPort = await freePort();
    while (adminPort === port) adminPort = await freePort();
    const file = `${tmp.dir}/with-admin.yaml`;
    writeFileSync(file, `${minimal(port, a.address)}admin: { port: ${adminPort}, token: t0ken }\n`);
    const cli = await startCli(file, { waitFor: [port, adminPort] });
    try {
      await withOutput(cli, async () => {
        for (let i = 0; i < 100 && !cli.output().includes('switchyard started'); i++) await sleep(50);
        const line = cli.output().split('\n').find((l) => l.includes('switchyard started'))!;
        const msg = (JSON.parse(line) as { msg: string }).msg;
        assert.ok(msg.includes(`http://127.0.0.1:${port}`), msg);
        assert.ok(msg.includes(`http://127.0.0.1:${adminPort}/dashboard/`), msg);
        assert.ok(msg.includes(file), msg);
        assert.ok(!msg.includes('t0ken'), 'the token is never printed');
      });
    } finally {
      await cli.stop();
    }
  });

  test('an unknown key names the nearest known one, with its line and column', async () => {
    const file = `${tmp.dir}/typo.yaml`;
    writeFileSync(file, 'listen: [{ port: 8080 }]\nupstreams:\n  app:\n    balanse: least-conn\n    servers: [{ address: "127.0.0.1:9001" }]\nrutes: []\n');
    const r = await runCli(['--check', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /typo\.yaml:4:5 upstreams\.app\.balanse: unknown key; did you mean `balance`\?/);
    assert.match(r.stderr, /typo\.yaml:6:1 rutes: unknown key; did you mean `routes`\?/);
    assert.match(r.stderr, /routes: required key is missing/);
    // Nothing close: no guess, just the list.
    writeFileSync(file, 'listen: [{ port: 8080 }]\nupstreams: { app: { servers: [{ address: "127.0.0.1:9001" }] } }\nroutes: [{ match: { path: / }, upstream: app }]\nfrobnicate: 1\n');
    const none = await runCli(['--check', file]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /frobnicate: unknown key \(expected one of: workers, /);
    assert.doesNotMatch(none.stderr, /did you mean/);
  });

  test('logs are readable lines on a terminal, JSON with logging.format: json, and readable with format: pretty anywhere', async () => {
    const port = await freePort();
    const file = `${tmp.dir}/tty.yaml`;
    writeFileSync(file, minimal(port, a.address));
    const tty = await underTty(['--config', file], `${tmp.dir}/tty.pid`, /switchyard started[^\n]*\n/);
    const line = tty.split('\n').find((l) => l.includes('switchyard started'))!;
    assert.doesNotMatch(line, /^\s*\{/, 'not JSON on a terminal');
    assert.match(line, /\d\d:\d\d:\d\d\.\d{3}/, 'a readable time');
    assert.match(line, /INFO/);
    assert.ok(line.includes(`http://127.0.0.1:${port}`));

    writeFileSync(file, `${minimal(port, a.address)}logging: { format: json }\n`);
    const json = await underTty(['--config', file], `${tmp.dir}/tty.pid`, /switchyard started[^\n]*\n/);
    const jsonLine = json.split('\n').find((l) => l.includes('switchyard started'))!.trim();
    assert.equal((JSON.parse(jsonLine) as { level: number }).level, 30);

    writeFileSync(file, `${minimal(port, a.address)}logging: { format: pretty }\n`);
    const cli = await startCli(file, { waitFor: [port] });
    try {
      for (let i = 0; i < 100 && !cli.output().includes('switchyard started'); i++) await sleep(50);
      const prettyLine = cli.output().split('\n').find((l) => l.includes('switchyard started'))!;
      assert.match(prettyLine, /INFO/);
      // No colour codes into a pipe.
      assert.doesNotMatch(prettyLine, /\x1b\[/);
    } finally {
      await cli.stop();
    }
  });

  test('--check prints the route table in the order the router matches it', async () => {
    const file = `${tmp.dir}/routes.yaml`;
    writeFileSync(
      file,
      `listen: [{ port: 8080 }]
upstreams: { app: { servers: [{ address: "127.0.0.1:9001" }] }, api: { servers: [{ address: "127.0.0.1:9002" }] } }
routes:
  - { match: { path: / }, upstream: app }
  - { match: { path: /api }, upstream: api }
  - { name: api-writes, match: { path: /api, methods: [POST] }, upstream: api }
  - { match: { host: "*.example.com", path: / }, upstream: app }
  - { match: { host: "www.example.com", path: /api/v2 }, upstream: api }
`,
    );
    const r = await runCli(['--check', file]);
    assert.equal(r.code, 0, r.stderr);
    const table = r.stdout.slice(r.stdout.indexOf('route table'), r.stdout.indexOf('route audit'));
    const entries = table.split('\n').filter((l) => /^\s+\d+\. /.test(l)).map((l) => l.trim().replace(/\s+/g, ' '));
    assert.deepEqual(entries, [
      '1. /api/v2 -> api',
      '2. / -> app',
      '3. /api POST -> api (api-writes)',
      '4. /api -> api',
      '5. / -> app',
    ]);
    const groups = table.split('\n').filter((l) => /^ {2}host /.test(l)).map((l) => l.trim());
    assert.deepEqual(groups, ['host www.example.com', 'host *.example.com', 'host *']);
  });

  test('--help names every command, option and signal; help config is docs/config.md', async () => {
    const help = await runCli(['--help']);
    assert.equal(help.code, 0);
    for (const word of ['--config', '--check', '--strict', '--workers', '--version', '--help', 'help config', 'SIGTERM', 'SIGINT', 'SIGHUP', '/dashboard/', 'EXIT STATUS']) {
      assert.ok(help.stdout.includes(word), word);
    }
    assert.equal((await runCli(['help'])).stdout, help.stdout);
    const bad = await runCli(['frobnicate']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unexpected argument "frobnicate"/);

    const reference = await runCli(['help', 'config']);
    assert.equal(reference.code, 0);
    assert.equal(reference.stdout, readFileSync(CONFIG_MD, 'utf8'), 'docs/config.md is stale: run `node dist/cli.js help config > docs/config.md`');
    for (const key of ['`upstreams.<name>.balance`', '`routes[].match.path`', '`logging.format`', '`admin.token`']) assert.ok(reference.stdout.includes(key), key);
  });
});
