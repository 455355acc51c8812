// One client connection of a `mode: tcp` listener: a server chosen by the
// upstream's balancer, a connection to it (the next server on a connect
// failure, as long as no byte has been sent), then bytes relayed both ways
// with backpressure and half-close until either side ends, errs or goes idle.
import net, { type Socket } from 'node:net';
import type { ServerSlot } from '../balancer/types.js';
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
    const client = this.client;
    const version = this.upstream.config.proxyProtocol;
    if (version !== undefined) socket.write(version === 'v1' ? encodeProxyV1(this.origin) : encodeProxyV2(this.origin));
    relay(client, socket, (n) => (this.bytesIn += n));
    relay(socket, client, (n) => (this.bytesOut += n));
    // The client socket sees every byte either way, so its timer is the connection's idle timer.
    client.setTimeout(this.options.idleTimeoutMs, () => this.abort());
    // A clean close ends both directions (FIN each way), so the other socket closes too; an error or
    // reset on one side is passed on to the other as a reset.
    const onClose = (hadError: boolean): void => {
      if (hadError) this.abort();
      else if (client.destroyed && socket.destroyed) this.finish(false);
    };
    socket.on('close', onClose);
    client.on('close', onClose);
    if (client.destroyed) this.abort();
  }

  /** Close both sides at once, with a reset where a connection was established. */
  private abort(): void {
    if (this.done) return;
    clearTimeout(this.connectTimer);
    resetOrDestroy(this.client);
    if (this.upstreamSocket !== undefined) resetOrDestroy(this.upstreamSocket);
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

  destroy(): void {
    this.abort();
  }
}

/** from → to with backpressure; from's FIN becomes to's FIN (half-close). */
function relay(from: Socket, to: Socket, count: (n: number) => void): void {
  from.on('data', (chunk: Buffer) => {
    count(chunk.length);
    if (!to.write(chunk)) from.pause();
  });
  to.on('drain', () => from.resume());
  from.on('end', () => to.end());
  from.resume();
}

function resetOrDestroy(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.connecting || socket.pending) socket.destroy();
  else socket.resetAndDestroy();
}
