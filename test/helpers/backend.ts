// Real upstream servers on loopback for black-box proxy tests. Each backend
// records what reached it (raw bytes per connection and every parsed request,
// pushed as soon as its head arrives so aborted uploads are visible too) and
// answers as the test says: status, headers, fixed or generated bodies,
// chunked, delays, resets mid-body, or a WebSocket-style upgrade echo.

import { createHash } from 'node:crypto';
import http from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ReceivedRequest {
  /** For an upgrade: set once its (tunnel) socket has closed. */
  socketClosed?: boolean;
  method: string;
  url: string;
  httpVersion: string;
  headers: IncomingHttpHeaders;
  /** Name/value pairs as received, values decoded as latin1 (byte-exact). */
  rawHeaders: string[];
  /** The first `keepBodyBytes` bytes of the body. */
  body: Buffer;
  /** Every body byte counted, kept or not. */
  bodyBytes: number;
  /** sha256 hex of the whole body, set once it ended. */
  bodySha256: string | undefined;
  /** The body ended normally. */
  complete: boolean;
  /** Index into Backend.connections of the connection it came on. */
  connection: number;
  /** Date.now() when the last response byte was handed to the socket. */
  answeredAt: number | undefined;
}

export interface Answer {
  status?: number;
  /** Pairs allow repeated headers (several Set-Cookie lines). */
  headers?: Array<[string, string]>;
  body?: string | Buffer;
  /** Generate this many bytes of patternBytes() instead of `body`. */
  bodySize?: number;
  /** Send without Content-Length (chunked), in `chunks` when given. */
  chunked?: boolean;
  chunks?: Array<string | Buffer>;
  chunkDelayMs?: number;
  /** Wait this long before sending the status line. */
  delayMs?: number;
  /** Send the head and this many body bytes, then reset the connection. */
  resetAfterBytes?: number;
}

export type Responder = (req: ReceivedRequest) => Answer | Promise<Answer>;

export interface Backend {
  port: number;
  /** "127.0.0.1:PORT", the form upstream servers are written in. */
  address: string;
  requests: ReceivedRequest[];
  /** Upgrade requests that reached the 'upgrade' path. */
  upgrades: ReceivedRequest[];
  /** Raw bytes received (the first MiB), one entry per accepted connection. */
  connections: Buffer[];
  /** Upgraded sockets that have since closed. */
  upgradesClosed: number;
  respond: Responder;
  /** Everything received on every connection, as latin1 text. */
  rawText(): string;
  /** Forgets what was received (responder stays). */
  reset(): void;
  close(): Promise<void>;
}

/** Raw bytes kept per connection: enough for heads, cheap for big uploads. */
const RAW_CAP = 1 << 20;

function appendCapped(kept: Buffer, chunk: Buffer): Buffer {
  if (kept.length >= RAW_CAP) return kept;
  return Buffer.concat([kept, chunk.subarray(0, RAW_CAP - kept.length)]);
}

const PATTERN = Buffer.alloc(65536);
for (let i = 0; i < PATTERN.length; i++) PATTERN[i] = (i * 31 + (i >> 8)) & 0xff;

/** Deterministic body bytes [offset, offset+length) of an endless pattern. */
export function patternBytes(offset: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let done = 0; done < length; ) {
    const at = (offset + done) % PATTERN.length;
    const n = Math.min(PATTERN.length - at, length - done);
    PATTERN.copy(out, done, at, at + n);
    done += n;
  }
  return out;
}

/** sha256 hex of patternBytes(0, size), computed without holding it all. */
export function patternSha256(size: number): string {
  const h = createHash('sha256');
  for (let off = 0; off < size; off += PATTERN.length) h.update(patternBytes(off, Math.min(PATTERN.length, size - off)));
  return h.digest('hex');
}

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 section 4.2.2). */
export function websocketAccept(key: string): string {
  return createHash('sha1').update(key + WS_GUID).digest('base64');
}

/** Sent through an upgraded tunnel, makes the echo backend close its side. */
export const TUNNEL_CLOSE_COMMAND = 'CLOSE-TUNNEL';

export const okResponder: Responder = () => ({ status: 200, headers: [['content-type', 'text/plain']], body: 'ok' });

/**
 * Starts an HTTP backend. With `upgradeGreeting`, the 101 answer is sent in the
 * same write as these bytes (tests that the proxy forwards bytes that follow
 * the 101 head).
 */
export async function startBackend(
  opts: { respond?: Responder; keepBodyBytes?: number; upgradeGreeting?: string } = {},
): Promise<Backend> {
  const keep = opts.keepBodyBytes ?? 1 << 20;
  const server = http.createServer({ keepAliveTimeout: 30_000 });
  const sockets = new Set<net.Socket>();
  const connIndex = new WeakMap<net.Socket, number>();

  const backend: Backend = {
    port: 0,
    address: '',
    requests: [],
    upgrades: [],
    connections: [],
    upgradesClosed: 0,
    respond: opts.respond ?? okResponder,
    rawText: () => backend.connections.map((b) => b.toString('latin1')).join(''),
    reset() {
      backend.requests = [];
      backend.upgrades = [];
      // In place: pooled proxy connections stay open and keep their index.
      backend.connections.fill(Buffer.alloc(0));
      backend.upgradesClosed = 0;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  // Listeners added after http's own 'connection' listener make node:http
  // stop consuming the handle natively, so 'data' sees every raw byte.
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    const index = backend.connections.push(Buffer.alloc(0)) - 1;
    connIndex.set(socket, index);
    socket.on('data', (chunk: Buffer) => {
      backend.connections[index] = appendCapped(backend.connections[index]!, chunk);
    });
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });

  const record = (req: http.IncomingMessage): ReceivedRequest => ({
    method: req.method ?? '',
    url: req.url ?? '',
    httpVersion: req.httpVersion,
    headers: req.headers,
    rawHeaders: req.rawHeaders,
    body: Buffer.alloc(0),
    bodyBytes: 0,
    bodySha256: undefined,
    complete: false,
    connection: connIndex.get(req.socket) ?? -1,
    answeredAt: undefined,
  });

  server.on('request', (req, res) => {
    const rec = record(req);
    backend.requests.push(rec);
    const hash = createHash('sha256');
    const kept: Buffer[] = [];
    const ended = new Promise<void>((resolve) => {
      req.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        if (rec.bodyBytes < keep) kept.push(chunk.subarray(0, keep - rec.bodyBytes));
        rec.bodyBytes += chunk.length;
      });
      req.on('end', () => {
        rec.complete = true;
        rec.bodySha256 = hash.digest('hex');
        rec.body = Buffer.concat(kept);
        resolve();
      });
      req.on('close', () => {
        if (!rec.complete) rec.body = Buffer.concat(kept);
        resolve();
      });
    });
    res.on('error', () => {});
    res.on('finish', () => {
      rec.answeredAt = Date.now();
    });
    void (async () => {
      const answer = await backend.respond(rec);
      await ended;
      await sendAnswer(res, answer);
    })().catch((err: unknown) => {
      // A broken Answer is a test bug: say so instead of looking like a reset.
      process.stderr.write(`test backend: cannot answer ${rec.method} ${rec.url}: ${String(err)}\n`);
      res.destroy();
    });
  });

  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    const upgrade = record(req);
    backend.upgrades.push(upgrade);
    socket.on('error', () => {});
    socket.on('close', () => {
      upgrade.socketClosed = true;
      backend.upgradesClosed++;
    });
    const key = req.headers['sec-websocket-key'];
    if (typeof key !== 'string') {
      socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${websocketAccept(key)}\r\n\r\n` +
        (opts.upgradeGreeting ?? ''),
    );
    // Echo raw bytes: the tests check transport, not WebSocket framing.
    const echo = (d: Buffer): void => {
      if (d.includes(TUNNEL_CLOSE_COMMAND)) socket.end();
      else socket.write(d);
    };
    if (head.length > 0) echo(head);
    socket.on('data', echo);
    socket.on('end', () => socket.end());
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  backend.port = (server.address() as net.AddressInfo).port;
  backend.address = `127.0.0.1:${backend.port}`;
  return backend;
}

/**
 * A backend that names itself: answers `backend <port>\n`; `/slow` answers
 * `backend <port> slow\n` after `slowMs` and calls `onSlow` when such a
 * request arrives (so a test knows it is in flight).
 */
export async function startNamedBackend(o: { slowMs?: number; onSlow?: () => void } = {}): Promise<Backend> {
  const backend = await startBackend({
    respond: (req) => {
      const text = { status: 200, headers: [['content-type', 'text/plain']] as Array<[string, string]> };
      if (req.url !== '/slow') return { ...text, body: `backend ${backend.port}\n` };
      o.onSlow?.();
      return { ...text, body: `backend ${backend.port} slow\n`, delayMs: o.slowMs ?? 1500 };
    },
  });
  return backend;
}

async function sendAnswer(res: http.ServerResponse, a: Answer): Promise<void> {
  if (a.delayMs) await sleep(a.delayMs);
  if (res.destroyed) return;
  const headers: string[] = [];
  for (const [k, v] of a.headers ?? []) headers.push(k, v);
  const fixed = a.body === undefined ? undefined : Buffer.isBuffer(a.body) ? a.body : Buffer.from(a.body, 'latin1');
  const size = a.bodySize ?? fixed?.length ?? 0;
  const status = a.status ?? 200;
  const chunked = a.chunked === true || a.chunks !== undefined;
  // 204 and 304 carry no body, so no Content-Length of one either.
  if (!chunked && status !== 204 && status !== 304) headers.push('Content-Length', String(size));
  res.writeHead(status, headers);

  if (a.chunks) {
    for (const c of a.chunks) {
      if (a.chunkDelayMs) await sleep(a.chunkDelayMs);
      if (res.destroyed) return;
      res.write(c);
    }
    res.end();
    return;
  }
  const limit = a.resetAfterBytes ?? size;
  let sent = 0;
  if (limit === 0) res.flushHeaders();
  while (sent < limit && !res.destroyed) {
    const n = Math.min(65536, limit - sent);
    const chunk = fixed ? fixed.subarray(sent, sent + n) : patternBytes(sent, n);
    sent += n;
    if (!res.write(chunk)) await drainOrClose(res);
    if (a.chunkDelayMs) await sleep(a.chunkDelayMs);
  }
  if (a.resetAfterBytes !== undefined) {
    // Let the written bytes leave, then abort with RST: a crashed upstream.
    await new Promise<void>((resolve) => setTimeout(resolve, 50));
    res.socket?.resetAndDestroy();
    return;
  }
  res.end();
}

function drainOrClose(res: http.ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

export interface RawBackend {
  port: number;
  address: string;
  /** Raw bytes received (the first MiB), one entry per connection. */
  connections: Buffer[];
  close(): Promise<void>;
}

/** A TCP server that hands every accepted socket to `onSocket` (garbage, resets...). */
export async function startRawBackend(onSocket: (socket: net.Socket) => void): Promise<RawBackend> {
  const sockets = new Set<net.Socket>();
  const raw: RawBackend = {
    port: 0,
    address: '',
    connections: [],
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = net.createServer((socket) => {
    sockets.add(socket);
    const index = raw.connections.push(Buffer.alloc(0)) - 1;
    socket.on('data', (chunk: Buffer) => {
      raw.connections[index] = appendCapped(raw.connections[index]!, chunk);
    });
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  raw.port = (server.address() as net.AddressInfo).port;
  raw.address = `127.0.0.1:${raw.port}`;
  return raw;
}

/** A loopback port with nothing listening on it (connections are refused). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
