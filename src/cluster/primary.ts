// The primary process: forks one worker per slot, respawns the ones that die
// (with backoff, until the cluster crash-loops), replaces them one at a time on
// reload, and shuts them down gracefully. It never serves proxy traffic.
import cluster, { type Worker } from 'node:cluster';
import { loadConfig, type ConfigOverrides } from '../config/load.js';
import { ConfigError } from '../config/errors.js';
import type { Config } from '../config/types.js';
import type { WorkerStats } from '../proxy/server.js';
import { createLogger, type Logger } from '../log.js';
import { startAdminServer, type AdminServer } from '../admin/server.js';
import { buildStatus } from '../admin/status.js';
import type { ReloadResult, Status, WorkerInfo, WorkerStatsResult } from '../admin/types.js';
import { startDemoBackends, sameDemoBackends, type DemoBackends } from './demo-backends.js';
import { SharedState } from './shared-state.js';
import { startHealthChecks, type ActiveHealthChecker } from '../health/active-checker.js';
import { clusterMetricsText, createPrimaryRegistry, RetiredCounters } from '../metrics/cluster-metrics.js';
import { isWorkerMessage, WORKER_INDEX_ENV, type PrimaryMessage } from './messages.js';
import { TicketKeyRotation } from '../tls/ticket-keys.js';


export interface PrimaryOptions {
  /** Absolute path of the config file, re-read on reload. */
  file: string;
  overrides: ConfigOverrides;
}

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5_000;
/** A worker that lived this long resets its slot's backoff. */
const STABLE_MS = 10_000;
/** This many unexpected deaths across the cluster within CRASH_WINDOW_MS stop respawning. */
const CRASH_LOOP_DEATHS = 5;
const CRASH_WINDOW_MS = 10_000;
/** How long a new worker may take to report ready before it counts as failed. */
const READY_TIMEOUT_MS = 30_000;
/** Grace added to shutdown_timeout before workers still alive are killed. */
const HARD_KILL_GRACE_MS = 2_000;
const STATS_TIMEOUT_MS = 1_000;
/**
 * With kernel scheduling every worker accepts on the shared socket, and the
 * one awake first takes a whole burst of connections (measured: one worker
 * got all 64 keep-alive connections of a benchmark, the other none).
 * libuv's UV_TCP_SINGLE_ACCEPT makes a worker accept one connection per
 * wake-up and yield, so a burst spreads over the workers.
 */
/**
 * A 4 MB young generation (V8's default is 16 MB per semi-space): a proxy
 * allocates fast and mostly short-lived objects, and the default lets a
 * worker's RSS run to ~140 MB under connection churn before a scavenge; with
 * 4 MB it stayed under 90 MB at no measurable cost in req/s (bench/README.md).
 * Flags given to node itself come later and win.
 */
const WORKER_V8_FLAGS = ['--max-semi-space-size=4'];
const KERNEL_SCHEDULING_ENV: Record<Config['scheduling'], Record<string, string>> = {
  kernel: { UV_TCP_SINGLE_ACCEPT: '1' },
  'round-robin': {},
};

interface Entry {
  worker: Worker;
  slot: number;
  pid: number;
  startedAt: number;
  state: 'starting' | 'ready' | 'draining';
  config: Config;
  /** The worker's counter slot in the shared region, and the region it maps. */
  counterSlot: number;
  regionName: string;
  /** It sent its final metrics: they are in retiredMetrics. */
  countsRetired?: boolean;
  /** Settled by the 'ready' message, or by exit/timeout before it. */
  ready: Promise<void>;
  onReady(): void;
  onFail(reason: string): void;
}

interface Slot {
  index: number;
  current?: Entry;
  /** The replacement being started by a reload; becomes current once ready. */
  candidate?: Entry;
  restarts: number;
  nextBackoffMs: number;
  respawnTimer?: NodeJS.Timeout;
  /** Not respawned: the cluster is crash-looping. */
  stopped: boolean;
}

export class Primary {
  readonly startedAt = Date.now();
  private config: Config;
  private readonly log: Logger;
  private slots: Slot[] = [];
  private readonly draining = new Set<Entry>();
  private deaths: number[] = [];
  private crashLoop = false;
  private shuttingDown: Promise<void> | undefined;
  private reloadChain: Promise<unknown> = Promise.resolve();
  private admin: AdminServer | undefined;
  private demo: DemoBackends | undefined;
  private nextStatsId = 1;
  private shared: SharedState | undefined;
  private health: ActiveHealthChecker | undefined;
  /** TLS session-ticket keys every worker shares (made here so a session resumes on any worker). */
  private tickets: TicketKeyRotation | undefined;
  private readonly metricsRegistry = createPrimaryRegistry({
    health: () => this.health?.servers() ?? [],
    workers: () => this.slots.filter((s) => s.current?.state === 'ready').length,
    restarts: () => this.slots.reduce((n, s) => n + s.restarts, 0),
  });
  /** Counters of workers that drained and exited (a reload, a shutdown), still part of every total. */
  private readonly retiredMetrics = new RetiredCounters();
  private readonly pendingStats = new Map<number, (stats: WorkerStats) => void>();
  /** Settles start(): every slot ready, or a crash loop first. */
  private startWaiter: { resolve(): void; reject(err: Error): void } | undefined;

  constructor(
    config: Config,
    private readonly options: PrimaryOptions,
  ) {
    this.config = config;
    this.log = createLogger(config.logging, { role: 'primary' });
  }

  /** Starts demo backends, workers (resolving once all are ready) and the admin API. */
  async start(): Promise<void> {
    // Read by node:cluster at the first fork only.
    cluster.schedulingPolicy = this.config.scheduling === 'round-robin' ? cluster.SCHED_RR : cluster.SCHED_NONE;
    cluster.setupPrimary({ execArgv: [...WORKER_V8_FLAGS, ...process.execArgv] });
    this.demo = await startDemoBackends(this.config.demoBackends, this.log);
    const shared = new SharedState(this.config, this.log);
    this.shared = shared;
    // Whatever ends the primary, its segment must not outlive it (a SIGKILL is swept at the next start).
    process.once('exit', () => shared.close());
    this.tickets = new TicketKeyRotation(this.config.tlsTickets.rotateMs, (tickets) => {
      for (const e of this.liveEntries()) this.send(e, { type: 'tls-ticket-keys', tickets });
      this.log.info('session-ticket keys rotated');
    });
    const allReady = new Promise<void>((resolve, reject) => (this.startWaiter = { resolve, reject }));
    // A SIGHUP during start-up reloads once every first worker is up.
    this.reloadChain = allReady.catch(() => undefined);
    for (let i = 0; i < this.config.workers; i++) {
      const slot = this.newSlot(i);
      this.slots.push(slot);
      slot.current = this.fork(slot);
    }
    await allReady;
    this.health = startHealthChecks(this.config, this.log, shared);
    const { host, port } = this.config.admin;
    this.admin = await startAdminServer(
      { host, port },
      {
        token: () => this.config.admin.token,
        status: () => this.status(),
        reload: () => this.reload(),
        setDrained: (upstream, address, drained) => this.setDrained(upstream, address, drained),
        // Workers still starting have no counts yet: asking them would only wait for the deadline.
        metrics: () =>
          clusterMetricsText(
            this.metricsRegistry,
            this.liveEntries()
              .filter((e) => e.state !== 'starting' && !e.countsRetired)
              .map((e) => e.worker),
            this.retiredMetrics,
          ),
      },
      this.log,
    );
    this.log.info(
      { workers: this.config.workers, scheduling: this.config.scheduling, listen: this.config.listen, admin: `${host}:${port}` },
      'switchyard started',
    );
  }

  /** Re-reads the config file; if valid, replaces the workers one slot at a time. */
  reload(): Promise<ReloadResult> {
    const result = this.reloadChain.then(() => this.doReload());
    this.reloadChain = result.catch(() => undefined);
    return result;
  }

  /** Admin drain/enable: written to shared memory, so every worker's next pick sees it. */
  setDrained(upstream: string, address: string, drained: boolean): boolean {
    const index = this.config.upstreams[upstream]?.servers.findIndex((s) => s.address === address) ?? -1;
    if (index < 0 || this.shared === undefined) return false;
    this.shared.setDrained(upstream, index, drained);
    this.log.info({ upstream, server: address }, drained ? 'server drained' : 'server enabled');
    return true;
  }

  /** Drains every worker, then stops the admin API and demo backends. Idempotent. */
  shutdown(): Promise<void> {
    this.shuttingDown ??= this.doShutdown();
    return this.shuttingDown;
  }

  workers(): WorkerInfo[] {
    const now = Date.now();
    const info = (e: Entry, restarts: number): WorkerInfo => ({
      slot: e.slot,
      pid: e.pid,
      uptimeSeconds: Math.round((now - e.startedAt) / 1000),
      restarts,
      state: e.state,
    });
    const out: WorkerInfo[] = [];
    for (const slot of this.slots) {
      if (slot.current) out.push(info(slot.current, slot.restarts));
      else out.push({ slot: slot.index, pid: null, uptimeSeconds: 0, restarts: slot.restarts, state: slot.stopped ? 'stopped' : 'backoff' });
      if (slot.candidate) out.push(info(slot.candidate, 0));
    }
    for (const e of this.draining) out.push(info(e, 0));
    return out;
  }

  /** Asks every serving worker for its counters; one that does not answer in time has no `stats`. */
  collectStats(timeoutMs = STATS_TIMEOUT_MS): Promise<WorkerStatsResult[]> {
    const entries = this.liveEntries().filter((e) => e.state !== 'starting');
    return Promise.all(
      entries.map(
        (e) =>
          new Promise<WorkerStatsResult>((resolve) => {
            const id = this.nextStatsId++;
            const done = (stats?: WorkerStats) => {
              clearTimeout(timer);
              this.pendingStats.delete(id);
              resolve({ slot: e.slot, pid: e.pid, stats });
            };
            const timer = setTimeout(() => done(), timeoutMs);
            this.pendingStats.set(id, done);
            if (!this.send(e, { type: 'stats-request', id })) done();
          }),
      ),
    );
  }

  async status(): Promise<Status> {
    return buildStatus({
      config: this.config,
      startedAt: this.startedAt,
      crashLoop: this.crashLoop,
      workers: this.workers(),
      stats: await this.collectStats(),
      serverCounts: (upstream, index) => this.shared?.counts(upstream, index),
    });
  }

  // ---- workers -------------------------------------------------------------

  private newSlot(index: number): Slot {
    return { index, restarts: 0, nextBackoffMs: BACKOFF_MIN_MS, stopped: false };
  }

  private fork(slot: Slot): Entry {
    const shared = this.shared!;
    const counterSlot = shared.allocateSlot();
    const worker = cluster.fork({ [WORKER_INDEX_ENV]: String(slot.index), ...KERNEL_SCHEDULING_ENV[this.config.scheduling] });
    let onReady!: () => void;
    let onFail!: (reason: string) => void;
    const ready = new Promise<void>((resolve, reject) => {
      onReady = resolve;
      onFail = (reason) => reject(new Error(reason));
    });
    ready.catch(() => undefined); // observed only by reloads
    const entry: Entry = {
      worker,
      slot: slot.index,
      pid: worker.process.pid ?? -1,
      startedAt: Date.now(),
      state: 'starting',
      config: this.config,
      counterSlot,
      regionName: shared.regionName,
      ready,
      onReady,
      onFail,
    };
    worker.on('message', (m: unknown) => this.onMessage(entry, m));
    worker.on('exit', (code: number | null, signal: string | null) => this.onExit(entry, code, signal));
    // Sending to a worker that just died emits 'error'; its 'exit' follows.
    worker.on('error', (err) => this.log.debug({ err, workerPid: entry.pid }, 'worker channel error'));
    this.log.info({ slot: slot.index, workerPid: entry.pid }, 'worker forked');
    return entry;
  }

  private onMessage(entry: Entry, m: unknown): void {
    if (!isWorkerMessage(m)) return;
    switch (m.type) {
      case 'hello':
        this.send(entry, {
          type: 'config',
          config: entry.config,
          region: { name: entry.regionName, slot: entry.counterSlot },
          rateLimitTable: this.shared!.rateLimitName,
        });
        if (this.tickets) this.send(entry, { type: 'tls-ticket-keys', tickets: this.tickets.message() });
        break;
      case 'ready':
        if (entry.state === 'starting') entry.state = 'ready';
        this.log.info({ slot: entry.slot, workerPid: entry.pid }, 'worker ready');
        entry.onReady();
        this.checkStarted();
        break;
      case 'stats':
        this.pendingStats.get(m.id)?.(m.stats);
        break;
      case 'metrics-final':
        // From now on its counts come from here, not from asking it.
        entry.countsRetired = true;
        this.retiredMetrics.add(m.metrics);
        break;
    }
  }

  private onExit(entry: Entry, code: number | null, signal: string | null): void {
    // Before anything can replace it: a dead worker's in-flight counts must not linger.
    this.shared?.releaseSlot(entry.counterSlot);
    entry.onFail(`worker ${entry.pid} exited before it was ready (code ${code}, signal ${signal})`);
    const slot = this.slots[entry.slot];
    const fields = { slot: entry.slot, workerPid: entry.pid, code, signal };
    if (this.draining.delete(entry) || this.shuttingDown) {
      if (code === 0) this.log.info(fields, 'worker exited');
      else this.log.warn(fields, 'worker exited uncleanly while shutting down');
      return;
    }
    if (slot?.candidate === entry) {
      slot.candidate = undefined; // the reload waiting on it reports the failure
      return;
    }
    if (slot?.current !== entry) return;
    slot.current = undefined;
    this.log.warn(fields, 'worker died unexpectedly');
    if (this.crashLoop) {
      slot.stopped = true;
      return;
    }

    const now = Date.now();
    this.deaths = this.deaths.filter((t) => now - t < CRASH_WINDOW_MS);
    this.deaths.push(now);
    if (this.deaths.length >= CRASH_LOOP_DEATHS) {
      this.enterCrashLoop();
      return;
    }
    if (now - entry.startedAt >= STABLE_MS) slot.nextBackoffMs = BACKOFF_MIN_MS;
    const delay = slot.nextBackoffMs;
    slot.nextBackoffMs = Math.min(delay * 2, BACKOFF_MAX_MS);
    this.log.info({ slot: slot.index, delayMs: delay }, 'respawning worker');
    slot.respawnTimer = setTimeout(() => {
      slot.respawnTimer = undefined;
      slot.restarts++;
      slot.current = this.fork(slot);
    }, delay);
  }

  private enterCrashLoop(): void {
    this.crashLoop = true;
    for (const slot of this.slots) {
      clearTimeout(slot.respawnTimer);
      slot.respawnTimer = undefined;
      if (!slot.current) slot.stopped = true;
    }
    this.log.error(
      { deaths: this.deaths.length, windowMs: CRASH_WINDOW_MS, surviving: this.liveEntries().length },
      'workers are crash-looping: respawning stopped (fix the cause, then reload or restart)',
    );
    this.startWaiter?.reject(new Error('workers crashed repeatedly while starting; see the log for their errors'));
    this.startWaiter = undefined;
  }

  private checkStarted(): void {
    if (this.startWaiter && this.slots.every((s) => s.current?.state === 'ready')) {
      this.startWaiter.resolve();
      this.startWaiter = undefined;
    }
  }

  /** Tells a worker to stop accepting and finish its requests; its exit is expected from now on. */
  private retire(entry: Entry): void {
    entry.state = 'draining';
    this.draining.add(entry);
    if (!this.send(entry, { type: 'shutdown' })) entry.worker.process.kill('SIGTERM');
  }

  private send(entry: Entry, message: PrimaryMessage): boolean {
    if (!entry.worker.isConnected()) return false;
    entry.worker.send(message);
    return true;
  }

  private liveEntries(): Entry[] {
    const out: Entry[] = [...this.draining];
    for (const s of this.slots) {
      if (s.current) out.push(s.current);
      if (s.candidate) out.push(s.candidate);
    }
    return out;
  }

  // ---- reload --------------------------------------------------------------

  private async doReload(): Promise<ReloadResult> {
    if (this.shuttingDown) return { ok: false, errors: ['shutting down'] };
    let next: Config;
    try {
      next = loadConfig(this.options.file, this.options.overrides).config;
    } catch (err) {
      const errors = err instanceof ConfigError ? [...err.errors] : [(err as Error).message];
      this.log.error({ file: this.options.file, errors }, 'reload rejected: the config is invalid; nothing changed');
      return { ok: false, errors };
    }

    const previous = this.config;
    this.config = next;
    this.shared?.applyConfig(next);
    this.health?.replace(next);
    this.log.level = next.logging.level;
    this.warnUnappliable(previous, next);
    if (!sameDemoBackends(previous.demoBackends, next.demoBackends)) {
      await this.demo?.close();
      this.demo = await startDemoBackends(next.demoBackends, this.log);
    }
    // A reload is the operator's answer to a crash loop: start afresh.
    this.crashLoop = false;
    this.deaths = [];

    for (let i = 0; i < next.workers; i++) {
      if (this.shuttingDown) return { ok: false, errors: ['shutting down'] };
      const slot = (this.slots[i] ??= this.newSlot(i));
      clearTimeout(slot.respawnTimer);
      slot.respawnTimer = undefined;
      slot.stopped = false;
      const candidate = this.fork(slot);
      slot.candidate = candidate;
      const timer = setTimeout(() => {
        candidate.onFail(`worker ${candidate.pid} was not ready within ${READY_TIMEOUT_MS} ms`);
        candidate.worker.process.kill('SIGKILL');
      }, READY_TIMEOUT_MS);
      try {
        await candidate.ready;
      } catch (err) {
        return this.abortReload(slot, previous, (err as Error).message);
      } finally {
        clearTimeout(timer);
      }
      slot.candidate = undefined;
      if (slot.current) this.retire(slot.current);
      slot.current = candidate;
      // The new worker counts as the slot's fresh start.
      slot.nextBackoffMs = BACKOFF_MIN_MS;
    }
    for (const slot of this.slots.splice(next.workers)) {
      clearTimeout(slot.respawnTimer);
      if (slot.current) this.retire(slot.current);
    }
    this.log.info({ workers: next.workers }, 'reload complete');
    return { ok: true };
  }

  /** A replacement failed to start: later slots keep their workers, and respawns use the old config. */
  private abortReload(slot: Slot, previous: Config, reason: string): ReloadResult {
    slot.candidate = undefined;
    this.config = previous;
    this.shared?.applyConfig(previous);
    this.health?.replace(previous);
    this.log.level = previous.logging.level;
    if (!slot.current && !this.shuttingDown) slot.current = this.fork(slot);
    const error =
      `slot ${slot.index}: ${reason}; ` +
      (slot.index === 0 ? 'no worker was replaced' : `slots 0-${slot.index - 1} run the new config, the others the old one`);
    this.log.error({ error }, 'reload failed');
    return { ok: false, errors: [error] };
  }

  private warnUnappliable(previous: Config, next: Config): void {
    if (previous.scheduling !== next.scheduling) {
      this.log.warn({ scheduling: next.scheduling }, 'scheduling changes take effect only after a restart');
    }
    if (previous.admin.host !== next.admin.host || previous.admin.port !== next.admin.port) {
      this.log.warn({ admin: next.admin.host + ':' + next.admin.port }, 'admin address changes take effect only after a restart');
    }
  }

  // ---- shutdown ------------------------------------------------------------

  private async doShutdown(): Promise<void> {
    this.log.info('shutting down: draining workers');
    this.health?.stop();
    this.tickets?.stop();
    this.startWaiter?.reject(new Error('shut down while starting'));
    this.startWaiter = undefined;
    for (const slot of this.slots) clearTimeout(slot.respawnTimer);
    const entries = this.liveEntries();
    const exited = entries.map((e) =>
      e.worker.isDead() ? Promise.resolve() : new Promise<void>((resolve) => e.worker.once('exit', () => resolve())),
    );
    for (const e of entries) {
      if (e.state !== 'draining') this.retire(e);
    }
    const hardKill = setTimeout(() => {
      for (const e of entries) {
        if (!e.worker.isDead()) {
          this.log.warn({ workerPid: e.pid }, 'worker did not finish draining in time: killing it');
          e.worker.process.kill('SIGKILL');
        }
      }
    }, this.config.shutdownTimeoutMs + HARD_KILL_GRACE_MS);
    await Promise.all(exited);
    clearTimeout(hardKill);
    await Promise.all([this.admin?.close(), this.demo?.close()]);
    this.shared?.close();
    this.log.info('shutdown complete');
  }
}
