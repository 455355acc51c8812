// A raw HTTP/2 client for attack tests: builds frames byte by byte (RFC 9113
// §4.1 and §6, HPACK literals without Huffman or indexing, RFC 7541 §6.2.2),
// so a test can send what no well-behaved client library would (resets by
// the thousand, endless CONTINUATION, connection-specific headers, a
// Content-Length the DATA frames contradict), and reads back every frame
// the server sends.
import net from 'node:net';

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const FrameType = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
export const ErrorCode = { NO_ERROR: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2, REFUSED_STREAM: 7, CANCEL: 8, ENHANCE_YOUR_CALM: 11 } as const;

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK integer with an N-bit prefix (RFC 7541 §5.1). */
function hpackInt(value: number, prefixBits: number, firstByteFlags = 0): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([firstByteFlags | value]);
  const out = [firstByteFlags | max];
  value -= max;
  while (value >= 128) {
    out.push((value % 128) + 128);
    value = Math.floor(value / 128);
  }
  out.push(value);
  return Buffer.from(out);
}

/** A header block of literal fields without indexing (new names), no Huffman. */
export function headerBlock(fields: Array<[string, string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of fields) {
    const n = Buffer.from(name, 'latin1');
    const v = Buffer.from(value, 'latin1');
    parts.push(Buffer.from([0x00]), hpackInt(n.length, 7), n, hpackInt(v.length, 7), v);
  }
  return Buffer.concat(parts);
}

export function settings(entries: Array<[number, number]> = []): Buffer {
  const payload = Buffer.alloc(entries.length * 6);
  entries.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * 6);
    payload.writeUInt32BE(value, i * 6 + 2);
  });
  return frame(FrameType.SETTINGS, 0, 0, payload);
}

export const settingsAck = (): Buffer => frame(FrameType.SETTINGS, Flag.ACK, 0);

export function headers(streamId: number, fields: Array<[string, string]>, endStream: boolean, endHeaders = true): Buffer {
  return frame(FrameType.HEADERS, (endStream ? Flag.END_STREAM : 0) | (endHeaders ? Flag.END_HEADERS : 0), streamId, headerBlock(fields));
}

export const continuation = (streamId: number, block: Buffer, endHeaders: boolean): Buffer => frame(FrameType.CONTINUATION, endHeaders ? Flag.END_HEADERS : 0, streamId, block);

export const data = (streamId: number, bytes: Buffer, endStream: boolean): Buffer => frame(FrameType.DATA, endStream ? Flag.END_STREAM : 0, streamId, bytes);

export function rstStream(streamId: number, code: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code);
  return frame(FrameType.RST_STREAM, 0, streamId, p);
}

export const ping = (payload = Buffer.alloc(8)): Buffer => frame(FrameType.PING, 0, 0, payload);

/** The request pseudo-headers of a GET to `path` at `authority`, plus `extra`. */
export function request(path: string, authority: string, extra: Array<[string, string]> = [], method = 'GET'): Array<[string, string]> {
  return [[':method', method], [':scheme', 'http'], [':path', path], [':authority', authority], ...extra];
}

export interface ReceivedFrame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/** A raw connection: the preface and an empty SETTINGS are sent on open; every frame received is kept. */
export class RawH2 {
  readonly frames: ReceivedFrame[] = [];
  closed = false;
  private buffered = Buffer.alloc(0);
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      while (this.buffered.length >= 9) {
        const length = this.buffered.readUIntBE(0, 3);
        if (this.buffered.length < 9 + length) break;
        this.frames.push({ type: this.buffered[3]!, flags: this.buffered[4]!, streamId: this.buffered.readUInt32BE(5) & 0x7fffffff, payload: this.buffered.subarray(9, 9 + length) });
        this.buffered = this.buffered.subarray(9 + length);
      }
      this.wake();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  static async open(port: number, host = '127.0.0.1'): Promise<RawH2> {
    const socket = net.connect({ port, host });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const conn = new RawH2(socket);
    socket.write(Buffer.concat([PREFACE, settings()]));
    return conn;
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Writes; false once the server has closed the connection (the write may then fail). */
  send(bytes: Buffer): boolean {
    if (this.closed || this.socket.destroyed) return false;
    this.socket.write(bytes);
    return true;
  }

  /** Resolves with the first frame matching `pred` (received already or later), or undefined at close or timeout. */
  async waitFor(pred: (f: ReceivedFrame) => boolean, timeoutMs = 5000): Promise<ReceivedFrame | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.frames.find(pred);
      if (found !== undefined) return found;
      if (this.closed || Date.now() >= deadline) return undefined;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Resolves once the server has closed the connection (true) or at the timeout (false). */
  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    await this.waitFor(() => false, timeoutMs);
    return this.closed;
  }

  goaway(): { lastStreamId: number; code: number } | undefined {
    const f = this.frames.find((x) => x.type === FrameType.GOAWAY);
    return f === undefined ? undefined : { lastStreamId: f.payload.readUInt32BE(0) & 0x7fffffff, code: f.payload.readUInt32BE(4) };
  }

  /** The RST_STREAM code the server sent for `streamId`, if any. */
  resetCode(streamId: number): number | undefined {
    const f = this.frames.find((x) => x.type === FrameType.RST_STREAM && x.streamId === streamId);
    return f === undefined ? undefined : f.payload.readUInt32BE(0);
  }

  /** Whether the server sent a HEADERS frame (a response) on `streamId`. */
  answered(streamId: number): boolean {
    return this.frames.some((x) => x.type === FrameType.HEADERS && x.streamId === streamId);
  }

  /**
   * The :status of the response on `streamId`, for the statuses HPACK's
   * static table holds (200, 204, 206, 304, 400, 404, 500: nghttp2 sends
   * those as one indexed byte first in the block); undefined otherwise.
   */
  status(streamId: number): number | undefined {
    const f = this.frames.find((x) => x.type === FrameType.HEADERS && x.streamId === streamId);
    const STATIC: Record<number, number> = { 0x88: 200, 0x89: 204, 0x8a: 206, 0x8b: 304, 0x8c: 400, 0x8d: 404, 0x8e: 500 };
    return f === undefined ? undefined : STATIC[f.payload[0]!];
  }

  close(): void {
    this.socket.destroy();
  }
}
