// A byte-exact HTTP/1.1 client for black-box tests: writes whatever bytes a
// test gives it over a plain net.Socket (so malformed and smuggling requests
// reach the proxy untouched) and parses the responses itself, reporting
// truncated bodies and closes instead of hiding them the way node:http would.

import net from 'node:net';

/** One response as it came off the wire. */
export class RawResponse {
  constructor(
    readonly httpVersion: string,
    readonly status: number,
    readonly reason: string,
    /** Header lines in wire order, names as sent. */
    readonly rawHeaders: Array<[string, string]>,
    readonly body: Buffer,
    /** False when the connection ended before the framing said the body was done. */
    readonly complete: boolean,
    readonly chunked: boolean,
  ) {}

  /** Every value of a header (case-insensitive name), one entry per line. */
  headerAll(name: string): string[] {
    const lower = name.toLowerCase();
    return this.rawHeaders.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v);
  }

  /** The values of a header joined with ", ", or undefined when absent. */
  header(name: string): string | undefined {
    const all = this.headerAll(name);
    return all.length === 0 ? undefined : all.join(', ');
  }
}

export interface ReadOptions {
  /** The request method this answers: HEAD responses have no body. */
  method?: string;
  timeoutMs?: number;
}

type Parsed = { response: RawResponse; consumed: number } | 'need-more';

const NO_BODY_STATUS = (status: number): boolean => (status >= 100 && status < 200) || status === 204 || status === 304;

/**
 * Parses one response from the front of `buf`. `eof` says the peer closed:
 * then a response without complete framing is returned with complete=false.
 * Throws on bytes that are not an HTTP response at all.
 */
export function parseResponse(buf: Buffer, method: string, eof: boolean): Parsed {
  const headEnd = buf.indexOf('\r\n\r\n');
  if (headEnd < 0) {
    if (eof && buf.length > 0) throw new Error(`connection closed inside a response head: ${JSON.stringify(buf.toString('latin1').slice(0, 200))}`);
    return 'need-more';
  }
  const lines = buf.subarray(0, headEnd).toString('latin1').split('\r\n');
  const m = /^(HTTP\/\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0] ?? '');
  if (!m) throw new Error(`not an HTTP status line: ${JSON.stringify(lines[0])}`);
  const [, version, statusText, reason] = m as unknown as [string, string, string, string | undefined];
  const status = Number(statusText);
  const rawHeaders: Array<[string, string]> = [];
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`malformed header line: ${JSON.stringify(line)}`);
    rawHeaders.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
  }
  const bodyStart = headEnd + 4;
  const make = (body: Buffer, complete: boolean, chunked: boolean, end: number): Parsed => ({
    response: new RawResponse(version, status, reason ?? '', rawHeaders, body, complete, chunked),
    consumed: end,
  });
  const find = (n: string): string | undefined =>
    rawHeaders.filter(([k]) => k.toLowerCase() === n).map(([, v]) => v).join(', ') || undefined;

  if (method === 'HEAD' || NO_BODY_STATUS(status)) return make(Buffer.alloc(0), true, false, bodyStart);

  const te = find('transfer-encoding');
  if (te !== undefined && /(^|,)\s*chunked\s*$/i.test(te)) {
    const parts: Buffer[] = [];
    let pos = bodyStart;
    for (;;) {
      const lineEnd = buf.indexOf('\r\n', pos);
      if (lineEnd < 0) break;
      const sizeText = buf.subarray(pos, lineEnd).toString('latin1').split(';')[0]!.trim();
      if (!/^[0-9a-fA-F]+$/.test(sizeText)) throw new Error(`bad chunk size line: ${JSON.stringify(sizeText)}`);
      const size = parseInt(sizeText, 16);
      if (size === 0) {
        // Last chunk, then optional trailers, then an empty line.
        const trailerEnd = buf.indexOf('\r\n\r\n', lineEnd);
        if (trailerEnd < 0) break;
        return make(Buffer.concat(parts), true, true, trailerEnd + 4);
      }
      if (buf.length < lineEnd + 2 + size + 2) {
        parts.push(buf.subarray(lineEnd + 2, Math.min(buf.length, lineEnd + 2 + size)));
        break;
      }
      parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
      pos = lineEnd + 2 + size + 2;
    }
    return eof ? make(Buffer.concat(parts), false, true, buf.length) : 'need-more';
  }

  const cl = find('content-length');
  if (cl !== undefined) {
    if (!/^\d+$/.test(cl)) throw new Error(`bad content-length in response: ${JSON.stringify(cl)}`);
    const length = Number(cl);
    if (buf.length >= bodyStart + length) return make(buf.subarray(bodyStart, bodyStart + length), true, false, bodyStart + length);
    return eof ? make(buf.subarray(bodyStart), false, false, buf.length) : 'need-more';
  }
  // Neither: the body runs until the server closes.
  return eof ? make(buf.subarray(bodyStart), true, false, buf.length) : 'need-more';
}

/** A client connection that reads responses one at a time. */
export class RawConnection {
  private buf = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  /** Set once the peer ended or reset the connection. */
  closed = false;
  /** The socket error code when the connection was reset rather than ended. */
  errorCode: string | undefined;
  /** Every byte received, including parsed responses. */
  received = Buffer.alloc(0);

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      this.received = Buffer.concat([this.received, chunk]);
      this.notify();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.errorCode = err.code ?? err.message;
    });
    socket.on('close', () => {
      this.closed = true;
      this.notify();
    });
  }

  static open(port: number, opts: { host?: string; localAddress?: string } = {}): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: opts.host ?? '127.0.0.1', localAddress: opts.localAddress });
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawConnection(socket));
      });
      socket.once('error', reject);
    });
  }

  /** Strings are written as latin1 so every char is exactly one byte. */
  write(data: string | Buffer): void {
    if (this.socket.destroyed || this.socket.writableEnded) return;
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Bytes received and not yet consumed by read(). */
  get pending(): Buffer {
    return this.buf;
  }

  /**
   * The next response, or undefined when the connection closed before any
   * byte of one arrived. Rejects on timeout or unparseable bytes.
   */
  async read(opts: ReadOptions = {}): Promise<RawResponse | undefined> {
    const deadline = Date.now() + (opts.timeoutMs ?? 5000);
    for (;;) {
      if (this.closed && this.buf.length === 0) return undefined;
      const parsed = parseResponse(this.buf, (opts.method ?? 'GET').toUpperCase(), this.closed);
      if (parsed !== 'need-more') {
        this.buf = this.buf.subarray(parsed.consumed);
        return parsed.response;
      }
      await this.waitEvent(deadline, 'a response');
    }
  }

  /** Like read(), but a missing or truncated response is an error. */
  async expectResponse(opts: ReadOptions = {}): Promise<RawResponse> {
    const res = await this.read(opts);
    if (!res) throw new Error(`connection closed without a response (${this.errorCode ?? 'eof'})`);
    if (!res.complete) throw new Error(`response ${res.status} truncated after ${res.body.length} body bytes`);
    return res;
  }

  /** Exactly n raw bytes (for tunnelled data after a 101). */
  async readBytes(n: number, timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buf.length < n) {
      if (this.closed) throw new Error(`connection closed after ${this.buf.length} of ${n} bytes`);
      await this.waitEvent(deadline, `${n} bytes`);
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** True once the peer closed (end or reset) within timeoutMs. */
  async waitClosed(timeoutMs = 3000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      try {
        await this.waitEvent(deadline, 'close');
      } catch {
        return false;
      }
    }
    return true;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private waitEvent(deadline: number, what: string): Promise<void> {
    const left = deadline - Date.now();
    if (left <= 0) return Promise.reject(new Error(`timed out waiting for ${what}; have ${JSON.stringify(this.buf.toString('latin1').slice(0, 300))}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        reject(new Error(`timed out waiting for ${what}; have ${JSON.stringify(this.buf.toString('latin1').slice(0, 300))}`));
      }, left);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

export interface Exchange {
  /** The first response, undefined when the proxy closed without answering. */
  response: RawResponse | undefined;
  /** Whether the proxy closed the connection within closeWaitMs after answering. */
  closed: boolean;
  conn: RawConnection;
}

/**
 * Sends `bytes` on a fresh connection, reads one response (if any) and waits
 * up to closeWaitMs for the proxy to close. The socket is always destroyed.
 */
export async function exchange(
  port: number,
  bytes: string | Buffer,
  opts: ReadOptions & { closeWaitMs?: number; localAddress?: string } = {},
): Promise<Exchange> {
  const conn = await RawConnection.open(port, { localAddress: opts.localAddress });
  try {
    conn.write(bytes);
    const response = await conn.read(opts);
    const closed = await conn.waitClosed(opts.closeWaitMs ?? 2000);
    return { response, closed, conn };
  } finally {
    conn.destroy();
  }
}
