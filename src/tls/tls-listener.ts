// A TLS listener: node:tls terminates TLS (OpenSSL does the crypto; nothing
// here touches a record), SNI picks the certificate from the listener's
// CertificateStore, the session-ticket keys come from the TicketKeyRing the
// primary feeds, and each handshaken socket goes to the front end for the
// protocol ALPN chose.
//
// ALPN seam: `frontEnds['http/1.1']` receives every socket that negotiated
// http/1.1 or no ALPN at all (the proxy runs its llhttp ClientConnection on
// it, exactly as on a plain socket). An `h2` front end, once one exists,
// is passed as `frontEnds.h2`: ALPN then offers h2 first and every socket
// that negotiated it goes there. Until then only http/1.1 is offered.
import tls, { type TLSSocket } from 'node:tls';
import { readFileSync } from 'node:fs';
import type { Logger, LogThrottle } from '../log.js';
import type { ListenerTlsConfig } from '../config/types.js';
import { CertificateStore } from './certificate-store.js';
import { CertificateFileWatcher } from './certificate-files.js';
import type { TicketKeyRing } from './ticket-keys.js';

export interface TlsFrontEnds {
  'http/1.1': (socket: TLSSocket) => void;
  h2?: (socket: TLSSocket) => void;
}

export interface TlsListener {
  server: tls.Server;
  /** Add or replace certificates here (ACME): `store.set(id, { cert, key })`. */
  store: CertificateStore;
  /** Stops watching the certificate files. */
  close(): void;
}

export interface TlsListenerDeps {
  log: Logger;
  logThrottle: LogThrottle;
  tickets: TicketKeyRing;
  /** Ticket lifetime: a ticket older than this is not resumed (two rotation periods). */
  sessionTimeoutSeconds: number;
}

/** Same on every worker (Node's default derives it from argv): a session resumes on any of them. */
const SESSION_ID_CONTEXT = 'switchyard';

export function createTlsListener(config: ListenerTlsConfig, frontEnds: TlsFrontEnds, deps: TlsListenerDeps, netOptions: { allowHalfOpen: boolean; noDelay: boolean }): TlsListener {
  const clientCa = config.clientCa === undefined ? undefined : readFileSync(config.clientCa, 'utf8');
  const store = new CertificateStore({ minVersion: config.minVersion, ciphers: config.ciphers, ...(clientCa === undefined ? {} : { clientCa }) });
  const watcher = new CertificateFileWatcher(store, config.certificates, config.reloadIntervalMs, deps.log);
  // The listener's own context serves clients that send no SNI: the default certificate(s).
  const ownContext = (): tls.SecureContextOptions => {
    const pems = store.defaultPem();
    return {
      cert: pems.map((p) => p.cert),
      key: pems.map((p) => p.key),
      minVersion: config.minVersion,
      ciphers: config.ciphers,
      sessionIdContext: SESSION_ID_CONTEXT,
      sessionTimeout: deps.sessionTimeoutSeconds,
      ...(clientCa === undefined ? {} : { ca: clientCa }),
    };
  };
  const server = tls.createServer({
    ...netOptions,
    ...ownContext(),
    SNICallback: (servername, cb) => {
      try {
        cb(null, store.contextFor(servername));
      } catch (err) {
        cb(err as Error, undefined);
      }
    },
    ALPNProtocols: frontEnds.h2 === undefined ? ['http/1.1'] : ['h2', 'http/1.1'],
    handshakeTimeout: config.handshakeTimeoutMs,
    // mTLS: ask for a certificate but let the handshake finish without one (or with one that fails):
    // the routes that require one answer 401/403 with the reason, the others do not care.
    ...(clientCa === undefined ? {} : { requestCert: true, rejectUnauthorized: false }),
  });
  deps.tickets.install(server, deps.log);
  store.onChange = () => {
    // A new own context replaces the one the ticket callback was installed on.
    server.setSecureContext(ownContext());
    deps.tickets.install(server, deps.log);
  };
  server.on('secureConnection', (socket: TLSSocket) => {
    const h2 = frontEnds.h2;
    if (socket.alpnProtocol === 'h2' && h2 !== undefined) h2(socket);
    else frontEnds['http/1.1'](socket);
  });
  // Scanners and broken clients fail handshakes all day: logged throttled, never fatal.
  server.on('tlsClientError', (err: Error & { code?: string }, socket) => {
    deps.logThrottle.warn(deps.log, `tls:${err.code ?? 'error'}`, { peer: socket.remoteAddress, code: err.code, reason: err.message }, 'TLS handshake failed');
  });
  return { server, store, close: () => watcher.close() };
}
