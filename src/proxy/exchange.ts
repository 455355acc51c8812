// One request and its response: the forwarding state machine. The client
// side (a ClientSide, in practice ClientConnection) feeds it the parsed
// request; an UpstreamConnection feeds it the parsed response. Both bodies
// are streamed chunk by chunk with backpressure in each direction and
// re-framed on the way (Content-Length kept, chunked re-encoded), so no peer
// ever sees framing llhttp did not accept.
//
// Where an exchange stands is its Phase; the allowed moves are in NEXT, and
// every move goes through `to()`. The request body streams alongside the
// phases (`requestComplete`): a response may start, and even end, first.
// The concerns around the machine live beside it: request-checks.ts (what a
// head must satisfy), gateway-step.ts (the route's checks), retry-policy.ts
// (when an attempt may be repeated) and tunnel.ts (after a 101).
import type { Socket } from 'node:net';
import type { ConnectionOrigin } from '../l4/proxy-protocol.js';
import type { Logger, LogThrottle } from '../log.js';
import type { UpstreamRuntime } from './upstream-runtime.js';
import type { UpstreamConnection, UpstreamListener } from './upstream-pool.js';
import type { ServerSlot } from '../balancer/types.js';
import type { ParseError } from './llhttp.js';
import { buildUpstreamHead, inspectRequestHeaders, writeHead, inspectResponseHeaders, type ClientHeadOptions, type RequestHeadInfo, type ResponseHeadInfo } from './headers.js';
import { closesConnection, STATUS_FOR, type ProxyErrorReason } from './errors.js';
import type { AcmeChallenges } from './acme-challenge.js';
import { resolvedTarget } from './request-target.js';
import type { AuthResult, ClientCertificate, GatewayRequest, Identity } from '../gateway/auth/index.js';
import { redactQueryParam } from '../gateway/query-credential.js';
import type { RouteRuntime } from './route-runtime.js';
import { deadlineIn, now } from './coarse-clock.js';
import type { LimitsConfig, UnderscorePolicy, UpstreamTimeouts } from '../config/types.js';
import type { WorkerMetrics } from '../metrics/worker-metrics.js';
import type { Router } from './router.js';
import { checkRequest, isPlainId } from './request-checks.js';
import { afterAuthentication, corsStep, type GatewayVerdict, type HeaderList } from './gateway-step.js';
import { BodyReplay, retryableMethod, retryVerdict, type UpstreamFailureKind } from './retry-policy.js';
import type { Tunnel } from './tunnel.js';
import { ErrorCode, SwitchyardError } from '../errors.js';

/**
 *   waiting ─▶ checking ─▶ connecting ─▶ forwarding ─▶ responding ─▶ finished
 *                 │            ▲    ↺        │    │                     ▲
 *                 │            └─────────────┘    └─▶ tunnel ───────────┘
 *                 └─▶ finished (a preflight answered here)
 *   every phase before finished ─▶ failed
 *
 * waiting: parsed behind another request of the connection (pipelining);
 * checking: validated, routed, in the gateway (authentication may be async);
 * connecting: a server picked, its connection not ready (again on a retry);
 * forwarding: the head is upstream, the body may still be streaming;
 * responding: the response head went to the client; tunnel: after a 101.
 */
export type Phase = 'waiting' | 'checking' | 'connecting' | 'forwarding' | 'responding' | 'tunnel' | 'finished' | 'failed';

const NEXT: Readonly<Record<Phase, readonly Phase[]>> = {
  waiting: ['checking', 'failed'],
  checking: ['connecting', 'finished', 'failed'],
  connecting: ['connecting', 'forwarding', 'failed'],
  forwarding: ['connecting', 'responding', 'tunnel', 'failed'],
  responding: ['finished', 'failed'],
  tunnel: ['finished'],
  finished: [],
  failed: [],
};

/**
 * What an exchange needs of the client it answers: an HTTP/1.1 connection
 * (client-connection.ts, which writes HTTP/1.1 bytes) or one HTTP/2 stream
 * (h2-stream.ts, which maps the same calls onto HEADERS and DATA frames).
 * The exchange decides what to send; the client side decides how it looks
 * on the wire.
 */
export interface ClientSide {
  readonly peerAddress: string;
  /** The client connection's endpoints (after a PROXY header: the ones it reported), for PROXY headers sent upstream. */
  readonly origin: ConnectionOrigin;
  /** Came through a TLS listener. */
  readonly secure: boolean;
  /** An HTTP/2 stream (the exchange itself sees every request as HTTP/1.x). */
  readonly http2: boolean;
  /** Headers every response on the connection carries (HSTS). */
  readonly responseHeaders: HeaderList | undefined;
  /** The TLS client certificate, when one was presented. */
  clientCertificate(): ClientCertificate | undefined;
  peerTrusted(): boolean;
  /** The client address used for balancing and limits (the peer, or what trusted proxies report). */
  clientIp(info: RequestHeadInfo): string;
  /** Re-decide whether the client socket is read (an exchange's backpressure changed). */
  refreshReading(): void;
  /** The exchange finished (answered, failed or tunnel closed): the next one may start. */
  onExchangeDone(exchange: Exchange): void;
  /** A 101 arrived: bytes the client sent after the request now belong to the tunnel. */
  startTunnel(exchange: Exchange): void;
  /**
   * Why the upstream's 101 (its header fields) cannot open this client's
   * tunnel, or undefined. An HTTP/1.1 client checks its own handshake; an
   * HTTP/2 WebSocket's Sec-WebSocket-Key was Switchyard's, so is its check.
   */
  switchProblem(raw: readonly string[]): string | undefined;
  /** After a 101: relay raw bytes between the client and `upstream` until either side closes. */
  openTunnel(upstream: Socket, idleMs: number, onClosed: () => void): Tunnel;
  /** `100 Continue`, once the request has passed its checks. */
  sendContinue(): void;
  /** An interim response other than 100 and 101 (103 Early Hints). */
  sendInterim(statusCode: number, statusMessage: string, raw: readonly string[]): void;
  /** A response Switchyard generates itself, whole (errors.ts). `head`: the request was HEAD, so no body. */
  sendError(reason: ProxyErrorReason, requestId: string, keepAlive: boolean, extra: HeaderList | undefined, head: boolean): void;
  /** 200 with an ACME HTTP-01 key authorization, answered here (never a route). */
  sendChallengeAnswer(requestId: string, keepAlive: boolean, keyAuthorization: string, head: boolean): void;
  /** 204 to a CORS preflight, answered here. */
  sendPreflight(requestId: string, keepAlive: boolean, headers: HeaderList): void;
  /** The upstream's response head (or its 101), with the headers the client must not see removed. */
  sendHead(head: ClientHeadOptions, resp: ResponseHeadInfo & { connectionTokens: string[] | undefined }): void;
  /** Response body bytes (chunk-encoded for HTTP/1.1 when `chunked`); false: the client is full, wait for onClientDrain(). */
  sendBody(chunk: Buffer, chunked: boolean): boolean;
  /** The response body is complete. */
  endBody(chunked: boolean): void;
  /** Writes between cork() and uncork() go out together (one upstream read's worth). */
  cork(): void;
  uncork(): void;
  /** Bytes given to sendBody may still be read later (queued behind a full socket, or held back). */
  holdsWrittenBytes(): boolean;
  /**
   * Whether the upstream head (and what body came with it) may wait, corked,
   * until the client side calls `exchange.flushUpstream()`: an HTTP/1.1
   * connection holds it for the body bytes of the read it is delivering
   * (`bodyStillComing`); an HTTP/2 session for the other streams of its read.
   */
  flushUpstreamAfterRead(exchange: Exchange, bodyStillComing: boolean): boolean;
  /** Reset the connection: the client must see an abort, never a short success. */
  abort(): void;
  internalError(err: unknown): void;
}

/** What an exchange needs of the worker it runs in. */
export interface ExchangeContext {
  readonly limits: LimitsConfig;
  readonly router: Router<RouteRuntime>;
  readonly metrics: WorkerMetrics;
  readonly log: Logger;
  /** Bounds repeated failure lines (per reason: a burst of 100, then 10 a second). */
  readonly logThrottle: LogThrottle;
  readonly accessLog: boolean;
  readonly underscores: UnderscorePolicy;
  readonly dropUnderscored: boolean;
  /** The worker is draining: answers close their connection. */
  readonly closing: boolean;
  /** HTTP-01 tokens from the primary, when a listener has ACME; the prefix is answered before routing. */
  readonly acmeChallenges: AcmeChallenges | undefined;
  nextRequestId(): string;
  onRequestDone(upstream: UpstreamRuntime | undefined, server: ServerSlot | undefined, status: number, route: string | undefined, startedAt: number): void;
}

/**
 * What the request asks of an Upgrade: nothing; `offered`: an HTTP/1.1
 * Upgrade (llhttp saw Connection: upgrade with an Upgrade header), served
 * as a plain request when its route does not tunnel the protocol;
 * `required`: an HTTP/2 extended CONNECT (RFC 8441), which is a tunnel or
 * nothing, so refused on such a route.
 */
export type UpgradeAsk = 'none' | 'offered' | 'required';

const CRLF = '\r\n';
const LAST_CHUNK = '0\r\n\r\n';
/** A head callback's verdict telling llhttp to stop after the head. */
const STOP_AFTER_HEAD = 2;

export class Exchange implements UpstreamListener {
  readonly requestId: string;
  readonly startedAt = Date.now();
  private phase: Phase = 'waiting';
  private readonly info: RequestHeadInfo;
  private target: string;
  private upstream: UpstreamRuntime | undefined;
  private routeName: string | undefined;
  private clientIp = '';
  /** The request as authentication and authorization see it, built once. */
  private gateway: GatewayRequest | undefined;
  /** Who the gateway authenticated, for identity headers and the access log. */
  private identity: Identity | undefined;
  /** The request headers sent upstream when the route rewrites them. */
  private upstreamRaw: readonly string[] | undefined;
  /** Headers the gateway adds to the response (CORS, RateLimit-*). */
  private extraHeaders: HeaderList | undefined;
  private route: RouteRuntime | undefined;
  /** The route's effective timeouts (route overrides over the upstream's). */
  private timeouts!: UpstreamTimeouts;
  server: ServerSlot | undefined;
  private conn: UpstreamConnection | undefined;
  /** Servers that failed this request, excluded from its retries. */
  private tried: Set<ServerSlot> | undefined;
  /** Servers picked so far (the first attempt included). */
  private attempts = 0;
  private freshRetryUsed = false;
  /** Why the last attempt failed: the answer when no server is left to retry on. */
  private lastFailure: ProxyErrorReason = 'upstream-connect-failed';

  /** Body chunks that arrived before the upstream was ready (the client is paused meanwhile). */
  private pending: Buffer[] | undefined;
  private requestBodyBytes = 0;
  private bodySentBytes = 0;
  /** Kept until the response starts when the request may be retried; undefined otherwise. */
  private replay: BodyReplay | undefined;
  /** Repeating this request is harmless: an idempotent method, or POST/PATCH with an Idempotency-Key (`keyed`). */
  private retryable = false;
  private keyed = false;
  /** Absolute cap from timeouts.total, or 0. */
  private totalDeadline = 0;
  /** The client's request has been read to its end (independent of the phase). */
  requestComplete = false;
  private upstreamNeedsDrain = false;
  private upstreamKeepAlive = false;
  private framing: 'length' | 'chunked' | 'close' | 'none' = 'none';
  private status = 0;
  private responseBytes = 0;
  private tunnel: Tunnel | undefined;
  /**
   * The request asked for an Upgrade its route allows, so a 101 may turn the
   * exchange into a tunnel. Until the 101 arrives it is an ordinary request:
   * framed like any other, and nothing after it is forwarded.
   */
  private upgrading = false;
  /** Whether the client connection may carry another request after this one. */
  keepAlive: boolean;

  constructor(
    private readonly client: ClientSide,
    private readonly ctx: ExchangeContext,
    readonly method: string,
    private readonly url: string,
    private readonly versionMinor: number,
    private readonly versionMajor: number,
    private readonly raw: string[],
    private readonly upgradeAsk: UpgradeAsk,
    clientKeepAlive: boolean,
  ) {
    this.info = inspectRequestHeaders(raw);
    this.requestId = this.info.requestId !== undefined && isPlainId(this.info.requestId) ? this.info.requestId : ctx.nextRequestId();
    this.target = url;
    this.keepAlive = clientKeepAlive;
    this.extraHeaders = client.responseHeaders;
  }

  /** Answered, failed or aborted: nothing more happens. */
  get finished(): boolean {
    return this.phase === 'finished' || this.phase === 'failed';
  }

  private to(next: Phase): void {
    if (!NEXT[this.phase].includes(next)) throw new SwitchyardError(ErrorCode.ExchangePhase, `exchange ${this.requestId}: no move from ${this.phase} to ${next}`);
    this.phase = next;
  }

  /** The upstream head is sent and the body (what has arrived of it) goes straight up. */
  private get headSent(): boolean {
    return this.phase === 'forwarding' || this.phase === 'responding';
  }

  // ---- client side -------------------------------------------------------

  /** The exchange becomes the connection's active one: validate, route, run the gateway, connect. */
  start(): void {
    this.to('checking');
    const ctx = this.ctx;
    const checked = checkRequest({ method: this.method, url: this.url, versionMajor: this.versionMajor, versionMinor: this.versionMinor }, this.info, ctx.limits, ctx.underscores);
    if (!checked.ok) return this.fail(checked.reason);
    this.target = checked.target;
    if (this.requestBodyBytes > ctx.limits.maxBodyBytes) return this.fail('body-too-large');
    if (ctx.acmeChallenges?.claims(this.target)) return this.answerAcmeChallenge(ctx.acmeChallenges);
    const matched = ctx.router.match(this.info.host, this.method, this.target, this.raw);
    if (matched === undefined) return this.fail('no-route');
    if ('refused' in matched) return this.fail(matched.refused, matched.detail);
    const route = (this.route = matched.target);
    this.routeName = route.name;
    const upstream = (this.upstream = route.upstream);
    this.timeouts = route.timeouts;
    this.upgrading = this.upgradeAsk !== 'none' && route.allowsUpgrade(this.info.upgrade);
    if (this.upgradeAsk === 'required' && !this.upgrading) return this.fail('upgrade-not-allowed', `route ${route.name} does not tunnel ${JSON.stringify(this.info.upgrade)}`);
    // Also without retries: a request on a reused connection the server closed is sent once more on a fresh one.
    ({ retryable: this.retryable, keyed: this.keyed } = retryableMethod(this.method, this.raw, upstream.config.retryIdempotencyKey));
    if (route.retries > 0 && this.retryable && upstream.config.retryBodyBytes > 0 && !this.upgrading) this.replay = new BodyReplay(upstream.config.retryBodyBytes);
    if (this.timeouts.totalMs !== undefined) this.totalDeadline = deadlineIn(this.timeouts.totalMs);
    this.clientIp = this.client.clientIp(this.info);
    const cors = corsStep(route.policy, this.method, this.raw);
    if (cors.preflight !== undefined) return this.answerPreflight(cors.preflight);
    if (cors.responseHeaders !== undefined) this.extraHeaders = this.extraHeaders === undefined ? cors.responseHeaders : [...this.extraHeaders, ...cors.responseHeaders];
    const authenticator = route.policy.authenticator;
    if (authenticator === undefined) return this.afterAuth(undefined);
    const result = authenticator.authenticate(this.gatewayRequest());
    if (result instanceof Promise) {
      result
        .then(
          (r) => this.afterAuth(r),
          (err: unknown) => this.fail('internal-error', `authentication failed unexpectedly: ${String(err)}`),
        )
        .catch((err: unknown) => this.client.internalError(err));
    } else this.afterAuth(result);
  }

  /** Authorization, rate limit and header rules once authentication (if any) has answered; then connect. */
  private afterAuth(result: AuthResult | undefined): void {
    if (this.finished) return; // the client left while a JWKS was being fetched
    const verdict = afterAuthentication(this.route!.policy, result, {
      request: this.gatewayRequest(),
      info: this.info,
      metrics: this.ctx.metrics,
      dropUnderscored: this.ctx.dropUnderscored,
    });
    if (verdict instanceof Promise) {
      // A global rate limit asking Redis (bounded by redis.timeout): the request waits like it does for a JWKS.
      verdict
        .then(
          (v) => this.afterGateway(v),
          (err: unknown) => this.fail('internal-error', `rate limit failed unexpectedly: ${String(err)}`),
        )
        .catch((err: unknown) => this.client.internalError(err));
    } else this.afterGateway(verdict);
  }

  /** The gateway's verdict: refuse, or connect. */
  private afterGateway(verdict: GatewayVerdict): void {
    if (this.finished) return; // the client left while Redis was asked
    this.identity = verdict.identity;
    if (!verdict.pass) return this.fail(verdict.reason, verdict.detail, verdict.headers);
    if (verdict.responseHeaders !== undefined) this.extraHeaders = this.extraHeaders === undefined ? verdict.responseHeaders : [...this.extraHeaders, ...verdict.responseHeaders];
    this.upstreamRaw = verdict.upstreamHeaders;
    if (this.info.expect !== undefined && !this.requestComplete) this.client.sendContinue();
    this.connect();
  }

  private gatewayRequest(): GatewayRequest {
    return (this.gateway ??= { method: this.method, target: this.target, rawHeaders: this.raw, clientIp: this.clientIp, clientCert: this.client.clientCertificate() });
  }

  /** Under /.well-known/acme-challenge/: the token's answer, or 404; never a route. */
  private answerAcmeChallenge(challenges: AcmeChallenges): void {
    const answer = challenges.answer(this.method, this.target, this.info.host);
    if (answer.status === 404) return this.fail('acme-unknown-challenge');
    this.status = 200;
    if (this.bodyStillComing() || this.ctx.closing) this.keepAlive = false;
    this.client.sendChallengeAnswer(this.requestId, this.keepAlive, answer.body, this.method === 'HEAD');
    this.finish();
  }

  /** A CORS preflight, answered here: the upstream never sees it. */
  private answerPreflight(headers: HeaderList): void {
    this.status = 204;
    if (this.bodyStillComing() || this.ctx.closing) this.keepAlive = false;
    this.client.sendPreflight(this.requestId, this.keepAlive, headers);
    this.finish();
  }

  /** The request body's Content-Length, or -1 when it has none (chunked, or no body). */
  fixedBodyLength(): number {
    return this.info.chunked ? -1 : this.info.contentLength;
  }

  onRequestBody(chunk: Buffer): void {
    this.requestBodyBytes += chunk.length;
    if (this.phase === 'waiting') {
      // Pipelined behind the active exchange: the client is paused, so this holds at most one read.
      (this.pending ??= []).push(chunk);
      return;
    }
    if (this.requestBodyBytes > this.ctx.limits.maxBodyBytes) return this.fail('body-too-large');
    if (this.finished) return; // answered already: discard
    if (!this.headSent) {
      (this.pending ??= []).push(chunk);
      this.client.refreshReading();
      return;
    }
    this.sendBodyChunk(chunk);
  }

  /** Whether request body bytes given to onRequestBody may still be read: pending, kept for a retry, queued upstream, in a tunnel. */
  retainsClientBytes(): boolean {
    if (this.tunnel !== undefined || this.replay !== undefined) return true;
    if (this.pending !== undefined && this.pending.length > 0) return true;
    return this.conn !== undefined && this.conn.socket.writableLength > 0;
  }

  onRequestComplete(): void {
    this.requestComplete = true;
    if (this.headSent && this.info.chunked) this.conn?.write(LAST_CHUNK, 'latin1');
  }

  /** Whether the client socket must stop being read for this exchange's sake. */
  blocksClientReading(): boolean {
    if (this.finished) return false;
    return this.upstreamNeedsDrain || (this.pending !== undefined && this.pending.length > 0) || (!this.headSent && this.requestBodyBytes > 0);
  }

  onClientDrain(): void {
    if (this.tunnel !== undefined) this.tunnel.onClientDrain();
    else this.conn?.socket.resume();
  }

  /** The client went away (closed or reset) before this exchange finished. */
  onClientGone(): void {
    if (this.tunnel !== undefined) return this.tunnel.close();
    if (this.finished) return;
    this.dropUpstream();
    this.to('failed');
    this.record(this.status === 0 ? 499 : this.status);
  }

  /** Client bytes once the tunnel is open (the client connection holds them until the 101). */
  onClientTunnelData(data: Buffer): void {
    this.tunnel?.fromClient(data);
  }

  /** Closes a tunnel that carried no byte for timeouts.tunnel_idle. */
  checkTunnelDeadline(t: number): void {
    if (this.tunnel?.expireIdle(t)) {
      this.ctx.log.info({ reqId: this.requestId, server: this.server?.address, idleMs: this.timeouts.tunnelIdleMs }, 'tunnel closed: idle');
    }
  }

  onClientEnd(): void {
    this.tunnel?.onClientEnd();
  }

  /** After a 101: the upstream socket leaves its pool and relays raw bytes until either side closes. */
  private startTunnel(conn: UpstreamConnection): void {
    this.to('tunnel');
    conn.takeOverForTunnel();
    this.conn = undefined;
    this.tunnel = this.client.openTunnel(conn.socket, this.timeouts.tunnelIdleMs, () => this.endTunnel());
  }

  private endTunnel(): void {
    if (this.finished) return;
    this.responseBytes += this.tunnel!.bytesFromUpstream;
    this.upstream!.onEnd(this.server!, false);
    this.keepAlive = false;
    this.finish();
  }

  private sendBodyChunk(chunk: Buffer): void {
    const conn = this.conn!;
    this.bodySentBytes += chunk.length;
    this.replay?.record(chunk);
    let ok: boolean;
    if (this.info.chunked) {
      conn.socket.cork();
      conn.write(chunk.length.toString(16) + CRLF, 'latin1');
      conn.write(chunk);
      ok = conn.write(CRLF, 'latin1');
      conn.socket.uncork();
    } else {
      ok = conn.write(chunk);
    }
    if (!ok) {
      this.upstreamNeedsDrain = true;
      this.client.refreshReading();
    }
  }

  // ---- upstream side -----------------------------------------------------

  private connect(): void {
    const upstream = this.upstream!;
    const pick = { clientIp: this.clientIp, key: upstream.hashKeyOf?.(this.raw) };
    const server = upstream.balancer.pick(pick, this.tried);
    if (server === undefined) return this.fail(this.attempts === 0 ? 'no-healthy-server' : this.lastFailure);
    this.attempts++;
    this.attachTo(server, this.upgrading);
  }

  private attachTo(server: ServerSlot, fresh: boolean): void {
    this.to('connecting');
    const upstream = this.upstream!;
    this.server = server;
    upstream.onStart(server);
    const conn = upstream.pools[server.index]!.acquire(this, fresh, this.client.origin);
    this.conn = conn;
    if (conn.connected) this.onUpstreamConnect(conn);
    else conn.limitConnectTime(this.capped(deadlineIn(this.timeouts.connectMs)));
  }

  onUpstreamConnect(conn: UpstreamConnection): void {
    const info = this.info;
    const framing = !info.chunked && info.contentLength <= 0 ? undefined : info.chunked ? 'chunked' : { contentLength: info.contentLength };
    const peer = this.client.peerAddress;
    const trusted = this.client.peerTrusted();
    const head = buildUpstreamHead({
      method: this.method,
      target: this.route!.upstreamTarget(this.route!.rewrites ? resolvedTarget(this.target) : this.target),
      raw: this.upstreamRaw ?? this.raw,
      filtered: this.upstreamRaw !== undefined,
      dropUnderscored: this.ctx.dropUnderscored,
      info,
      forwardedFor: trusted && info.forwardedFor !== undefined ? `${info.forwardedFor}, ${peer}` : peer,
      forwardedProto: trusted && info.forwardedProto !== undefined ? info.forwardedProto : this.client.secure ? 'https' : 'http',
      forwardedHost: trusted && info.forwardedHost !== undefined ? info.forwardedHost : info.host,
      requestId: this.requestId,
      bodyFraming: framing,
      upgrade: this.upgrading,
      defaultHost: this.server!.address,
    });
    this.to('forwarding');
    conn.socket.cork();
    writeHead(conn, head, !info.chunked && info.contentLength > 0);
    const pending = this.pending;
    this.pending = undefined;
    if (pending !== undefined) for (const chunk of pending) this.sendBodyChunk(chunk);
    if (this.requestComplete && info.chunked) conn.write(LAST_CHUNK, 'latin1');
    // A body still to come most often follows the head in the same client
    // read: the head and that body then leave in one writev, where they took
    // a syscall (and a wake-up of the server) each.
    if (this.client.flushUpstreamAfterRead(this, this.bodyStillComing())) this.corked = conn.socket;
    else conn.socket.uncork();
    conn.deadline = this.capped(deadlineIn(this.timeouts.responseMs));
    this.client.refreshReading();
  }

  /** The upstream socket left corked by onUpstreamConnect until the client's read is through. */
  private corked: Socket | undefined;

  /** The client side is through with its read: what it gave for upstream goes out now. */
  flushUpstream(): void {
    const socket = this.corked;
    this.corked = undefined;
    socket?.uncork();
  }

  beforeUpstreamData(): void {
    this.client.cork();
  }

  afterUpstreamData(): void {
    this.client.uncork();
  }

  holdsUpstreamBytes(): boolean {
    return this.client.holdsWrittenBytes();
  }

  onUpstreamHead(statusCode: number, statusMessage: string, raw: string[], upgrade: boolean, upstreamKeepAlive: boolean): number | void {
    const client = this.client;
    if (statusCode < 200 && statusCode !== 101) {
      // Interim responses: our own 100 Continue was already sent; relay others (103) to HTTP/1.1 clients.
      if (statusCode !== 100 && this.versionMinor >= 1) client.sendInterim(statusCode, statusMessage, raw);
      return;
    }
    const conn = this.conn!;
    if (statusCode === 101 && !(upgrade && this.upgrading && this.requestComplete)) {
      // Switching protocols was not asked for (or not before the request was whole): not a response we can relay.
      this.fail('upstream-bad-response', '101 Switching Protocols to a request that did not ask for it');
      return STOP_AFTER_HEAD;
    }
    const switchProblem = statusCode === 101 ? client.switchProblem(raw) : undefined;
    if (switchProblem !== undefined) {
      this.fail('upstream-bad-response', switchProblem);
      return STOP_AFTER_HEAD;
    }
    const resp = inspectResponseHeaders(raw);
    this.status = statusCode;
    this.replay = undefined;
    this.upstream!.recordOutcome(this.server!, statusCode < 500);
    this.upstreamKeepAlive = upstreamKeepAlive;
    if (statusCode === 101) {
      // What the client was answered: HTTP/2 has no 101, its tunnel opens with a 200 (RFC 8441 §5).
      if (client.http2) this.status = 200;
      client.sendHead({ statusCode, statusMessage, raw, requestId: this.requestId, framing: 'none', keepAlive: false, http10: false, upgrade: true }, resp);
      this.startTunnel(conn);
      client.startTunnel(this);
      return;
    }
    this.to('responding');
    const isHead = this.method === 'HEAD';
    const noBody = isHead || statusCode === 204 || statusCode === 304;
    if (statusCode === 204) this.framing = 'none';
    else if (resp.hasContentLength) this.framing = 'length';
    else if (noBody) this.framing = 'none';
    else if (this.versionMinor >= 1) this.framing = 'chunked';
    else this.framing = 'close';
    if (!this.requestComplete && this.framing === 'close') this.keepAlive = false;
    if (this.ctx.closing) this.keepAlive = false;
    client.sendHead(
      {
        statusCode,
        statusMessage,
        raw: this.route!.policy.responseHeaders(raw),
        requestId: this.requestId,
        framing: this.framing,
        keepAlive: this.keepAlive,
        http10: this.versionMinor === 0,
        upgrade: false,
        extra: this.extraHeaders,
      },
      resp,
    );
    conn.deadline = this.capped(deadlineIn(this.timeouts.idleMs));
    if (isHead) return 1;
    if (this.framing === 'length' && !noBody && resp.contentLength > 0) return conn.passBodyThrough(resp.contentLength);
  }

  onUpstreamBody(chunk: Buffer): void {
    const conn = this.conn!;
    conn.deadline = this.capped(deadlineIn(this.timeouts.idleMs));
    this.responseBytes += chunk.length;
    if (!this.client.sendBody(chunk, this.framing === 'chunked')) conn.socket.pause();
  }

  onUpstreamMessageComplete(): void {
    if (this.phase !== 'responding') return; // the end of an interim (1xx) response
    const conn = this.conn!;
    this.conn = undefined;
    this.client.endBody(this.framing === 'chunked');
    this.upstream!.onEnd(this.server!, false);
    // The connection can serve another request only if this one was sent whole,
    // and not after an Upgrade offer the server declined: it may still expect to switch.
    if (this.upstreamKeepAlive && this.requestComplete && !this.upgrading) this.upstream!.pools[this.server!.index]!.release(conn);
    else conn.destroy(!this.upstreamKeepAlive ? 'upstream-asked' : !this.requestComplete ? 'request-incomplete' : 'upgrade');
    // Answered before the request body ended: stop reading it, close after the response.
    if (this.framing === 'close' || !this.requestComplete) this.keepAlive = false;
    this.finish();
  }

  onUpstreamUpgraded(rest: Buffer): void {
    this.responseBytes += rest.length;
    this.client.sendBody(rest, false);
  }

  onUpstreamDrain(): void {
    this.upstreamNeedsDrain = false;
    this.client.refreshReading();
  }

  onUpstreamFailure(error: Error | ParseError, kind: UpstreamFailureKind): void {
    if (this.finished || this.conn === undefined) return;
    const conn = this.conn;
    this.conn = undefined;
    const server = this.server!;
    const upstream = this.upstream!;
    upstream.onEnd(server, true);
    const verdict = retryVerdict({
      kind,
      reused: conn.reused,
      received: conn.received,
      freshRetryUsed: this.freshRetryUsed,
      replayable: this.replayable(),
      attempts: this.attempts,
      retries: this.route!.retries,
      budgetAllows: () => upstream.retryAllowed(),
    });
    if (verdict === 'fresh-connection') {
      this.freshRetryUsed = true;
      this.rewind();
      return this.attachTo(server, true);
    }
    upstream.recordOutcome(server, false);
    if (this.phase === 'responding') return this.abortResponse(`upstream ${kind} error after response began: ${error.message}`);
    if (kind === 'parse') return this.fail('upstream-bad-response', error.message);
    this.lastFailure = kind === 'connect' ? 'upstream-connect-failed' : 'upstream-reset';
    if (verdict === 'another-server') {
      const what = kind === 'connect' ? 'upstream connect failed, retrying' : 'upstream failed before answering, retrying';
      this.ctx.log.debug({ reqId: this.requestId, server: server.address, err: error.message }, what);
      return this.retry();
    }
    this.fail(this.lastFailure, error.message);
  }

  /** Repeating the request is harmless and its body (if any) is still at hand. */
  private replayable(): boolean {
    return this.retryable && !this.upgrading && (this.bodySentBytes === 0 || (this.replay !== undefined && this.replay.whole));
  }

  /** Makes the body sent so far pending again, to be sent after the next head. */
  private rewind(): void {
    if (this.bodySentBytes === 0) return;
    this.pending = [...this.replay!.takeAll(), ...(this.pending ?? [])];
    this.bodySentBytes = 0;
  }

  private retry(): void {
    this.rewind();
    // Built only now: a request that succeeds at once allocates no set.
    (this.tried ??= new Set()).add(this.server!);
    const before = this.attempts;
    this.connect();
    if (this.attempts > before) this.upstream!.onRetry(this.server!, this.keyed);
  }

  onUpstreamDeadline(): void {
    const timeouts = this.timeouts;
    const total = this.totalDeadline !== 0 && now() >= this.totalDeadline;
    if (this.phase === 'responding') {
      if (!total) this.upstream!.recordOutcome(this.server!, false);
      return this.abortResponse(total ? `request exceeded timeouts.total (${timeouts.totalMs}ms)` : `upstream idle for ${timeouts.idleMs}ms during the response body`);
    }
    const conn = this.conn;
    this.conn = undefined;
    if (conn !== undefined) {
      this.upstream!.onEnd(this.server!, true);
      if (!total) this.upstream!.recordOutcome(this.server!, false);
      conn.destroy('error');
    }
    this.fail('upstream-timeout', total ? `request exceeded timeouts.total (${timeouts.totalMs}ms)` : `no response within ${timeouts.responseMs}ms`);
  }

  /** A deadline no later than timeouts.total allows. */
  private capped(deadline: number): number {
    return this.totalDeadline !== 0 && this.totalDeadline < deadline ? this.totalDeadline : deadline;
  }

  // ---- endings -----------------------------------------------------------

  /** The URL for the log: a credential passed in the query (API key, token) is redacted. */
  private loggedUrl(): string {
    const param = this.route?.policy.credentialQueryParam;
    return param === undefined ? this.url : redactQueryParam(this.url, param);
  }

  /**
   * An answer given before the request is fully read can keep the connection
   * only if no body is still on its way (a GET is answered from inside its
   * head callback, before llhttp reports the message complete).
   */
  private bodyStillComing(): boolean {
    return !this.requestComplete && (this.info.chunked || this.info.contentLength > 0);
  }

  /** Answer with a generated error, or abort the client if the response has begun. */
  fail(reason: ProxyErrorReason, detail?: string, extra?: HeaderList): void {
    if (this.finished) return;
    if (this.phase === 'tunnel') return this.tunnel!.close();
    if (this.phase === 'responding') return this.abortResponse(detail ?? reason);
    this.dropUpstream();
    this.status = STATUS_FOR[reason];
    if (closesConnection(reason) || this.bodyStillComing() || this.ctx.closing) this.keepAlive = false;
    this.ctx.logThrottle.warn(
      this.ctx.log,
      reason,
      { reqId: this.requestId, status: this.status, reason, detail, method: this.method, url: this.loggedUrl(), upstream: this.upstream?.config.name, server: this.server?.address },
      'request failed',
    );
    const headers = extra === undefined ? this.extraHeaders : this.extraHeaders === undefined ? extra : [...extra, ...this.extraHeaders];
    this.client.sendError(reason, this.requestId, this.keepAlive, headers, this.method === 'HEAD');
    this.end('failed');
  }

  /** The response is partly sent and can't be completed: the client must see an abort, never a short success. */
  private abortResponse(why: string): void {
    if (this.finished) return;
    this.ctx.log.warn({ reqId: this.requestId, reason: why, upstream: this.upstream?.config.name, server: this.server?.address }, 'response aborted');
    this.dropUpstream();
    this.keepAlive = false;
    this.to('failed');
    this.record(this.status);
    this.client.abort();
  }

  /** Abandons the upstream request: a reset, so the server stops at once instead of reading a body that will never end. */
  private dropUpstream(): void {
    const conn = this.conn;
    if (conn === undefined) return;
    this.conn = undefined;
    this.upstream!.onEnd(this.server!, true);
    conn.destroy('abandoned', true);
  }

  /** Answered in full (or the tunnel closed): the connection moves on. */
  private finish(): void {
    this.end('finished');
  }

  /** Answered, by the upstream or by Switchyard itself: recorded, and the connection moves on. */
  private end(phase: 'finished' | 'failed'): void {
    this.to(phase);
    this.record(this.status);
    this.client.onExchangeDone(this);
  }

  private record(status: number): void {
    const ctx = this.ctx;
    ctx.onRequestDone(this.upstream, this.server, status, this.routeName, this.startedAt);
    if (ctx.accessLog) {
      ctx.log.info(
        {
          reqId: this.requestId,
          // The client as balancing and limits saw it (after a trusted PROXY header or X-Forwarded-For).
          client: this.clientIp || this.client.peerAddress,
          method: this.method,
          proto: this.client.http2 ? 'HTTP/2' : `HTTP/${this.versionMajor}.${this.versionMinor}`,
          tls: this.client.secure,
          path: this.loggedUrl(),
          status,
          route: this.routeName,
          identity: this.identity?.subject,
          upstream: this.upstream?.config.name,
          server: this.server?.address,
          ms: Date.now() - this.startedAt,
          bytesIn: this.requestBodyBytes,
          bytes: this.responseBytes,
        },
        'access',
      );
    }
  }
}
