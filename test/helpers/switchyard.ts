// Runs the real CLI (`node dist/cli.js --config FILE`) as a child process for
// black-box tests: writes a temporary YAML config on free loopback ports,
// waits until the proxy port accepts connections, and stops it with SIGTERM
// (SIGKILL for it and its workers if it does not exit in time).

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

export const CLI_PATH = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
export const ADMIN_TOKEN = 'test-token';

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

/**
 * A free loopback port, not in `avoid` (released again, so a small race is
 * possible: the kernel readily hands the same port out twice in a row).
 */
export async function freePort(avoid: ReadonlySet<number> = new Set()): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (!avoid.has(port) || attempt >= 20) return port;
  }
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

/**
 * Starts Switchyard with `config` (snake_case, as in YAML). workers (2),
 * listen, admin and logging are filled in when absent.
 */
export async function startSwitchyard(
  config: Record<string, unknown>,
  /** nofile: the open-file limit (soft and hard) of the primary and its workers, set with prlimit. */
  /** outputBytes: how much of stdout + stderr output() keeps (default 64 KiB, the first). */
  opts: { startTimeoutMs?: number; nofile?: number; outputBytes?: number } = {},
): Promise<Switchyard> {
  if (!existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} is missing: run \`npm run build\` first`);
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

  const command = [process.execPath, CLI_PATH, '--config', configFile];
  // prlimit execs the command, so the child's pid is the primary's.
  if (opts.nofile !== undefined) command.unshift('prlimit', `--nofile=${opts.nofile}:${opts.nofile}`);
  const child = spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let output = '';
  const collect = (d: Buffer): void => {
    if (output.length < (opts.outputBytes ?? 65536)) output += d.toString('utf8');
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      exitCode = code; // null when killed by a signal
      running.delete(child);
      resolve(code);
    }),
  );

  const listenPort = (full.listen as Array<{ port: number }>)[0]!.port;
  const sy: Switchyard = {
    host,
    port: listenPort,
    adminPort: (full.admin as { port: number }).port,
    pid: child.pid!,
    configFile,
    config: full,
    output: () => output,
    workerPids: () => childPids(child.pid!),
    async stop(timeoutMs = 8000) {
      if (exitCode === undefined) {
        const workers = sy.workerPids();
        child.kill('SIGTERM');
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
      }
      const code = await exited;
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };

  const deadline = Date.now() + (opts.startTimeoutMs ?? 15_000);
  for (;;) {
    if (exitCode !== undefined) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`switchyard exited (${exitCode}) before listening:\n${output}`);
    }
    if (await canConnect(listenPort, host)) break;
    if (Date.now() > deadline) {
      await sy.stop();
      throw new Error(`switchyard did not listen on ${host}:${listenPort} within the start timeout:\n${output}`);
    }
    await sleep(50);
  }
  return sy;
}
