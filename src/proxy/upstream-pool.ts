// Keep-alive connections to one upstream server, per worker. Each connection
// owns a strict llhttp response parser and forwards what it parses to the
// exchange currently attached to it; between requests it waits in the pool's
// idle stack (most recently used first, so the least used ones age out).
import net from 'node:net';
import tls from 'node:tls';
import { createParser, releaseParser, resetParser, type NativeParser, type ParseError } from './llhttp.js';
import { deadlineIn, track, untrack, type Expirable } from './coarse-clock.js';
import { skipReadAhead } from './read-ahead.js';
import { keepable, ownReadBuffer, type ReadVerdict } from './own-read-buffer.js';
import type { ServerSlot } from '../balancer/types.js';
import { encodeProxyV1, encodeProxyV2, type ConnectionOrigin } from '../l4/proxy-protocol.js';

function originTag(o: ConnectionOrigin): string {
  return `${o.sourceAddress} ${o.sourcePort} ${o.destAddress} ${o.destPort}`;
}

/** What an upstream connection reports to the exchange using it. */
export interface UpstreamListener {
  onUpstreamConnect(conn: UpstreamConnection): void;
  onUpstreamHead(statusCode: number, statusMessage: string, raw: string[], upgrade: boolean, keepAlive: boolean): number | void;
  onUpstreamBody(chunk: Buffer): void;
  onUpstreamMessageComplete(): void;
  /** Bytes after a 101 head: the start of the tunnel. */
  onUpstreamUpgraded(rest: Buffer): void;
  onUpstreamFailure(error: Error | ParseError, kind: 'connect' | 'io' | 'parse' | 'closed'): void;
  onUpstreamDrain(): void;
  /** The deadline the exchange set in `deadline` has passed. */
  onUpstreamDeadline(): void;
  beforeUpstreamData(): void;
  afterUpstreamData(): void;
  /** After afterUpstreamData: whether the client side may still read the bytes it was given (queued, not yet written). */
  holdsUpstreamBytes(): boolean;
}

export interface PoolOptions {
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  /** Idle connections kept; Infinity: as many as were released, each aged out by idleTimeoutMs. */
  maxIdle: number;
  maxHeaderBytes: number;
  /** L4 (issue 13): each connection opens with a PROXY header naming the client connection it was made for. */
  proxyProtocol?: 'v1' | 'v2';
  /** TLS to the server (upstreams.NAME.tls), options already read from disk. */
  tls?: tls.ConnectionOptions;
}

/**
 * Why an upstream connection was closed (a label of
 * switchyard_upstream_connections_closed_total): the idle cap or idle
 * timeout; the upstream asked (Connection: close, a close-delimited body, or
 * it closed the socket); it sent bytes nobody asked for; an error (connect,
 * I/O, malformed response, timeout); the request was answered before it was
 * sent whole; the exchange gave up on it (client gone, failure); an Upgrade
 * (declined offer, or the end of a tunnel); the pool was shut down.
 */
export type CloseReason =
  | 'idle-cap'
  | 'idle-timeout'
  | 'upstream-asked'
  | 'tainted'
  | 'error'
  | 'request-incomplete'
  | 'abandoned'
  | 'upgrade'
  | 'shutdown';

/** Told when connections to a server open, are reused and close (shared-memory counters, metrics). */
export interface ConnectionCounter {
  connectionOpened(server: ServerSlot): void;
  /** A request goes out on a connection that served an earlier one. */
  connectionReused(server: ServerSlot): void;
  connectionClosed(server: ServerSlot, reason: CloseReason): void;
}

export class UpstreamPool {
  private readonly idle: UpstreamConnection[] = [];
  private closed = false;
  /** The server's latest TLS session ticket: a new connection resumes instead of a full handshake. */
  tlsSession: Buffer | undefined;

  constructor(readonly server: ServerSlot, readonly options: PoolOptions, readonly counter: ConnectionCounter) {}

  /**
   * A connected idle connection if there is one, else a new one (connecting).
   * With proxy_protocol, a connection's PROXY header spoke for one client
   * connection (`origin`), so only that client's later requests may reuse it.
   */
  acquire(listener: UpstreamListener, fresh: boolean, origin?: ConnectionOrigin): UpstreamConnection {
    const version = this.options.proxyProtocol;
    const tag = version === undefined || origin === undefined ? undefined : originTag(origin);
    if (!fresh) {
      for (let i = this.idle.length - 1; i >= 0; i--) {
        const conn = this.idle[i]!;
        if (conn.usable() && conn.originTag !== tag) continue;
        this.idle.splice(i, 1);
        if (conn.usable()) {
          conn.attach(listener);
          this.counter.connectionReused(this.server);
          return conn;
        }
        conn.destroy(conn.unusableReason());
      }
    }
    const header = version === undefined || origin === undefined ? undefined : version === 'v1' ? encodeProxyV1(origin) : encodeProxyV2(origin);
    const conn = new UpstreamConnection(this, this.options, header, tag);
    conn.attach(listener);
    return conn;
  }

  release(conn: UpstreamConnection): void {
    if (this.closed || this.idle.length >= this.options.maxIdle || !conn.usable()) {
      conn.destroy(this.closed ? 'shutdown' : !conn.usable() ? conn.unusableReason() : 'idle-cap');
      return;
    }
    conn.detach(deadlineIn(this.options.idleTimeoutMs));
    this.idle.push(conn);
  }

  forget(conn: UpstreamConnection): void {
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
  }

  get idleCount(): number {
    return this.idle.length;
  }

  close(): void {
    this.closed = true;
    for (const conn of this.idle.splice(0)) conn.destroy('shutdown');
  }
}

/** A head callback's verdict telling llhttp to stop after the head (node:http's code for an upgrade). */
const STOP_AFTER_HEAD = 2;

export class UpstreamConnection implements Expirable {
  readonly socket: net.Socket;
  private readonly parser: NativeParser;
  private listener: UpstreamListener | undefined;
  connected = false;
  /** Served at least one earlier request: a reset may just be a stale keep-alive. */
  reused = false;
  /** Response bytes received for the current request. */
  received = 0;
  private dead = false;
  private upgraded = false;
  private connectDeadline = 0;
  private idleDeadline = 0;
  /** Set by the exchange: absolute time by which it needs response progress. */
  deadline = 0;
  /** TLS to the server: a reset is not possible from JS (see destroy). */
  private readonly secure: boolean;
  /** Bytes of a Content-Length body still to pass through without the parser (see passBodyThrough). */
  private rawRemaining = 0;
  /** Inside parser.execute(): a response that ends there is reported once execute returns. */
  private executing = false;
  /** The current message is a 1xx other than 101: its end is not the response's. */
  private interim = false;
  /** The response ended inside the current execute(). */
  private completed = false;
  /** The server sent bytes after its response: the connection must not serve another request. */
  private tainted = false;
  /** Set by a response head whose framing cannot be trusted: parsing stopped after it. */
  private faultyFraming: Error | undefined;

  constructor(
    private readonly pool: UpstreamPool,
    private readonly options: PoolOptions,
    proxyHeader?: Buffer,
    /** The client connection its PROXY header named (undefined without proxy_protocol). */
    readonly originTag?: string,
  ) {
    const { host, port } = pool.server;
    this.parser = createParser('response', options.maxHeaderBytes, {
      onMessageBegin: () => {
        if (this.completed) this.tainted = true;
        this.inHead = true;
        this.pendingHeaders.length = 0;
      },
      // After the head, llhttp flushes trailers here: they are dropped (README, "Trailers"), never kept for the next message.
      onHeaders: (raw) => {
        if (this.inHead) this.pendingHeaders.push(...raw);
      },
      onHeadersComplete: (major, minor, raw, _method, _url, statusCode, statusMessage, upgrade, keepAlive) => {
        // A message after the response was never asked for: stop parsing it.
        if (this.tainted) return STOP_AFTER_HEAD;
        this.inHead = false;
        this.interim = statusCode < 200 && statusCode !== 101;
        const headers = raw ?? this.pendingHeaders.splice(0);
        // RFC 9112 §6.1: where an HTTP/1.0 response's body ends cannot be known: a malformed response
        // (reported by parse() once llhttp has stopped), and the connection is not reused.
        if (major === 1 && minor === 0 && hasTransferEncoding(headers)) {
          this.faultyFraming = new Error('HTTP/1.0 response with Transfer-Encoding');
          return STOP_AFTER_HEAD;
        }
        return this.listener?.onUpstreamHead(statusCode, statusMessage ?? '', headers, upgrade, keepAlive);
      },
      onBody: (chunk) => this.listener?.onUpstreamBody(chunk),
      onMessageComplete: () => {
        // With a pass-through body llhttp reports the message done at the
        // end of its head; the real end comes when the last byte is passed on.
        if (this.rawRemaining > 0 || this.completed) return;
        if (this.executing && !this.interim) this.completed = true;
        else this.listener?.onUpstreamMessageComplete();
      },
    });
    this.connectDeadline = deadlineIn(options.connectTimeoutMs);
    const secure = options.tls;
    this.secure = secure !== undefined;
    if (secure === undefined) {
      // Reads land in a buffer of the connection's own and never become 'data' events.
      this.socket = net.connect({ host, port, noDelay: true, onread: ownReadBuffer((chunk, inShared) => this.onRead(chunk, inShared)) });
      // Queued while connecting, so it is the first thing the server reads.
      if (proxyHeader !== undefined) this.socket.write(proxyHeader);
    } else {
      const session = pool.tlsSession ? { session: pool.tlsSession } : {};
      if (proxyHeader === undefined) {
        this.socket = tls.connect({ ...secure, host, port, ...session }).setNoDelay(true);
      } else {
        // The PROXY header goes before the TLS handshake, in the clear, on the TCP connection under it.
        const raw = net.connect({ host, port, noDelay: true });
        raw.write(proxyHeader);
        this.socket = tls.connect({ ...secure, socket: raw, ...session });
      }
      this.socket.on('session', (s: Buffer) => (pool.tlsSession = s));
    }
    pool.counter.connectionOpened(pool.server);
    // Over TLS the connection is usable once the handshake is done (and the certificate verified).
    this.socket.on(secure === undefined ? 'connect' : 'secureConnect', () => {
      this.connected = true;
      this.connectDeadline = 0;
      this.listener?.onUpstreamConnect(this);
    });
    if (secure !== undefined) {
      skipReadAhead(this.socket);
      this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    }
    this.socket.on('end', () => this.onEnd());
    this.socket.on('error', (err) => this.fail(err, this.connected ? 'io' : 'connect'));
    // 'close' after 'end' or 'error' finds the connection dead already: fail() reports once.
    this.socket.on('close', () => this.fail(new Error('upstream connection closed'), this.connected ? 'closed' : 'connect'));
    this.socket.on('drain', () => this.listener?.onUpstreamDrain());
    track(this);
  }

  /** Header fields llhttp flushed before the head was complete (more than 32 of them). */
  private readonly pendingHeaders: string[] = [];
  /** Between a message's start and the end of its head: flushed fields are head fields, not trailers. */
  private inHead = false;

  attach(listener: UpstreamListener): void {
    this.listener = listener;
    this.idleDeadline = 0;
    this.received = 0;
    this.deadline = 0;
    if (this.connected) this.socket.resume();
  }

  /** Back in the pool: nothing may arrive until the next request. */
  detach(idleDeadline: number): void {
    this.listener = undefined;
    this.deadline = 0;
    this.reused = true;
    this.idleDeadline = idleDeadline;
  }

  /** The exchange's own connect deadline (a route may shorten the upstream's). */
  limitConnectTime(deadline: number): void {
    if (!this.connected && deadline < this.connectDeadline) this.connectDeadline = deadline;
  }

  /** Why an unusable connection is closed: it sent bytes nobody asked for, or the upstream ended it. */
  unusableReason(): CloseReason {
    return this.tainted ? 'tainted' : 'upstream-asked';
  }

  usable(): boolean {
    return !this.dead && !this.upgraded && !this.tainted && !this.socket.destroyed && this.socket.writable;
  }

  write(data: string | Buffer, encoding?: BufferEncoding): boolean {
    return encoding === undefined ? this.socket.write(data) : this.socket.write(data, encoding);
  }

  /**
   * After a 101 the socket becomes a raw tunnel owned by the exchange: this
   * object lets go of it (the parser is done; its remaining bytes are handed
   * over through onUpstreamUpgraded once the current execute returns).
   */
  takeOverForTunnel(): void {
    this.upgraded = true;
    this.dead = true;
    this.listener = undefined;
    untrack(this);
    this.pool.forget(this);
    releaseParser(this.parser);
    // Still an open connection to the server: the tunnel gives the count back when it closes.
    this.socket.once('close', () => this.pool.counter.connectionClosed(this.pool.server, 'upgrade'));
  }

  /**
   * Called from the head callback of a response with a Content-Length body
   * (its framing already validated by llhttp): the next `length` bytes go to
   * the listener as they arrive, without the parser. llhttp would copy every
   * body chunk into a new Buffer; passing the socket's own chunks through
   * saves that copy and its garbage (1 MB responses: most of a worker's RSS).
   * Returns the head callback's verdict for llhttp: 2, "stop after the head",
   * the same code node:http uses for an upgrade.
   */
  passBodyThrough(length: number): number {
    this.rawRemaining = length;
    return STOP_AFTER_HEAD;
  }

  /** Passes body bytes through; at the body's end the parser starts afresh for the next response. */
  private passThrough(listener: UpstreamListener, chunk: Buffer): void {
    const take = Math.min(this.rawRemaining, chunk.length);
    this.rawRemaining -= take;
    listener.onUpstreamBody(keepable(take === chunk.length ? chunk : chunk.subarray(0, take)));
    if (this.rawRemaining > 0 || this.dead) return;
    resetParser(this.parser, 'response', this.options.maxHeaderBytes);
    if (take < chunk.length) this.tainted = true;
    if (this.listener === listener) listener.onUpstreamMessageComplete();
  }

  checkDeadlines(t: number): void {
    if (this.connectDeadline !== 0 && t >= this.connectDeadline) {
      this.fail(new Error(`connect timeout to ${this.pool.server.address}`), 'connect');
    } else if (this.idleDeadline !== 0 && t >= this.idleDeadline) {
      this.destroy('idle-timeout');
    } else if (this.deadline !== 0 && t >= this.deadline) {
      this.deadline = 0;
      this.listener?.onUpstreamDeadline();
    }
  }

  /**
   * A plain connection's read, into its own buffer or the shared one
   * (own-read-buffer.ts). Back in the pool (or closed) after it, the
   * connection's next read goes to the shared buffer: a pooled connection
   * holds none, and a response of one read costs a copy of its body at most.
   */
  private onRead(chunk: Buffer, inShared: boolean): ReadVerdict {
    if (this.upgraded) {
      // The tunnel owns the socket and reads it with 'data' listeners, keeping no count of what it queued.
      this.socket.emit('data', keepable(chunk));
      return 'held';
    }
    const given = this.listener;
    this.onData(chunk);
    // What a read into the shared buffer handed on was copied: nothing refers to it.
    if (this.upgraded) return inShared ? 'free' : 'held';
    if (this.listener === undefined || given === undefined) return 'idle';
    // Asked of the exchange given the bytes (back in the pool, the connection may already serve another):
    // its client may still hold them, queued behind a slow client or held back by an HTTP/2 stream.
    return !inShared && given.holdsUpstreamBytes() ? 'held' : 'free';
  }

  private onData(chunk: Buffer): void {
    const listener = this.listener;
    if (listener === undefined) {
      // An idle connection must stay silent; anything else makes it unsafe to reuse.
      this.destroy('tainted');
      return;
    }
    this.received += chunk.length;
    listener.beforeUpstreamData();
    try {
      if (this.rawRemaining > 0) this.passThrough(listener, chunk);
      else this.parse(listener, chunk);
    } catch (err) {
      // A bug while relaying this response: it fails this exchange (502 or an abort), not the worker.
      this.fail(err instanceof Error ? err : new Error(String(err)), 'parse');
    } finally {
      listener.afterUpstreamData();
    }
  }

  private parse(listener: UpstreamListener, chunk: Buffer): void {
    this.executing = true;
    const ret = this.parser.execute(chunk);
    this.executing = false;
    if (this.faultyFraming !== undefined) {
      this.fail(this.faultyFraming, 'parse');
    } else if (this.upgraded) {
      if (typeof ret === 'number' && ret < chunk.length) listener.onUpstreamUpgraded(keepable(chunk.subarray(ret)));
    } else if (this.completed) {
      // Reported only now, so that nothing after the response, whether
      // parsed, unparseable or left unread, can reach whoever reuses the
      // connection (requests are never pipelined upstream).
      this.completed = false;
      if (typeof ret !== 'number' || ret < chunk.length) this.tainted = true;
      if (this.listener === listener) listener.onUpstreamMessageComplete();
    } else if (typeof ret !== 'number') {
      this.fail(ret, 'parse');
    } else if (ret < chunk.length && this.rawRemaining > 0) {
      this.passThrough(listener, chunk.subarray(ret));
    }
  }

  private onEnd(): void {
    if (this.dead) return;
    if (this.rawRemaining > 0) return this.fail(new Error(`upstream closed ${this.rawRemaining} bytes short of its Content-Length`), 'closed');
    // EOF ends a read-until-close body, or reveals a truncated one.
    const ret = this.parser.finish();
    if (ret instanceof Error) this.fail(ret, 'parse');
    else this.fail(new Error('upstream closed the connection'), 'closed');
  }

  private fail(error: Error, kind: 'connect' | 'io' | 'parse' | 'closed'): void {
    if (this.dead) return;
    const listener = this.listener;
    this.destroy(kind === 'closed' ? 'upstream-asked' : 'error');
    listener?.onUpstreamFailure(error, kind);
  }

  /** With `reset`, the server sees a TCP reset at once instead of a close behind the bytes still queued. */
  destroy(reason: CloseReason, reset = false): void {
    if (this.dead) return;
    this.dead = true;
    this.listener = undefined;
    untrack(this);
    this.pool.forget(this);
    if (!this.upgraded) {
      // A TLS socket's handle is not the TCP one and cannot be reset; destroying it closes at once too.
      if (reset && this.connected && !this.secure) this.socket.resetAndDestroy();
      else this.socket.destroy();
      this.pool.counter.connectionClosed(this.pool.server, reason);
    }
    releaseParser(this.parser);
  }
}

function hasTransferEncoding(raw: readonly string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === 17 && raw[i]!.toLowerCase() === 'transfer-encoding') return true;
  return false;
}
