// A helper daemon a test (or bench) runs beside the proxy: redis-server,
// dnsmasq. One place spawns it, waits until it answers, kills it (SIGKILL:
// connections drop at once) and starts it again with the same arguments; any
// still running when the test process exits are killed with it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Daemon {
  /** The running process's pid (undefined while killed). */
  readonly pid: number | undefined;
  /** Sends a signal to the running process (SIGHUP: re-read files). */
  signal(sig: NodeJS.Signals): void;
  kill(): Promise<void>;
  /** Starts it again with the same arguments; resolves once it answers. */
  restart(): Promise<void>;
}

export interface DaemonSpec {
  command: string;
  args: string[];
  /** The Debian package to name when the binary is missing. */
  debianPackage: string;
  /** True once it serves (called every `pollMs` up to 5 s after each start). */
  answers(): Promise<boolean>;
  /** What it is, for the error when it does not answer ("dnsmasq on port 1234"). */
  what: string;
  pollMs?: number;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export function installed(command: string): boolean {
  return spawnSync(command, ['--version'], { stdio: 'ignore' }).status === 0;
}

/** The error a test that cannot run throws (a test that cannot run must fail, not skip). */
export function assertInstalled(command: string, debianPackage: string): void {
  if (!installed(command)) {
    throw new Error(`${command} is not installed: install the Debian package ${debianPackage} (npm test runs test/setup/system-deps.sh, which does it as root)`);
  }
}

export async function startDaemon(spec: DaemonSpec): Promise<Daemon> {
  assertInstalled(spec.command, spec.debianPackage);
  let child: ChildProcess | undefined;
  const kill = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((resolve) => c.once('exit', resolve));
    c.kill('SIGKILL');
    await exited;
  };
  const launch = async (): Promise<void> => {
    const c = spawn(spec.command, spec.args, { stdio: 'ignore' });
    running.add(c);
    c.once('exit', () => running.delete(c));
    child = c;
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      if ((await spec.answers()) && c.exitCode === null) return;
      await sleep(spec.pollMs ?? 20);
    }
    await kill();
    throw new Error(`${spec.what} did not answer within 5 s`);
  };
  await launch();
  return {
    get pid() {
      return child?.pid;
    },
    signal: (sig) => child?.kill(sig),
    kill,
    restart: launch,
  };
}
