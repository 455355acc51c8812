// The primary's ACME side as one object: a CertificateManager per listener
// with `tls.acme`, and the set of HTTP-01 tokens being proved, which the
// primary pushes to every worker (the whole set each time) and which must be
// acknowledged by all of them before the CA is told to validate.
import type { Logger } from '../log.js';
import type { AcmeConfig, Config } from '../config/types.js';
import type { AcmeToken } from '../proxy/acme-challenge.js';
import { CertificateManager, usableStored, type AcmeCertificateStatus } from './certificate-manager.js';
import { orderCertificate, trustDirectoryCas, type ChallengeHost } from './order.js';
import { AcmeStorage, type CertificatePair } from './storage.js';

export type { AcmeCertificateStatus } from './certificate-manager.js';

export interface AcmeServiceDeps {
  log: Logger;
  /** Sends `tokens` to every worker; resolves once they all answer with them. */
  publishTokens(tokens: AcmeToken[]): Promise<void>;
  /** A certificate for listener `index` is in hand; `name` (its first domain) stays the same across renewals. */
  onCertificate(index: number, name: string, pair: CertificatePair): void;
}

/** The listeners of `config` that get their certificates from ACME. */
export function acmeListeners(config: Config): { index: number; listener: string; acme: AcmeConfig }[] {
  return config.listen.flatMap((l, index) => (l.tls?.acme ? [{ index, listener: `${l.host}:${l.port}`, acme: l.tls.acme }] : []));
}

/**
 * The certificates on disk that `config`'s ACME listeners would serve, read
 * without starting anything: for a canary worker whose ACME settings differ
 * from the running ones (no order runs for a config that may be rolled back).
 */
export function storedCertificates(config: Config): { index: number; name: string; pair: CertificatePair }[] {
  return acmeListeners(config).flatMap(({ index, acme }) => {
    const stored = usableStored(new AcmeStorage(acme.storage), acme);
    return stored ? [{ index, name: acme.domains[0]!, pair: stored.pair }] : [];
  });
}

export class AcmeService implements ChallengeHost {
  private readonly managers: { index: number; manager: CertificateManager }[];
  private readonly tokens = new Map<string, AcmeToken>();
  /** The ACME settings this service runs, to compare a worker's config with. */
  private readonly settings: string;

  constructor(
    config: Config,
    private readonly deps: AcmeServiceDeps,
  ) {
    const listeners = acmeListeners(config);
    this.settings = JSON.stringify(listeners);
    trustDirectoryCas(listeners.flatMap((l) => (l.acme.caPem === undefined ? [] : [l.acme.caPem])));
    this.managers = listeners.map(({ index, listener, acme }) => ({
      index,
      manager: new CertificateManager(listener, acme, {
        storage: new AcmeStorage(acme.storage),
        challenges: this,
        order: orderCertificate,
        log: deps.log,
        onCertificate: (pair) => deps.onCertificate(index, acme.domains[0]!, pair),
      }),
    }));
  }

  /** Whether two configs have the same ACME settings (a reload that changes nothing of them keeps the service). */
  static sameSettings(a: Config, b: Config): boolean {
    return JSON.stringify(acmeListeners(a)) === JSON.stringify(acmeListeners(b));
  }

  /**
   * Whether a worker running `config` has the listeners this service's
   * certificates are for (by index): during a reload, a respawned worker of
   * the old config must not get them.
   */
  serves(config: Config): boolean {
    return JSON.stringify(acmeListeners(config)) === this.settings;
  }

  /** Stored certificates, before the workers start (see CertificateManager.loadStored). */
  loadStored(): void {
    for (const { manager } of this.managers) manager.loadStored();
  }

  /** Orders and renewals, once the workers answer HTTP-01 requests. */
  start(): void {
    for (const { manager } of this.managers) manager.start();
  }

  stop(): void {
    for (const { manager } of this.managers) manager.stop();
  }

  /** Every token being proved now, for a worker that starts while an order runs. */
  currentTokens(): AcmeToken[] {
    return [...this.tokens.values()];
  }

  /** Certificates in hand, for a worker that starts after they were obtained. */
  certificates(): { index: number; name: string; pair: CertificatePair }[] {
    return this.managers.flatMap(({ index, manager }) => {
      const pair = manager.pair();
      return pair ? [{ index, name: manager.name, pair }] : [];
    });
  }

  status(): AcmeCertificateStatus[] {
    return this.managers.map(({ manager }) => manager.status());
  }

  add(token: AcmeToken): Promise<void> {
    this.tokens.set(token.token, token);
    return this.deps.publishTokens(this.currentTokens());
  }

  remove(token: string): Promise<void> {
    this.tokens.delete(token);
    return this.deps.publishTokens(this.currentTokens());
  }
}
