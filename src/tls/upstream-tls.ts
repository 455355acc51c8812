// How a worker (and the primary's health checks) connect to an upstream over
// TLS (upstreams.NAME.tls): the CA bundle, client certificate and SNI name
// read once when the upstream is built, so the per-connection cost is the
// handshake alone, and the pools keep connections alive (and offer the last
// session ticket) so that most requests pay no handshake at all.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import type { UpstreamTlsConfig } from '../config/types.js';

/** Options for tls.connect() to one server of the upstream (add host, port and session). */
export function upstreamTlsOptions(config: UpstreamTlsConfig, host: string): ConnectionOptions {
  // SNI may not carry an IP address (RFC 6066); the certificate is then checked against the IP.
  const servername = config.servername ?? (isIP(host) === 0 ? host : undefined);
  return {
    ...(servername === undefined ? {} : { servername }),
    rejectUnauthorized: config.verify,
    ...(config.ca === undefined ? {} : { ca: readFileSync(config.ca, 'utf8') }),
    ...(config.cert === undefined ? {} : { cert: readFileSync(config.cert, 'utf8'), key: readFileSync(config.key!, 'utf8') }),
    // The upstream side speaks HTTP/1.1 only.
    ALPNProtocols: ['http/1.1'],
    minVersion: 'TLSv1.2',
  };
}
