// One HTTP/2 stream as the client side of one Exchange: the exchange
// (routing, gateway checks, limits, the upstream pool, retries, access log,
// metrics) runs unchanged, and this class turns what it sends into HEADERS
// and DATA frames. Backpressure is the stream's own flow control: a paused
// stream stops returning WINDOW_UPDATEs, so a client can't push more request
// body than its window, and a full stream write pauses the upstream socket.
//
// An extended CONNECT (RFC 8441) is the exchange's Upgrade request: its
// stream is not read until the upstream's 101 (whatever the client sends
// early waits within its flow-control window, and is never forwarded if the
// answer is not a 101), which the client sees as `:status 200`; from then on
// the stream's DATA and the upstream socket are a tunnel (tunnel.ts). Its
// ends map as RFC 8441 §5 says: END_STREAM is a FIN either way; the client's
// RST_STREAM closes the upstream socket; an upstream that fails, or a tunnel
// gone idle, resets the stream with CANCEL.
import { constants, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { Exchange, type ClientSide } from './exchange.js';
import { errorBody, STATUS_FOR, type ProxyErrorReason } from './errors.js';
import { isDroppedDown, type ClientHeadOptions, type RequestHeadInfo, type ResponseHeadInfo } from './headers.js';
import type { HeaderList } from './gateway-step.js';
import { Tunnel, type TunnelClient } from './tunnel.js';
import { deadlineIn, track, untrack, type Expirable } from './coarse-clock.js';
import { mapH2Request, type TunnelRequest } from './h2-request.js';
import { switchProblem } from './websocket-handshake.js';
import type { WorkerRuntime } from './worker-runtime.js';
import type { ClientCertificate } from '../gateway/auth/index.js';
import type { ConnectionOrigin } from '../l4/proxy-protocol.js';

/** What a stream needs of the session it belongs to. */
export interface StreamOwner {
  readonly worker: WorkerRuntime;
  readonly peerAddress: string;
  /** The connection's endpoints, for PROXY headers sent upstream. */
  readonly origin: ConnectionOrigin;
  /** The session came through a TLS listener (ALPN h2). */
  readonly secure: boolean;
  /** Headers every response of the session carries (HSTS). */
  readonly responseHeaders: HeaderList | undefined;
  clientCertificate(): ClientCertificate | undefined;
  peerTrusted(): boolean;
  /** The client reset a stream before its response was complete (counted against rapid reset). */
  onStreamReset(): void;
  /** The stream became a tunnel (after the upstream's 101). */
  onTunnelOpened(): void;
  /** `tunnel`: the stream was one. */
  onStreamClosed(tunnel: boolean): void;
  /** Calls `exchange.flushUpstream()` once the session's current read has been dealt with. */
  flushUpstreamLater(exchange: Exchange): void;
}

export class H2Stream implements ClientSide, Expirable {
  private readonly exchange: Exchange;
  private requestEnded = false;
  private paused = false;
  private closed = false;
  private requestDeadline: number;
  /** A 'drain' listener is waiting for the stream's buffer to empty. */
  private awaitingDrain = false;
  /** The last response chunk, not yet written (see sendBody). */
  private heldChunk: Buffer | undefined;
  /** An extended CONNECT: the stream is read only once it is a tunnel. */
  private readonly tunnelRequest: TunnelRequest | undefined;
  /** The upstream answered the extended CONNECT with its 101: DATA both ways is tunnel payload. */
  private tunnelOpen = false;
  /** Set before Switchyard resets the stream itself: Node reports that as 'aborted' too, and only the client's resets count. */
  private resetHere = false;

  constructor(
    private readonly stream: ServerHttp2Stream,
    rawHeaders: string[],
    private readonly owner: StreamOwner,
  ) {
    const worker = owner.worker;
    const mapped = mapH2Request(rawHeaders, !stream.endAfterHeaders);
    this.tunnelRequest = mapped.ok ? mapped.tunnel : undefined;
    // Seen by the exchange as HTTP/1.1 with keep-alive: the same checks, and framing decisions that never close anything.
    this.exchange = new Exchange(this, worker, mapped.method, mapped.target, 1, 1, mapped.raw, this.tunnelRequest ? 'required' : 'none', true);
    this.requestDeadline = deadlineIn(worker.limits.requestTimeoutMs);
    // A request without a body is never read: Node then destroys the stream only after the response's
    // last write has completed. Read to its end, the stream is destroyed as soon as nghttp2 closes it,
    // before that write's callback, and Node 20 builds an ERR_STREAM_DESTROYED (stack trace and all)
    // per response for nobody (errorBuffer): 6% of a worker's CPU at 100 B responses.
    if (!stream.endAfterHeaders && this.tunnelRequest === undefined) {
      stream.on('data', (chunk: Buffer) => this.exchange.onRequestBody(chunk));
      stream.on('end', () => this.onRequestEnd());
      // The deadline of a plain stream is for its request body only.
      track(this);
    }
    // A stream error (reset, session gone) ends in 'close' as well.
    stream.on('error', ignore);
    stream.on('close', () => this.onClose());
    if (this.tunnelRequest !== undefined) {
      // A tunnel has its idle deadline once open.
      track(this);
      // The Upgrade request is its head alone: the exchange has all of it (what the stream carries later is the tunnel's).
      this.requestEnded = stream.endAfterHeaders;
      this.requestDeadline = 0;
      this.exchange.onRequestComplete();
    } else if (stream.endAfterHeaders) this.onRequestEnd();
    if (mapped.ok) this.exchange.start();
    else this.exchange.fail(mapped.reason, mapped.detail);
  }

  private onRequestEnd(): void {
    if (this.requestEnded) return;
    this.requestEnded = true;
    this.requestDeadline = 0;
    untrack(this);
    this.exchange.onRequestComplete();
  }

  // ---- ClientSide: the peer ------------------------------------------------

  get peerAddress(): string {
    return this.owner.peerAddress;
  }

  get origin(): ConnectionOrigin {
    return this.owner.origin;
  }

  get http2(): boolean {
    return true;
  }

  get secure(): boolean {
    return this.owner.secure;
  }

  get responseHeaders(): HeaderList | undefined {
    return this.owner.responseHeaders;
  }

  clientCertificate(): ClientCertificate | undefined {
    return this.owner.clientCertificate();
  }

  peerTrusted(): boolean {
    return this.owner.peerTrusted();
  }

  clientIp(info: RequestHeadInfo): string {
    return this.owner.worker.clientIp(this.owner.peerAddress, this.owner.peerTrusted(), info);
  }

  /** Reading the stream is paused while the exchange can't take its body: the client's window then runs out. */
  refreshReading(): void {
    if (this.closed) return;
    const block = this.exchange.blocksClientReading();
    if (block && !this.paused) {
      this.paused = true;
      this.stream.pause();
    } else if (!block && this.paused) {
      this.paused = false;
      this.stream.resume();
    }
  }

  onExchangeDone(): void {
    if (this.closed || this.requestEnded) return;
    // Answered before the request body ended (an error, a 413): the rest is not wanted.
    // RFC 9113 §8.1: a complete response, then RST_STREAM NO_ERROR.
    const stream = this.stream;
    if (stream.writableFinished) stream.close(constants.NGHTTP2_NO_ERROR);
    else stream.once('finish', () => stream.close(constants.NGHTTP2_NO_ERROR));
  }

  /** A WebSocket's 101 must answer the key this stream sent upstream (the client never saw it). */
  switchProblem(raw: readonly string[]): string | undefined {
    const key = this.tunnelRequest?.websocketKey;
    return key === undefined ? undefined : switchProblem(raw, key);
  }

  openTunnel(upstream: Socket, idleMs: number, onClosed: () => void): Tunnel {
    const stream = this.stream;
    this.tunnelOpen = true;
    const client: TunnelClient = {
      write: (data) => this.closed || this.write(data),
      pause: () => stream.pause(),
      resume: () => stream.resume(),
      end: () => {
        if (!this.closed) stream.end();
      },
      // After a clean end, NO_ERROR waits for the END_STREAM to be written (RFC 9113 §8.1: the client may stop sending).
      close: (abnormal) => this.reset(abnormal ? constants.NGHTTP2_CANCEL : constants.NGHTTP2_NO_ERROR),
    };
    return new Tunnel(client, upstream, idleMs, onClosed);
  }

  /** The tunnel is open: the stream's DATA (what waited in the window first) goes to it, and its END_STREAM is the client's FIN. */
  startTunnel(): void {
    if (this.closed) return;
    this.stream.on('data', (chunk: Buffer) => this.exchange.onClientTunnelData(chunk));
    this.stream.on('end', () => {
      this.requestEnded = true;
      this.exchange.onClientEnd();
    });
    this.owner.onTunnelOpened();
  }

  /** Reset the stream (not the session): the client sees the response was cut short. */
  abort(): void {
    this.reset(constants.NGHTTP2_INTERNAL_ERROR);
  }

  private reset(code: number): void {
    if (this.closed) return;
    this.resetHere = true;
    this.stream.close(code);
  }

  internalError(err: unknown): void {
    this.owner.worker.log.error({ peer: this.owner.peerAddress, err }, 'internal error: HTTP/2 stream reset');
    this.abort();
  }

  // ---- ClientSide: the response as frames ------------------------------------

  sendContinue(): void {
    if (!this.closed) this.stream.additionalHeaders({ ':status': 100 });
  }

  sendInterim(statusCode: number, _statusMessage: string, raw: readonly string[]): void {
    if (this.closed) return;
    const headers: OutgoingHttpHeaders = { ':status': statusCode };
    addFields(headers, raw, undefined);
    this.respond(() => this.stream.additionalHeaders(headers));
  }

  sendError(reason: ProxyErrorReason, requestId: string, _keepAlive: boolean, extra: HeaderList | undefined, head: boolean): void {
    if (this.closed) return;
    const body = errorBody(reason, requestId);
    const headers: OutgoingHttpHeaders = {
      ':status': STATUS_FOR[reason],
      'content-type': 'text/plain; charset=utf-8',
      'content-length': body.length,
      'x-request-id': requestId,
    };
    if (extra !== undefined) addPairs(headers, extra);
    this.respond(() => {
      this.stream.respond(headers, { endStream: head });
      if (!head) this.stream.end(body, 'latin1');
    });
  }

  sendChallengeAnswer(requestId: string, _keepAlive: boolean, keyAuthorization: string, head: boolean): void {
    if (this.closed) return;
    const headers: OutgoingHttpHeaders = {
      ':status': 200,
      'content-type': 'application/octet-stream',
      'content-length': Buffer.byteLength(keyAuthorization, 'latin1'),
      'x-request-id': requestId,
    };
    this.respond(() => {
      this.stream.respond(headers, { endStream: head });
      if (!head) this.stream.end(keyAuthorization, 'latin1');
    });
  }

  sendPreflight(requestId: string, _keepAlive: boolean, extra: HeaderList): void {
    if (this.closed) return;
    const headers: OutgoingHttpHeaders = { ':status': 204, 'x-request-id': requestId };
    addPairs(headers, extra);
    this.respond(() => this.stream.respond(headers, { endStream: true }));
  }

  sendHead(o: ClientHeadOptions, resp: ResponseHeadInfo & { connectionTokens: string[] | undefined }): void {
    if (this.closed) return;
    // A 101 to an extended CONNECT: the tunnel opens with a 200 (RFC 8441 §5), without Sec-WebSocket-Accept (answered here).
    const headers: OutgoingHttpHeaders = { ':status': o.statusCode === 101 ? 200 : o.statusCode };
    addFields(headers, o.raw, resp.connectionTokens);
    if (o.statusCode === 101) delete headers['sec-websocket-accept'];
    if (!resp.hasRequestId) headers['x-request-id'] = o.requestId;
    if (o.extra !== undefined) addPairs(headers, o.extra);
    if (o.framing === 'length') headers['content-length'] = resp.contentLength;
    this.respond(() => this.stream.respond(headers));
  }

  /**
   * One chunk is held back until the next one or the end, so a body that
   * arrives whole (most small responses) goes out as end(chunk): one DATA
   * frame with END_STREAM instead of a write and an empty end.
   */
  sendBody(chunk: Buffer): boolean {
    if (this.closed) return true;
    // What followed the 101 in the upstream's read: tunnel bytes, never held back.
    if (this.tunnelOpen) return this.write(chunk);
    const held = this.heldChunk;
    this.heldChunk = chunk;
    return held === undefined || this.write(held);
  }

  /** False when the stream is full: the exchange hears `onClientDrain` once it has room. */
  private write(chunk: Buffer): boolean {
    if (this.stream.write(chunk)) return true;
    // Listened for only once a write has filled the stream: most responses never do.
    if (!this.awaitingDrain) {
      this.awaitingDrain = true;
      this.stream.once('drain', () => {
        this.awaitingDrain = false;
        this.exchange.onClientDrain();
      });
    }
    return false;
  }

  endBody(): void {
    if (this.closed) return;
    const held = this.heldChunk;
    this.heldChunk = undefined;
    if (held === undefined) this.stream.end();
    else this.stream.end(held);
  }

  // nghttp2 batches frames per tick already.
  cork(): void {}
  uncork(): void {}
  holdsWrittenBytes(): boolean {
    return true;
  }
  /**
   * The HEADERS frames of one read start as many exchanges: their upstream
   * writes leave together once all are started, not one at a time between them.
   */
  flushUpstreamAfterRead(exchange: Exchange): boolean {
    this.owner.flushUpstreamLater(exchange);
    return true;
  }

  /** Node refuses some header sets an HTTP/1.1 upstream may send (a repeated single-value field): that answer is a 502. */
  private respond(send: () => void): void {
    try {
      send();
    } catch (err) {
      this.owner.worker.log.warn({ reqId: this.exchange.requestId, err: (err as Error).message }, 'response not expressible in HTTP/2');
      this.abort();
    }
  }

  // ---- deadlines and the end -------------------------------------------------

  checkDeadlines(t: number): void {
    if (this.tunnelOpen) return this.exchange.checkTunnelDeadline(t);
    if (this.requestDeadline !== 0 && t >= this.requestDeadline && !this.requestEnded) {
      this.requestDeadline = 0;
      this.exchange.fail('request-timeout', 'request not received within request_timeout');
    }
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    untrack(this);
    // Node's `aborted`: the stream was reset before the response was complete; only the client's resets count.
    if (this.stream.aborted && !this.resetHere) this.owner.onStreamReset();
    this.exchange.onClientGone();
    this.owner.onStreamClosed(this.tunnelOpen);
  }
}

function ignore(): void {}

/** Response fields from the upstream (raw name/value list), without what HTTP/2 must not carry. */
function addFields(headers: OutgoingHttpHeaders, raw: readonly string[], tokens: string[] | undefined): void {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (isDroppedDown(name, tokens)) continue;
    add(headers, name.toLowerCase(), raw[i + 1]!);
  }
}

function addPairs(headers: OutgoingHttpHeaders, pairs: HeaderList): void {
  for (const [name, value] of pairs) add(headers, name.toLowerCase(), value);
}

function add(headers: OutgoingHttpHeaders, name: string, value: string): void {
  const had = headers[name];
  if (had === undefined) headers[name] = value;
  else if (Array.isArray(had)) had.push(value);
  else headers[name] = [String(had), value];
}
