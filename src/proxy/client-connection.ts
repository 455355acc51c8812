// One accepted client socket: feeds bytes to a strict llhttp request parser,
// turns each parsed head into an Exchange and keeps responses in request
// order. Pipelined requests wait in a queue with the socket paused, so a
// client can't make Switchyard buffer more than one read ahead.
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { createParser, releaseParser, resetParser, METHODS, type NativeParser, type ParseError } from './llhttp.js';
import { Exchange, type ClientSide } from './exchange.js';
import { acmeChallengeResponse, errorResponse, preflightResponse, STATUS_FOR, type ProxyErrorReason } from './errors.js';
import { deadlineIn, track, untrack, type Expirable } from './coarse-clock.js';
import { buildClientHead, buildInterimHead, writeHead, type ClientHeadOptions, type RequestHeadInfo, type ResponseHeadInfo } from './headers.js';
import type { HeaderList } from './gateway-step.js';
import { Tunnel } from './tunnel.js';
import { skipReadAhead } from './read-ahead.js';
import { keepable, readIntoOwnBuffer, type ReadVerdict } from './own-read-buffer.js';
import { normaliseAddress, type WorkerRuntime } from './worker-runtime.js';
import { peerHasClosed } from '../native.js';
import { socketOrigin } from '../l4/proxy-header-reader.js';
import type { ConnectionOrigin } from '../l4/proxy-protocol.js';
import type { ClientCertificate } from '../gateway/auth/index.js';
import { clientCertificate } from '../tls/client-certificate.js';

/** A head callback's verdict telling llhttp to stop after the head (as node:http does for an upgrade). */
const STOP_AFTER_HEAD = 2;

/** What a TLS listener adds to the connections it hands over. */
export interface SecureListener {
  /** Added to every response (Strict-Transport-Security). */
  responseHeaders: ReadonlyArray<readonly [string, string]> | undefined;
}

const CRLF = '\r\n';
const LAST_CHUNK = '0\r\n\r\n';
const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';

export class ClientConnection implements Expirable, ClientSide {
  private readonly parser: NativeParser;
  /** The exchange whose response is being produced. */
  private active: Exchange | undefined;
  /** The exchange whose request is being parsed (== active unless pipelining). */
  private parsing: Exchange | undefined;
  private readonly queue: Exchange[] = [];
  private pendingHeaders: string[] = [];
  private pendingUrl = '';
  /** The request line's length so far, to tell 414 from 431 when the head overflows. */
  private requestLineBytes = 0;
  private requestLineDone = false;
  private inHead = true;
  /** A parse error found while an earlier response is still being produced. */
  private deferredError: ProxyErrorReason | undefined;
  private tunnel: Exchange | undefined;
  private closed = false;
  private paused = false;
  private headDeadline: number;
  private requestDeadline = 0;
  private idleDeadline = 0;
  readonly peerAddress: string;
  private trusted: boolean | undefined;

  /** The connection's endpoints: the socket's own, or those a trusted PROXY header reported. */
  readonly origin: ConnectionOrigin;
  /** The connection came through TLS: X-Forwarded-Proto is https. */
  readonly secure: boolean;
  readonly http2 = false;
  /** Headers every response on this connection carries (HSTS on TLS listeners). */
  readonly responseHeaders: ReadonlyArray<readonly [string, string]> | undefined;

  constructor(readonly socket: Socket, readonly worker: WorkerRuntime, listener?: SecureListener, origin?: ConnectionOrigin) {
    this.secure = listener !== undefined;
    this.responseHeaders = listener?.responseHeaders;
    this.origin = origin ?? socketOrigin(socket);
    this.peerAddress = normaliseAddress(this.origin.sourceAddress);
    this.headDeadline = deadlineIn(worker.limits.headersTimeoutMs);
    this.parser = createParser('request', worker.limits.maxHeaderBytes, {
      onMessageBegin: () => this.onMessageBegin(),
      onHeaders: (raw, url) => {
        // After the head llhttp flushes trailers here: they are dropped (README, "Trailers").
        if (!this.inHead || this.closed) return;
        this.pendingHeaders.push(...raw);
        this.pendingUrl += url;
      },
      onHeadersComplete: (major, minor, raw, method, url, _status, _message, upgrade, keepAlive) => {
        // Closing after an error: nothing later on this connection may start an exchange.
        if (this.closed) return 0;
        const headers = raw ?? this.pendingHeaders;
        const target = url ?? this.pendingUrl;
        this.pendingHeaders = [];
        this.pendingUrl = '';
        this.inHead = false;
        this.headDeadline = 0;
        const exchange = new Exchange(this, this.worker, METHODS[method] ?? 'UNKNOWN', target, minor, major, headers, upgrade ? 'offered' : 'none', keepAlive);
        this.parsing = exchange;
        if (upgrade) this.upgrade = exchange;
        if (this.active === undefined) {
          this.active = exchange;
          exchange.start();
        } else {
          this.queue.push(exchange);
          this.refreshReading();
        }
        if (this.closed || upgrade) return 0;
        const length = exchange.fixedBodyLength();
        if (length <= 0 || length > this.worker.limits.maxBodyBytes) return 0;
        // llhttp has checked the framing (one valid Content-Length, no
        // Transfer-Encoding): the body's bytes go to the exchange as the
        // socket's own chunks, without the parser (see passBodyThrough).
        this.bodyRemaining = length;
        this.lastRequest = !keepAlive;
        return STOP_AFTER_HEAD;
      },
      onBody: (chunk) => {
        if (!this.closed) this.parsing?.onRequestBody(chunk);
      },
      onMessageComplete: () => {
        // A pass-through body: llhttp calls this at the end of the head; the
        // message ends when its last byte has been passed on.
        if (this.closed || this.bodyRemaining > 0) return;
        this.requestEnded();
      },
    });
    skipReadAhead(socket);
    // Bytes read before this connection was made (a sniffed preface, what followed a PROXY header) come as 'data'.
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    // A plain TCP socket's own reads land in a buffer of its own (a TLS socket's come decrypted from node's TLS layer).
    if (listener === undefined) readIntoOwnBuffer(socket, (chunk, inShared) => this.onOwnRead(chunk, inShared));
    socket.on('end', () => this.onEnd());
    socket.on('error', () => this.onClose());
    socket.on('close', () => this.onClose());
    socket.on('drain', () => this.active?.onClientDrain());
    track(this);
  }

  /** The request being parsed has been read to its end. */
  private requestEnded(): void {
        const exchange = this.parsing;
        // llhttp stops after an Upgrade request: what follows waits for the upstream's answer.
        if (exchange !== undefined && exchange === this.upgrade) this.held = [];
        this.parsing = undefined;
        this.requestDeadline = 0;
        this.inHead = true;
        this.requestLineBytes = 0;
        this.requestLineDone = false;
        exchange?.onRequestComplete();
        // Answered from its head callback (an error, a preflight): the connection is now idle.
        if (this.active === undefined && this.queue.length === 0 && !this.closed) this.idleDeadline = deadlineIn(this.worker.limits.keepaliveTimeoutMs);
  }

  /**
   * Body bytes of the request being parsed still to come, passed through as
   * the socket's own chunks. llhttp would copy every body chunk into a new
   * Buffer (as for responses, upstream-pool.ts): a 4 KB POST cost a copy
   * and its garbage per read. The exchange sees the same onRequestBody
   * calls either way, so the 413 count and the retry replay are unchanged.
   */
  private bodyRemaining = 0;
  /**
   * The request whose body is passing through was the connection's last
   * (Connection: close, HTTP/1.0): llhttp would refuse any byte after it, so
   * they are dropped; the connection closes after the response.
   */
  private lastRequest = false;

  /** Passes body bytes on; returns what follows the body in `chunk`, if anything. */
  private passBody(chunk: Buffer): Buffer | undefined {
    const take = Math.min(this.bodyRemaining, chunk.length);
    this.bodyRemaining -= take;
    const exchange = this.parsing;
    if (exchange !== undefined) {
      this.takers.push(exchange);
      exchange.onRequestBody(this.handOut(take === chunk.length ? chunk : chunk.subarray(0, take)));
    }
    if (this.bodyRemaining > 0 || this.closed) return undefined;
    if (this.lastRequest) {
      this.requestEnded();
      return undefined;
    }
    // The parser stopped after the head as after an Upgrade, and could resume (llhttp goes on to the
    // next message), but node's parser keeps its upgrade flag until that message's head completes and
    // reports no parse error meanwhile: a malformed request right after the body would pass unchecked.
    // So it starts afresh (~0.3 µs; request-body-passthrough.test.ts, "right after a passed-through body").
    resetParser(this.parser, 'request', this.worker.limits.maxHeaderBytes);
    this.requestEnded();
    return take < chunk.length ? chunk.subarray(take) : undefined;
  }

  private onMessageBegin(): void {
    this.pendingHeaders = [];
    this.pendingUrl = '';
    const limits = this.worker.limits;
    this.idleDeadline = 0;
    this.headDeadline = deadlineIn(limits.headersTimeoutMs);
    this.requestDeadline = deadlineIn(limits.requestTimeoutMs);
  }

  private onData(chunk: Buffer): void {
    const outer = this.reading;
    this.reading = true;
    try {
      this.deliver(chunk);
    } finally {
      this.reading = outer;
      // A nested call (held bytes re-parsed) leaves the flush to the outermost one.
      if (!outer) {
        const flush = this.flushAfterRead;
        this.flushAfterRead = undefined;
        flush?.flushUpstream();
      }
    }
  }

  /** Bytes of the current read went past the parser: body bytes to `takers`, held bytes, tunnel bytes. */
  private handedOut = false;
  private readonly takers: Exchange[] = [];
  /** Bytes of the current read that leave the parser (copied out of the shared buffer). */
  private handOut(bytes: Buffer): Buffer {
    this.handedOut = true;
    return keepable(bytes);
  }

  /**
   * A read into the socket's own buffer or the shared one (own-read-buffer.ts).
   * Its own buffer is reused for the next read only when nothing may still
   * read its bytes, or the next read would overwrite bytes still on their way
   * upstream (or held for a retry, a tunnel, an upgrade's answer). A read that
   * handed nothing on (a head without a body) sends the next to the shared buffer.
   */
  private onOwnRead(chunk: Buffer, inShared: boolean): ReadVerdict {
    this.handedOut = false;
    this.takers.length = 0;
    this.onData(chunk);
    if (!this.handedOut) return 'idle';
    if (inShared) return 'free';
    return this.held !== undefined || this.tunnel !== undefined || this.takers.some((e) => e.retainsClientBytes()) ? 'held' : 'free';
  }

  /** Inside onData (a re-parse of held bytes may nest one). */
  private reading = false;
  /** The exchange whose upstream head waits, corked, for the rest of this read (Exchange.onUpstreamConnect). */
  private flushAfterRead: Exchange | undefined;

  flushUpstreamAfterRead(exchange: Exchange, bodyStillComing: boolean): boolean {
    if (!bodyStillComing || !this.reading) return false;
    // One exchange is forwarded at a time, so none is waiting here; if one were, its bytes must not be stranded.
    this.flushAfterRead?.flushUpstream();
    this.flushAfterRead = exchange;
    return true;
  }

  private deliver(chunk: Buffer): void {
    let rest: Buffer | undefined = chunk;
    while (rest !== undefined && !this.closed) {
      if (this.bodyRemaining > 0) {
        try {
          rest = this.passBody(rest);
        } catch (err) {
          return this.internalError(err);
        }
      } else if (this.lastRequest) {
        return;
      } else rest = this.parse(rest);
    }
  }

  /** Feeds `chunk` to the parser; returns the bytes after a head whose body passes through. */
  private parse(chunk: Buffer): Buffer | undefined {
    if (this.tunnel !== undefined) {
      this.tunnel.onClientTunnelData(this.handOut(chunk));
      return undefined;
    }
    if (this.held !== undefined) {
      this.held.push(this.handOut(chunk));
      this.refreshReading();
      return undefined;
    }
    if (this.inHead && !this.requestLineDone) {
      const lf = chunk.indexOf(10);
      this.requestLineBytes += lf < 0 ? chunk.length : lf;
      this.requestLineDone = lf >= 0;
    }
    this.idleDeadline = 0;
    if (this.headDeadline === 0 && this.inHead) this.headDeadline = deadlineIn(this.worker.limits.headersTimeoutMs);
    this.executing = true;
    let ret: number | ParseError;
    try {
      ret = this.parser.execute(chunk);
    } catch (err) {
      this.internalError(err);
      return undefined;
    } finally {
      this.executing = false;
    }
    if (this.closed) return undefined;
    if (typeof ret !== 'number') {
      this.onParseError(ret);
      return undefined;
    }
    // (Re-read: the parser's callbacks may have set it.)
    const held = this.held as Buffer[] | undefined;
    if (held !== undefined) {
      if (ret < chunk.length) held.push(this.handOut(chunk.subarray(ret)));
      // Answered already (from its head, say a 401): go on parsing what came after it.
      if (this.upgrade!.finished) this.resumeParsing();
      else this.refreshReading();
      return undefined;
    }
    return this.bodyRemaining > 0 && ret < chunk.length ? chunk.subarray(ret) : undefined;
  }

  /**
   * The Upgrade request parsed last, from its head until a 101 makes it a
   * tunnel or its answer makes it an ordinary request after all.
   */
  private upgrade: Exchange | undefined;
  /**
   * Bytes after an Upgrade request, held (the socket paused, so at most a
   * read's worth) until the upstream answers: tunnel payload after a 101,
   * the next request otherwise. Never forwarded before that answer.
   */
  private held: Buffer[] | undefined;
  private executing = false;

  /** A 101 arrived: the held bytes and everything after are tunnel payload. */
  startTunnel(exchange: Exchange): void {
    this.tunnel = exchange;
    const held = this.held ?? [];
    this.held = undefined;
    this.upgrade = undefined;
    for (const chunk of held) exchange.onClientTunnelData(chunk);
    this.refreshReading();
  }

  /** The Upgrade request was answered without a 101: parse what followed it as HTTP again. */
  private resumeParsing(): void {
    const held = this.held!;
    this.held = undefined;
    this.upgrade = undefined;
    resetParser(this.parser, 'request', this.worker.limits.maxHeaderBytes);
    this.inHead = true;
    this.requestLineBytes = 0;
    this.requestLineDone = false;
    this.refreshReading();
    if (held.length > 0) this.onData(held.length === 1 ? held[0]! : Buffer.concat(held));
  }

  private onParseError(err: ParseError): void {
    let reason: ProxyErrorReason = 'bad-request';
    if (err.code === 'HPE_HEADER_OVERFLOW') {
      reason = !this.requestLineDone || this.requestLineBytes > this.worker.limits.maxUrlBytes ? 'url-too-long' : 'headers-too-large';
    }
    this.worker.logThrottle.warn(this.worker.log, `malformed:${err.code}`, { peer: this.peerAddress, code: err.code, reason: err.reason }, 'malformed request');
    this.socket.pause();
    const broken = this.parsing;
    if (broken !== undefined && broken === this.active) {
      // The request being forwarded turned out malformed (e.g. a bad chunk): never complete it upstream.
      broken.fail(reason, err.reason);
      this.destroySoon();
      return;
    }
    if (broken !== undefined) this.queue.splice(this.queue.indexOf(broken), 1);
    if (this.active !== undefined) {
      // Answer the requests before the bad one first, then reject it and close.
      this.deferredError = reason;
      return;
    }
    this.rejectAndClose(reason);
  }

  private rejectAndClose(reason: ProxyErrorReason): void {
    const id = this.worker.nextRequestId();
    this.worker.onRequestDone(undefined, undefined, STATUS_FOR[reason], undefined, Date.now());
    this.socket.end(errorResponse(reason, id, false), 'latin1');
    this.destroySoon();
  }

  /** Called by the active exchange when both its request and response are done. */
  onExchangeDone(exchange: Exchange): void {
    if (exchange !== this.active) return;
    this.active = undefined;
    if (this.tunnel === exchange) this.tunnel = undefined;
    if (this.closed) return;
    if (!exchange.keepAlive || this.worker.closing) {
      this.socket.end();
      this.destroySoon();
      return;
    }
    if (exchange === this.upgrade && this.held !== undefined && !this.executing) return this.resumeParsing();
    const next = this.queue.shift();
    if (next !== undefined) {
      this.active = next;
      next.start();
    } else if (this.deferredError !== undefined) {
      return this.rejectAndClose(this.deferredError);
    } else if (this.closeAfterActive) {
      return this.destroySoon();
    } else {
      this.idleDeadline = this.parsing === undefined ? deadlineIn(this.worker.limits.keepaliveTimeoutMs) : 0;
    }
    this.refreshReading();
  }

  // ---- the response, as HTTP/1.1 bytes ------------------------------------

  sendContinue(): void {
    this.socket.write(CONTINUE, 'latin1');
  }

  sendInterim(statusCode: number, statusMessage: string, raw: readonly string[]): void {
    this.socket.write(buildInterimHead(statusCode, statusMessage, raw), 'latin1');
  }

  sendError(reason: ProxyErrorReason, requestId: string, keepAlive: boolean, extra: HeaderList | undefined, head: boolean): void {
    this.socket.write(errorResponse(reason, requestId, keepAlive, extra, head), 'latin1');
  }

  sendChallengeAnswer(requestId: string, keepAlive: boolean, keyAuthorization: string, head: boolean): void {
    this.socket.write(acmeChallengeResponse(requestId, keepAlive, keyAuthorization, head), 'latin1');
  }

  sendPreflight(requestId: string, keepAlive: boolean, headers: HeaderList): void {
    this.socket.write(preflightResponse(requestId, keepAlive, headers), 'latin1');
  }

  sendHead(head: ClientHeadOptions, resp: ResponseHeadInfo & { connectionTokens: string[] | undefined }): void {
    const bytes = buildClientHead(head, resp.connectionTokens, resp.contentLength, resp.hasRequestId, head.upgrade ? resp.upgrade : undefined);
    writeHead(this.socket, bytes, head.framing === 'length' && resp.contentLength > 0);
  }

  sendBody(chunk: Buffer, chunked: boolean): boolean {
    const socket = this.socket;
    if (!chunked) return socket.write(chunk);
    socket.write(chunk.length.toString(16) + CRLF, 'latin1');
    socket.write(chunk);
    return socket.write(CRLF, 'latin1');
  }

  endBody(chunked: boolean): void {
    if (chunked) this.socket.write(LAST_CHUNK, 'latin1');
  }

  cork(): void {
    this.socket.cork();
  }

  uncork(): void {
    this.socket.uncork();
  }

  holdsWrittenBytes(): boolean {
    return this.socket.writableLength > 0;
  }

  /** The client checks its own WebSocket handshake (or whatever protocol it asked for). */
  switchProblem(): undefined {
    return undefined;
  }

  openTunnel(upstream: Socket, idleMs: number, onClosed: () => void): Tunnel {
    const socket = this.socket;
    // However the tunnel ends, the socket is destroyed (a FIN: a reset would discard what is still queued).
    const client = { write: (data: Buffer) => socket.write(data), pause: () => socket.pause(), resume: () => socket.resume(), end: () => socket.end(), close: () => socket.destroy() };
    return new Tunnel(client, upstream, idleMs, onClosed);
  }

  /** Pause or resume reading from the client according to who needs it. */
  refreshReading(): void {
    if (this.closed) return;
    if (this.peerFinished) return; // what is left to read is bounded by the socket's receive buffer
    const block =
      this.queue.length > 0 || this.held !== undefined || this.deferredError !== undefined || (this.active !== undefined && this.active.blocksClientReading());
    if (block && !this.paused) {
      this.paused = true;
      this.socket.pause();
    } else if (!block && this.paused) {
      this.paused = false;
      this.socket.resume();
    }
  }

  /** The client's certificate (TLS listeners with client_ca), read once per connection. */
  clientCertificate(): ClientCertificate | undefined {
    if (this.clientCert === undefined) this.clientCert = this.socket instanceof TLSSocket ? (clientCertificate(this.socket) ?? null) : null;
    return this.clientCert ?? undefined;
  }

  private clientCert: ClientCertificate | null | undefined;

  /** Whether the peer's X-Forwarded-* headers are believed. */
  peerTrusted(): boolean {
    return (this.trusted ??= this.worker.isTrustedProxy(this.peerAddress));
  }

  clientIp(info: RequestHeadInfo): string {
    return this.worker.clientIp(this.peerAddress, this.peerTrusted(), info);
  }

  /**
   * Shutdown: an idle keep-alive connection is closed only after `graceMs`
   * without a request. Closing it at once would race a request the client
   * may already have sent; one that arrives now is answered with
   * `Connection: close` instead.
   */
  closeWhenIdle(graceMs: number): void {
    if (!this.isIdle()) return;
    const deadline = deadlineIn(graceMs);
    if (this.idleDeadline === 0 || this.idleDeadline > deadline) this.idleDeadline = deadline;
  }

  /** After a 101: the connection carries a tunnel, no more HTTP. */
  inTunnel(): boolean {
    return this.tunnel !== undefined;
  }

  openTunnels(): number {
    return this.tunnel === undefined ? 0 : 1;
  }

  /** Between requests: nothing parsed or answered right now. */
  isIdle(): boolean {
    return this.active === undefined && this.parsing === undefined;
  }

  checkDeadlines(t: number): void {
    if (this.lingerDeadline !== 0) {
      if (t >= this.lingerDeadline) this.destroy();
      return;
    }
    if (this.tunnel !== undefined) return this.tunnel.checkTunnelDeadline(t);
    if (this.paused && !this.peerFinished && (this.parsing !== undefined || this.held !== undefined)) this.checkPeerFinished();
    if (this.headDeadline !== 0 && t >= this.headDeadline && this.inHead && this.tunnel === undefined) {
      this.headDeadline = 0;
      if (this.active !== undefined) return;
      if (this.requestLineBytes > 0 || this.requestLineDone) {
        this.worker.log.warn({ peer: this.peerAddress }, 'request head not received within headers_timeout');
        this.rejectAndClose('headers-timeout');
      } else this.destroy();
    } else if (this.requestDeadline !== 0 && t >= this.requestDeadline && this.parsing !== undefined && this.parsing === this.active) {
      this.requestDeadline = 0;
      this.parsing.fail('request-timeout', 'request not received within request_timeout');
      this.destroySoon();
    } else if (this.idleDeadline !== 0 && t >= this.idleDeadline && this.isIdle()) {
      this.destroy();
    }
  }

  /**
   * A bug met while handling this connection's bytes: it costs this
   * connection (aborted, whatever state it was in), never the worker and
   * the other connections on it.
   */
  internalError(err: unknown): void {
    this.worker.log.error({ peer: this.peerAddress, err }, 'internal error: connection aborted');
    this.abort();
  }

  /** Abort: the client must see a broken connection, not a complete response. */
  abort(): void {
    // A TLS socket cannot be reset from JS (its handle is not the TCP one); destroying it without
    // close_notify is what a TLS client reads as a truncated response.
    if (this.secure) this.socket.destroy();
    else this.socket.resetAndDestroy();
    this.onClose();
  }

  /** Give queued writes a moment to flush, then make sure the socket is gone. */
  private destroySoon(): void {
    this.closed = true;
    this.socket.end();
    // A coarse deadline, not a timer: a timer would hold every closed connection for the full second.
    if (this.lingerDeadline === 0) this.lingerDeadline = deadlineIn(1000);
  }

  /** After we ended our side: when the socket is destroyed if the peer has not closed it. */
  private lingerDeadline = 0;

  destroy(): void {
    this.socket.destroy();
    this.onClose();
  }

  /**
   * A socket paused mid-request (the upstream is slow to take the body, or an
   * Upgrade request waits for its answer) does not see the client leave:
   * the kernel reports nothing until it is read.
   * Ask it directly; once the client has stopped sending, the rest can be
   * read whatever the backpressure (no more than the receive buffer holds),
   * so the end or reset arrives and the upstream request is aborted at once.
   */
  private checkPeerFinished(): void {
    if (!peerHasClosed(this.socket)) return;
    this.peerFinished = true;
    this.paused = false;
    this.socket.resume();
  }

  /** The client sent FIN or RST while paused: reading is no longer held back. */
  private peerFinished = false;

  private onEnd(): void {
    // Half-close from the client: finish what is in flight, then close.
    if (this.tunnel !== undefined) return this.tunnel.onClientEnd();
    const truncated = this.parsing;
    if (truncated !== undefined) {
      // The request being received can never be completed: abandon it (the upstream sees a reset).
      if (truncated === this.active) return this.destroy();
      const queued = this.queue.indexOf(truncated);
      if (queued >= 0) this.queue.splice(queued, 1);
      this.parsing = undefined;
      truncated.onClientGone();
    }
    if (this.active === undefined && this.queue.length === 0) this.destroy();
    else this.closeAfterActive = true;
  }

  /** The client half-closed with a response still owed: send it, then close. */
  private closeAfterActive = false;

  private onClose(): void {
    if (this.released) return;
    this.released = true;
    this.closed = true;
    untrack(this);
    const active = this.active;
    this.active = undefined;
    active?.onClientGone();
    for (const queued of this.queue.splice(0)) queued.onClientGone();
    releaseParser(this.parser);
    this.worker.onConnectionClosed(this);
  }

  private released = false;
}
