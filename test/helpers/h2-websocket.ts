// A WebSocket client over HTTP/2 (RFC 8441) for tests: Node's http2 client
// sends the extended CONNECT, and the ws package's own frame Sender (client
// frames masked) and Receiver speak RFC 6455 on the stream. Also a ws echo
// backend that records each connection's handshake and what it received.
import http from 'node:http';
import type { ClientHttp2Session, ClientHttp2Stream, IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';

interface FrameSender {
  send(data: Buffer, options: { binary: boolean; fin: boolean; mask: boolean; readOnly: boolean }, cb?: () => void): void;
  close(code: number, reason: string, mask: boolean, cb?: () => void): void;
}
interface FrameReceiver extends NodeJS.WritableStream {
  on(event: 'message', listener: (data: Buffer, isBinary: boolean) => void): this;
  on(event: 'conclude', listener: (code: number, reason: Buffer) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
}
// @types/ws does not declare the frame codec ws exports; these are the parts used here.
const ws = createRequire(import.meta.url)('ws') as {
  Sender: new (socket: Duplex) => FrameSender;
  Receiver: new (options: { isServer: boolean }) => FrameReceiver;
};

export interface H2WebSocket {
  stream: ClientHttp2Stream;
  /** One text message (masked, as a client must). */
  send(text: string | Buffer): void;
  /** The next message from the server (rejects when the stream closes first or at the timeout). */
  next(timeoutMs?: number): Promise<Buffer>;
  /** A Close frame, then END_STREAM. */
  close(): void;
  /** Resolves with the stream's RST_STREAM code (0: it ended cleanly) when it has closed. */
  closed: Promise<number>;
  /** The server's Close frame, if one came. */
  closeCode(): number | undefined;
}

export interface Handshake {
  status: number;
  headers: IncomingHttpHeaders;
  /** The socket when the status is 200. */
  socket: H2WebSocket | undefined;
  /** The body of a refusal. */
  body: Buffer;
  rstCode: number;
}

/** Extended CONNECT `:protocol` websocket on `path`; with `early`, DATA sent right after the HEADERS, before any answer. */
export function openH2WebSocket(session: ClientHttp2Session, path: string, headers: OutgoingHttpHeaders = {}, early?: Buffer): Promise<Handshake> {
  const stream = session.request({ ':method': 'CONNECT', ':protocol': 'websocket', ':path': path, 'sec-websocket-version': '13', ...headers }, { endStream: false });
  stream.on('error', () => {});
  if (early !== undefined) stream.write(early);
  const closed = new Promise<number>((resolve) => stream.on('close', () => resolve(stream.rstCode ?? 0)));
  return new Promise((resolve) => {
    let settled = false;
    stream.once('response', (h) => {
      const status = Number(h[':status']);
      if (status !== 200) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.once('close', () => resolve({ status, headers: h, socket: undefined, body: Buffer.concat(chunks), rstCode: stream.rstCode ?? 0 }));
        settled = true;
        return;
      }
      settled = true;
      resolve({ status, headers: h, socket: socketOn(stream, closed), body: Buffer.alloc(0), rstCode: 0 });
    });
    stream.once('close', () => {
      if (!settled) resolve({ status: 0, headers: {}, socket: undefined, body: Buffer.alloc(0), rstCode: stream.rstCode ?? 0 });
    });
  });
}

function socketOn(stream: ClientHttp2Stream, closed: Promise<number>): H2WebSocket {
  const receiver = new ws.Receiver({ isServer: false });
  const sender = new ws.Sender(stream);
  const inbox: Buffer[] = [];
  let wake: (() => void) | undefined;
  let serverClose: number | undefined;
  let closeSent = false;
  let ended = false;
  const sendClose = (code: number): void => {
    if (closeSent) return;
    closeSent = true;
    sender.close(code, '', true, () => stream.end());
  };
  receiver.on('message', (data) => {
    inbox.push(Buffer.from(data));
    wake?.();
  });
  // RFC 6455 §5.5.1: a Close from the server is answered with a Close; the server then closes the connection.
  receiver.on('conclude', (code) => {
    serverClose = code;
    sendClose(code);
  });
  receiver.on('error', () => stream.close());
  stream.on('data', (chunk: Buffer) => receiver.write(chunk));
  stream.once('close', () => {
    ended = true;
    wake?.();
  });
  return {
    stream,
    send(text) {
      sender.send(Buffer.from(text), { binary: typeof text !== 'string', fin: true, mask: true, readOnly: false });
    },
    async next(timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (inbox.length === 0) {
        if (ended) throw new Error(`stream closed (rst ${stream.rstCode ?? 0}) before a message came`);
        if (Date.now() >= deadline) throw new Error('no message within the timeout');
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
          wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
      }
      return inbox.shift()!;
    },
    close() {
      sendClose(1000);
    },
    closed,
    closeCode: () => serverClose,
  };
}

export interface WsConnection {
  headers: http.IncomingHttpHeaders;
  url: string;
  messages: Buffer[];
  socket: WebSocket;
  closed: boolean;
}

export interface WsEchoBackend {
  address: string;
  connections: WsConnection[];
  close(): Promise<void>;
}

/** A ws server that echoes every message on its connection; plain HTTP requests get 200 "plain". */
export async function startWsEchoBackend(): Promise<WsEchoBackend> {
  const server = http.createServer((_req, res) => res.end('plain'));
  const wss = new WebSocketServer({ server, handleProtocols: (protocols) => (protocols.has('chat') ? 'chat' : false) });
  const connections: WsConnection[] = [];
  wss.on('connection', (socket, req) => {
    const conn: WsConnection = { headers: req.headers, url: req.url ?? '', messages: [], socket, closed: false };
    connections.push(conn);
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      conn.messages.push(Buffer.from(data));
      socket.send(data, { binary: isBinary });
    });
    socket.on('close', () => (conn.closed = true));
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections,
    async close() {
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
