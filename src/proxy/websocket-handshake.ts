// The one part of the WebSocket opening handshake (RFC 6455 §4) Switchyard
// performs itself: an HTTP/2 WebSocket (RFC 8441) carries no
// Sec-WebSocket-Key, but the HTTP/1.1 upstream it becomes needs one, and the
// upstream's Sec-WebSocket-Accept must answer it before the stream becomes a
// tunnel (otherwise whatever answered is not a WebSocket server that read
// this request, say a cache replaying a 101).
import { createHash, randomBytes } from 'node:crypto';

/** RFC 6455 §1.3: the GUID every Sec-WebSocket-Accept is computed with. */
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** A fresh Sec-WebSocket-Key: 16 random bytes, base64. */
export function newWebSocketKey(): string {
  return randomBytes(16).toString('base64');
}

/** The Sec-WebSocket-Accept a server must answer `key` with. */
export function websocketAccept(key: string): string {
  return createHash('sha1').update(key + GUID).digest('base64');
}

/**
 * Why the upstream's 101 (`raw`: its header fields, name and value
 * alternating) does not complete a WebSocket handshake for `key`, or
 * undefined when it does: `Upgrade: websocket` and the matching
 * Sec-WebSocket-Accept, each exactly once.
 */
export function switchProblem(raw: readonly string[], key: string): string | undefined {
  const upgrade: string[] = [];
  const accept: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name === 'upgrade') upgrade.push(raw[i + 1]!);
    else if (name === 'sec-websocket-accept') accept.push(raw[i + 1]!);
  }
  if (upgrade.length !== 1 || upgrade[0]!.trim().toLowerCase() !== 'websocket') return `101 with Upgrade ${JSON.stringify(upgrade.join(', '))}, not websocket`;
  if (accept.length !== 1) return `101 with ${accept.length} Sec-WebSocket-Accept fields`;
  if (accept[0]!.trim() !== websocketAccept(key)) return '101 with a Sec-WebSocket-Accept that does not answer the key sent';
  return undefined;
}
