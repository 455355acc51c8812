// What the L4 tier needs of the worker it runs in and of an upstream. The
// proxy's WorkerRuntime and UpstreamRuntime provide both; they are declared
// here so that l4/ depends only on the balancers, never on the HTTP data path.
import type { Balancer, ServerSlot } from '../balancer/types.js';
import type { LogThrottle, Logger } from '../log.js';

export type ProxyProtocolVersion = 'v1' | 'v2';

export interface L4Upstream {
  readonly config: {
    readonly name: string;
    readonly retries: number;
    readonly timeouts: { readonly connectMs: number };
    readonly proxyProtocol?: ProxyProtocolVersion;
  };
  readonly balancer: Balancer;
  retryAllowed(): boolean;
  onRetry(server: ServerSlot): void;
  /** Passive health: the outcome of one connection attempt. */
  recordOutcome(server: ServerSlot, ok: boolean): void;
  /** A connection to `server` begins / ends: least-conn counts it as active while it lives. */
  onStart(server: ServerSlot): void;
  onEnd(server: ServerSlot, failed: boolean): void;
  connectionOpened(server: ServerSlot): void;
  connectionClosed(server: ServerSlot, reason: 'upstream-asked' | 'error' | 'shutdown'): void;
}

/** One client connection as the worker holds it (drain on reload and shutdown). */
export interface L4Connection {
  /** A byte stream has no idle point between requests: it runs on until it ends or the drain deadline. */
  closeWhenIdle(graceMs: number): void;
  /** Always true: a relayed byte stream is a tunnel, kept open by a retiring worker like a WebSocket (up to tunnel_max_age). */
  inTunnel(): boolean;
  /** 1: the relayed byte stream is one tunnel. */
  openTunnels(): number;
  destroy(): void;
}

export interface L4Worker {
  readonly log: Logger;
  readonly logThrottle: LogThrottle;
  readonly accessLog: boolean;
  isTrustedProxy(address: string): boolean;
  // Property syntax, not method syntax: the compiler then checks that the
  // worker's own connection type accepts an L4Connection (methods are bivariant).
  onConnectionOpened: (conn: L4Connection) => void;
  onConnectionClosed: (conn: L4Connection) => void;
  onConnectionRefused(): void;
}
