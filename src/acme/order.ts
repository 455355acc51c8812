// One certificate order against an RFC 8555 CA, through acme-client (the
// protocol: JWS, nonces, polling, finalize). The configured challenge
// (HTTP-01 or TLS-ALPN-01) is the only one taken; the caller makes the
// workers answer each challenge before the CA is told to validate it.
import https from 'node:https';
import { createRequire } from 'node:module';
import { rootCertificates } from 'node:tls';
import type AcmeClient from 'acme-client';
import type { AcmeConfig } from '../config/types.js';
import type { AcmeToken } from '../proxy/acme-challenge.js';
import type { AcmeStorage, CertificatePair } from './storage.js';

/** A CA that stops answering must not hold an order (and its renewal slot) forever. */
const CA_REQUEST_TIMEOUT_MS = 30_000;

/**
 * acme-client is loaded on first use, when a listener has `acme`: with its
 * axios, node-forge and @peculiar/x509 it is the largest thing a primary
 * would load, ~28 MB of RSS in a process that never orders a certificate
 * (measured with process.memoryUsage() after import, bench/README.md).
 */
let loaded: typeof AcmeClient | undefined;

function acmeClient(): typeof AcmeClient {
  if (loaded !== undefined) return loaded;
  const acme = createRequire(import.meta.url)('acme-client') as typeof AcmeClient;
  acme.axios.defaults.timeout = CA_REQUEST_TIMEOUT_MS;
  /**
   * acme-client retries a refused connection, a 5xx or a 429 five times with
   * 5-25 s pauses (75 s in all) inside one request. One retry after 2 s covers
   * a passing error; a CA that stays down fails the order, and the manager's
   * own backoff (retry.min..retry.max, visible in /status) takes over.
   */
  (acme.axios.defaults as { acmeSettings?: { retryMaxAttempts: number; retryDefaultDelay: number } }).acmeSettings!.retryMaxAttempts = 1;
  (acme.axios.defaults as { acmeSettings?: { retryMaxAttempts: number; retryDefaultDelay: number } }).acmeSettings!.retryDefaultDelay = 2;
  acme.axios.defaults.httpsAgent = directoryAgent;
  return (loaded = acme);
}

/**
 * acme-client talks through one axios instance per process, so extra trust
 * for a directory's HTTPS (a test CA) cannot be given per order: every
 * configured `ca` is trusted, beside the system roots, for every directory.
 */
export function trustDirectoryCas(extraPems: readonly string[]): void {
  directoryAgent = extraPems.length === 0 ? undefined : new https.Agent({ ca: [...rootCertificates, ...extraPems], keepAlive: true });
  if (loaded !== undefined) loaded.axios.defaults.httpsAgent = directoryAgent;
}
let directoryAgent: https.Agent | undefined;

/**
 * Fetches the directory first, because acme-client loses the cause of a
 * failed connection (it reports "Cannot read properties of undefined"):
 * this way a CA that is down, a name that does not resolve or a certificate
 * the `ca` setting does not trust is named in the log and /status.
 */
function probeDirectory(url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { agent: directoryAgent, timeout: CA_REQUEST_TIMEOUT_MS }, (res) => {
      res.resume();
      if (res.statusCode === 200) resolve();
      else reject(new Error(`ACME directory ${url} answered ${res.statusCode}`));
    });
    req.on('timeout', () => req.destroy(new Error(`ACME directory ${url} did not answer within ${CA_REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => reject(new Error(`ACME directory ${url} unreachable: ${err.code ?? ''} ${err.message}`.replace(/\s+/g, ' '))));
  });
}

export interface ChallengeHost {
  /** Resolves once every worker answers the token (the CA may come at once after). */
  add(token: AcmeToken): Promise<void>;
  remove(token: string): Promise<void>;
}

/** Orders a certificate for `config.domains` with a fresh P-256 key. */
export async function orderCertificate(config: AcmeConfig, storage: AcmeStorage, challenges: ChallengeHost): Promise<CertificatePair> {
  await probeDirectory(config.directory);
  const acme = acmeClient();
  const accountKey = await storage.accountKey(config.directory, () => acme.crypto.createPrivateEcdsaKey('P-256'));
  // Polling: 1 s doubling to 10 s, as the CA validates within seconds (acme-client's default starts at 5 s).
  const client = new acme.Client({ directoryUrl: config.directory, accountKey, backoffAttempts: 10, backoffMin: 1000, backoffMax: 10_000 });
  const [key, csr] = await acme.crypto.createCsr({ commonName: config.domains[0]!, altNames: config.domains }, await acme.crypto.createPrivateEcdsaKey('P-256'));
  const cert = await client.auto({
    csr,
    email: config.email,
    // Configuring a directory is agreeing to its CA's terms (as with Caddy and certbot --agree-tos).
    termsOfServiceAgreed: true,
    challengePriority: [config.challenge],
    // acme-client's own pre-check fetches the token through this host's resolver, which need not see what the CA sees.
    skipChallengeVerification: true,
    challengeCreateFn: async (authz, challenge, keyAuthorization) => {
      const domain = authz.identifier.value.toLowerCase();
      const { type, token } = challenge as { type: string; token: string };
      if (type !== config.challenge) throw new Error(`challenge ${type} offered for ${domain}: only ${config.challenge} is configured`);
      if (type === 'http-01') return challenges.add({ type: 'http-01', token, keyAuthorization, domain });
      // RFC 8737 §3: self-signed, the name as its only SAN, the key authorization's SHA-256 in a critical acmeIdentifier extension.
      const [key, cert] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization, await acme.crypto.createPrivateEcdsaKey('P-256'));
      await challenges.add({ type: 'tls-alpn-01', token, keyAuthorization, domain, certificate: { cert: cert.toString(), key: key.toString() } });
    },
    challengeRemoveFn: async (_authz, challenge) => {
      await challenges.remove(challenge.token);
    },
  });
  return { cert, key: key.toString() };
}
