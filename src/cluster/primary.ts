// The primary process: forks one worker per slot, respawns the ones that die
// (with backoff, until the cluster crash-loops), replaces them one at a time on
// reload, and shuts them down gracefully. It never serves proxy traffic.
import cluster, { type Worker } from 'node:cluster';
import { loadConfig, type ConfigOverrides } from '../config/load.js';
import { ConfigError } from '../config/errors.js';
import type { Config } from '../config/types.js';
import { createLogger, type Logger } from '../log.js';
import { startAdminServer, type AdminServer } from '../admin/server.js';
import { buildStatus } from '../admin/status.js';
import type { CanaryReport, ReloadOptions, ReloadResult, Status, WorkerInfo, WorkerStats, WorkerStatsResult } from '../admin/types.js';
import { observeCanary } from './canary.js';
import { whatIf } from './what-if.js';
import { startDemoBackends, sameDemoBackends, type DemoBackends } from './demo-backends.js';
import { COUNTER_SLOTS, SharedState } from './shared-state.js';
import { startHealthChecks, type ActiveHealthChecker } from '../health/active-checker.js';
import type { Registry } from 'prom-client';
import { clusterMetricsText, clusterServerLatency, createPrimaryRegistry, RetiredCounters } from '../metrics/cluster-metrics.js';
import { routeTable, type RouteTableEntry } from '../proxy/route-table.js';
import { isWorkerMessage, WORKER_INDEX_ENV, type PrimaryMessage } from './messages.js';
import { ErrorCode, SwitchyardError } from '../errors.js';
import { DnsDiscovery } from '../discovery/dns.js';
import { acmeListeners, AcmeService, storedCertificates } from '../acme/service.js';
import type { CertificatePair } from '../acme/storage.js';
import type { AcmeToken } from '../proxy/acme-challenge.js';
import { TicketKeyRotation } from '../tls/ticket-keys.js';
import { RespawnBackoff } from './respawn-backoff.js';
import { DsrSupervisor, dsrUnavailable } from './dsr-supervisor.js';
import { dsrPlan } from '../dsr/plan.js';
import { releaseStartupPages } from '../native.js';
import { registerDsrMetrics, type DsrMetricsSnapshot } from '../metrics/dsr-metrics.js';
import { formatUnreachable, unreachableRoutes } from '../proxy/route-audit.js';


export interface PrimaryOptions {
  /** Absolute path of the config file, re-read on reload. */
  file: string;
  overrides: ConfigOverrides;
}

/** This many unexpected deaths across the cluster within CRASH_WINDOW_MS stop respawning. */
const CRASH_LOOP_DEATHS = 5;
const CRASH_WINDOW_MS = 10_000;
/** How long a new worker may take to report ready before it counts as failed. */
const READY_TIMEOUT_MS = 30_000;
/** Grace added to shutdown_timeout before workers still alive are killed. */
const HARD_KILL_GRACE_MS = 2_000;
const STATS_TIMEOUT_MS = 1_000;
/** Retiring workers (kept for their tunnels) allowed per configured worker before the oldest is cut short. */
const MAX_RETIRING_PER_WORKER = 2;
/** How long the CA's validation waits for every worker to confirm it answers a new token. */
const ACME_TOKEN_ACK_TIMEOUT_MS = 5_000;
/**
 * With kernel scheduling every worker accepts on the shared socket, and the
 * one awake first takes a whole burst of connections (measured: one worker
 * got all 64 keep-alive connections of a benchmark, the other none).
 * libuv's UV_TCP_SINGLE_ACCEPT makes a worker accept one connection per
 * wake-up and yield, so a burst spreads over the workers.
 */
/**
 * A 1 MB young generation (V8's default is 16 MB per semi-space): a proxy
 * allocates fast and mostly short-lived objects, and the default let a
 * worker's RSS run to ~140 MB under connection churn before a scavenge.
 * 4 MB held it under 90 MB; 1 MB takes 6 MB more off each worker (tree RSS
 * under the 100 B load 199 -> 188 MB) with CPU per request unchanged within
 * the noise in same-run benches (more scavenges, each of a young generation
 * that stays in cache; bench/README.md, "Memory").
 *
 * Workers with an HTTP/2 listener get 4 MB: each open stream holds ~10 KB
 * of Node's http2 objects (a Duplex, header objects, write requests), so 160
 * open streams (16 sessions of 10) outgrow 1 MB; nearly every scavenge then
 * promoted them and mark-compacts followed (h2load 100 B: GC 21% of a
 * worker's profile at 1 MB, 12% at 4 MB; +10 MB RSS per worker). Flags given
 * to node itself come later and win.
 */
export function workerV8Flags(config: Pick<Config, 'listen'>): string[] {
  return [`--max-semi-space-size=${config.listen.some((l) => l.http2) ? 4 : 1}`];
}
const KERNEL_SCHEDULING_ENV: Record<Config['scheduling'], Record<string, string>> = {
  kernel: { UV_TCP_SINGLE_ACCEPT: '1' },
  'round-robin': {},
};

interface Entry {
  worker: Worker;
  slot: number;
  pid: number;
  startedAt: number;
  state: 'starting' | 'ready' | 'draining' | 'retiring';
  /** Retiring: the tunnels it reported open once its HTTP requests were done. */
  tunnels?: number;
  /** When it was told to retire (reload) or to stop. */
  retiredAt?: number;
  config: Config;
  /** The worker's counter slot in the shared region, and the region it maps. */
  counterSlot: number;
  regionName: string;
  /** Runs a canary reload's new config while the others run the old one. */
  canary?: boolean;
  /** Told to end its tunnels before tunnel_max_age (too many retiring workers). */
  cutShort?: boolean;
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
  readonly backoff: RespawnBackoff;
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
  /** The current or last canary reload, for /status. */
  private canaryReport: CanaryReport | undefined;
  /** During a canary window: the new config, which shared memory and health checks already follow. */
  private canaryNext: Config | undefined;
  /** During a canary window whose ACME settings differ from the running ones: the canary's stored certificates. */
  private canaryCertificates: { index: number; name: string; pair: CertificatePair }[] | undefined;
  /** A canary reload was accepted and has not decided yet: other reloads are refused meanwhile. */
  private canaryPending = false;
  private admin: AdminServer | undefined;
  private demo: DemoBackends | undefined;
  private nextStatsId = 1;
  private shared: SharedState | undefined;
  private health: ActiveHealthChecker | undefined;
  /** TLS session-ticket keys every worker shares (made here so a session resumes on any worker). */
  private tickets: TicketKeyRotation | undefined;
  /** Made by the first scrape of /metrics (cluster-metrics.ts loads prom-client then). */
  private metricsRegistry: Registry | undefined;
  private primaryRegistry(): Registry {
    if (this.metricsRegistry === undefined) {
      this.metricsRegistry = createPrimaryRegistry({
        health: () => this.health?.servers() ?? [],
        workers: () => this.slots.filter((s) => s.current?.state === 'ready').length,
        restarts: () => this.slots.reduce((n, s) => n + s.restarts, 0),
        acme: () => this.acme?.status() ?? [],
      });
      this.registerDsrMetricsOnce();
    }
    return this.metricsRegistry;
  }

  /** The switchyard_dsr_* series, once there is both a registry (a scrape) and a forwarder (a config with dsr:). */
  private registerDsrMetricsOnce(): void {
    if (this.dsrMetricsRegistered || this.metricsRegistry === undefined || this.dsr === undefined) return;
    registerDsrMetrics(this.metricsRegistry, () => this.dsrSnapshot());
    this.dsrMetricsRegistered = true;
  }

  private acme: AcmeService | undefined;
  /** Version of the token set last sent; workers acknowledge versions. */
  private acmeTokensVersion = 0;
  private readonly acmeAckWaiters = new Set<{ version: number; waiting: Set<Entry>; done(): void }>();
  /** Counters of workers that drained and exited (a reload, a shutdown), still part of every total. */
  private readonly retiredMetrics = new RetiredCounters();
  private readonly pendingStats = new Map<number, (stats: WorkerStats) => void>();
  private routeTableOf: { config: Config; table: RouteTableEntry[] } | undefined;
  /** Settles start(): every slot ready, or a crash loop first. */
  private startWaiter: { resolve(): void; reject(err: Error): void } | undefined;
  /** The DSR forwarder process (issue 13), once the config has `dsr:` entries. */
  private dsr: DsrSupervisor | undefined;
  private dsrMetricsRegistered = false;
  /** Servers of `servers: { dns }` upstreams (issue 14); a change is applied like a reload. */
  private readonly discovery: DnsDiscovery;
  /** A DNS change is queued behind the running reload (applyDiscovered). */
  private discoveredWaiting = false;

  constructor(
    config: Config,
    private readonly options: PrimaryOptions,
  ) {
    this.config = config;
    this.log = createLogger(config.logging, { role: 'primary' });
    this.discovery = new DnsDiscovery(this.log, () => this.applyDiscovered());
  }

  /** Starts demo backends, workers (resolving once all are ready) and the admin API. */
  async start(): Promise<void> {
    // Read by node:cluster at the first fork only.
    cluster.schedulingPolicy = this.config.scheduling === 'round-robin' ? cluster.SCHED_RR : cluster.SCHED_NONE;
    this.warnUnreachable(this.config);
    const unavailable = this.config.dsr.length > 0 ? dsrUnavailable() : undefined;
    if (unavailable !== undefined) throw new SwitchyardError(ErrorCode.DsrUnavailable, `dsr: ${unavailable}`);
    this.demo = await startDemoBackends(this.config.demoBackends, this.log);
    // DNS upstreams need their first answer before the shared region (sized by the servers) exists.
    const unresolved = await this.discovery.follow(this.config);
    if (unresolved.length > 0) throw new Error(unresolved.join('; '));
    this.config = this.discovery.fill(this.config);
    const shared = new SharedState(this.config, this.log);
    this.shared = shared;
    // Whatever ends the primary, its segment must not outlive it (a SIGKILL is swept at the next start).
    process.once('exit', () => shared.close());
    // Before the workers: a forwarder that cannot open its interface is a start error, said at once.
    if (this.config.dsr.length > 0) await this.newDsr(dsrPlan(this.config, shared.regionName)).start();
    this.tickets = new TicketKeyRotation(this.config.tlsTickets.rotateMs, (tickets) => {
      for (const e of this.liveEntries()) this.send(e, { type: 'tls-ticket-keys', tickets });
      this.log.info('session-ticket keys rotated');
    });
    const allReady = new Promise<void>((resolve, reject) => (this.startWaiter = { resolve, reject }));
    // A SIGHUP during start-up reloads once every first worker is up.
    this.reloadChain = allReady.catch(() => undefined);
    this.replaceAcme(this.config);
    for (let i = 0; i < this.config.workers; i++) {
      const slot = this.newSlot(i);
      this.slots.push(slot);
      slot.current = this.fork(slot);
    }
    await allReady;
    this.health = startHealthChecks(this.config, this.log, shared);
    // After the workers: they answer the CA's HTTP-01 requests.
    this.acme?.start();
    if (this.config.admin) await this.startAdmin(this.config.admin);
    this.announce();
    // Start-up is over (config parsed, workers forked, admin listening): its pages of the node binary need not stay mapped.
    const released = releaseStartupPages();
    this.log.debug({ mappings: released.mappings, residentBytes: released.residentBytes }, 'start-up pages released');
  }

  /** One line that says where everything is: proxy addresses, the dashboard (or that there is none), the config file. */
  private announce(): void {
    const url = (l: { host: string; port: number }, path = '') => `http://${l.host.includes(':') ? `[${l.host}]` : l.host}:${l.port}${path}`;
    const proxy = this.config.listen.map((l) => url(l));
    const admin = this.config.admin;
    const dashboard = admin && this.admin ? url({ host: admin.host, port: this.admin.port }, '/dashboard/') : undefined;
    const adminText = dashboard
      ? `dashboard and admin API on ${dashboard}`
      : 'no admin API or dashboard (the config has no admin section); SIGHUP reloads the config';
    this.log.info(
      { workers: this.config.workers, scheduling: this.config.scheduling, listen: proxy, dashboard, configFile: this.options.file },
      `switchyard started: proxy on ${proxy.join(', ')}; ${adminText}; config ${this.options.file}`,
    );
  }

  private async startAdmin({ host, port }: { host: string; port: number }): Promise<void> {
    this.admin = await startAdminServer(
      { host, port },
      {
        // A reload that removes the admin section leaves no token: every request is refused until a restart.
        token: () => this.config.admin?.token ?? '',
        status: () => this.status(),
        reload: (options) => this.reload(options),
        setDrained: (upstream, address, drained) => this.setDrained(upstream, address, drained),
        whatIf: (name, query) => (Object.hasOwn(this.config.upstreams, name) ? whatIf(this.config.upstreams[name]!, query) : undefined),
        metrics: () => clusterMetricsText(this.primaryRegistry(), this.countingWorkers(), this.retiredMetrics),
        latency: () => clusterServerLatency(this.countingWorkers(), this.retiredMetrics),
      },
      this.log,
    );
  }

  /**
   * Re-reads the config file; if valid, replaces the workers one slot at a
   * time. With `canary`, first one worker only, judged over the window.
   */
  reload(options: ReloadOptions = {}): Promise<ReloadResult> {
    const { canary } = options;
    // Refused rather than queued behind a canary (up to its 1h window): the
    // caller would time out while its reload still ran an hour later.
    if (this.canaryPending) {
      const error = 'a canary reload is running or waiting: wait for its decision (GET /status, canary) before reloading again';
      this.log.warn({ canary: this.canaryReport?.state === 'running' ? this.canaryReport : 'waiting' }, `reload refused: ${error}`);
      return Promise.resolve({ ok: false, busy: true, errors: [error], ...(this.canaryReport?.state === 'running' ? { canary: this.canaryReport } : {}) });
    }
    if (canary) this.canaryPending = true;
    const result = this.reloadChain.then(() => (canary ? this.doCanaryReload(canary.windowMs, canary.minRequests) : this.doReload()));
    this.reloadChain = result.catch(() => undefined);
    if (canary) {
      this.reloadChain = this.reloadChain.then(() => {
        this.canaryPending = false;
      });
    }
    return result;
  }

  /** A DNS upstream's servers changed: the running config with the new set, applied like a reload. */
  private applyDiscovered(): void {
    // One waiting at most: it applies the sets of when it starts, so answers that change every query cannot queue a reload each.
    if (this.discoveredWaiting) return;
    this.discoveredWaiting = true;
    const result = this.reloadChain.then(() => {
      this.discoveredWaiting = false;
      return this.doReload(undefined, this.discovery.fill(this.config));
    });
    this.reloadChain = result.catch(() => undefined);
    result.catch((err: unknown) => this.log.error({ err }, 'applying a DNS change failed'));
  }

  /** Admin drain/enable: written to shared memory, so every worker's next pick sees it. */
  setDrained(upstream: string, address: string, drained: boolean): boolean {
    // Server indexes of the config the shared region is laid out for.
    const config = this.canaryNext ?? this.config;
    const index = (Object.hasOwn(config.upstreams, upstream) ? config.upstreams[upstream] : undefined)?.servers.findIndex((s) => s.address === address) ?? -1;
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
      ...(e.retiredAt === undefined ? {} : { retiredSeconds: Math.round((now - e.retiredAt) / 1000) }),
      ...(e.canary ? { canary: true } : {}),
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
      canary: this.canaryReport,
      routes: this.routeTable(),
      discovery: this.discovery.status(),
      acme: this.acme?.status() ?? [],
      ...(this.dsr ? { dsr: { forwarder: this.dsr.info(), errors: this.dsr.entryErrors(), counters: await this.dsr.counters() } } : {}),
    });
  }

  private async dsrSnapshot(): Promise<DsrMetricsSnapshot> {
    const dsr = this.dsr;
    if (dsr === undefined) return { up: false, restarts: 0, entries: [] };
    const counters = await dsr.counters();
    return {
      up: counters !== undefined,
      restarts: dsr.info().restarts,
      entries: this.config.dsr.map((d, i) => ({ interface: d.interface, vip: d.vip, upstream: d.upstream, counters: counters?.[i] ?? null })),
    };
  }

  /** The DSR supervisor, and its metrics the first time one is made (a config without dsr: shows no switchyard_dsr_* series). */
  private newDsr(plan: ReturnType<typeof dsrPlan>): DsrSupervisor {
    this.dsr = new DsrSupervisor(this.log, plan);
    this.registerDsrMetricsOnce();
    return this.dsr;
  }

  /** Shared memory, the health checks and the DSR forwarder follow `config`'s server list. */
  private followServers(config: Config): void {
    this.shared?.applyConfig(config);
    this.health?.replace(config);
    if (this.shared === undefined) return;
    // The region generation just made for this server list: its bits gate the forwarder's new flows.
    const plan = dsrPlan(config, this.shared.regionName);
    if (this.dsr !== undefined) {
      this.dsr.apply(plan).then(
        (errors) => errors.length === 0 && this.log.info({ entries: plan.length }, 'dsr forwarder follows the new server list'),
        (err: unknown) => this.log.error({ err }, 'dsr forwarder: applying the reload failed'),
      );
      return;
    }
    if (plan.length === 0) return;
    const unavailable = dsrUnavailable();
    if (unavailable !== undefined) {
      this.log.error({ error: `dsr: ${unavailable}` }, 'reload: the dsr entries cannot run here');
      return;
    }
    const dsr = this.newDsr(plan);
    dsr.start().catch((err: unknown) => {
      if (this.dsr === dsr) this.dsr = undefined;
      this.log.error({ err }, 'reload: the dsr forwarder did not start');
    });
  }

  /** The route table of the running config, computed once per config. */
  private routeTable(): RouteTableEntry[] {
    if (this.routeTableOf?.config !== this.config) this.routeTableOf = { config: this.config, table: routeTable(this.config.routes) };
    return this.routeTableOf.table;
  }

  // ---- workers -------------------------------------------------------------

  private newSlot(index: number): Slot {
    return { index, restarts: 0, backoff: new RespawnBackoff(), stopped: false };
  }

  private fork(slot: Slot, config: Config = this.config): Entry {
    const shared = this.shared!;
    const counterSlot = shared.allocateSlot();
    // Per fork: a reload may add or remove HTTP/2 listeners.
    cluster.setupPrimary({ execArgv: [...workerV8Flags(config), ...process.execArgv] });
    const worker = cluster.fork({ [WORKER_INDEX_ENV]: String(slot.index), ...KERNEL_SCHEDULING_ENV[config.scheduling] });
    let onReady!: () => void;
    let onFail!: (reason: string) => void;
    const ready = new Promise<void>((resolve, reject) => {
      onReady = resolve;
      onFail = (reason) => reject(new SwitchyardError(ErrorCode.WorkerNotReady, reason));
    });
    ready.catch(() => undefined); // observed only by reloads
    const entry: Entry = {
      worker,
      slot: slot.index,
      pid: worker.process.pid ?? -1,
      startedAt: Date.now(),
      state: 'starting',
      config,
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
        // Before it listens: an order may be waiting for the CA right now, and certificates in hand are served from the first handshake.
        if (acmeListeners(entry.config).length > 0) {
          if (this.acme) this.send(entry, { type: 'acme-challenges', version: this.acmeTokensVersion, tokens: this.acme.currentTokens() });
          for (const c of this.acmeCertificatesFor(entry.config)) this.send(entry, acmeCertificateMessage(c.index, c.name, c.pair));
        }
        break;
      case 'acme-challenges-applied':
        for (const waiter of this.acmeAckWaiters) if (m.version >= waiter.version) this.acmeAcked(waiter, entry);
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
      case 'retiring':
        if (entry.state !== 'draining') break;
        entry.state = 'retiring';
        entry.tunnels = m.tunnels;
        this.log.info(
          { slot: entry.slot, workerPid: entry.pid, tunnels: m.tunnels, tunnelMaxAgeMs: this.config.tunnelMaxAgeMs },
          'replaced worker keeps running for its open tunnels',
        );
        this.capRetiring();
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
    for (const waiter of this.acmeAckWaiters) this.acmeAcked(waiter, entry);
    entry.onFail(`worker ${entry.pid} exited before it was ready (code ${code}, signal ${signal})`);
    const slot = this.slots[entry.slot];
    const fields = { slot: entry.slot, workerPid: entry.pid, code, signal };
    if (this.draining.delete(entry) || this.shuttingDown) {
      // A replaced worker is never respawned, whatever ended it: its slot already has a successor.
      if (code === 0) this.log.info(fields, 'worker exited');
      else if (entry.state === 'retiring') this.log.warn({ ...fields, tunnels: entry.tunnels }, 'retiring worker died: its tunnels are lost; not respawned');
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
    const delay = slot.backoff.afterDeath(entry.startedAt, now);
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
    this.startWaiter?.reject(new SwitchyardError(ErrorCode.WorkersCrashed, 'workers crashed repeatedly while starting; see the log for their errors'));
    this.startWaiter = undefined;
  }

  private checkStarted(): void {
    if (this.startWaiter && this.slots.every((s) => s.current?.state === 'ready')) {
      this.startWaiter.resolve();
      this.startWaiter = undefined;
    }
  }

  /** Tells a replaced worker to stop accepting and finish its requests, keeping its tunnels for up to tunnel_max_age; its exit is expected from now on. */
  private retire(entry: Entry): void {
    entry.state = 'draining';
    entry.retiredAt = Date.now();
    this.draining.add(entry);
    if (!this.send(entry, { type: 'retire', tunnelMaxAgeMs: this.config.tunnelMaxAgeMs })) entry.worker.process.kill('SIGTERM');
  }

  /**
   * Beyond MAX_RETIRING_PER_WORKER per configured worker (frequent reloads
   * with long-lived tunnels), the oldest retiring workers are told to end
   * their tunnels now: each one is a process and a counter slot.
   */
  private capRetiring(): void {
    const retiring = [...this.draining].filter((e) => e.state === 'retiring' && !e.cutShort);
    // Never so many that a reload could not find counter slots for its new workers.
    const cap = Math.max(1, Math.min(MAX_RETIRING_PER_WORKER * this.config.workers, COUNTER_SLOTS - 2 * this.config.workers));
    const excess = retiring.length - cap;
    for (const oldest of retiring.sort((a, b) => a.retiredAt! - b.retiredAt!).slice(0, Math.max(0, excess))) {
      oldest.cutShort = true;
      this.log.warn({ workerPid: oldest.pid, tunnels: oldest.tunnels }, 'too many retiring workers: the oldest closes its tunnels now');
      this.send(oldest, { type: 'shutdown' });
    }
  }

  /** Cluster shutdown: every worker, retiring ones included, finishes within shutdown_timeout. */
  private stop(entry: Entry): void {
    if (entry.state !== 'draining' && entry.state !== 'retiring') {
      entry.state = 'draining';
      entry.retiredAt = Date.now();
      this.draining.add(entry);
    }
    if (!this.send(entry, { type: 'shutdown' })) entry.worker.process.kill('SIGTERM');
  }

  private send(entry: Entry, message: PrimaryMessage): boolean {
    if (!entry.worker.isConnected()) return false;
    entry.worker.send(message);
    return true;
  }

  /** Workers that hold counts now (those still starting have none yet: asking them would only wait for the deadline). */
  private countingWorkers(): Worker[] {
    return this.liveEntries()
      .filter((e) => e.state !== 'starting' && !e.countsRetired)
      .map((e) => e.worker);
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

  /**
   * The config file, validated, with DNS upstreams resolved; or `discovered`
   * (the running config with new DNS servers, applyDiscovered). On errors,
   * logged, nothing changed.
   */
  private async loadNext(discovered?: Config): Promise<{ ok: true; config: Config } | { ok: false; errors: string[] }> {
    let next: Config;
    try {
      next = discovered ?? loadConfig(this.options.file, this.options.overrides).config;
    } catch (err) {
      const errors = err instanceof ConfigError ? [...err.errors] : [(err as Error).message];
      this.log.error({ file: this.options.file, errors }, 'reload rejected: the config is invalid; nothing changed');
      return { ok: false, errors };
    }
    if (discovered === undefined) {
      const unresolved = await this.discovery.follow(next);
      if (unresolved.length > 0) {
        await this.discovery.follow(this.config); // back to following what runs
        this.log.error({ file: this.options.file, errors: unresolved }, 'reload rejected: a DNS upstream has no servers; nothing changed');
        return { ok: false, errors: unresolved };
      }
      next = this.discovery.fill(next);
    }
    return { ok: true, config: next };
  }

  /**
   * A reload: every slot gets a worker running the new config. After a canary
   * that passed, `rollOut` carries its config (shared memory and health
   * already follow it) and slot 0 already runs it.
   */
  private async doReload(rollOut?: { next: Config; previous: Config }, discovered?: Config): Promise<ReloadResult> {
    if (this.shuttingDown) return { ok: false, errors: ['shutting down'] };
    let next: Config;
    let previous: Config;
    if (rollOut !== undefined) {
      ({ next, previous } = rollOut);
    } else {
      const loaded = await this.loadNext(discovered);
      if (!loaded.ok) return loaded;
      next = loaded.config;
      previous = this.config;
      this.followServers(next);
      this.warnUnreachable(next);
    }
    this.config = next;
    this.log.level = next.logging.level;
    this.warnUnappliable(previous, next);
    if (!sameDemoBackends(previous.demoBackends, next.demoBackends)) {
      await this.demo?.close();
      this.demo = await startDemoBackends(next.demoBackends, this.log);
    }
    // Before the new workers start: they get its stored certificates with their config.
    const acmeChanged = !AcmeService.sameSettings(previous, next);
    if (acmeChanged) this.replaceAcme(next);
    // A reload is the operator's answer to a crash loop: start afresh.
    this.crashLoop = false;
    this.deaths = [];

    for (let i = rollOut === undefined ? 0 : 1; i < next.workers; i++) {
      if (this.shuttingDown) return { ok: false, errors: ['shutting down'] };
      const slot = (this.slots[i] ??= this.newSlot(i));
      const started = await this.replaceSlotWorker(slot, next);
      if (typeof started === 'string') return this.abortReload(slot, previous, started);
    }
    for (const slot of this.slots.splice(next.workers)) {
      clearTimeout(slot.respawnTimer);
      if (slot.current) this.retire(slot.current);
    }
    if (acmeChanged) this.acme?.start();
    this.log.info({ workers: next.workers }, 'reload complete');
    return { ok: true };
  }

  /**
   * Starts a worker running `config` in `slot` and, once it is ready, retires
   * the one it replaces (the new one listens before the old one drains).
   * Resolves the new worker, or why it did not start.
   */
  private async replaceSlotWorker(slot: Slot, config: Config): Promise<Entry | string> {
    clearTimeout(slot.respawnTimer);
    slot.respawnTimer = undefined;
    slot.stopped = false;
    const candidate = this.fork(slot, config);
    slot.candidate = candidate;
    const timer = setTimeout(() => {
      candidate.onFail(`worker ${candidate.pid} was not ready within ${READY_TIMEOUT_MS} ms`);
      candidate.worker.process.kill('SIGKILL');
    }, READY_TIMEOUT_MS);
    try {
      await candidate.ready;
    } catch (err) {
      slot.candidate = undefined;
      return (err as Error).message;
    } finally {
      clearTimeout(timer);
    }
    slot.candidate = undefined;
    if (slot.current) this.retire(slot.current);
    slot.current = candidate;
    // The new worker counts as the slot's fresh start.
    slot.backoff.reset();
    return candidate;
  }

  /**
   * POST /reload?canary=: slot 0 gets a worker with the new config, the
   * others keep the old one; after the window the canary's 5xx rate and p99
   * (its own metrics) are compared with theirs, and the new config is rolled
   * out to every slot, or slot 0 goes back to the old one.
   */
  private async doCanaryReload(windowMs: number, minRequests: number): Promise<ReloadResult> {
    if (this.shuttingDown) return { ok: false, errors: ['shutting down'] };
    const loaded = await this.loadNext();
    if (!loaded.ok) return loaded;
    const next = loaded.config;
    const previous = this.config;
    const slot = this.slots[0];
    const baseline = this.slots.slice(1).flatMap((s) => (s.current?.state === 'ready' ? [s.current] : []));
    if (slot === undefined || baseline.length === 0) {
      return { ok: false, errors: ['a canary needs at least 2 ready workers: one runs the new config, the others are its baseline'] };
    }
    // Shared memory and health checks follow the new server list, as in a reload; the baseline keeps the
    // region generation it mapped (its health bits hold still for the window when the server list changed).
    this.followServers(next);
    this.canaryNext = next;
    // The running ACME service keeps its schedule (and its certificates, for the baseline); the new one starts only on roll-out.
    this.canaryCertificates = AcmeService.sameSettings(previous, next) ? undefined : storedCertificates(next);
    const canary = await this.replaceSlotWorker(slot, next);
    if (typeof canary === 'string') {
      this.canaryNext = undefined;
      this.canaryCertificates = undefined;
      this.followServers(previous);
      if (!slot.current && !this.shuttingDown) slot.current = this.fork(slot);
      this.log.error({ error: canary }, 'canary reload failed: the canary did not start; nothing changed');
      return { ok: false, errors: [`the canary did not start: ${canary}`] };
    }
    canary.canary = true;
    const report: CanaryReport = { state: 'running', startedAt: new Date().toISOString(), windowMs, minRequests, canaryPid: canary.pid };
    this.canaryReport = report;
    this.log.info({ canaryPid: canary.pid, windowMs, minRequests }, 'canary reload: one worker runs the new config');
    const exited = canary.worker.isDead() ? Promise.resolve() : new Promise<void>((resolve) => canary.worker.once('exit', () => resolve()));
    const decided = await observeCanary(
      report,
      canary.worker,
      baseline.map((e) => e.worker),
      exited,
    );
    canary.canary = false;
    this.canaryNext = undefined;
    this.canaryCertificates = undefined;
    this.canaryReport = decided;
    const fields = { decision: decided.state, reason: decided.reason, canaryPid: canary.pid, canary: decided.canary, others: decided.others };
    if (this.shuttingDown) return { ok: false, errors: ['shutting down'], canary: decided };
    if (decided.state === 'rolled-out') {
      this.log.info(fields, 'canary passed: rolling the new config out');
      const result = await this.doReload({ next, previous });
      return { ...result, canary: decided };
    }
    this.log.warn(fields, 'canary failed: rolling back to the running config');
    this.followServers(previous);
    // A canary that died was respawned (or will be) with the running config already.
    if (slot.current === canary) {
      const back = await this.replaceSlotWorker(slot, previous);
      if (typeof back === 'string') this.log.error({ error: back }, 'rollback: the replacement of the canary did not start; it keeps serving');
    }
    return { ok: false, errors: [`canary rolled back: ${decided.reason}`], canary: decided };
  }

  /** A replacement failed to start: later slots keep their workers, and respawns use the old config. */
  private abortReload(slot: Slot, previous: Config, reason: string): ReloadResult {
    slot.candidate = undefined;
    if (!AcmeService.sameSettings(this.config, previous)) {
      this.replaceAcme(previous);
      this.acme?.start();
    }
    this.config = previous;
    this.followServers(previous);
    this.log.level = previous.logging.level;
    if (!slot.current && !this.shuttingDown) slot.current = this.fork(slot);
    const error =
      `slot ${slot.index}: ${reason}; ` +
      (slot.index === 0 ? 'no worker was replaced' : `slots 0-${slot.index - 1} run the new config, the others the old one`);
    this.log.error({ error }, 'reload failed');
    return { ok: false, errors: [error] };
  }

  /** A route whose path the normaliser reads as another is a mistake that still loads (a warning, as in `--check`): said at start and reload. */
  private warnUnreachable(config: Config): void {
    for (const u of unreachableRoutes(config.routes, config.normalize.escapedSlashes)) {
      this.log.warn({ route: config.routes[u.route]!.name }, `route audit: ${formatUnreachable(u, config.routes)}`);
    }
  }

  private warnUnappliable(previous: Config, next: Config): void {
    if (previous.scheduling !== next.scheduling) {
      this.log.warn({ scheduling: next.scheduling }, 'scheduling changes take effect only after a restart');
    }
    const where = (c: Config) => (c.admin ? `${c.admin.host}:${c.admin.port}` : 'none');
    if (where(previous) !== where(next)) {
      this.log.warn({ admin: where(next) }, 'admin address changes (adding or removing the admin API too) take effect only after a restart');
    }
  }

  // ---- ACME ------------------------------------------------------------------

  /**
   * The ACME certificates a worker running `config` gets: the running
   * service's when it serves that config, else (a canary whose ACME settings
   * differ) the ones on disk for it.
   */
  private acmeCertificatesFor(config: Config): { index: number; name: string; pair: CertificatePair }[] {
    if (this.acme?.serves(config)) return this.acme.certificates();
    if (config === this.canaryNext && this.canaryCertificates) return this.canaryCertificates;
    return [];
  }

  /** Stops the running ACME schedule and makes the one of `config`, with its stored certificates loaded (not started). */
  private replaceAcme(config: Config): void {
    this.acme?.stop();
    this.acme = undefined;
    if (acmeListeners(config).length === 0) return;
    const service: AcmeService = new AcmeService(config, {
      log: this.log,
      // An order of a service a reload replaced may still be finishing: its tokens must not replace the current set.
      publishTokens: (tokens): Promise<void> => (this.acme === service ? this.publishAcmeTokens(tokens) : Promise.resolve()),
      // Every worker, at once: a new certificate serves new handshakes; open connections keep theirs.
      onCertificate: (index, name, pair) => {
        for (const e of this.liveEntries()) if (service.serves(e.config)) this.send(e, acmeCertificateMessage(index, name, pair));
      },
    });
    this.acme = service;
    service.loadStored();
  }

  /** Sends the token set to every worker; resolves when all have confirmed it (or exited, or after a deadline). */
  private publishAcmeTokens(tokens: AcmeToken[]): Promise<void> {
    const version = ++this.acmeTokensVersion;
    const waiting = new Set<Entry>();
    for (const e of this.liveEntries()) if (this.send(e, { type: 'acme-challenges', version, tokens })) waiting.add(e);
    if (waiting.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.log.warn({ version, unconfirmed: [...waiting].map((e) => e.pid) }, 'acme: workers did not confirm the challenge tokens in time; going on');
        waiter.done();
      }, ACME_TOKEN_ACK_TIMEOUT_MS);
      const waiter = {
        version,
        waiting,
        done: () => {
          clearTimeout(timer);
          this.acmeAckWaiters.delete(waiter);
          resolve();
        },
      };
      this.acmeAckWaiters.add(waiter);
    });
  }

  private acmeAcked(waiter: { waiting: Set<Entry>; done(): void }, entry: Entry): void {
    if (waiter.waiting.delete(entry) && waiter.waiting.size === 0) waiter.done();
  }

  // ---- shutdown ------------------------------------------------------------

  private async doShutdown(): Promise<void> {
    this.log.info('shutting down: draining workers');
    this.health?.stop();
    this.discovery.stop();
    this.acme?.stop();
    this.tickets?.stop();
    this.startWaiter?.reject(new SwitchyardError(ErrorCode.ShutdownDuringStart, 'shut down while starting'));
    this.startWaiter = undefined;
    for (const slot of this.slots) clearTimeout(slot.respawnTimer);
    const entries = this.liveEntries();
    const exited = entries.map((e) =>
      e.worker.isDead() ? Promise.resolve() : new Promise<void>((resolve) => e.worker.once('exit', () => resolve())),
    );
    for (const e of entries) this.stop(e);
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
    await Promise.all([this.admin?.close(), this.demo?.close(), this.dsr?.stop()]);
    this.shared?.close();
    this.log.info('shutdown complete');
  }
}

/** The TLS listener's message for an ACME certificate: one id per certificate, so a renewal replaces it. */
function acmeCertificateMessage(listener: number, name: string, pair: CertificatePair): PrimaryMessage {
  return { type: 'tls-certificate', id: `acme:${name}`, cert: pair.cert, key: pair.key, listeners: [listener] };
}
