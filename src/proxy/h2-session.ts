// HTTP/2 to clients: one Node http2 server object per worker (never
// listening itself; it is handed sockets that are already known to speak
// HTTP/2) and one H2Session per client connection. nghttp2 does the framing,
// HPACK and per-stream flow control; what a client can make a session cost
// is bounded here, each limit answered as RFC 9113 says:
//
// - streams beyond http2.max_concurrent_streams: refused by nghttp2
//   (RST_STREAM REFUSED_STREAM before the client has acknowledged our
//   SETTINGS, GOAWAY PROTOCOL_ERROR after);
// - header lists over limits.max_header_bytes or http2.max_header_pairs:
//   RST_STREAM ENHANCE_YOUR_CALM (Node), CONTINUATION floods: GOAWAY
//   (nghttp2 caps CONTINUATION frames per header block, CVE-2024-27983);
// - streams the client resets, over http2.max_resets in 10 s (rapid reset,
//   CVE-2023-44487), and PING/SETTINGS frames over http2.max_control_frames
//   in 10 s: GOAWAY ENHANCE_YOUR_CALM, and the connection is closed;
// - a session with no open stream for limits.keepalive_timeout: GOAWAY
//   NO_ERROR and closed.
//
// Draining sends GOAWAY at once: streams already open finish, new ones are
// refused, and the connection closes after the last one. A session that has
// had no stream yet (handed over while the worker drains: accepted before its
// listener closed) lets its first request in before the GOAWAY. A stream that
// is a WebSocket tunnel (RFC 8441) is open until either side ends it: a
// session whose open streams are all tunnels counts as a tunnel, kept by a
// retiring worker up to tunnel_max_age like an HTTP/1.1 one, and destroyed
// after GOAWAY (its streams reset) when that runs out.
import { socketOrigin } from '../l4/proxy-header-reader.js';
import type { ConnectionOrigin } from '../l4/proxy-protocol.js';
import http2, { constants, type Http2Server, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { ClientCertificate } from '../gateway/auth/index.js';
import { clientCertificate } from '../tls/client-certificate.js';
import type { SecureListener } from './client-connection.js';
import type { HeaderList } from './gateway-step.js';
import type { Http2Config } from '../config/types.js';
import { deadlineIn, now, track, untrack, type Expirable } from './coarse-clock.js';
import { H2Stream, type StreamOwner } from './h2-stream.js';
import type { Exchange } from './exchange.js';
import { DRAIN_IDLE_GRACE_MS, normaliseAddress, type WorkerConnection, type WorkerRuntime } from './worker-runtime.js';

/** The window over which resets and control frames are counted. */
const WINDOW_MS = 10_000;

/** A count over fixed 10-second windows: cheap, and exact enough for a flood limit. */
class WindowCount {
  private start = 0;
  private count = 0;

  constructor(private readonly max: number) {}

  /** Counts one; true when the window now holds more than `max`. */
  exceeded(t: number): boolean {
    if (t - this.start >= WINDOW_MS) {
      this.start = t;
      this.count = 0;
    }
    return ++this.count > this.max;
  }
}

/** How long a connection closed for a broken limit waits, not read, for the client to take its GOAWAY. */
const CALM_LINGER_MS = 1000;

export class Http2FrontEnd {
  private readonly server: Http2Server;
  /** The socket being handed over: Node creates its session synchronously, inside emit('connection'). */
  private accepting: { socket: Socket; secure: SecureListener | undefined; origin: ConnectionOrigin | undefined } | undefined;

  constructor(worker: WorkerRuntime, config: Http2Config) {
    this.server = http2.createServer({
      settings: {
        maxConcurrentStreams: config.maxConcurrentStreams,
        initialWindowSize: config.initialWindowSize,
        maxHeaderListSize: worker.limits.maxHeaderBytes,
        enablePush: false,
        // RFC 8441: extended CONNECT, for WebSockets on the routes whose `upgrades` allow them.
        enableConnectProtocol: true,
      },
      maxHeaderListPairs: config.maxHeaderPairs,
      // Streams refused for being over the concurrency limit count like resets: beyond these, Node ends the session (ENHANCE_YOUR_CALM).
      maxSessionRejectedStreams: config.maxResets,
    });
    this.server.on('session', (session: ServerHttp2Session) => {
      const { socket, secure, origin } = this.accepting!;
      worker.onConnectionOpened(new H2Session(session, socket, secure, worker, config, origin));
    });
    // Errors of one session are that session's (logged by it); the server object never listens.
    this.server.on('sessionError', () => {});
  }

  /**
   * A client connection that speaks HTTP/2 (prior knowledge seen, or ALPN "h2" on a TLS listener, `secure`);
   * `origin`: the client a trusted PROXY header reported (accept_proxy), else the socket's own endpoints.
   */
  accept(socket: Socket, secure: SecureListener | undefined, origin?: ConnectionOrigin): void {
    this.accepting = { socket, secure, origin };
    try {
      this.server.emit('connection', socket);
    } finally {
      this.accepting = undefined;
    }
  }
}

class H2Session implements WorkerConnection, StreamOwner, Expirable {
  readonly peerAddress: string;
  readonly secure: boolean;
  readonly responseHeaders: HeaderList | undefined;
  private trusted: boolean | undefined;
  private clientCert: ClientCertificate | null | undefined;
  private open = 0;
  private streams = 0;
  /** Draining began before the first stream: GOAWAY once it has arrived. */
  private goAwayAfterFirstStream = false;
  /** Open streams that are tunnels. */
  private tunnels = 0;
  private idleDeadline: number;
  private readonly resets: WindowCount;
  private readonly controlFrames: WindowCount;
  private closed = false;
  /** The connection's endpoints: a trusted PROXY header's, else its socket's own. */
  readonly origin: ConnectionOrigin;
  /** Set once a limit was broken: the connection is destroyed at this time. */
  private lingerDeadline = 0;

  constructor(
    private readonly session: ServerHttp2Session,
    /** The connection itself (session.socket is a guarded proxy). */
    private readonly socket: Socket,
    listener: SecureListener | undefined,
    readonly worker: WorkerRuntime,
    config: Http2Config,
    origin: ConnectionOrigin | undefined,
  ) {
    this.origin = origin ?? socketOrigin(socket);
    this.peerAddress = normaliseAddress(this.origin.sourceAddress);
    this.secure = listener !== undefined;
    this.responseHeaders = listener?.responseHeaders;
    this.resets = new WindowCount(config.maxResets);
    this.controlFrames = new WindowCount(config.maxControlFrames);
    this.idleDeadline = deadlineIn(worker.limits.keepaliveTimeoutMs);
    session.on('stream', (stream: ServerHttp2Stream, _headers: unknown, _flags: number, rawHeaders: string[]) => this.onStream(stream, rawHeaders));
    session.on('ping', () => this.onControlFrame('PING'));
    session.on('remoteSettings', () => this.onControlFrame('SETTINGS'));
    session.on('error', (err: Error) => worker.logThrottle.warn(worker.log, 'h2-session-error', { peer: this.peerAddress, err: err.message }, 'HTTP/2 session error'));
    session.on('close', () => this.onClose());
    // The listeners keep half-open sockets for HTTP/1.1 (a client may shut down its side and still get its
    // response), but an HTTP/2 client that sent FIN can send no END_STREAM, RST_STREAM or WINDOW_UPDATE any
    // more: its tunnels would stay open, upstream connections and all, until tunnel_idle. Its side ends the
    // connection, as in a Node http2 server of its own (allowHalfOpen false).
    socket.on('end', () => {
      if (!socket.destroyed) socket.end();
    });
    track(this);
    // A worker draining hands the connection over already closing.
    if (worker.closing) this.closeWhenIdle(DRAIN_IDLE_GRACE_MS);
  }

  private onStream(stream: ServerHttp2Stream, rawHeaders: string[]): void {
    this.open++;
    this.streams++;
    this.idleDeadline = 0;
    try {
      new H2Stream(stream, rawHeaders, this);
    } catch (err) {
      this.worker.log.error({ peer: this.peerAddress, err }, 'internal error: HTTP/2 stream reset');
      stream.close(constants.NGHTTP2_INTERNAL_ERROR);
    }
    // Its last stream id is this one (the last nghttp2 processed): this stream finishes, later ones are refused.
    if (this.goAwayAfterFirstStream) this.goAway();
  }

  peerTrusted(): boolean {
    return (this.trusted ??= this.worker.isTrustedProxy(this.peerAddress));
  }

  /** The client's certificate (TLS listeners with client_ca), read once per connection. */
  clientCertificate(): ClientCertificate | undefined {
    if (this.clientCert === undefined) this.clientCert = this.socket instanceof TLSSocket ? (clientCertificate(this.socket) ?? null) : null;
    return this.clientCert ?? undefined;
  }

  onStreamReset(): void {
    if (this.resets.exceeded(now())) this.calm('rapid reset: too many streams reset by the client', 'http2.max_resets');
  }

  /** Exchanges whose upstream writes wait, corked, for the end of this read. */
  private toFlush: Exchange[] = [];

  flushUpstreamLater(exchange: Exchange): void {
    if (this.toFlush.push(exchange) === 1) setImmediate(this.flushUpstreams);
  }

  private readonly flushUpstreams = (): void => {
    const all = this.toFlush;
    this.toFlush = [];
    for (const exchange of all) exchange.flushUpstream();
  };

  onTunnelOpened(): void {
    this.tunnels++;
  }

  onStreamClosed(tunnel: boolean): void {
    if (tunnel) this.tunnels--;
    if (--this.open === 0 && !this.closed) this.idleDeadline = deadlineIn(this.worker.limits.keepaliveTimeoutMs);
  }

  private onControlFrame(kind: string): void {
    if (this.controlFrames.exceeded(now())) this.calm(`${kind} flood`, 'http2.max_control_frames');
  }

  /**
   * GOAWAY ENHANCE_YOUR_CALM: the client broke a limit; its open streams go
   * with the connection. Reading stops at once (a flood costs nothing more,
   * and the kernel's window holds the client back), the GOAWAY and a FIN go
   * out, and the connection is destroyed a second later. Destroying it at
   * once would answer the client's unread frames with a TCP reset, which
   * discards the GOAWAY in the client's receive queue: it would never learn why.
   */
  private calm(why: string, limit: string): void {
    if (this.session.destroyed || this.lingerDeadline !== 0) return;
    this.worker.logThrottle.warn(this.worker.log, `h2-calm:${limit}`, { peer: this.peerAddress, limit }, `HTTP/2 connection closed: ${why}`);
    this.session.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM);
    // The session reads the handle natively; stopping the handle is the only way to stop it reading.
    (this.socket as unknown as { _handle?: { readStop?(): number } })._handle?.readStop?.();
    // nghttp2 writes the GOAWAY on its next send; the FIN must follow it, not overtake it.
    setImmediate(() => {
      if (!this.socket.destroyed) this.socket.end();
    });
    this.lingerDeadline = deadlineIn(CALM_LINGER_MS);
  }

  checkDeadlines(t: number): void {
    if (this.lingerDeadline !== 0) {
      if (t >= this.lingerDeadline) this.session.destroy();
      return;
    }
    if (this.idleDeadline !== 0 && t >= this.idleDeadline && this.open === 0) {
      this.idleDeadline = 0;
      this.goAway();
    }
  }

  openTunnels(): number {
    return this.tunnels;
  }

  /** Every open stream is a tunnel: a retiring worker keeps the session for them (its requests are done). */
  inTunnel(): boolean {
    return this.tunnels > 0 && this.tunnels === this.open;
  }

  /**
   * GOAWAY now; but a session with no stream yet has its client's first
   * request on the way (GOAWAY with last stream 0 would refuse it): it gets
   * up to `graceMs` for that request, and the GOAWAY follows it.
   */
  closeWhenIdle(graceMs: number): void {
    if (this.streams > 0 || graceMs <= 0) return this.goAway();
    this.goAwayAfterFirstStream = true;
    const deadline = deadlineIn(graceMs);
    if (this.idleDeadline === 0 || this.idleDeadline > deadline) this.idleDeadline = deadline;
  }

  /** Open streams finish, new ones are refused, and the connection closes after the last. */
  private goAway(): void {
    this.goAwayAfterFirstStream = false;
    if (!this.session.closed && !this.session.destroyed) this.session.close();
  }

  destroy(): void {
    this.session.destroy();
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    untrack(this);
    this.worker.onConnectionClosed(this);
  }
}
