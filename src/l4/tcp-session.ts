// One client connection of a `mode: tcp` listener: a server chosen by the
// upstream's balancer, a connection to it (the next server on a connect
// failure, as long as no byte has been sent), any PROXY header written, then
// both sockets handed to the native relay (native/tcp_relay.h), which moves
// the bytes both ways with backpressure and half-close until either side
// ends, errs or goes idle. Bytes are not relayed in JavaScript: a Buffer, a
// 'data' event and a write request per read cost 2-4x nginx's CPU per byte.
import net, { type Socket } from 'node:net';
import type { ServerSlot } from '../balancer/types.js';
import { abortRelay, startRelay, takeOverReading, type RelayEnd } from '../native.js';
import { encodeProxyV1, encodeProxyV2, type ConnectionOrigin } from './proxy-protocol.js';
import type { L4Connection, L4Upstream, L4Worker } from './types.js';

export interface TcpSessionOptions {
  /** No byte either way for this long closes both sides. */
  idleTimeoutMs: number;
  listener: string;
}

export class TcpSession implements L4Connection {
  private readonly tried = new Set<ServerSlot>();
  private server: ServerSlot | undefined;
  private upstreamSocket: Socket | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  private relaying = false;
  /** The native relay's session, from hand-over until it reports the end. */
  private relayId: number | undefined;
  private done = false;
  private readonly startedAt = Date.now();
  private bytesIn = 0;
  private bytesOut = 0;

  constructor(
    private readonly client: Socket,
    /** Who the client is: the socket's peer, or what a trusted PROXY header said. */
    private readonly origin: ConnectionOrigin,
    private readonly clientIp: string,
    private readonly upstream: L4Upstream,
    private readonly worker: L4Worker,
    private readonly options: TcpSessionOptions,
  ) {
    // Nothing is read from the client until a server has accepted the connection.
    client.pause();
    client.on('error', () => this.abort());
    client.on('close', () => (this.relaying ? undefined : this.abort()));
    worker.onConnectionOpened(this);
    this.connectNext(false);
  }

  private connectNext(retry: boolean): void {
    const server = this.upstream.balancer.pick({ clientIp: this.clientIp }, this.tried);
    if (server !== undefined && retry) this.upstream.onRetry(server);
    if (server === undefined) {
      this.worker.logThrottle.warn(this.worker.log, 'tcp-no-server', { listener: this.options.listener, upstream: this.upstream.config.name, tried: this.tried.size }, 'tcp connection refused: no eligible server');
      return this.abort();
    }
    this.tried.add(server);
    this.server = server;
    this.upstream.onStart(server);
    this.upstream.connectionOpened(server);
    const socket = net.connect({ host: server.host, port: server.port, noDelay: true, allowHalfOpen: true });
    this.upstreamSocket = socket;
    socket.pause();
    this.connectTimer = setTimeout(() => this.onConnectFailed(socket, server, 'connect timeout'), this.upstream.config.timeouts.connectMs);
    socket.once('connect', () => this.onConnected(socket, server));
    socket.on('error', (err) => (this.relaying ? this.abort() : this.onConnectFailed(socket, server, err.message)));
  }

  /** Nothing was sent to this server: another one may be tried, within the retry count and budget. */
  private onConnectFailed(socket: Socket, server: ServerSlot, reason: string): void {
    if (this.done || this.relaying || socket !== this.upstreamSocket) return;
    clearTimeout(this.connectTimer);
    socket.destroy();
    this.upstreamSocket = undefined;
    this.server = undefined;
    this.upstream.onEnd(server, true);
    this.upstream.connectionClosed(server, 'error');
    this.upstream.recordOutcome(server, false);
    this.worker.logThrottle.warn(this.worker.log, 'tcp-connect', { upstream: this.upstream.config.name, server: server.address, reason }, 'tcp connect to server failed');
    const retries = this.tried.size - 1;
    if (retries < this.upstream.config.retries && this.upstream.retryAllowed() && !this.client.destroyed) return this.connectNext(true);
    this.abort();
  }

  private onConnected(socket: Socket, server: ServerSlot): void {
    clearTimeout(this.connectTimer);
    if (this.done) return;
    this.upstream.recordOutcome(server, true);
    this.relaying = true;
    const version = this.upstream.config.proxyProtocol;
    // The PROXY header, then whatever the client sent that Node already read (after its own PROXY header),
    // go out first and in order; the relay takes over once they are in the kernel.
    const preface = version === undefined ? [] : [version === 'v1' ? encodeProxyV1(this.origin) : encodeProxyV2(this.origin)];
    for (const early of takeOverReading(this.client)) {
      preface.push(early);
      this.bytesIn += early.length;
    }
    takeOverReading(socket);
    if (preface.length === 0) return this.handOver(socket);
    socket.write(preface.length === 1 ? preface[0]! : Buffer.concat(preface), (err) => (err ? this.abort() : this.handOver(socket)));
  }

  private handOver(socket: Socket): void {
    if (this.done) return;
    if (this.client.destroyed || socket.destroyed) return this.abort();
    try {
      this.relayId = startRelay(this.client, socket, this.options.idleTimeoutMs, (how, bytesIn, bytesOut) => this.onRelayEnded(how, bytesIn, bytesOut));
    } catch (err) {
      // Out of descriptors (dup): this connection is refused, the worker carries on.
      this.worker.logThrottle.warn(this.worker.log, 'tcp-relay', { listener: this.options.listener, reason: (err as Error).message }, 'tcp connection closed: relay refused it');
      this.abort();
    }
  }

  private onRelayEnded(how: RelayEnd, bytesIn: number, bytesOut: number): void {
    this.relayId = undefined;
    this.bytesIn += bytesIn;
    this.bytesOut += bytesOut;
    // The relay closed its duplicates; closing ours releases the sockets (with a reset unless both ends closed cleanly).
    const failed = how !== 'closed';
    for (const socket of [this.client, this.upstreamSocket!]) {
      if (failed) resetOrDestroy(socket);
      else socket.destroy();
    }
    this.finish(failed);
  }

  /** Close both sides at once, with a reset where a connection was established. */
  private abort(): void {
    if (this.done) return;
    clearTimeout(this.connectTimer);
    resetOrDestroy(this.client);
    if (this.upstreamSocket !== undefined) resetOrDestroy(this.upstreamSocket);
    // A relayed session ends with the relay's report (and its byte counts), which abortRelay makes at once.
    if (this.relayId !== undefined) return abortRelay(this.relayId);
    this.finish(true);
  }

  private finish(failed: boolean): void {
    if (this.done) return;
    this.done = true;
    const server = this.server;
    if (server !== undefined) {
      // Connect failures were counted where they happened; a client leaving is not the server's failure.
      this.upstream.onEnd(server, false);
      this.upstream.connectionClosed(server, failed ? 'error' : 'upstream-asked');
    }
    this.worker.onConnectionClosed(this);
    if (this.worker.accessLog) {
      this.worker.log.info(
        { listener: this.options.listener, client: this.clientIp, upstream: this.upstream.config.name, server: server?.address, bytesIn: this.bytesIn, bytesOut: this.bytesOut, ms: Date.now() - this.startedAt, aborted: failed },
        'tcp',
      );
    }
  }

  closeWhenIdle(): void {
    // A byte stream has no point between requests: it runs until it ends or the drain deadline destroys it.
  }

  inTunnel(): boolean {
    return true;
  }

  openTunnels(): number {
    return 1;
  }

  destroy(): void {
    this.abort();
  }
}

function resetOrDestroy(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.connecting || socket.pending) socket.destroy();
  else socket.resetAndDestroy();
}
