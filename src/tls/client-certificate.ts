// What a TLS client proved with its certificate, read once per connection
// for routes with auth.mtls. OpenSSL verified the chain during the handshake
// against the listener's client_ca (`authorized`); the certificate may also
// be one it could not verify, which a route refuses (401) but which must
// never be forwarded as an identity.
import type { TLSSocket } from 'node:tls';
import type { ClientCertificate } from '../gateway/auth/index.js';
import { splitSans } from './certificate-store.js';

export function clientCertificate(socket: TLSSocket): ClientCertificate | undefined {
  const x509 = socket.getPeerX509Certificate();
  if (x509 === undefined) return undefined;
  const cert: ClientCertificate = { verified: socket.authorized, subject: rfc2253(x509.subject), sans: splitSans(x509.subjectAltName) };
  if (!socket.authorized) cert.error = String(socket.authorizationError ?? 'not verified');
  return cert;
}

/** Node prints the subject one RDN a line, least specific first; RFC 2253 writes them most specific first, comma-separated. */
function rfc2253(subject: string): string {
  return subject.split('\n').filter(Boolean).reverse().join(',');
}
