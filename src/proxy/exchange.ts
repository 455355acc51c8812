// One request and its response: the forwarding state machine. The client
// side (ClientConnection) feeds it the parsed request; an UpstreamConnection
// feeds it the parsed response. Both bodies are streamed chunk by chunk with
// backpressure in each direction and re-framed on the way (Content-Length
// kept, chunked re-encoded), so no peer ever sees framing llhttp did not
// accept.
import type { Socket } from 'node:net';
import type { ClientConnection } from './client-connection.js';
import type { UpstreamRuntime } from './upstream-runtime.js';
import type { UpstreamConnection, UpstreamListener } from './upstream-pool.js';
import type { ServerSlot } from '../balancer/types.js';
import type { ParseError } from './llhttp.js';
import { buildClientHead, buildUpstreamHead, clientEndToEndHeaders, inspectRequestHeaders, inspectResponseHeaders, type RequestHeadInfo } from './headers.js';
import { errorResponse, preflightResponse, STATUS_FOR, type ProxyErrorReason } from './errors.js';
import type { AuthResult, GatewayRequest, Identity } from '../gateway/auth/index.js';
import { rateLimitHeaders, rateLimitKey } from '../gateway/rate-limit.js';
import { redactQueryParam } from '../gateway/route-runtime.js';
import { deadlineIn, now } from './coarse-clock.js';
import type { RouteRuntime } from '../gateway/route-runtime.js';
import type { UpstreamTimeouts } from '../config/types.js';

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
/** Errors after which the request stream can't be trusted: the connection closes. */
const CLOSES_CONNECTION = new Set<ProxyErrorReason>([
  'bad-request',
  'bad-host',
  'connect-method',
  'foreign-absolute-form',
  'unsupported-version',
  'body-too-large',
  'url-too-long',
  'headers-too-large',
  'headers-timeout',
  'request-timeout',
  'expectation-failed',
]);
const CRLF = '\r\n';
const LAST_CHUNK = '0\r\n\r\n';
const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';
/** A head callback's verdict telling llhttp to stop after the head. */
const STOP_AFTER_HEAD = 2;
/** Host header value: reg-name, IPv4 or [IPv6], optional port (RFC 3986 §3.2.2). */
const VALID_HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::\d*)?$/;

export class Exchange implements UpstreamListener {
  readonly requestId: string;
  readonly startedAt = Date.now();
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
  private extraHeaders: ReadonlyArray<readonly [string, string]> | undefined;
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
  /**
   * The body sent so far, kept (up to retry_body_bytes) until the response
   * starts so an idempotent request can be replayed to another server;
   * undefined once it outgrew that or when the request may not be retried.
   */
  private replay: Buffer[] | undefined;
  private replayBytes = 0;
  /** Absolute cap from timeouts.total, or 0. */
  private totalDeadline = 0;
  requestComplete = false;
  private started = false;
  private headSent = false;
  private upstreamNeedsDrain = false;
  /** Set once the exchange has nothing left to do upstream (answered or failed). */
  private responseStarted = false;
  responseComplete = false;
  private framing: 'length' | 'chunked' | 'close' | 'none' = 'none';
  private status = 0;
  private responseBytes = 0;
  /** The upstream socket once a 101 turned the exchange into a raw tunnel. */
  private tunnelSocket: Socket | undefined;
  /** When the tunnel is closed for want of a byte in either direction. */
  private tunnelDeadline = 0;
  /**
   * The request asked for an Upgrade its route allows, so a 101 may turn the
   * exchange into a tunnel. Until the 101 arrives it is an ordinary request:
   * framed like any other, and nothing after it is forwarded.
   */
  private upgrading = false;
  /** Whether the client connection may carry another request after this one. */
  keepAlive: boolean;
  private errorReason: ProxyErrorReason | undefined;
  private done = false;

  constructor(
    private readonly client: ClientConnection,
    readonly method: string,
    private readonly url: string,
    private readonly versionMinor: number,
    private readonly versionMajor: number,
    private readonly raw: string[],
    /** llhttp saw Connection: upgrade with an Upgrade header. */
    private readonly upgradeRequested: boolean,
    clientKeepAlive: boolean,
  ) {
    this.info = inspectRequestHeaders(raw);
    this.requestId = this.info.requestId !== undefined && isPlainId(this.info.requestId) ? this.info.requestId : client.worker.nextRequestId();
    this.target = url;
    this.keepAlive = clientKeepAlive;
  }

  /** Answered, failed or aborted: nothing more happens. */
  get finished(): boolean {
    return this.done;
  }

  // ---- client side -------------------------------------------------------

  /** The exchange becomes the connection's active one: validate, route, connect. */
  start(): void {
    this.started = true;
    const reason = this.validate();
    if (reason !== undefined) return this.fail(reason);
    if (this.requestBodyBytes > this.client.worker.limits.maxBodyBytes) return this.fail('body-too-large');
    const matched = this.client.worker.router.match(this.info.host, this.method, this.target, this.raw);
    if (matched === undefined) return this.fail('no-route');
    const route = (this.route = matched.target);
    this.routeName = route.name;
    const upstream = (this.upstream = route.upstream);
    this.timeouts = route.timeouts;
    this.upgrading = this.upgradeRequested && route.allowsUpgrade(this.info.upgrade);
    if (route.retries > 0 && upstream.config.retryBodyBytes > 0 && IDEMPOTENT.has(this.method) && !this.upgrading) this.replay = [];
    if (this.timeouts.totalMs !== undefined) this.totalDeadline = deadlineIn(this.timeouts.totalMs);
    this.clientIp = this.client.clientIp(this.info);
    if (route.cors !== undefined) {
      const origin = headerValue(this.raw, 'origin');
      const preflightMethod = this.method === 'OPTIONS' ? headerValue(this.raw, 'access-control-request-method') : undefined;
      if (origin !== undefined && preflightMethod !== undefined) {
        return this.answerPreflight(route.cors.preflight(origin, preflightMethod, headerValue(this.raw, 'access-control-request-headers')).headers);
      }
      this.extraHeaders = route.cors.responseHeaders(origin);
    }
    if (route.authenticator === undefined) return this.afterAuth(undefined);
    const result = route.authenticator.authenticate(this.gatewayRequest());
    if (result instanceof Promise) {
      result.then(
        (r) => this.afterAuth(r),
        (err: unknown) => this.fail('internal-error', `authentication failed unexpectedly: ${String(err)}`),
      ).catch((err: unknown) => this.client.internalError(err));
    } else this.afterAuth(result);
  }

  /** Authorization, rate limit and header rules once authentication (if any) has answered; then forward. */
  private afterAuth(result: AuthResult | undefined): void {
    if (this.done) return; // the client left while a JWKS was being fetched
    const route = this.route!;
    const metrics = this.client.worker.metrics;
    let identity: Identity | undefined;
    if (result !== undefined) {
      if (!result.ok) {
        metrics.gatewayRefusal(route.name, 'auth');
        return this.fail('unauthorized', result.reason, result.wwwAuthenticate === undefined ? undefined : [['WWW-Authenticate', result.wwwAuthenticate]]);
      }
      identity = this.identity = result.identity;
    }
    if (route.authorizer !== undefined) {
      const decision = route.authorizer(this.gatewayRequest(), identity);
      if (!decision.ok) {
        metrics.gatewayRefusal(route.name, 'authorize');
        return this.fail('forbidden', decision.reason);
      }
    }
    const limit = route.rateLimit;
    if (limit !== undefined) {
      const key = rateLimitKey(limit.key, { clientIp: this.clientIp, rawHeaders: this.raw, identity });
      if (key !== undefined) {
        const decision = route.limiter!.take(route.name, key, limit);
        const headers = rateLimitHeaders(decision, limit);
        if (!decision.allowed) {
          metrics.gatewayRefusal(route.name, 'rate-limit');
          return this.fail('rate-limited', `rate limit ${limit.ratePerSecond}/s burst ${limit.burst} exceeded for ${limit.key}`, headers);
        }
        this.extraHeaders = this.extraHeaders === undefined ? headers : [...this.extraHeaders, ...headers];
      }
    }
    // The client's hop-by-hop headers go first, so nothing it names in Connection can remove what the gateway adds.
    if (route.rewritesRequestHeaders) this.upstreamRaw = route.upstreamHeaders(clientEndToEndHeaders(this.raw, this.info, this.client.worker.dropUnderscored), identity);
    if (this.info.expect !== undefined && !this.requestComplete) this.client.socket.write(CONTINUE, 'latin1');
    this.connect();
  }

  private gatewayRequest(): GatewayRequest {
    return (this.gateway ??= { method: this.method, target: this.target, rawHeaders: this.raw, clientIp: this.clientIp });
  }

  /** A CORS preflight, answered here: the upstream never sees it. */
  private answerPreflight(headers: ReadonlyArray<readonly [string, string]>): void {
    this.status = 204;
    this.responseStarted = true;
    this.responseComplete = true;
    if (this.bodyStillComing() || this.client.worker.closing) this.keepAlive = false;
    this.client.socket.write(preflightResponse(this.requestId, this.keepAlive, headers), 'latin1');
    this.finish();
  }

  private validate(): ProxyErrorReason | undefined {
    const { info, client } = this;
    if (this.versionMajor !== 1) return 'unsupported-version';
    if (this.method === 'CONNECT') return 'connect-method';
    if (info.hostCount > 1 || (this.versionMinor >= 1 && info.hostCount === 0)) return 'bad-host';
    if (info.host !== undefined && !VALID_HOST.test(info.host)) return 'bad-host';
    // llhttp reports a bad final coding only after the head callback, so check it here,
    // before anything is forwarded. Codings other than chunked are not supported (RFC 9112 §6.1).
    if (info.transferEncoding !== undefined && info.transferEncoding.trim().toLowerCase() !== 'chunked') return 'bad-request';
    if (this.url.length > client.worker.limits.maxUrlBytes) return 'url-too-long';
    if (this.url.charCodeAt(0) !== 0x2f /* / */) {
      if (this.url === '*' && this.method === 'OPTIONS') this.target = '*';
      else {
        const origin = absoluteFormTarget(this.url, info.host);
        if (origin === undefined) return 'foreign-absolute-form';
        this.target = origin;
      }
    }
    if (info.expect !== undefined && info.expect.toLowerCase() !== '100-continue') return 'expectation-failed';
    if (info.underscored && client.worker.underscores === 'reject') return 'bad-request';
    if (info.contentLength > client.worker.limits.maxBodyBytes) return 'body-too-large';
    return undefined;
  }

  onRequestBody(chunk: Buffer): void {
    this.requestBodyBytes += chunk.length;
    if (!this.started) {
      // Pipelined behind the active exchange: the client is paused, so this holds at most one read.
      (this.pending ??= []).push(chunk);
      return;
    }
    if (this.requestBodyBytes > this.client.worker.limits.maxBodyBytes) return this.fail('body-too-large');
    if (this.responseComplete || this.errorReason !== undefined) return; // answered already: discard
    if (!this.headSent) {
      (this.pending ??= []).push(chunk);
      this.client.refreshReading();
      return;
    }
    this.sendBodyChunk(chunk);
  }

  onRequestComplete(): void {
    this.requestComplete = true;
    if (this.headSent && this.conn !== undefined && !this.responseComplete && this.info.chunked) this.conn.write(LAST_CHUNK, 'latin1');
    if (this.responseComplete) this.finish();
  }

  /** Whether the client socket must stop being read for this exchange's sake. */
  blocksClientReading(): boolean {
    if (this.responseComplete || this.errorReason !== undefined) return false;
    return this.upstreamNeedsDrain || (this.pending !== undefined && this.pending.length > 0) || (!this.headSent && this.requestBodyBytes > 0);
  }

  onClientDrain(): void {
    if (this.tunnelSocket !== undefined) this.tunnelSocket.resume();
    else if (this.conn !== undefined && !this.responseComplete) this.conn.socket.resume();
  }

  /** The client went away (closed or reset) before this exchange finished. */
  onClientGone(): void {
    if (this.tunnelSocket !== undefined) return this.endTunnel();
    if (this.done) return;
    this.dropUpstream();
    this.record(this.status === 0 ? 499 : this.status);
  }

  /** Client bytes once the tunnel is open (the client connection holds them until the 101). */
  onClientTunnelData(data: Buffer): void {
    const socket = this.tunnelSocket;
    if (data.length === 0 || this.done || socket === undefined) return;
    this.tunnelDeadline = deadlineIn(this.timeouts.tunnelIdleMs);
    if (!socket.write(data)) this.client.socket.pause();
  }

  /** Closes a tunnel that carried no byte for timeouts.tunnel_idle. */
  checkTunnelDeadline(t: number): void {
    if (this.tunnelDeadline === 0 || t < this.tunnelDeadline) return;
    this.client.worker.log.info({ reqId: this.requestId, server: this.server?.address, idleMs: this.timeouts.tunnelIdleMs }, 'tunnel closed: idle');
    this.client.socket.destroy();
    this.endTunnel();
  }

  onClientEnd(): void {
    this.tunnelSocket?.end();
  }

  /**
   * After a 101 both sockets carry raw bytes: the upstream socket is taken
   * from its pool and relayed to the client with backpressure both ways until
   * either side closes.
   */
  private startTunnel(conn: UpstreamConnection): void {
    const upstreamSocket = conn.socket;
    const clientSocket = this.client.socket;
    conn.takeOverForTunnel();
    this.conn = undefined;
    this.tunnelSocket = upstreamSocket;
    this.tunnelDeadline = deadlineIn(this.timeouts.tunnelIdleMs);
    upstreamSocket.on('data', (data: Buffer) => {
      this.responseBytes += data.length;
      this.tunnelDeadline = deadlineIn(this.timeouts.tunnelIdleMs);
      if (!clientSocket.write(data)) upstreamSocket.pause();
    });
    upstreamSocket.on('drain', () => clientSocket.resume());
    upstreamSocket.on('end', () => clientSocket.end());
    upstreamSocket.on('error', () => clientSocket.destroy());
    upstreamSocket.on('close', () => {
      clientSocket.destroy();
      this.endTunnel();
    });
  }

  private endTunnel(): void {
    if (this.done) return;
    this.tunnelDeadline = 0;
    this.tunnelSocket?.destroy();
    this.upstream!.onEnd(this.server!, false);
    this.responseComplete = true;
    this.keepAlive = false;
    this.finish();
  }

  private sendBodyChunk(chunk: Buffer): void {
    const conn = this.conn!;
    this.bodySentBytes += chunk.length;
    if (this.replay !== undefined) {
      this.replayBytes += chunk.length;
      if (this.replayBytes <= this.upstream!.config.retryBodyBytes) this.replay.push(chunk);
      else this.replay = undefined;
    }
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
    const ctx = { clientIp: this.clientIp, key: upstream.hashKeyOf?.(this.raw) };
    const server = upstream.balancer.pick(ctx, this.tried);
    if (server === undefined) return this.fail(this.attempts === 0 ? 'no-healthy-server' : this.lastFailure);
    this.attempts++;
    this.attachTo(server, this.upgrading);
  }

  private attachTo(server: ServerSlot, fresh: boolean): void {
    const upstream = this.upstream!;
    this.server = server;
    upstream.onStart(server);
    const conn = upstream.pools[server.index]!.acquire(this, fresh);
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
      target: this.route!.upstreamTarget(this.target),
      raw: this.upstreamRaw ?? this.raw,
      filtered: this.upstreamRaw !== undefined,
      dropUnderscored: this.client.worker.dropUnderscored,
      info,
      forwardedFor: trusted && info.forwardedFor !== undefined ? `${info.forwardedFor}, ${peer}` : peer,
      forwardedProto: trusted && info.forwardedProto !== undefined ? info.forwardedProto : 'http',
      forwardedHost: trusted && info.forwardedHost !== undefined ? info.forwardedHost : info.host,
      requestId: this.requestId,
      bodyFraming: framing,
      upgrade: this.upgrading,
      defaultHost: this.server!.address,
    });
    conn.socket.cork();
    conn.write(head, 'latin1');
    this.headSent = true;
    const pending = this.pending;
    this.pending = undefined;
    if (pending !== undefined) for (const chunk of pending) this.sendBodyChunk(chunk);
    if (this.requestComplete && info.chunked) conn.write(LAST_CHUNK, 'latin1');
    conn.socket.uncork();
    conn.deadline = this.capped(deadlineIn(this.timeouts.responseMs));
    this.client.refreshReading();
  }

  beforeUpstreamData(): void {
    this.client.socket.cork();
  }

  afterUpstreamData(): void {
    this.client.socket.uncork();
  }

  onUpstreamHead(statusCode: number, statusMessage: string, raw: string[], upgrade: boolean, upstreamKeepAlive: boolean): number | void {
    const client = this.client;
    if (statusCode < 200 && statusCode !== 101) {
      // Interim responses: our own 100 Continue was already sent; relay others (103) to HTTP/1.1 clients.
      if (statusCode !== 100 && this.versionMinor >= 1) client.socket.write(interimHead(statusCode, statusMessage, raw), 'latin1');
      return;
    }
    const conn = this.conn!;
    if (statusCode === 101 && !(upgrade && this.upgrading && this.requestComplete)) {
      // Switching protocols was not asked for (or not before the request was whole): not a response we can relay.
      this.fail('upstream-bad-response', '101 Switching Protocols to a request that did not ask for it');
      return STOP_AFTER_HEAD;
    }
    const resp = inspectResponseHeaders(raw);
    this.status = statusCode;
    this.responseStarted = true;
    this.replay = undefined;
    this.upstream!.recordOutcome(this.server!, statusCode < 500);
    this.upstreamKeepAlive = upstreamKeepAlive;
    if (statusCode === 101) {
      client.socket.write(
        buildClientHead({ statusCode, statusMessage, raw, requestId: this.requestId, framing: 'none', keepAlive: false, http10: false, upgrade: true }, resp.connectionTokens, 0, resp.hasRequestId, resp.upgrade),
        'latin1',
      );
      this.startTunnel(conn);
      client.startTunnel(this);
      return;
    }
    const isHead = this.method === 'HEAD';
    const noBody = isHead || statusCode === 204 || statusCode === 304;
    if (statusCode === 204) this.framing = 'none';
    else if (resp.hasContentLength) this.framing = 'length';
    else if (noBody) this.framing = 'none';
    else if (this.versionMinor >= 1) this.framing = 'chunked';
    else this.framing = 'close';
    if (!this.requestComplete && this.framing === 'close') this.keepAlive = false;
    if (client.worker.closing) this.keepAlive = false;
    const head = buildClientHead(
      {
        statusCode,
        statusMessage,
        raw: this.route!.responseHeaders(raw),
        requestId: this.requestId,
        framing: this.framing,
        keepAlive: this.keepAlive,
        http10: this.versionMinor === 0,
        upgrade: false,
        extra: this.extraHeaders,
      },
      resp.connectionTokens,
      resp.contentLength,
      resp.hasRequestId,
      undefined,
    );
    client.socket.write(head, 'latin1');
    conn.deadline = this.capped(deadlineIn(this.timeouts.idleMs));
    if (isHead) return 1;
    if (this.framing === 'length' && !noBody && resp.contentLength > 0) return conn.passBodyThrough(resp.contentLength);
  }

  private upstreamKeepAlive = false;

  onUpstreamBody(chunk: Buffer): void {
    const conn = this.conn!;
    conn.deadline = this.capped(deadlineIn(this.timeouts.idleMs));
    this.responseBytes += chunk.length;
    const socket = this.client.socket;
    let ok: boolean;
    if (this.framing === 'chunked') {
      socket.write(chunk.length.toString(16) + CRLF, 'latin1');
      socket.write(chunk);
      ok = socket.write(CRLF, 'latin1');
    } else {
      ok = socket.write(chunk);
    }
    if (!ok) conn.socket.pause();
  }

  onUpstreamMessageComplete(): void {
    if (!this.responseStarted) return; // end of an interim (1xx) response
    const conn = this.conn!;
    this.conn = undefined;
    if (this.framing === 'chunked') this.client.socket.write(LAST_CHUNK, 'latin1');
    this.responseComplete = true;
    this.upstream!.onEnd(this.server!, false);
    // The connection can serve another request only if this one was sent whole,
    // and not after an Upgrade offer the server declined: it may still expect to switch.
    if (this.upstreamKeepAlive && this.requestComplete && !this.upgrading) this.upstream!.pools[this.server!.index]!.release(conn);
    else conn.destroy();
    if (this.framing === 'close') this.keepAlive = false;
    if (this.requestComplete) this.finish();
    else {
      // Answered before the request body ended: stop reading it, close after the response.
      this.keepAlive = false;
      this.finish();
    }
  }

  onUpstreamUpgraded(rest: Buffer): void {
    this.responseBytes += rest.length;
    this.client.socket.write(rest);
  }

  onUpstreamDrain(): void {
    this.upstreamNeedsDrain = false;
    this.client.refreshReading();
  }

  onUpstreamFailure(error: Error | ParseError, kind: 'connect' | 'io' | 'parse' | 'closed'): void {
    if (this.done || this.conn === undefined) return;
    const conn = this.conn;
    this.conn = undefined;
    const server = this.server!;
    const upstream = this.upstream!;
    upstream.onEnd(server, true);
    // A reused keep-alive connection that the server closed just as we wrote
    // is not the server failing: retry once on a fresh connection when
    // repeating the request is harmless.
    if (kind !== 'connect' && kind !== 'parse' && conn.reused && conn.received === 0 && !this.freshRetryUsed && this.canReplay()) {
      this.freshRetryUsed = true;
      this.rewind();
      return this.attachTo(server, true);
    }
    upstream.recordOutcome(server, false);
    if (this.responseStarted) return this.abortResponse(`upstream ${kind} error after response began: ${error.message}`);
    if (kind === 'parse') return this.fail('upstream-bad-response', error.message);
    const log = this.client.worker.log;
    this.lastFailure = kind === 'connect' ? 'upstream-connect-failed' : 'upstream-reset';
    if (this.attempts <= this.route!.retries) {
      if (kind === 'connect') {
        // Never reached the server: safe to try another one for any method.
        log.debug({ reqId: this.requestId, server: server.address, err: error.message }, 'upstream connect failed, retrying');
        return this.retry();
      }
      if (conn.received === 0 && this.canReplay() && upstream.retryAllowed()) {
        log.debug({ reqId: this.requestId, server: server.address, err: error.message }, 'upstream failed before answering, retrying');
        return this.retry();
      }
    }
    this.fail(this.lastFailure, error.message);
  }

  /** Repeating the request is harmless and its body (if any) is still at hand. */
  private canReplay(): boolean {
    return IDEMPOTENT.has(this.method) && !this.upgrading && (this.bodySentBytes === 0 || this.replay !== undefined);
  }

  /** Makes the body sent so far pending again, to be sent after the next head. */
  private rewind(): void {
    this.headSent = false;
    if (this.bodySentBytes > 0) {
      this.pending = [...this.replay!, ...(this.pending ?? [])];
      this.replay = [];
      this.replayBytes = 0;
      this.bodySentBytes = 0;
    }
  }

  private retry(): void {
    this.rewind();
    // Built only now: a request that succeeds at once allocates no set.
    (this.tried ??= new Set()).add(this.server!);
    const before = this.attempts;
    this.connect();
    if (this.attempts > before) this.upstream!.onRetry(this.server!);
  }

  onUpstreamDeadline(): void {
    const timeouts = this.timeouts;
    const total = this.totalDeadline !== 0 && now() >= this.totalDeadline;
    if (this.responseStarted) {
      if (!total) this.upstream!.recordOutcome(this.server!, false);
      return this.abortResponse(total ? `request exceeded timeouts.total (${timeouts.totalMs}ms)` : `upstream idle for ${timeouts.idleMs}ms during the response body`);
    }
    const conn = this.conn;
    this.conn = undefined;
    if (conn !== undefined) {
      this.upstream!.onEnd(this.server!, true);
      if (!total) this.upstream!.recordOutcome(this.server!, false);
      conn.destroy();
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
    const param = this.route?.credentialQueryParam;
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
  fail(reason: ProxyErrorReason, detail?: string, extra?: ReadonlyArray<readonly [string, string]>): void {
    if (this.done) return;
    if (this.responseStarted) return this.abortResponse(detail ?? reason);
    this.dropUpstream();
    this.errorReason = reason;
    this.status = STATUS_FOR[reason];
    this.responseStarted = true;
    this.responseComplete = true;
    if (CLOSES_CONNECTION.has(reason) || this.bodyStillComing() || this.client.worker.closing) this.keepAlive = false;
    this.client.worker.log.warn(
      { reqId: this.requestId, status: this.status, reason, detail, method: this.method, url: this.loggedUrl(), upstream: this.upstream?.config.name, server: this.server?.address },
      'request failed',
    );
    const headers = extra === undefined ? this.extraHeaders : this.extraHeaders === undefined ? extra : [...extra, ...this.extraHeaders];
    this.client.socket.write(errorResponse(reason, this.requestId, this.keepAlive, headers, this.method === 'HEAD'), 'latin1');
    this.finish();
  }

  /** The response is partly sent and can't be completed: the client must see an abort, never a short success. */
  private abortResponse(why: string): void {
    if (this.done) return;
    this.client.worker.log.warn({ reqId: this.requestId, reason: why, upstream: this.upstream?.config.name, server: this.server?.address }, 'response aborted');
    this.dropUpstream();
    this.keepAlive = false;
    this.record(this.status);
    this.done = true;
    this.client.abort();
  }

  /** Abandons the upstream request: a reset, so the server stops at once instead of reading a body that will never end. */
  private dropUpstream(): void {
    const conn = this.conn;
    if (conn === undefined) return;
    this.conn = undefined;
    this.upstream!.onEnd(this.server!, true);
    conn.destroy(true);
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.record(this.status);
    this.client.onExchangeDone(this);
  }

  private record(status: number): void {
    const worker = this.client.worker;
    worker.onRequestDone(this.upstream, this.server, status, this.routeName, this.startedAt);
    if (worker.accessLog) {
      worker.log.info(
        {
          reqId: this.requestId,
          method: this.method,
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

function interimHead(statusCode: number, statusMessage: string, raw: string[]): string {
  let head = `HTTP/1.1 ${statusCode} ${statusMessage}\r\n`;
  for (let i = 0; i < raw.length; i += 2) head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  return head + '\r\n';
}

/** A request id we pass through: short, printable ASCII, no spaces. */
function isPlainId(id: string): boolean {
  return id.length > 0 && id.length <= 200 && /^[\x21-\x7e]+$/.test(id);
}

/**
 * Absolute-form (RFC 9112 §3.2.2) is accepted only for the host the request
 * is already addressed to; Switchyard is not a forward proxy. Returns the
 * origin-form target, or undefined when the authority differs.
 */
function absoluteFormTarget(url: string, host: string | undefined): string | undefined {
  const m = /^https?:\/\/([^/?#]*)(.*)$/i.exec(url);
  if (m === null || host === undefined) return undefined;
  if (m[1]!.toLowerCase() !== host.toLowerCase()) return undefined;
  const rest = m[2]!;
  return rest === '' ? '/' : rest.startsWith('?') ? `/${rest}` : rest;
}

/** The first value of a header (name lower-case), or undefined. */
function headerValue(raw: readonly string[], lowerName: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === lowerName.length && raw[i]!.toLowerCase() === lowerName) return raw[i + 1];
  return undefined;
}
