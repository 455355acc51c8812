// After a 101 Switching Protocols, an exchange is two sockets relaying raw
// bytes: the client's and the upstream one taken out of its pool. Each side
// is paused while the other cannot take more, and the pair is closed together:
// when either side closes, or when no byte has moved either way for the
// route's `timeouts.tunnel_idle`.
import type { Socket } from 'node:net';
import { deadlineIn } from './coarse-clock.js';

export class Tunnel {
  /** Bytes the upstream sent through the tunnel, for the access log. */
  bytesFromUpstream = 0;
  private deadline: number;
  private closed = false;

  constructor(
    private readonly client: Socket,
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
    upstream.on('end', () => client.end());
    upstream.on('error', () => client.destroy());
    upstream.on('close', () => {
      client.destroy();
      this.close();
    });
  }

  /** Bytes from the client (its first ones were held until the 101); pauses the client while the upstream is full. */
  fromClient(data: Buffer): void {
    if (this.closed || data.length === 0) return;
    this.deadline = deadlineIn(this.idleMs);
    if (!this.upstream.write(data)) this.client.pause();
  }

  /** The client socket drained: the upstream may send again. */
  onClientDrain(): void {
    this.upstream.resume();
  }

  /** The client half-closed: pass the FIN on. */
  onClientEnd(): void {
    this.upstream.end();
  }

  /** Whether the tunnel went idle at `t` (it is then closed, both sockets destroyed). */
  expireIdle(t: number): boolean {
    if (this.closed || t < this.deadline) return false;
    this.client.destroy();
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
