// Running the real `switchyard` CLI (dist/cli.js) as a child process in
// integration tests: free ports, temporary config files, start-and-wait,
// stop-and-wait, and small HTTP helpers. Every helper is bounded in time.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

// A test that dies before its cleanup must not leave a proxy running.
const spawned = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of spawned) child.kill('SIGKILL');
});
function track(child: ChildProcess): void {
  spawned.add(child);
  child.once('exit', () => spawned.delete(child));
}

function assertBuilt(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` before the integration tests`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// One free-port helper for the tests and the bench.
export { freePort } from '../../bench/lib/ports.js';

export interface TempDir {
  dir: string;
  /** Writes `raw` (snake_case keys, as in the YAML file) and returns the file's path. */
  writeConfig(raw: object, name?: string): Promise<string>;
  writeText(text: string, name: string): Promise<string>;
  remove(): Promise<void>;
}

export async function tempDir(): Promise<TempDir> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-test-'));
  const writeText = async (text: string, name: string) => {
    const file = path.join(dir, name);
    await writeFile(file, text);
    return file;
  };
  return {
    dir,
    writeConfig: (raw, name = 'switchyard.yaml') => writeText(stringify(raw), name),
    writeText,
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

export const ADMIN_TOKEN = 'test-token';

export interface BaseConfigOptions {
  proxyPort: number;
  adminPort: number;
  /** host:port of the upstream servers. */
  servers: string[];
  workers?: number;
  scheduling?: 'kernel' | 'round-robin';
  shutdownTimeout?: string;
}

/** A minimal valid config: one listener, one upstream, one catch-all route, quiet logs. */
export function baseConfig(o: BaseConfigOptions): Record<string, unknown> {
  return {
    workers: o.workers ?? 2,
    scheduling: o.scheduling ?? 'kernel',
    listen: [{ host: '127.0.0.1', port: o.proxyPort }],
    admin: { host: '127.0.0.1', port: o.adminPort, token: ADMIN_TOKEN },
    logging: { level: 'warn', access: false },
    shutdown_timeout: o.shutdownTimeout ?? '5s',
    upstreams: { app: { balance: 'round-robin', servers: o.servers.map((address) => ({ address })) } },
    routes: [{ match: { host: '*', path: '/' }, upstream: 'app' }],
  };
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion (for --check, --version, ...), killing it after `timeoutMs`. */
export function runCli(args: string[], timeoutMs = 10_000): Promise<CliResult> {
  assertBuilt();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    track(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export interface RunningCli {
  child: ChildProcess;
  pid: number;
  /** Everything printed so far (JSON log lines and errors). */
  output(): string;
  /** Resolves with the exit code and signal, once the process is gone. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends `signal` and waits up to `timeoutMs` for the exit, then SIGKILLs. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs `fn`; a failure carries what switchyard printed, for diagnosis. */
export async function withOutput<T>(cli: RunningCli, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof Error) err.message += `\n--- switchyard output ---\n${cli.output()}`;
    throw err;
  }
}

export interface StartOptions {
  /** Extra CLI arguments after `--config FILE`. */
  args?: string[];
  /** Ports that must answer HTTP before the start counts as done. */
  waitFor: number[];
  timeoutMs?: number;
  /** Own process group, so a test can signal the whole group like a terminal's Ctrl-C. */
  detached?: boolean;
}

/** Starts `switchyard --config FILE` and resolves once every port in `waitFor` answers. */
export async function startCli(configFile: string, o: StartOptions): Promise<RunningCli> {
  assertBuilt();
  const child = spawn(process.execPath, [CLI, '--config', configFile, ...(o.args ?? [])], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: o.detached ?? false,
  });
  track(child);
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const running: RunningCli = {
    child,
    pid: child.pid!,
    output: () => out,
    exited,
    async stop(signal = 'SIGTERM', timeoutMs = 15_000) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        const result = await exited;
        clearTimeout(timer);
        return result;
      }
      return exited;
    },
  };
  const deadline = Date.now() + (o.timeoutMs ?? 15_000);
  for (const port of o.waitFor) {
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`switchyard exited during start-up (code ${child.exitCode}):\n${out}`);
      }
      if (await answers(port)) break;
      if (Date.now() > deadline) {
        await running.stop('SIGKILL');
        throw new Error(`port ${port} did not answer within the start-up timeout:\n${out}`);
      }
      await sleep(50);
    }
  }
  return running;
}

async function answers(port: number): Promise<boolean> {
  try {
    await request({ port, path: '/', timeoutMs: 1000 });
    return true;
  } catch {
    return false;
  }
}

export interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface RequestOptions {
  port: number;
  path?: string;
  method?: string;
  headers?: http.OutgoingHttpHeaders;
  timeoutMs?: number;
}

/** One request on a fresh connection (no keep-alive pooling between calls). */
export function request(o: RequestOptions): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: o.port, path: o.path ?? '/', method: o.method ?? 'GET', headers: o.headers, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.setTimeout(o.timeoutMs ?? 5_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** A request to the admin API with the test token (or `token`, or none when null). */
export function admin(port: number, path: string, method = 'GET', token: string | null = ADMIN_TOKEN): Promise<Response> {
  // A reload replaces every worker, one at a time: on a loaded 2-core machine that can take several seconds.
  return request({ port, path, method, headers: token === null ? {} : { authorization: `Bearer ${token}` }, timeoutMs: 30_000 });
}

export interface StatusWorker {
  slot: number;
  pid: number | null;
  uptimeSeconds: number;
  restarts: number;
  state: string;
}

export interface Status {
  pid: number;
  crashLoop: boolean;
  workers: StatusWorker[];
  requests: number;
  upstreams: Record<string, { balance: string; servers: { address: string; requests: number; healthy: boolean }[] }>;
  [key: string]: unknown;
}

export async function status(adminPort: number): Promise<Status> {
  const res = await admin(adminPort, '/status');
  if (res.status !== 200) throw new Error(`GET /status answered ${res.status}: ${res.body}`);
  return JSON.parse(res.body) as Status;
}

/** Polls `/status` until `ok` holds, or throws after `timeoutMs` with the last status seen. */
export async function waitForStatus(adminPort: number, ok: (s: Status) => boolean, timeoutMs = 10_000): Promise<Status> {
  const deadline = Date.now() + timeoutMs;
  let last: Status | undefined;
  while (Date.now() < deadline) {
    last = await status(adminPort);
    if (ok(last)) return last;
    await sleep(50);
  }
  throw new Error(`status condition not met within ${timeoutMs} ms; last status: ${JSON.stringify(last)}`);
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export interface Backend {
  port: number;
  address: string;
  /** Requests seen, per path. */
  hits: Map<string, number>;
  close(): Promise<void>;
}

/**
 * An upstream for tests: answers `backend <port>`; `/slow` answers after
 * `slowMs` and calls `onSlow` when such a request arrives.
 */
export async function startBackend(o: { slowMs?: number; onSlow?: () => void } = {}): Promise<Backend> {
  const hits = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const p = req.url ?? '/';
    hits.set(p, (hits.get(p) ?? 0) + 1);
    req.resume();
    const answer = () => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`backend ${port}${p === '/slow' ? ' slow' : ''}\n`);
    };
    if (p === '/slow') {
      o.onSlow?.();
      setTimeout(answer, o.slowMs ?? 1500);
    } else answer();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    address: `127.0.0.1:${port}`,
    hits,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
