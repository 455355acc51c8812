// Raw TCP peers for the L4 tests: an echo backend that records every byte
// each connection brought (PROXY headers included) and signs its replies, and
// clients that send, half-close and read to the end, or hold a connection
// open for round trips.
import net from 'node:net';

export interface TcpBackend {
  name: string;
  port: number;
  address: string;
  /** Bytes received, per connection, in arrival order. */
  received: Buffer[];
  /** Connections open right now. */
  open(): number;
  close(): Promise<void>;
}

/** Echoes every byte back as it arrives (PROXY headers too); when the client half-closes, adds "\n[NAME]" and closes. */
export async function startTcpBackend(name: string, opts: { port?: number } = {}): Promise<TcpBackend> {
  const received: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const index = received.push(Buffer.alloc(0)) - 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      received[index] = Buffer.concat([received[index]!, chunk]);
      socket.write(chunk);
    });
    socket.on('end', () => socket.end(`\n[${name}]`));
  });
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    name,
    port,
    address: `127.0.0.1:${port}`,
    received,
    open: () => sockets.size,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface TcpResult {
  data: Buffer;
  /** The connection ended with an error (a reset) rather than a FIN. */
  error?: string;
  /** Time from connect() to close, ms. */
  ms: number;
}

/** Connects, writes `payload` (in pieces when given several), half-closes, reads to the end. */
export function tcpExchange(port: number, payload: Buffer | string | Array<Buffer | string>, opts: { localAddress?: string; host?: string; timeoutMs?: number } = {}): Promise<TcpResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: opts.host ?? '127.0.0.1', ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
    const chunks: Buffer[] = [];
    let error: string | undefined;
    const timer = setTimeout(() => {
      error = 'test timeout';
      socket.destroy();
    }, opts.timeoutMs ?? 10_000);
    socket.on('connect', () => {
      for (const p of Array.isArray(payload) ? payload : [payload]) socket.write(p);
      socket.end();
    });
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err: NodeJS.ErrnoException) => (error ??= err.code ?? err.message));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), ...(error === undefined ? {} : { error }), ms: Date.now() - started });
    });
  });
}

/** A held-open connection: write, then wait until `expect` bytes came back. */
export interface HeldConnection {
  socket: net.Socket;
  roundTrip(text: string, timeoutMs?: number): Promise<string>;
  closed: Promise<{ error?: string; data: string }>;
}

export function holdConnection(port: number, opts: { localAddress?: string; prelude?: Buffer } = {}): Promise<HeldConnection> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
    let buffered = '';
    let all = '';
    let waiter: (() => void) | undefined;
    let error: string | undefined;
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      buffered += d;
      all += d;
      waiter?.();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => (error ??= err.code ?? err.message));
    const closed = new Promise<{ error?: string; data: string }>((res) =>
      socket.on('close', () => {
        waiter?.();
        res({ ...(error === undefined ? {} : { error }), data: all });
      }),
    );
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      if (opts.prelude) socket.write(opts.prelude);
      resolve({
        socket,
        closed,
        roundTrip(text, timeoutMs = 5000) {
          socket.write(text);
          return new Promise((res, rej) => {
            const timer = setTimeout(() => rej(new Error(`no echo of ${JSON.stringify(text)} within ${timeoutMs} ms (got ${JSON.stringify(buffered)}, error ${error})`)), timeoutMs);
            const check = (): void => {
              if (buffered.length >= text.length) {
                clearTimeout(timer);
                waiter = undefined;
                const out = buffered.slice(0, text.length);
                buffered = buffered.slice(text.length);
                res(out);
              } else if (socket.destroyed) {
                clearTimeout(timer);
                rej(new Error(`connection closed before the echo of ${JSON.stringify(text)} (error ${error})`));
              }
            };
            waiter = check;
            check();
          });
        },
      });
    });
  });
}

/** Which backend signed a reply ("...\n[A]" → "A"). */
export function signer(data: Buffer | string): string | undefined {
  return /\n\[([^\]]+)\]$/.exec(data.toString('latin1'))?.[1];
}
