// The primary's side of the DSR forwarder process (src/dsr/forwarder-process.ts):
// forks it, hands it the plan (on start, on every reload and after every
// respawn), respawns it with backoff when it dies, asks it for counters, and
// stops it on shutdown. One process runs every `dsr:` entry: its packet
// threads are native, so one event loop is enough, and a crash costs one
// respawn. Health and drain need no messages: the forwarder reads the bits the
// health checker and the admin API write into the shared region.
//
// A respawned forwarder starts with an empty flow table: connections open
// across the crash are hashed again by the Maglev table, which gives them the
// same server as long as the server set did not change meanwhile.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../log.js';
import type { DsrCounters } from '../native.js';
import type { DsrPlanEntry } from '../dsr/plan.js';
import { isFromForwarder, type DsrEntryErrors, type FromForwarder, type ToForwarder } from '../dsr/messages.js';
import type { DsrForwarderInfo } from '../admin/types.js';
import { ErrorCode, SwitchyardError } from '../errors.js';
import { RespawnBackoff } from './respawn-backoff.js';

/** Opening packet sockets and threads is quick; a forwarder silent this long is taken as hung. */
const APPLY_TIMEOUT_MS = 10_000;
const COUNTERS_TIMEOUT_MS = 1_000;
/** One scrape reads a dozen metrics: they share one answer this fresh. */
const COUNTERS_FRESH_MS = 250;
const STOP_GRACE_MS = 3_000;

/** Why the forwarder cannot run on this machine (it needs AF_PACKET sockets: Linux, as root), or undefined. */
export function dsrUnavailable(): string | undefined {
  if (process.platform !== 'linux') return `needs Linux (AF_PACKET sockets); this is ${process.platform}`;
  const uid = process.getuid?.();
  if (uid !== 0) return `needs root (raw packet sockets and ARP replies on the interface); running as uid ${uid}`;
  return undefined;
}

/** Run from dist/ as .js; from src/ (tsx) as .ts. */
const PROCESS_FILE = fileURLToPath(new URL(`../dsr/forwarder-process${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url));

export class DsrSupervisor {
  private child: ChildProcess | undefined;
  private startedAt = 0;
  private restarts = 0;
  private readonly backoff = new RespawnBackoff();
  private respawnTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private state: DsrForwarderInfo['state'] = 'starting';
  /** Per entry of the plan: why it does not run (null: it runs), from the last apply. */
  private errors: DsrEntryErrors = [];
  private nextId = 1;
  private readonly pending = new Map<number, (m: FromForwarder | undefined) => void>();
  private countersMemo: { at: number; value: Promise<(DsrCounters | null)[] | undefined> } | undefined;

  constructor(
    private readonly log: Logger,
    private plan: DsrPlanEntry[],
  ) {}

  /** Forks the forwarder and opens every entry; throws SWY_ERR_DSR_START (after stopping it) if any cannot run. */
  async start(): Promise<void> {
    this.spawn();
    const errors = await this.applyCurrent();
    const failed = this.describeErrors(errors ?? this.plan.map(() => 'the forwarder process exited or did not answer'));
    if (failed.length > 0) {
      await this.stop();
      throw new SwitchyardError(ErrorCode.DsrStart, `the DSR forwarder cannot run: ${failed.join('; ')}`);
    }
  }

  /** Reload: the new plan (entries kept are updated in place, their flows kept). Resolves what could not run. */
  async apply(plan: DsrPlanEntry[]): Promise<string[]> {
    this.plan = plan;
    if (this.child === undefined) return []; // respawning: it gets this plan when it starts
    const errors = await this.applyCurrent();
    return errors === undefined ? ['the DSR forwarder process did not answer'] : this.describeErrors(errors);
  }

  /** Each entry's counters (null: not running), or undefined while the process is down or silent. */
  counters(): Promise<(DsrCounters | null)[] | undefined> {
    const now = Date.now();
    if (this.countersMemo === undefined || now - this.countersMemo.at > COUNTERS_FRESH_MS) {
      const value = this.request({ type: 'dsr-counters-request', id: this.nextId++ }, COUNTERS_TIMEOUT_MS).then((m) =>
        m?.type === 'dsr-counters' ? m.counters : undefined,
      );
      this.countersMemo = { at: now, value };
    }
    return this.countersMemo.value;
  }

  info(): DsrForwarderInfo {
    return {
      pid: this.child?.pid ?? null,
      state: this.state,
      uptimeSeconds: this.child ? Math.round((Date.now() - this.startedAt) / 1000) : 0,
      restarts: this.restarts,
    };
  }

  /** Why each entry of the current plan does not run (null: it runs). */
  entryErrors(): DsrEntryErrors {
    return this.plan.map((_, i) => (this.state === 'running' ? (this.errors[i] ?? null) : 'the forwarder process is not running'));
  }

  /** Tells the forwarder to close its sockets and exit; kills it if it does not. Idempotent. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.state = 'stopped';
    clearTimeout(this.respawnTimer);
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    this.sendTo(child, { type: 'dsr-stop' });
    const kill = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(kill);
  }

  private spawn(): void {
    this.state = 'starting';
    this.startedAt = Date.now();
    const child = fork(PROCESS_FILE, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'json' });
    this.child = child;
    child.on('message', (m: unknown) => {
      if (isFromForwarder(m)) this.pending.get(m.id)?.(m);
    });
    // Sending to a process that just died emits 'error'; its 'exit' follows.
    child.on('error', (err) => this.log.debug({ err }, 'dsr forwarder channel error'));
    child.once('exit', (code, signal) => this.onExit(child, code, signal));
    this.log.info({ forwarderPid: child.pid, entries: this.plan.length }, 'dsr forwarder forked');
  }

  private async applyCurrent(): Promise<DsrEntryErrors | undefined> {
    const plan = this.plan;
    const answer = await this.request({ type: 'dsr-apply', id: this.nextId++, entries: plan }, APPLY_TIMEOUT_MS);
    if (answer?.type !== 'dsr-applied') return undefined;
    // A newer plan may have been sent meanwhile: its own answer sets the errors.
    if (plan === this.plan) {
      this.errors = answer.errors;
      if (this.child !== undefined && this.state === 'starting') this.state = 'running';
    }
    for (const line of this.describeErrors(answer.errors)) this.log.error({ error: line }, 'dsr entry not running');
    return answer.errors;
  }

  private describeErrors(errors: DsrEntryErrors): string[] {
    return errors.flatMap((e, i) => {
      if (e === null) return [];
      const o = this.plan[i]?.options;
      return [`dsr[${i}] (${o?.vip} on ${o?.interface}): ${e}`];
    });
  }

  /** Sends `message` and resolves the answer with its id; undefined on timeout or if the process exits first. */
  private request(message: ToForwarder & { id: number }, timeoutMs: number): Promise<FromForwarder | undefined> {
    const child = this.child;
    if (child === undefined || !child.connected) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const done = (m: FromForwarder | undefined) => {
        clearTimeout(timer);
        this.pending.delete(message.id);
        resolve(m);
      };
      const timer = setTimeout(() => done(undefined), timeoutMs);
      this.pending.set(message.id, done);
      if (!this.sendTo(child, message)) done(undefined);
    });
  }

  private sendTo(child: ChildProcess, message: ToForwarder): boolean {
    if (!child.connected) return false;
    child.send(message);
    return true;
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    this.child = undefined;
    for (const done of [...this.pending.values()]) done(undefined);
    const fields = { forwarderPid: child.pid, code, signal };
    if (this.stopping) {
      this.log.info(fields, 'dsr forwarder exited');
      return;
    }
    this.state = 'backoff';
    const delay = this.backoff.afterDeath(this.startedAt);
    this.log.warn({ ...fields, delayMs: delay }, 'dsr forwarder died unexpectedly: respawning');
    this.respawnTimer = setTimeout(() => {
      this.respawnTimer = undefined;
      if (this.stopping) return;
      this.restarts++;
      this.spawn();
      this.applyCurrent().catch((err: unknown) => this.log.error({ err }, 'dsr forwarder: applying the plan failed'));
    }, delay);
  }
}
