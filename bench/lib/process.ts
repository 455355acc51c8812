// Starting and stopping the processes the bench runs (backends and systems
// under test): readiness by HTTP, a clear error with the stderr tail when one
// dies early, and a stop that leaves no descendant behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { processTree, readStat } from './proc.js';

export interface Managed {
  pid: number;
  stop(): Promise<void>;
  /** The last 4000 characters it wrote on stderr. */
  stderr(): string;
}

const live = new Set<Managed>();

/** Stops everything still running; for the bench's exit paths. */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((m) => m.stop()));
}

/** Runs a bench's `main`; a failure prints its message, stops everything still running and exits 1. */
export function runMain(main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    stopAll().finally(() => process.exit(1)).catch(() => {});
  });
}

/**
 * A temp dir for one bench run, and the cleanup that stops every process
 * started and removes the dir, run at the end or on Ctrl-C.
 */
export function benchWorkspace(prefix: string): { tmp: string; cleanup(): Promise<void> } {
  const tmp = mkdtempSync(join(tmpdir(), prefix));
  const cleanup = async (): Promise<void> => {
    await stopAll();
    rmSync(tmp, { recursive: true, force: true });
  };
  process.once('SIGINT', () => {
    console.log('\ninterrupted: stopping everything');
    cleanup().finally(() => process.exit(130)).catch(() => {});
  });
  return { tmp, cleanup };
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/**
 * Spawns `cmd args` (no shell, so the pid is the program itself) and waits
 * until GET http://127.0.0.1:port/readyPath (https with `tls`, certificate
 * not checked) answers 200.
 */
export async function startProcess(
  name: string,
  cmd: string,
  args: string[],
  ready: { port: number; path: string; timeoutMs?: number; tls?: boolean },
  cwd?: string,
): Promise<Managed> {
  const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr = (stderr + d).slice(-4000);
  });
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  const pid = child.pid;

  const stop = async (): Promise<void> => {
    live.delete(managed);
    if (pid === undefined) return;
    // Remember the tree (pid + start time) first: once the root dies, orphans
    // are re-parented and can no longer be found through it.
    const tree = processTree(pid).map((p) => ({ pid: p.pid, start: p.startTime }));
    child.kill('SIGTERM');
    await Promise.race([exited(child), sleep(5000)]);
    child.kill('SIGKILL');
    await exited(child);
    const deadline = Date.now() + 3000;
    for (const p of tree) {
      while (readStat(p.pid)?.startTime === p.start) {
        if (Date.now() > deadline) {
          try {
            process.kill(p.pid, 'SIGKILL');
          } catch {
            // Gone between the check and the kill.
          }
          break;
        }
        await sleep(20);
      }
    }
  };
  const managed: Managed = { pid: pid ?? -1, stop, stderr: () => stderr };
  live.add(managed);

  const deadline = Date.now() + (ready.timeoutMs ?? 15_000);
  const early = exited(child).then(() => new Error(`exited with ${child.exitCode ?? child.signalCode}`));
  for (;;) {
    const failure = await Promise.race([
      spawnError,
      early,
      probe(ready.port, ready.path, ready.tls === true).then((ok) => (ok ? null : undefined)),
    ]);
    if (failure === null) return managed;
    if (failure instanceof Error || Date.now() > deadline) {
      await stop();
      const why = failure instanceof Error ? failure.message : 'not ready in time';
      throw new Error(`${name}: ${why}\n${stderr.trim()}`);
    }
    await sleep(100);
  }
}

/** True when GET answers 200 (body drained). */
function probe(port: number, path: string, tls: boolean): Promise<boolean> {
  return new Promise((resolve) => {
    const get = tls ? https.get : http.get;
    const req = get({ host: '127.0.0.1', port, path, agent: false, timeout: 1000, rejectUnauthorized: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200));
      res.on('error', () => resolve(false));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}
