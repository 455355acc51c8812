// h2c with prior knowledge (RFC 9113 §3.3) on a listener that also serves
// HTTP/1.1: the first bytes of the connection decide. An HTTP/2 client opens
// with the fixed 24-byte preface; no valid HTTP/1.1 request starts with it
// ("PRI" is not a method llhttp forwards). The bytes read while deciding are
// put back, so either side sees the connection from its first byte.
import type { Socket } from 'node:net';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/**
 * Calls `decided` once: true when the connection opened with the HTTP/2
 * preface. The socket is left paused with its first bytes unread. A client
 * that sends nothing, or stops inside the preface, is closed after
 * `timeoutMs` (the same headers_timeout an HTTP/1.1 head gets).
 */
export function sniffPreface(socket: Socket, timeoutMs: number, decided: (http2: boolean) => void): void {
  let seen: Buffer | undefined;
  const onData = (chunk: Buffer): void => {
    seen = seen === undefined ? chunk : Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, PREFACE.length);
    const matches = seen.compare(PREFACE, 0, n, 0, n) === 0;
    if (matches && n < PREFACE.length) return; // a prefix of the preface: wait for the rest
    finish();
    socket.unshift(seen);
    decided(matches);
  };
  const giveUp = (): void => {
    finish();
    socket.destroy();
  };
  const finish = (): void => {
    socket.off('data', onData);
    socket.off('timeout', giveUp);
    socket.off('end', giveUp);
    socket.off('error', giveUp);
    socket.setTimeout(0);
    socket.pause();
  };
  socket.on('data', onData);
  socket.on('timeout', giveUp);
  // Gone before a byte decided anything: nothing to answer.
  socket.on('end', giveUp);
  socket.on('error', giveUp);
  socket.setTimeout(timeoutMs);
  // After a PROXY header the socket is paused, and a 'data' listener does not undo an explicit pause.
  socket.resume();
}
