// The life of one ACME certificate in the primary: load it from disk or
// order it, renew it at two thirds of its lifetime, and after a failed
// order retry with doubling backoff (retry.min to retry.max). The
// certificate in hand stays in service until a new one has been obtained
// and stored, whatever fails in between.
import type { Logger } from '../log.js';
import type { AcmeConfig } from '../config/types.js';
import { certificateFacts, type AcmeStorage, type CertificateFacts, type CertificatePair } from './storage.js';
import type { ChallengeHost } from './order.js';

/** Node's timers overflow past 2^31-1 ms (24.8 days); a later renewal wakes up daily and re-aims. */
const MAX_TIMER_MS = 24 * 3600_000;

export type AcmeState = 'obtaining' | 'renewing' | 'valid' | 'retrying' | 'stopped';

/** The part of `GET /status` that describes one ACME certificate. */
export interface AcmeCertificateStatus {
  /** The listener it serves, host:port. */
  listener: string;
  domains: string[];
  state: AcmeState;
  /** The certificate in service, if any. */
  certificate: { serial: string; notBefore: string; notAfter: string } | null;
  /** When the next order starts (renewal or retry); null while one runs. */
  nextAttempt: string | null;
  consecutiveFailures: number;
  lastError: string | null;
  lastErrorAt: string | null;
  ordersSucceeded: number;
  ordersFailed: number;
}

export type OrderFn = (config: AcmeConfig, storage: AcmeStorage, challenges: ChallengeHost) => Promise<CertificatePair>;

export interface ManagerDeps {
  storage: AcmeStorage;
  challenges: ChallengeHost;
  order: OrderFn;
  log: Logger;
  /** A certificate is in hand (loaded or newly obtained): hand it to the workers. */
  onCertificate(pair: CertificatePair): void;
}

/** When to renew: two thirds into the lifetime (Let's Encrypt's 90 days: at 60, leaving 30 to retry). */
export function renewalTime(facts: Pick<CertificateFacts, 'notBefore' | 'notAfter'>): number {
  const from = facts.notBefore.getTime();
  return from + ((facts.notAfter.getTime() - from) * 2) / 3;
}

/** A stored certificate from another domain list is ordered again rather than served. */
function covers(config: AcmeConfig, facts: CertificateFacts): boolean {
  return config.domains.every((d) => facts.names.includes(d));
}

/** The stored certificate of `config` if it covers the domains, matches its key and has not expired. */
export function usableStored(storage: AcmeStorage, config: AcmeConfig): { pair: CertificatePair; facts: CertificateFacts } | undefined {
  const pair = storage.load(config.domains[0]!);
  const facts = pair && certificateFacts(pair.cert);
  if (!pair || !facts || !covers(config, facts) || facts.notAfter.getTime() <= Date.now()) return undefined;
  return { pair, facts };
}

export class CertificateManager {
  private current: { pair: CertificatePair; facts: CertificateFacts } | undefined;
  private state: AcmeState = 'obtaining';
  private timer: NodeJS.Timeout | undefined;
  private nextAttemptAt: number | undefined;
  private failures = 0;
  private lastError: { message: string; at: number } | undefined;
  private succeeded = 0;
  private failed = 0;
  private stopped = false;

  constructor(
    readonly listener: string,
    readonly config: AcmeConfig,
    private readonly deps: ManagerDeps,
  ) {}

  /** The name the certificate is stored under: its first domain. */
  get name(): string {
    return this.config.domains[0]!;
  }

  /**
   * Takes the stored certificate if it covers the domains, matches its key
   * and has not expired. Separate from start(): it runs before the workers
   * exist, so that they listen with it from their first handshake.
   */
  loadStored(): void {
    const stored = usableStored(this.deps.storage, this.config);
    if (!stored) return;
    this.install(stored.pair, stored.facts);
    this.deps.log.info({ domains: this.config.domains, notAfter: stored.facts.notAfter.toISOString() }, 'acme: stored certificate loaded');
  }

  /** Schedules the first order (at once without a certificate) once the workers answer challenges. */
  start(): void {
    this.scheduleAt(this.current ? renewalTime(this.current.facts) : Date.now());
  }

  stop(): void {
    this.stopped = true;
    this.state = 'stopped';
    clearTimeout(this.timer);
    this.nextAttemptAt = undefined;
  }

  pair(): CertificatePair | undefined {
    return this.current?.pair;
  }

  status(): AcmeCertificateStatus {
    const facts = this.current?.facts;
    return {
      listener: this.listener,
      domains: [...this.config.domains],
      state: this.state,
      certificate: facts ? { serial: facts.serial, notBefore: facts.notBefore.toISOString(), notAfter: facts.notAfter.toISOString() } : null,
      nextAttempt: this.nextAttemptAt === undefined ? null : new Date(this.nextAttemptAt).toISOString(),
      consecutiveFailures: this.failures,
      lastError: this.lastError?.message ?? null,
      lastErrorAt: this.lastError ? new Date(this.lastError.at).toISOString() : null,
      ordersSucceeded: this.succeeded,
      ordersFailed: this.failed,
    };
  }

  private covers(facts: CertificateFacts): boolean {
    return covers(this.config, facts);
  }

  private install(pair: CertificatePair, facts: CertificateFacts): void {
    this.current = { pair, facts };
    this.state = 'valid';
    this.deps.onCertificate(pair);
  }

  private scheduleAt(when: number): void {
    clearTimeout(this.timer);
    if (this.stopped) return;
    this.nextAttemptAt = when;
    const delay = when - Date.now();
    this.timer =
      delay > MAX_TIMER_MS ? setTimeout(() => this.scheduleAt(when), MAX_TIMER_MS) : setTimeout(() => this.attemptSafely(), Math.max(0, delay));
  }

  private attemptSafely(): void {
    this.attempt().catch((err: unknown) => {
      this.deps.log.error({ err, domains: this.config.domains }, 'acme: internal error; retrying');
      this.scheduleAt(Date.now() + this.config.retryMaxMs);
    });
  }

  private async attempt(): Promise<void> {
    this.nextAttemptAt = undefined;
    this.state = this.current ? 'renewing' : 'obtaining';
    const log = this.deps.log;
    log.info({ domains: this.config.domains, directory: this.config.directory }, this.current ? 'acme: renewing certificate' : 'acme: obtaining certificate');
    let pair: CertificatePair;
    let facts: CertificateFacts;
    try {
      pair = await this.deps.order(this.config, this.deps.storage, this.deps.challenges);
      facts = certificateFacts(pair.cert);
      if (!this.covers(facts)) throw new Error(`the CA issued a certificate for ${facts.names.join(', ')}, not for every configured domain`);
      if (!this.stopped) this.deps.storage.save(this.name, pair);
    } catch (err) {
      if (this.stopped) return;
      this.failed++;
      this.failures++;
      const message = (err as Error).message ?? String(err);
      this.lastError = { message, at: Date.now() };
      const delay = Math.min(this.config.retryMaxMs, this.config.retryMinMs * 2 ** (this.failures - 1));
      this.state = 'retrying';
      log.error(
        { domains: this.config.domains, err: message, failures: this.failures, retryInMs: delay, serving: this.current?.facts.serial ?? null },
        this.current ? 'acme: renewal failed; the current certificate stays in service' : 'acme: could not obtain a certificate',
      );
      this.scheduleAt(Date.now() + delay);
      return;
    }
    if (this.stopped) return;
    this.succeeded++;
    this.failures = 0;
    this.install(pair, facts);
    log.info({ domains: this.config.domains, serial: facts.serial, notAfter: facts.notAfter.toISOString() }, 'acme: certificate obtained');
    this.scheduleAt(renewalTime(facts));
  }
}
