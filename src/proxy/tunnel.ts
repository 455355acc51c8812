// After a 101 Switching Protocols, an exchange is two byte streams relaying
// raw bytes: the client's (its socket, or its HTTP/2 stream for RFC 8441)
// and the upstream socket taken out of its pool. Each side is paused while
// the other cannot take more, and the pair is closed together: when either
// side closes, or when no byte has moved either way for the route's
// `timeouts.tunnel_idle`.
import type { Socket } from 'node:net';
import { deadlineIn } from './coarse-clock.js';

/** The client end of a tunnel: an HTTP/1.1 socket or one HTTP/2 stream. */
export interface TunnelClient {
  /** false: full, wait for the client side's drain (Exchange.onClientDrain). */
  write(data: Buffer): boolean;
  pause(): void;
  resume(): void;
  /** The upstream ended its side cleanly (FIN): pass the end on. */
  end(): void;
  /** The tunnel is over; `abnormal`: not by a clean end (the upstream failed, or the tunnel went idle). */
  close(abnormal: boolean): void;
}

export class Tunnel {
  /** Bytes the upstream sent through the tunnel, for the access log. */
  bytesFromUpstream = 0;
  private deadline: number;
  private closed = false;
  private upstreamEnded = false;

  constructor(
    private readonly client: TunnelClient,
    private readonly upstream: Socket,
    private readonly idleMs: number,
    /** Called once, when the tunnel is over (either side closed, or it went idle). */
    private readonly onClosed: () => void,
  ) {
    this.deadline = deadlineIn(idleMs);
    upstream.on('data', (data: Buffer) => {
      this.bytesFromUpstream += data.length;
      this.deadline = deadlineIn(this.idleMs);
      if (!client.write(data)) upstream.pause();
    });
    upstream.on('drain', () => client.resume());
    upstream.on('end', () => {
      this.upstreamEnded = true;
      client.end();
    });
    upstream.on('error', () => client.close(true));
    upstream.on('close', () => {
      client.close(!this.upstreamEnded);
      this.close();
    });
  }

  /** Bytes from the client (its first ones were held until the 101); pauses the client while the upstream is full. */
  fromClient(data: Buffer): void {
    if (this.closed || data.length === 0) return;
    this.deadline = deadlineIn(this.idleMs);
    if (!this.upstream.write(data)) this.client.pause();
  }

  /** The client side drained: the upstream may send again. */
  onClientDrain(): void {
    this.upstream.resume();
  }

  /** The client half-closed: pass the FIN on. */
  onClientEnd(): void {
    this.upstream.end();
  }

  /** Whether the tunnel went idle at `t` (it is then closed, both sides with it). */
  expireIdle(t: number): boolean {
    if (this.closed || t < this.deadline) return false;
    this.client.close(true);
    this.close();
    return true;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.upstream.destroy();
    this.onClosed();
  }
}
