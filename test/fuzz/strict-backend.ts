// The fuzzer's upstream: a raw-TCP HTTP/1.1 server with its own strict parser
// (not node:http, not llhttp, so it is differential with the proxy's parser).
// It records exactly what the proxy forwarded and refuses anything an RFC 9112
// sender must not generate: bare CR or LF, obs-fold, whitespace before a
// colon, more or less than one Host, CL together with TE, duplicate or
// non-decimal Content-Length, a TE list not ending in one "chunked", bad chunk
// lines. A refusal is recorded as an ill-framed forward and the connection is
// dropped. Each request is answered in the way its X-Fuzz-Reply header asks,
// always echoing its marker (X-Fuzz-Id) so the client can tell whose answer
// it got.

import { createHash } from 'node:crypto';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ForwardedRequest {
  conn: number;
  method: string;
  target: string;
  headers: Array<[string, string]>;
  trailers: Array<[string, string]>;
  body: Buffer;
  /** Request line and header lines as received (latin1), without the body. */
  head: string;
  /** Trailer lines as received, without the last-chunk line. */
  trailerText: string;
}

export interface IllFramed {
  conn: number;
  reason: string;
  /** The unparsed bytes of the connection from the start of the offending message. */
  bytes: Buffer;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const FIELD_VALUE = /^[\x21-\x7e\x80-\xff]?(?:[\x20-\x7e\x80-\xff\t]*[\x21-\x7e\x80-\xff])?$/;
const CHUNK_EXT = /^(?:[ \t]*;[ \t]*[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:[ \t]*=[ \t]*(?:[!#$%&'*+.^_`|~0-9A-Za-z-]+|"(?:[\t\x20\x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t\x20-\x7e\x80-\xff])*"))?)*$/;
const MAX_LINE = 16 * 1024;
const MAX_BODY = 4 * 1024 * 1024;

class Reject extends Error {}

type Parsed = { req: Omit<ForwardedRequest, 'conn'>; consumed: number } | 'need-more';

/** Reads one CRLF-terminated line at pos; bare CR or bare LF anywhere is a rejection. */
function line(buf: Buffer, pos: number): { text: string; next: number } | undefined {
  const lf = buf.indexOf(0x0a, pos);
  if (lf < 0) {
    if (buf.length - pos > MAX_LINE) throw new Reject('line too long');
    if (buf.indexOf(0x0d, pos) >= 0 && buf.indexOf(0x0d, pos) < buf.length - 1) throw new Reject('bare CR');
    return undefined;
  }
  if (lf === pos || buf[lf - 1] !== 0x0d) throw new Reject('bare LF');
  const text = buf.subarray(pos, lf - 1).toString('latin1');
  if (text.includes('\r')) throw new Reject('bare CR');
  return { text, next: lf + 1 };
}

/** Field lines up to the empty line; undefined when more bytes are needed. */
function fields(buf: Buffer, pos: number): { fields: Array<[string, string]>; next: number } | undefined {
  const out: Array<[string, string]> = [];
  for (;;) {
    const l = line(buf, pos);
    if (!l) return undefined;
    pos = l.next;
    if (l.text === '') return { fields: out, next: pos };
    if (l.text[0] === ' ' || l.text[0] === '\t') throw new Reject('obs-fold');
    const colon = l.text.indexOf(':');
    const name = l.text.slice(0, Math.max(colon, 0));
    if (colon <= 0 || !TOKEN.test(name)) throw new Reject(`bad field name ${JSON.stringify(l.text.slice(0, 60))}`);
    const value = l.text.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (!FIELD_VALUE.test(value)) throw new Reject(`bad field value ${JSON.stringify(l.text.slice(0, 60))}`);
    out.push([name, value]);
    if (out.length > 200) throw new Reject('too many fields');
  }
}

const all = (list: Array<[string, string]>, name: string): string[] => list.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);

/** One request from the front of buf, strictly. Throws Reject on anything ill-framed. */
export function parseStrict(buf: Buffer): Parsed {
  const start = line(buf, 0);
  if (!start) return 'need-more';
  const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([\x21-\x7e]+) HTTP\/1\.1$/.exec(start.text);
  if (!m) throw new Reject(`bad request line ${JSON.stringify(start.text.slice(0, 80))}`);
  const head = fields(buf, start.next);
  if (!head) return 'need-more';
  const headers = head.fields;
  if (all(headers, 'host').length !== 1) throw new Reject(`${all(headers, 'host').length} Host fields`);
  const cl = all(headers, 'content-length');
  const te = all(headers, 'transfer-encoding');
  if (cl.length > 0 && te.length > 0) throw new Reject('both Content-Length and Transfer-Encoding');
  if (cl.length > 1) throw new Reject('more than one Content-Length');
  let pos = head.next;
  const text = (end: number): string => buf.subarray(0, end).toString('latin1');
  if (te.length > 0) {
    const codings = te.join(',').split(',').map((c) => c.trim().toLowerCase());
    if (codings.at(-1) !== 'chunked' || codings.filter((c) => c === 'chunked').length !== 1 || !codings.every((c) => TOKEN.test(c))) {
      throw new Reject(`bad Transfer-Encoding ${JSON.stringify(te)}`);
    }
    const parts: Buffer[] = [];
    let total = 0;
    for (;;) {
      const l = line(buf, pos);
      if (!l) return 'need-more';
      const sm = /^([0-9A-Fa-f]{1,8})(.*)$/.exec(l.text);
      if (!sm || !CHUNK_EXT.test(sm[2]!)) throw new Reject(`bad chunk line ${JSON.stringify(l.text.slice(0, 60))}`);
      const size = parseInt(sm[1]!, 16);
      total += size;
      if (total > MAX_BODY) throw new Reject('chunked body too large');
      if (size === 0) {
        const tr = fields(buf, l.next);
        if (!tr) return 'need-more';
        const trailerText = buf.subarray(l.next, tr.next).toString('latin1');
        return { req: { method: m[1]!, target: m[2]!, headers, trailers: tr.fields, body: Buffer.concat(parts), head: text(head.next), trailerText }, consumed: tr.next };
      }
      if (buf.length < l.next + size + 2) return 'need-more';
      if (buf[l.next + size] !== 0x0d || buf[l.next + size + 1] !== 0x0a) throw new Reject('chunk data not followed by CRLF');
      parts.push(buf.subarray(l.next, l.next + size));
      pos = l.next + size + 2;
    }
  }
  let length = 0;
  if (cl.length === 1) {
    if (!/^\d{1,10}$/.test(cl[0]!) || Number(cl[0]) > MAX_BODY) throw new Reject(`bad Content-Length ${JSON.stringify(cl[0])}`);
    length = Number(cl[0]);
  }
  if (buf.length < pos + length) return 'need-more';
  return { req: { method: m[1]!, target: m[2]!, headers, trailers: [], body: Buffer.from(buf.subarray(pos, pos + length)), head: text(pos), trailerText: '' }, consumed: pos + length };
}

/**
 * How the backend answers: Content-Length, chunked, chunked with a trailer
 * (X-Secret-<marker>), slowly in pieces, 101 to an Upgrade, Connection: close,
 * a body delimited by the close, a 100 Continue before the answer, or at once
 * when the head is in, before the body (which is then read and dropped), or
 * twice (an unsolicited second answer).
 */
export type ReplyMode = 'cl' | 'chunked' | 'trailer' | 'slow' | '101' | 'close' | 'eof' | 'continue' | 'early' | 'extra';

/** The early answer to a request whose head is complete and which asks for one, else undefined. */
function earlyAnswer(buf: Buffer): string | undefined {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const head = buf.subarray(0, end + 2).toString('latin1');
  if (!/\r\nX-Fuzz-Reply: early\r\n/i.test(head)) return undefined;
  const marker = /\r\nX-Fuzz-Id: ?([^\r]*)\r\n/i.exec(head)?.[1] ?? 'none';
  const body = `echo ${marker} ${head.split(' ')[0]} early\n`;
  return `HTTP/1.1 200 OK\r\nX-Fuzz-Echo: ${marker}\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
}

export interface StrictBackend {
  port: number;
  requests: ForwardedRequest[];
  illFramed: IllFramed[];
  close(): Promise<void>;
}

/** The answer to one request; marker is its X-Fuzz-Id (or "none"). */
async function answer(socket: net.Socket, req: Omit<ForwardedRequest, 'conn'>): Promise<'tunnel' | 'http' | 'closed'> {
  const marker = all(req.headers, 'x-fuzz-id')[0] ?? 'none';
  const mode = (all(req.headers, 'x-fuzz-reply')[0] ?? 'cl') as ReplyMode;
  const body = `echo ${marker} ${req.method} ${req.body.length}\n`;
  const head = `HTTP/1.1 200 OK\r\nX-Fuzz-Echo: ${marker}\r\n`;
  const connTokens = all(req.headers, 'connection').join(',').toLowerCase().split(',').map((t) => t.trim());
  const key = all(req.headers, 'sec-websocket-key')[0];
  if (mode === '101' && all(req.headers, 'upgrade').length === 1 && connTokens.includes('upgrade')) {
    const accept = createHash('sha1').update(`${key ?? ''}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${all(req.headers, 'upgrade')[0]}\r\nSec-WebSocket-Accept: ${accept}\r\nX-Fuzz-Echo: ${marker}\r\n\r\n`);
    return 'tunnel';
  }
  // A HEAD answer has the head a GET would get and no body.
  const withBody = (headPart: string, bodyPart: string): string => (req.method === 'HEAD' ? headPart : headPart + bodyPart);
  if (mode === 'chunked' || mode === 'trailer') {
    const half = body.length >> 1;
    const headPart = `${head}Transfer-Encoding: chunked\r\n${mode === 'trailer' ? `Trailer: X-Secret-${marker}\r\n` : ''}\r\n`;
    let bodyPart = `${half.toString(16)}\r\n${body.slice(0, half)}\r\n${(body.length - half).toString(16)}\r\n${body.slice(half)}\r\n0\r\n`;
    bodyPart += mode === 'trailer' ? `X-Secret-${marker}: ${marker}\r\n\r\n` : '\r\n';
    socket.write(withBody(headPart, bodyPart), 'latin1');
  } else if (mode === 'slow') {
    socket.write(`${head}Content-Length: ${body.length}\r\n\r\n`);
    if (req.method === 'HEAD') return 'http';
    await sleep(30);
    socket.write(body.slice(0, 5));
    await sleep(20);
    socket.write(body.slice(5));
  } else if (mode === 'close' || mode === 'eof') {
    socket.end(withBody(`${head}${mode === 'close' ? `Connection: close\r\nContent-Length: ${body.length}\r\n` : ''}\r\n`, body), 'latin1');
    return 'closed';
  } else {
    // A backend that read one request as two answers twice, in one write: the
    // proxy holds the spare answer when it finishes the first and must drop the
    // connection, never hand the spare to the next request. (A spare arriving
    // after the next request went out cannot be told apart in HTTP/1.1.)
    const spare = mode === 'extra' ? `${head}Content-Length: 6\r\n\r\nextra\n` : '';
    socket.write(withBody(`${mode === 'continue' ? 'HTTP/1.1 100 Continue\r\n\r\n' : ''}${head}Content-Length: ${body.length}\r\n\r\n`, body) + spare, 'latin1');
  }
  return 'http';
}

export async function startStrictBackend(): Promise<StrictBackend> {
  const requests: ForwardedRequest[] = [];
  const illFramed: IllFramed[] = [];
  const sockets = new Set<net.Socket>();
  let nextConn = 0;
  const server = net.createServer((socket) => {
    const conn = nextConn++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buf = Buffer.alloc(0);
    let tunnel = false;
    let ended = false;
    let answeredEarly = false;
    // Requests are answered one at a time, in order, even when a slow answer is
    // pending: bytes arriving meanwhile are parsed by the running loop.
    let busy = false;
    const pump = async (): Promise<void> => {
      if (busy) return;
      busy = true;
      try {
        while (!tunnel && !ended && !socket.destroyed) {
          let parsed: Parsed;
          try {
            parsed = parseStrict(buf);
          } catch (err) {
            if (!(err instanceof Reject)) throw err;
            illFramed.push({ conn, reason: err.message, bytes: buf });
            socket.destroy();
            return;
          }
          if (parsed === 'need-more') {
            const early = answeredEarly ? undefined : earlyAnswer(buf);
            if (early !== undefined) socket.write(early, 'latin1');
            answeredEarly ||= early !== undefined;
            return;
          }
          buf = buf.subarray(parsed.consumed);
          requests.push({ conn, ...parsed.req });
          const early = earlyAnswer(Buffer.from(parsed.req.head, 'latin1'));
          if (early !== undefined) {
            // Answered when its head came in, or now when the whole request came at once.
            if (!answeredEarly) socket.write(early, 'latin1');
            answeredEarly = false;
            continue;
          }
          const after = await answer(socket, parsed.req);
          // Bytes after an answer that closes are never read, as a real server would drop them.
          if (after === 'closed') ended = true;
          if (after === 'tunnel') {
            tunnel = true;
            if (buf.length > 0) socket.write(buf);
          }
        }
      } finally {
        busy = false;
      }
    };
    socket.on('data', (chunk: Buffer) => {
      // Tunnelled bytes are echoed unparsed, as a WebSocket server would own them.
      if (tunnel) {
        socket.write(chunk);
        return;
      }
      buf = Buffer.concat([buf, chunk]);
      // A throw here is a bug of this parser: reported loudly, as a finding, rather than lost.
      pump().catch((err: Error) => {
        illFramed.push({ conn, reason: `strict backend bug: ${err.stack ?? err.message}`, bytes: buf });
        socket.destroy();
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    requests,
    illFramed,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
