// The client side a proxy under test presents, the same for Switchyard,
// nginx and HAProxy (their configs are written from it in systems.ts and
// nginx.ts): plain HTTP/1.1, TLS with one certificate, and/or HTTP/2.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface BenchCertificate {
  cert: string;
  key: string;
  /** Certificate then key in one file (HAProxy's `crt`). */
  combined: string;
}

export interface ProxyFront {
  /** TLS on the listener: each proxy's own default protocol versions (1.2 and 1.3) and ciphers. */
  tls?: BenchCertificate;
  /** HTTP/2: ALPN h2 over TLS, or h2c with prior knowledge without TLS. */
  http2?: boolean;
}

/**
 * A self-signed ECDSA P-256 certificate for 127.0.0.1 and localhost, made
 * with openssl in `dir`; every system serves the same one (the clients of
 * the benches do not verify it).
 */
export function benchCertificate(dir: string): BenchCertificate {
  const cert = join(dir, 'bench-cert.pem');
  const key = join(dir, 'bench-key.pem');
  const combined = join(dir, 'bench-combined.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  writeFileSync(combined, readFileSync(cert, 'utf8') + readFileSync(key, 'utf8'));
  return { cert, key, combined };
}
