// The one place tests run the real CLI (`node dist/cli.js`) as a child
// process: `startSwitchyard` writes a temporary YAML config on free loopback
// ports and waits until the proxy port accepts connections; `startCli` runs a
// config file the test wrote (extra arguments, signals, exit status);
// `runCli` runs to completion (--check, --version). Every process started is
// tracked and killed, workers included, if the test file dies first.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { freePort } from '../../bench/lib/ports.js';
import { request } from './process.js';

export { freePort };

export const CLI_PATH = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
export const ADMIN_TOKEN = 'test-token';
/** How long a start may take to listen: generous, as two workers on a loaded 2-core machine can take well over 15 s. */
const START_TIMEOUT_MS = 60_000;

export interface BaseConfigOptions {
  proxyPort: number;
  adminPort: number;
  /** host:port of the upstream servers. */
  servers: string[];
  workers?: number;
  scheduling?: 'kernel' | 'round-robin';
  shutdownTimeout?: string;
}

/** A minimal valid config for startCli: one listener, one upstream, one catch-all route, quiet logs. */
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

export interface Switchyard {
  host: string;
  /** The proxy (first listen) port. */
  port: number;
  adminPort: number;
  /** pid of the primary (the CLI process). */
  pid: number;
  configFile: string;
  /** The config as written (snake_case YAML object). */
  config: Record<string, unknown>;
  /** stdout and stderr so far (capped). */
  output(): string;
  /** pids of the primary's direct children (the cluster workers). */
  workerPids(): number[];
  /** SIGTERM, wait for exit; SIGKILL after timeoutMs. Resolves the exit code. */
  stop(timeoutMs?: number): Promise<number | null>;
}

/** Direct children of `pid`, read from /proc/<pid>/stat (field 4 is ppid). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command name (field 2) is in parentheses and may contain spaces.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid) out.push(Number(entry));
    } catch {
      // The process exited while we were looking.
    }
  }
  return out;
}

/** Resident set size of a process in KiB (VmRSS), undefined once it is gone. */
export function rssKb(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function canConnect(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

const running = new Set<ChildProcess>();

function killAll(): void {
  for (const child of running) {
    if (child.pid === undefined) continue;
    for (const w of childPids(child.pid)) {
      try {
        process.kill(w, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    child.kill('SIGKILL');
  }
}

// Last resort when a test file dies without its after() hooks, including when
// the runner or a `timeout` signals it: no orphaned proxies holding ports.
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    killAll();
    process.kill(process.pid, signal);
  });
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

interface Launched {
  child: ChildProcess;
  /** stdout and stderr so far (capped at 1 MiB). */
  output(): string;
  /** Set once the process is gone. */
  exitStatus(): ExitStatus | undefined;
  exited: Promise<ExitStatus>;
  /**
   * Sends `signal` (unless gone) and waits up to timeoutMs; then SIGKILLs the
   * primary and the workers it had when the stop began.
   */
  stop(signal: NodeJS.Signals, timeoutMs: number): Promise<ExitStatus>;
}

/** The one spawner: `node dist/cli.js ...args`, tracked until it exits. */
function launch(args: string[], o: { nofile?: number; detached?: boolean; outputBytes?: number } = {}): Launched {
  if (!existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} is missing: run \`npm run build\` first`);
  const command = [process.execPath, CLI_PATH, ...args];
  // prlimit execs the command, so the child's pid is the primary's.
  if (o.nofile !== undefined) command.unshift('prlimit', `--nofile=${o.nofile}:${o.nofile}`);
  const child = spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], detached: o.detached ?? false });
  running.add(child);
  let output = '';
  const collect = (d: Buffer): void => {
    if (output.length < (o.outputBytes ?? 1 << 20)) output += d.toString('utf8');
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  let status: ExitStatus | undefined;
  const exited = new Promise<ExitStatus>((resolve) =>
    child.once('exit', (code, signal) => {
      status = { code, signal };
      running.delete(child);
      resolve(status);
    }),
  );
  return {
    child,
    output: () => output,
    exitStatus: () => status,
    exited,
    async stop(signal, timeoutMs) {
      if (status !== undefined) return status;
      const workers = child.pid === undefined ? [] : childPids(child.pid);
      child.kill(signal);
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
      const first = await Promise.race([exited, timedOut]);
      clearTimeout(timer);
      if (first === 'timeout') {
        for (const w of workers) {
          try {
            process.kill(w, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        child.kill('SIGKILL');
      }
      return exited;
    },
  };
}

/**
 * Starts Switchyard with `config` (snake_case, as in YAML). workers (2),
 * listen, admin and logging are filled in when absent.
 */
export async function startSwitchyard(
  config: Record<string, unknown>,
  /** nofile: the open-file limit (soft and hard) of the primary and its workers, set with prlimit. */
  /** outputBytes: how much of stdout + stderr output() keeps (default 1 MiB, the first). */
  opts: { startTimeoutMs?: number; nofile?: number; outputBytes?: number } = {},
): Promise<Switchyard> {
  const host = '127.0.0.1';
  // Never listen on a port the config names as an upstream (e.g. a "closed" one).
  const taken = new Set([...JSON.stringify(config).matchAll(/:(\d{1,5})\b/g)].map((m) => Number(m[1])));
  const port = await freePort(taken);
  const adminPort = await freePort(new Set([...taken, port]));
  const full: Record<string, unknown> = {
    workers: 2,
    listen: [{ host, port }],
    admin: { host, port: adminPort, token: ADMIN_TOKEN },
    logging: { level: 'warn', access: false },
    shutdown_timeout: '2s',
    ...config,
  };
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-test-'));
  const configFile = path.join(dir, 'switchyard.yaml');
  writeFileSync(configFile, stringify(full));

  let proc: Launched;
  try {
    proc = launch(['--config', configFile], { nofile: opts.nofile, outputBytes: opts.outputBytes });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const listenPort = (full.listen as Array<{ port: number }>)[0]!.port;
  const sy: Switchyard = {
    host,
    port: listenPort,
    adminPort: (full.admin as { port: number }).port,
    pid: proc.child.pid!,
    configFile,
    config: full,
    output: proc.output,
    workerPids: () => childPids(proc.child.pid!),
    async stop(timeoutMs = 8000) {
      const { code } = await proc.stop('SIGTERM', timeoutMs);
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };

  const deadline = Date.now() + (opts.startTimeoutMs ?? START_TIMEOUT_MS);
  for (;;) {
    const gone = proc.exitStatus();
    if (gone !== undefined) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`switchyard exited (${gone.code}) before listening:\n${proc.output()}`);
    }
    if (await canConnect(listenPort, host)) break;
    if (Date.now() > deadline) {
      await sy.stop();
      throw new Error(`switchyard did not listen on ${host}:${listenPort} within the start timeout:\n${proc.output()}`);
    }
    await sleep(50);
  }
  return sy;
}

/** Runs the CLI to completion (for --check, --version, ...), killing it after `timeoutMs`. */
export async function runCli(args: string[], timeoutMs = 10_000): Promise<ExitStatus & { stdout: string; stderr: string }> {
  const proc = launch(args);
  let stdout = '';
  let stderr = '';
  proc.child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  proc.child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), timeoutMs);
  // 'close', not 'exit': every byte of stdout and stderr has been read by then.
  const result = await new Promise<ExitStatus>((resolve, reject) => {
    proc.child.once('error', reject);
    proc.child.once('close', (code, signal) => resolve({ code, signal }));
  }).finally(() => clearTimeout(timer));
  return { ...result, stdout, stderr };
}

export interface RunningCli {
  child: ChildProcess;
  pid: number;
  /** Everything printed so far (JSON log lines and errors). */
  output(): string;
  /** Resolves with the exit code and signal, once the process is gone. */
  exited: Promise<ExitStatus>;
  /** Sends `signal` and waits up to `timeoutMs` for the exit, then SIGKILLs. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<ExitStatus>;
}

/** What a failure message carries of the output: the end, where the warnings and errors of the moment are. */
const OUTPUT_TAIL_CHARS = 4000;

/** Runs `fn`; a failure carries what switchyard printed last (warnings, health transitions), for diagnosis. */
export async function withOutput<T>(cli: { output(): string } | undefined, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof Error && cli) {
      const out = cli.output();
      const cut = out.length > OUTPUT_TAIL_CHARS;
      err.message += `\n--- switchyard output${cut ? ` (last ${OUTPUT_TAIL_CHARS} characters)` : ''} ---\n${cut ? out.slice(-OUTPUT_TAIL_CHARS) : out}`;
    }
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

/** Starts `switchyard --config FILE` and resolves once every port in `waitFor` answers HTTP. */
export async function startCli(configFile: string, o: StartOptions): Promise<RunningCli> {
  const proc = launch(['--config', configFile, ...(o.args ?? [])], { detached: o.detached });
  const cli: RunningCli = {
    child: proc.child,
    pid: proc.child.pid!,
    output: proc.output,
    exited: proc.exited,
    stop: (signal = 'SIGTERM', timeoutMs = 15_000) => proc.stop(signal, timeoutMs),
  };
  const deadline = Date.now() + (o.timeoutMs ?? START_TIMEOUT_MS);
  for (const port of o.waitFor) {
    for (;;) {
      if (proc.exitStatus() !== undefined) {
        throw new Error(`switchyard exited during start-up (code ${proc.exitStatus()!.code}):\n${proc.output()}`);
      }
      if (await answers(port)) break;
      if (Date.now() > deadline) {
        await cli.stop('SIGKILL');
        throw new Error(`port ${port} did not answer within the start-up timeout:\n${proc.output()}`);
      }
      await sleep(50);
    }
  }
  return cli;
}

async function answers(port: number): Promise<boolean> {
  try {
    await request({ port, path: '/', timeoutMs: 1000 });
    return true;
  } catch {
    return false;
  }
}
