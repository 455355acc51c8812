// Client-certificate authentication for a route (auth.mtls). The TLS
// listener (tls.client_ca) requests a certificate and OpenSSL verifies its
// chain during the handshake; this only reads the verdict and, when the
// route lists subjects or SANs, checks the certificate carries one of them.
// Nothing is computed per request beyond string comparisons.
import type { AuthResult, Authenticator, GatewayRequest } from './types.js';

export class MtlsAuthenticator implements Authenticator {
  private readonly subjects: ReadonlySet<string>;
  private readonly sans: ReadonlySet<string>;

  constructor(subjects: readonly string[], sans: readonly string[]) {
    this.subjects = new Set(subjects);
    this.sans = new Set(sans);
  }

  authenticate(req: GatewayRequest): AuthResult {
    const cert = req.clientCert;
    if (cert === undefined) return { ok: false, refusal: 'client-cert-required', reason: 'client certificate required: none presented' };
    if (!cert.verified) return { ok: false, refusal: 'client-cert-required', reason: `client certificate not verified: ${cert.error ?? 'unknown reason'} (subject ${cert.subject})` };
    const any = this.subjects.size === 0 && this.sans.size === 0;
    if (!any && !this.subjects.has(cert.subject) && !cert.sans.some((san) => this.sans.has(san))) {
      return { ok: false, refusal: 'client-cert-refused', reason: `client certificate ${cert.subject} (${cert.sans.join(', ') || 'no SAN'}) is not one this route accepts` };
    }
    return { ok: true, identity: { kind: 'mtls', subject: cert.subject, scopes: [], claims: { san: cert.sans } } };
  }

  close(): void {}
}
