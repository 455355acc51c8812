// Receiving a PROXY protocol header on an accepted socket, before anything
// else reads it: only from a peer in trusted_proxies, whole within a
// deadline, strictly parsed. Whatever came after the header is put back on
// the socket, which is left paused for the connection's real reader.
import type { Socket } from 'node:net';
import { parseProxyHeader, type ConnectionOrigin } from './proxy-protocol.js';

export interface ProxyHeaderOptions {
  /** Whole header within this long after the connection was accepted (slowloris). */
  timeoutMs: number;
  /** The peer's address may speak for clients (trusted_proxies). */
  trusted: boolean;
}

/**
 * Calls `onReady` with the client the header reports (the socket's own
 * endpoints for LOCAL, UNKNOWN and unspecified families), or `onRefused`
 * with the reason after destroying the socket.
 */
export function receiveProxyHeader(
  socket: Socket,
  options: ProxyHeaderOptions,
  onReady: (origin: ConnectionOrigin) => void,
  onRefused: (reason: string) => void,
): void {
  if (!options.trusted) {
    socket.destroy();
    onRefused('PROXY header from a peer not in trusted_proxies');
    return;
  }
  let received: Buffer = Buffer.alloc(0);
  let settled = false;
  const finish = (): void => {
    settled = true;
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('end', onGone);
    socket.off('close', onGone);
    socket.off('error', onGone);
  };
  const refuse = (reason: string): void => {
    if (settled) return;
    finish();
    socket.destroy();
    onRefused(reason);
  };
  const onGone = (): void => refuse('connection closed before a complete PROXY header');
  const onData = (chunk: Buffer): void => {
    received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
    const result = parseProxyHeader(received);
    if (result.kind === 'incomplete') return;
    if (result.kind === 'invalid') return refuse(result.reason);
    finish();
    // Paused before the listener goes, so no chunk is emitted to nobody.
    socket.pause();
    if (received.length > result.length) socket.unshift(received.subarray(result.length));
    onReady(result.origin ?? socketOrigin(socket));
  };
  const timer = setTimeout(() => refuse(`no complete PROXY header within ${options.timeoutMs}ms`), options.timeoutMs);
  socket.on('data', onData);
  socket.on('end', onGone);
  socket.on('close', onGone);
  socket.on('error', onGone);
}

/** The connection's own endpoints, as a PROXY header would describe them. */
export function socketOrigin(socket: Socket): ConnectionOrigin {
  return {
    sourceAddress: socket.remoteAddress ?? '',
    sourcePort: socket.remotePort ?? 0,
    destAddress: socket.localAddress ?? '',
    destPort: socket.localPort ?? 0,
  };
}
