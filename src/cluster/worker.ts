// A cluster worker: receives its config from the primary, runs the data path,
// answers stats requests and drains on shutdown. The primary orchestrates
// every lifecycle step; a worker never decides to restart itself.
import type { Config } from '../config/types.js';
import { startProxyWorker, type ProxyWorker } from '../proxy/server.js';
import { createLogger, type Logger } from '../log.js';
import { releaseStartupPages, SharedRegion } from '../native.js';
import { RateLimiter } from '../gateway/rate-limit.js';
import { regionLayout } from '../balancer/layout.js';
import { isPrimaryMessage, WORKER_INDEX_ENV, type PrimaryMessage, type WorkerMessage } from './messages.js';
import { AcmeChallenges } from '../proxy/acme-challenge.js';
import { decodeTicketKeys, type TicketKey } from '../tls/ticket-keys.js';

type CertificateMessage = Extract<PrimaryMessage, { type: 'tls-certificate' }>;

export function runWorker(): void {
  const index = Number(process.env[WORKER_INDEX_ENV] ?? 0);
  // Until the config arrives, log fatal errors at the default level.
  let log: Logger = createLogger({ level: 'info', access: false, format: 'auto' }, { role: 'worker', slot: index });
  let configured = false;
  /** Set once listening; with it, the drain deadline of the config it runs. */
  let proxy: ProxyWorker | undefined;
  let drainTimeoutMs = 0;
  let stopping = false;
  /** Made when the config arrives, before listening: tokens sent meanwhile must not be lost. */
  let acmeChallenges: AcmeChallenges | undefined;
  /** The primary's ticket keys, kept until the listeners exist. */
  let ticketKeys: TicketKey[] | undefined;
  /** Certificates the primary sent (ACME) before the listeners existed, by id: installed as soon as they do. */
  const pendingCertificates = new Map<string, CertificateMessage>();
  const installCertificate = (p: ProxyWorker, m: CertificateMessage) => {
    try {
      p.setCertificate(m.id, { cert: m.cert, key: m.key }, m.listeners);
      log.info({ id: m.id }, 'certificate installed');
    } catch (err) {
      log.error({ id: m.id, reason: (err as Error).message }, 'certificate from the primary refused: keeping the previous one');
    }
  };

  const send = (m: WorkerMessage) => {
    if (process.connected) process.send?.(m);
  };

  const fatal = (err: unknown, msg: string) => {
    log.fatal({ err }, msg);
    process.exit(1); // the primary respawns the slot
  };
  process.on('uncaughtException', (err) => fatal(err, 'uncaught exception'));
  process.on('unhandledRejection', (err) => fatal(err, 'unhandled promise rejection'));

  /** Settled when a retiring worker must close its tunnels now (the cluster is shutting down). */
  let cutTunnelsShort!: () => void;
  const tunnelsCutShort = new Promise<void>((resolve) => (cutTunnelsShort = resolve));
  let cutScheduled = false;

  /**
   * Stop accepting, finish the HTTP requests (within shutdown_timeout), then
   * keep the tunnels left open for up to `tunnelMaxAgeMs` from now: a reload
   * must not cut a WebSocket that has nothing to do with the config change.
   */
  const retire = async (tunnelMaxAgeMs: number) => {
    if (stopping) return;
    stopping = true;
    if (!proxy) process.exit(0); // not listening yet: nothing to drain
    const started = Date.now();
    await proxy.stopAccepting();
    const tunnels = await proxy.finishRequests(drainTimeoutMs);
    if (tunnels > 0) {
      log.info({ tunnels, tunnelMaxAgeMs }, 'worker retiring: HTTP requests finished, keeping tunnels open');
      send({ type: 'retiring', tunnels });
    }
    await proxy.drain(Math.max(0, tunnelMaxAgeMs - (Date.now() - started)), tunnelsCutShort);
    log.info({ drainMs: Date.now() - started }, 'worker drained');
    // The primary keeps these, so counters do not fall back when workers are replaced.
    if (process.connected) process.send?.({ type: 'metrics-final', metrics: proxy.metricsSnapshot() } satisfies WorkerMessage, () => process.exit(0));
    else process.exit(0);
  };

  /** The cluster stops: everything, tunnels included, ends within shutdown_timeout. */
  const shutdown = async () => {
    if (!stopping) return retire(drainTimeoutMs);
    if (cutScheduled) return;
    cutScheduled = true;
    setTimeout(cutTunnelsShort, drainTimeoutMs);
  };

  const start = async (c: Config, shared: { name: string; slot: number }, rateLimitTable: string) => {
    configured = true;
    log = createLogger(c.logging, { role: 'worker', slot: index });
    try {
      const region = SharedRegion.attach(shared.name, regionLayout(c).identities);
      const limiter = RateLimiter.attach(rateLimitTable);
      proxy = await startProxyWorker(c, log, index, { region, slot: shared.slot, limiter, ...(acmeChallenges ? { acmeChallenges } : {}), ...(ticketKeys ? { ticketKeys } : {}) });
      // Keys and certificates that arrived while the listeners were being built (no handshake ran yet: no await since).
      if (ticketKeys) proxy.setTicketKeys(ticketKeys);
      for (const m of pendingCertificates.values()) installCertificate(proxy, m);
      pendingCertificates.clear();
      drainTimeoutMs = c.shutdownTimeoutMs;
    } catch (err) {
      fatal(err, 'worker could not start');
      return;
    }
    send({ type: 'ready' });
    // Start-up is over: what it alone touched of the node binary need not stay mapped in every worker.
    const released = releaseStartupPages();
    log.debug({ mappings: released.mappings, residentBytes: released.residentBytes }, 'start-up pages released');
  };

  process.on('message', (m: unknown) => {
    if (!isPrimaryMessage(m)) return;
    switch (m.type) {
      case 'config':
        if (!configured && m.config.listen.some((l) => l.tls?.acme)) acmeChallenges = new AcmeChallenges(m.config.normalize.escapedSlashes);
        if (!configured) start(m.config, m.region, m.rateLimitTable).catch((err: unknown) => fatal(err, 'worker could not start'));
        break;
      case 'acme-challenges':
        try {
          acmeChallenges?.replace(m.tokens);
        } catch (err) {
          log.error({ err }, 'acme: unusable challenge certificate; the previous challenges stay');
        }
        send({ type: 'acme-challenges-applied', version: m.version });
        break;
      case 'stats-request':
        if (proxy) send({ type: 'stats', id: m.id, stats: proxy.stats() });
        break;
      case 'retire':
        retire(m.tunnelMaxAgeMs).catch((err: unknown) => fatal(err, 'worker could not drain'));
        break;
      case 'shutdown':
        shutdown().catch((err: unknown) => fatal(err, 'worker could not drain'));
        break;
      case 'tls-ticket-keys': {
        const keys = decodeTicketKeys(m.tickets);
        if (keys === undefined) log.error('malformed session-ticket keys from the primary: keeping the current ones');
        else {
          ticketKeys = keys;
          proxy?.setTicketKeys(keys);
        }
        break;
      }
      case 'tls-certificate':
        if (proxy) installCertificate(proxy, m);
        else pendingCertificates.set(m.id, m);
        break;
    }
  });
  // Ctrl-C reaches the whole process group; the primary turns it into an
  // orderly shutdown message. A direct SIGTERM means the same as that message.
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => shutdown().catch((err: unknown) => fatal(err, 'worker could not drain')));
  send({ type: 'hello' });
}
