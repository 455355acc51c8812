// A TLS listener: node:tls terminates TLS (OpenSSL does the crypto; nothing
// here touches a record), the certificate comes from the listener's
// CertificateStore by the name the ClientHello asks for, the session-ticket
// keys from the TicketKeyRing the primary feeds, and each handshaken socket
// goes to the front end for the protocol ALPN chose.
//
// Accepting: a plain net.Server takes the connection and reads just the
// ClientHello (client-hello.ts says why SNICallback will not do), puts the
// bytes back and starts the TLS handshake with the chosen context as the
// connection's initial one; a listener with one context for every name skips
// the read. Every stage runs under handshake_timeout.
//
// Behind an L4 balancer that passes TLS through (accept_proxy), a
// `preamble` runs on the raw connection first: the PROXY header comes before
// the ClientHello on the wire, and the client it names is handed to the
// front end with the TLS socket.
//
// ACME TLS-ALPN-01 (RFC 8737): a ClientHello that offers "acme-tls/1" is
// a CA validating a name. It gets the challenge certificate of that name
// (`acmeTlsAlpn`), only "acme-tls/1" is negotiated, and the connection is
// closed once the handshake is done: no byte of it reaches a front end. A
// name with no challenge pending gets no handshake at all. A client that does
// not offer "acme-tls/1" never sees a challenge certificate.
//
// ALPN seam: `frontEnds['http/1.1']` receives every socket that negotiated
// http/1.1 or no ALPN at all (the proxy runs its llhttp ClientConnection on
// it, exactly as on a plain socket). An `h2` front end, once one exists, is
// passed as `frontEnds.h2`: ALPN then offers h2 first and every socket that
// negotiated it goes there. Until then only http/1.1 is offered.
import net from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { readFileSync } from 'node:fs';
import type { Logger, LogThrottle } from '../log.js';
import type { ListenerTlsConfig } from '../config/types.js';
import { CertificateStore } from './certificate-store.js';
import { CertificateFileWatcher } from './certificate-files.js';
import { helloBytesNeeded, scanClientHello } from './client-hello.js';
import type { TicketKeyRing } from './ticket-keys.js';
import type { ConnectionOrigin } from '../l4/proxy-protocol.js';
import { PendingHandOvers } from '../l4/pending-hand-overs.js';

/** `origin`: what the preamble reported (a PROXY header's client); undefined without a preamble. */
export interface TlsFrontEnds {
  'http/1.1': (socket: TLSSocket, origin: ConnectionOrigin | undefined) => void;
  h2?: (socket: TLSSocket, origin: ConnectionOrigin | undefined) => void;
}

/**
 * Reads what precedes the ClientHello on `raw` and calls `proceed` with the
 * client it names, leaving `raw` paused with any later bytes put back; or
 * destroys `raw`.
 */
export type TlsPreamble = (raw: net.Socket, proceed: (origin: ConnectionOrigin) => void) => void;

export interface TlsListener {
  /** The listening socket (plain TCP: TLS starts per connection). */
  server: net.Server;
  /** Add or replace certificates here (ACME): `store.set(id, { cert, key })`. */
  store: CertificateStore;
  /** Stops watching the certificate files. */
  close(): void;
  /**
   * Resolves once no connection is between its accept and its hand-over to a
   * front end (each is bounded by handshake_timeout): a worker that stops
   * accepting waits for them, since their clients have a request on the way.
   */
  handshakesDone(): Promise<void>;
}

export interface TlsListenerDeps {
  log: Logger;
  logThrottle: LogThrottle;
  tickets: TicketKeyRing;
  /** Ticket lifetime: a ticket older than this is not resumed (two rotation periods). */
  sessionTimeoutSeconds: number;
  /** Runs before the ClientHello is read (accept_proxy). */
  preamble?: TlsPreamble;
  /** The TLS-ALPN-01 challenge certificate for a name, while one is proved (listeners with ACME). */
  acmeTlsAlpn?: (servername: string | undefined) => tls.SecureContext | undefined;
}

/**
 * What tls.Server does for its own sockets on 'secure' (onServerSocketSecure
 * in Node's _tls_wrap.js), which a TLSSocket made by hand does not get:
 * `secureConnecting` goes false. Node's HTTP/2 session reads it: a socket
 * still "securely connecting" makes the session wait for a 'secureConnect'
 * that a server socket never emits, so it never consumes the TLS handle and
 * every stream hangs.
 */
function markEstablished(socket: TLSSocket): void {
  (socket as TLSSocket & { secureConnecting: boolean }).secureConnecting = false;
}

/**
 * Also from onServerSocketSecure: the verdict of OpenSSL's client-certificate
 * check as `authorized` / `authorizationError`. The verdict itself is only
 * reachable on the handle.
 */
function recordVerification(socket: TLSSocket): void {
  const handle = (socket as unknown as { _handle?: { verifyError?: () => (Error & { code?: string }) | null } })._handle;
  const error = handle?.verifyError?.();
  if (error === undefined) {
    socket.authorized = false;
    socket.authorizationError = new Error('verification result unavailable');
  } else if (error === null) socket.authorized = true;
  else {
    socket.authorized = false;
    socket.authorizationError = Object.assign(new Error(error.code ?? error.message), { code: error.code });
  }
}

export function createTlsListener(config: ListenerTlsConfig, frontEnds: TlsFrontEnds, deps: TlsListenerDeps, netOptions: { allowHalfOpen: boolean; noDelay: boolean }): TlsListener {
  const clientCa = config.clientCa === undefined ? undefined : readFileSync(config.clientCa, 'utf8');
  const store = new CertificateStore(
    {
      minVersion: config.minVersion,
      ciphers: config.ciphers,
      sessionTimeoutSeconds: deps.sessionTimeoutSeconds,
      ...(clientCa === undefined ? {} : { clientCa }),
    },
    // Each context may be a connection's initial one, which OpenSSL asks about tickets.
    (context) => deps.tickets.install(context, deps.log),
  );
  const watcher = new CertificateFileWatcher(store, config.certificates, config.reloadIntervalMs, deps.log);
  const alpn = frontEnds.h2 === undefined ? ['http/1.1'] : ['h2', 'http/1.1'];
  const handshaking = new PendingHandOvers();
  const handOver = (socket: TLSSocket, origin: ConnectionOrigin | undefined): void => {
    const h2 = frontEnds.h2;
    if (socket.alpnProtocol === 'h2' && h2 !== undefined) h2(socket, origin);
    else frontEnds['http/1.1'](socket, origin);
  };

  const failed = (err: Error & { code?: string }, peer: string | undefined): void => {
    // Scanners and broken clients fail handshakes all day: logged throttled, never fatal.
    deps.logThrottle.warn(deps.log, `tls:${err.code ?? 'error'}`, { peer, code: err.code, reason: err.message }, 'TLS handshake failed');
  };

  const startTls = (raw: net.Socket, context: tls.SecureContext, deadline: NodeJS.Timeout, origin: ConnectionOrigin | undefined, settle: () => void): void => {
    const socket = new tls.TLSSocket(raw, {
      isServer: true,
      secureContext: context,
      ALPNProtocols: alpn,
      // mTLS: ask for a certificate but let the handshake finish without one (or with one that fails):
      // the routes that require one answer 401/403 with the reason, the others do not care.
      ...(clientCa === undefined ? {} : { requestCert: true, rejectUnauthorized: false }),
    });
    const onError = (err: Error): void => {
      clearTimeout(deadline);
      failed(err, raw.remoteAddress);
      socket.destroy();
    };
    socket.once('error', onError);
    socket.once('secure', () => {
      clearTimeout(deadline);
      socket.off('error', onError);
      markEstablished(socket);
      if (clientCa !== undefined) recordVerification(socket);
      // Before the front end: it counts the connection as open from here.
      settle();
      handOver(socket, origin);
    });
  };

  /** RFC 8737 §3: the handshake proves control of the name; then the connection is closed, nothing else is exchanged. */
  const answerAcmeTlsAlpn = (raw: net.Socket, context: tls.SecureContext, deadline: NodeJS.Timeout): void => {
    const socket = new tls.TLSSocket(raw, { isServer: true, secureContext: context, ALPNProtocols: ['acme-tls/1'] });
    socket.once('error', (err: Error) => {
      clearTimeout(deadline);
      failed(err, raw.remoteAddress);
      socket.destroy();
    });
    socket.once('secure', () => {
      clearTimeout(deadline);
      socket.destroySoon();
    });
    // The validator closes first; anything it sends is dropped unread.
    socket.on('data', () => {});
  };

  const readHello = (raw: net.Socket, deadline: NodeJS.Timeout, origin: ConnectionOrigin | undefined, settle: () => void): void => {
    const chunks: Buffer[] = [];
    let received = 0;
    let scanAt = 1;
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      received += chunk.length;
      // Joined and scanned only once enough has arrived (helloBytesNeeded): a slow sender costs no rescans.
      if (received < scanAt) return;
      const seen = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      chunks.length = 0;
      chunks.push(seen);
      const scan = scanClientHello(seen);
      if (scan.kind === 'partial') {
        scanAt = helloBytesNeeded(seen);
        return;
      }
      raw.off('data', onData);
      raw.off('error', onEarlyError);
      raw.pause();
      // Back into the socket: node:tls feeds what is buffered to OpenSSL first.
      raw.unshift(seen);
      if (scan.kind === 'hello' && scan.acmeTls && deps.acmeTlsAlpn !== undefined) {
        const challenge = deps.acmeTlsAlpn(scan.servername);
        if (challenge !== undefined) return answerAcmeTlsAlpn(raw, challenge, deadline);
        clearTimeout(deadline);
        failed(Object.assign(new Error(`acme-tls/1 offered for ${scan.servername ?? 'no name'}, which has no TLS-ALPN-01 challenge pending`), { code: 'ACME_TLS_NO_CHALLENGE' }), raw.remoteAddress);
        raw.destroy();
        return;
      }
      let context: tls.SecureContext;
      try {
        context = store.contextFor(scan.kind === 'hello' ? scan.servername : undefined);
      } catch (err) {
        clearTimeout(deadline);
        failed(err as Error, raw.remoteAddress);
        raw.destroy();
        return;
      }
      startTls(raw, context, deadline, origin, settle);
    };
    const onEarlyError = (): void => void raw.destroy();
    raw.on('data', onData);
    raw.on('error', onEarlyError);
    // A preamble leaves the socket paused, and a 'data' listener does not undo an explicit pause.
    raw.resume();
  };

  /**
   * With one context for every name and no TLS-ALPN-01 to answer, the
   * ClientHello has nothing to choose: the handshake starts on the accepted
   * socket at once, as tls.Server does, and the hello goes from the kernel
   * to OpenSSL without a JS read, a copy and an unshift.
   */
  const begin = (raw: net.Socket, deadline: NodeJS.Timeout, origin: ConnectionOrigin | undefined, settle: () => void): void => {
    const only = deps.acmeTlsAlpn === undefined ? store.onlyContext() : undefined;
    if (only !== undefined) startTls(raw, only, deadline, origin, settle);
    else readHello(raw, deadline, origin, settle);
  };

  const preamble = deps.preamble;
  const server = net.createServer(netOptions, (raw) => {
    // One deadline for the preamble, the ClientHello and the handshake together.
    const deadline = setTimeout(() => void raw.destroy(), config.handshakeTimeoutMs);
    const settle = handshaking.add(raw);
    raw.once('close', () => clearTimeout(deadline));
    if (preamble === undefined) return begin(raw, deadline, undefined, settle);
    preamble(raw, (origin) => begin(raw, deadline, origin, settle));
  });
  return {
    server,
    store,
    close: () => watcher.close(),
    handshakesDone: () => handshaking.settled(),
  };
}
