// The case generator: case N of seed S is one or two client connections, each
// a sequence of request messages written as exact bytes. Every message carries
// a marker (FZ<seed>.<case>.<conn>.<msg>) in its path and X-Fuzz-Id, and says
// how the RFC 9112 reading of its bytes must be treated, so the oracle never
// has to guess what the client meant:
//   ok          well-framed (perhaps leniently): forward once with `body`, or refuse
//   reject      framing is clear but the request is invalid: never forward it; what
//               follows may be forwarded unless the proxy announced a close
//   terminal    framing an RFC recipient may process (per Transfer-Encoding) but
//               must close after: forward with `body` or refuse; nothing after it
//   frame-error framing that must be refused: never forward it, nothing after it
//   smuggled    bytes written after a terminal or frame-error message: never forwarded
// A body may itself hold a complete request (marked SMUGGLED): it is body.

import { Rng } from './rng.js';

export type Cls = 'ok' | 'reject' | 'terminal' | 'frame-error' | 'smuggled';

export interface Message {
  marker: string;
  /** HEAD answers have no body: the client needs it to read the answer. */
  method: string;
  cls: Cls;
  bytes: Buffer;
  /** The body the backend must receive when this message is forwarded (ok, terminal). */
  body: Buffer | undefined;
  /** Carries the valid API key in its head. */
  keyed: boolean;
  /** Asks the backend for a 101: once it comes, the rest of the connection is tunnel data. */
  upgrade101: boolean;
  /** The mutations applied, for reports. */
  what: string[];
}

export interface ClientConn {
  messages: Message[];
  /** Byte offsets where the connection's bytes are cut into separate writes. */
  splits: number[];
  /** The client shuts its write side after the last byte (a FIN, reads go on). */
  halfClose: boolean;
  /** The client resets the connection after this many bytes: what it cut must never reach the backend whole. */
  abortAt?: number;
  /** Milliseconds between split writes. */
  pause: number;
}

export interface FuzzCase {
  seed: number;
  index: number;
  conns: ClientConn[];
}

export const API_KEY = 'fuzz-key-0123456789abcdef';
export const HOST = 'gateway.test';
/** Matches every marker a case can produce, including smuggled ones (S<n>). */
export const MARKER_RE = /FZ\d+\.\d+\.\d+\.S?\d+/g;

export const connBytes = (c: ClientConn): Buffer => Buffer.concat(c.messages.map((m) => m.bytes));

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

function word(r: Rng, min: number, max: number): string {
  let s = '';
  for (let n = r.int(min, max); n > 0; n--) s += ALNUM[r.int(0, ALNUM.length - 1)];
  return s;
}

/** A complete keyless request to /admin: if it is ever parsed as a request, it was smuggled. */
function smuggledRequest(r: Rng, marker: string): string {
  const method = r.pick(['GET', 'POST', 'DELETE']);
  return `${method} /admin/SMUGGLED/${marker} HTTP/1.1\r\nHost: ${HOST}\r\nX-Fuzz-Id: ${marker}\r\n${method === 'GET' ? '' : 'Content-Length: 0\r\n'}\r\n`;
}

/** Chunked encoding of body with some legal variation; `bad` swaps in one illegal element. */
function chunked(r: Rng, body: Buffer, what: string[], trailers: string[]): { bytes: Buffer; cls: Cls } {
  let cls: Cls = 'ok';
  const parts: Buffer[] = [];
  let pos = 0;
  const bad = r.chance(0.12) ? r.pick(['0x', 'plus', 'minus', 'overflow', 'no-crlf', 'ext-ctl', 'huge'] as const) : undefined;
  let badDone = false;
  while (pos < body.length) {
    const n = Math.min(body.length - pos, r.int(1, 24));
    let size = n.toString(16);
    const style = r.int(0, 5);
    if (style === 1) size = size.toUpperCase();
    if (style === 2) size = `000${size}`;
    let ext = '';
    if (r.chance(0.2)) ext = r.pick([';a=b', ';name="q v"', ' ;a', ';a;b=c', `;${word(r, 1, 10)}`]);
    let line = `${size}${ext}`;
    let after = '\r\n';
    if (bad !== undefined && !badDone) {
      badDone = true;
      cls = 'frame-error';
      what.push(`chunk-${bad}`);
      if (bad === '0x') line = `0x${size}`;
      if (bad === 'plus') line = `+${size}`;
      if (bad === 'minus') line = `-${size}`;
      // 2^64 + n: a 64-bit accumulator that wraps reads n.
      if (bad === 'overflow') line = `1${'0'.repeat(16 - size.length)}${size}`;
      if (bad === 'no-crlf') after = 'XX';
      if (bad === 'ext-ctl') line = `${size};a=\x01`;
      if (bad === 'huge') line = 'fffffffff';
    }
    parts.push(b(`${line}\r\n`), body.subarray(pos, pos + n), b(after));
    pos += n;
  }
  parts.push(b(`${r.pick(['0', '000'])}${r.chance(0.1) ? ';end=1' : ''}\r\n${trailers.map((t) => `${t}\r\n`).join('')}\r\n`));
  return { bytes: Buffer.concat(parts), cls };
}

/** The stricter of two classes: frame-error > terminal > reject > ok. */
function worst(a: Cls, c: Cls): Cls {
  const rank: Cls[] = ['ok', 'reject', 'terminal', 'frame-error'];
  return rank.indexOf(a) >= rank.indexOf(c) ? a : c;
}

interface Built {
  message: Message;
  /** The following message goes in the same write as this one (Upgrade answered 200). */
  glue: boolean;
}

function buildMessage(r: Rng, marker: string, smuggleMarker: () => string, tunnelFollower: boolean): Built {
  const what: string[] = [];
  let cls: Cls = 'ok';
  const kind = tunnelFollower ? 'get' : r.pick(['get', 'get', 'post-cl', 'post-cl', 'post-chunked', 'post-chunked', 'upgrade', 'expect'] as const);
  what.push(kind);
  // A tunnel follower is a keyless /admin request: parsed as HTTP, it must get 401.
  const admin = tunnelFollower || r.chance(0.3);
  const keyed = admin && !tunnelFollower && r.chance(0.5);
  let path = admin ? `/admin/${marker}` : `/f/${marker}`;
  if (admin && !keyed && r.chance(0.05)) {
    const spelled = r.pick(['/ADMIN/', '//admin/', '/%61dmin/', '/./admin/', '/f/../admin/', '/admin;x/']);
    path = `${spelled}${marker}`;
    what.push(`path ${spelled}`);
  }
  let target = path;
  if (r.chance(0.06)) {
    target = `http://${HOST}${path}`;
    what.push('absolute-form');
  } else if (r.chance(0.04)) {
    target = `http://evil.test${path}`;
    what.push('absolute-form other host');
    cls = 'reject';
  }
  let version = 'HTTP/1.1';
  const upgrade101 = kind === 'upgrade' && r.chance(0.5);
  const hasBody = kind === 'post-cl' || kind === 'post-chunked' || kind === 'expect';
  const reply = upgrade101 ? '101' : hasBody && r.chance(0.15) ? 'early' : r.pick(['cl', 'chunked', 'trailer', 'slow', 'close', 'eof', 'continue', 'extra']);
  // An Upgrade request with a body: the body is framed like any other, never tunnel data.
  const upgradeBody = kind === 'upgrade' && r.chance(0.2);
  let method = kind === 'upgrade' ? (upgradeBody ? 'POST' : 'GET') : kind === 'get' ? (r.chance(0.15) ? 'HEAD' : 'GET') : r.pick(['POST', 'PUT', 'PATCH']);
  // CONNECT is refused (400); its authority carries the marker in case it is not.
  if (kind === 'get' && !tunnelFollower && r.chance(0.03)) {
    method = 'CONNECT';
    target = `${marker}.test:443`;
    cls = 'reject';
    what.push('CONNECT');
  }

  const head: string[] = [`Host: ${HOST}`, `X-Fuzz-Id: ${marker}`, `X-Fuzz-Reply: ${reply}`, 'X-Forwarded-Proto: spoofed'];
  if (keyed) head.push(`X-Api-Key: ${API_KEY}`);
  head.push(`X-Pad: ${word(r, 0, 12)}`);
  if (kind === 'upgrade') {
    head.push(r.pick(['Connection: Upgrade', 'Connection: keep-alive, Upgrade', 'connection: upgrade', 'Connection: Upgrade, HTTP2-Settings']));
    const proto = r.pick(['websocket', 'websocket', 'WebSocket', 'h2c']);
    head.push(`Upgrade: ${proto}`, 'Sec-WebSocket-Version: 13', `Sec-WebSocket-Key: ${Buffer.from(word(r, 16, 16)).toString('base64')}`);
    if (proto === 'h2c') head.push('HTTP2-Settings: AAMAAABkAAQAAP__');
    what.push(`upgrade ${proto}${upgrade101 ? ' 101' : ''}`);
  }

  // The body: sometimes a complete request that must stay body.
  let body: Buffer = Buffer.alloc(0);
  if ((kind !== 'get' && kind !== 'upgrade') || upgradeBody) {
    body = b(r.pick([word(r, 0, 30), word(r, 1, 5), smuggledRequest(r, smuggleMarker()), `0\r\n\r\n${smuggledRequest(r, smuggleMarker())}`, '\r\n\r\n']));
  }
  let bodyBytes: Buffer = body;
  let intended: Buffer | undefined = body;
  const n = body.length;
  if (upgradeBody) {
    head.push(`Content-Length: ${n}`);
    what.push('with a body');
  }

  if (kind === 'post-cl' || kind === 'expect') {
    if (kind === 'expect') head.push(r.pick(['Expect: 100-continue', 'expect: 100-Continue']));
    const v = r.int(0, 19);
    const cl = (value: string, c: Cls, label: string): void => {
      head.push(`Content-Length: ${value}`);
      cls = worst(cls, c);
      if (label) what.push(`CL ${label}`);
    };
    if (v < 8) cl(`${n}`, 'ok', '');
    else if (v === 8) cl(`000${n}`, 'ok', 'leading zeros');
    else if (v === 9) cl(r.pick([`  ${n}`, `\t${n}`, `${n}  `]), 'ok', 'OWS');
    else if (v === 10) {
      head.push(`Content-Length: ${n}`);
      cl(r.pick([`${n}`, `${n}, ${n}`]), 'ok', 'duplicate same value');
    } else if (v === 11) {
      // Either value leaves the other reading's bytes to be parsed as a request.
      const smug = b(smuggledRequest(r, smuggleMarker()));
      bodyBytes = Buffer.concat([body, smug]);
      const pair = [`${n}`, `${n + smug.length}`];
      if (r.chance(0.5)) pair.reverse();
      head.push(`Content-Length: ${pair[0]}`);
      cl(r.chance(0.5) ? pair[1]! : `${pair[0]}, ${pair[1]}`, 'frame-error', 'different values');
    } else if (v === 12) cl(r.pick([`+${n}`, `-${n}`, `${n}.0`, `0x${n.toString(16)}`, `${n} ${n}`, '', `${n}a`]), 'frame-error', 'malformed');
    else if (v === 13) cl(r.pick([`${2 ** 32 + n}`, `${2n ** 64n + BigInt(n)}`, '99999999999999999999999']), 'frame-error', 'huge');
    else if (v === 14) {
      head.push(`${r.pick(['Content-Length :', 'Content-Length\t:'])} ${n}`);
      cls = worst(cls, 'frame-error');
      what.push('CL space before colon');
    } else if (v === 15) {
      head.push(`Content-Length:\r\n ${n}`);
      what.push('CL obs-fold');
    } else {
      // A Transfer-Encoding that a proxy may misread, beside a Content-Length.
      const chunk = chunked(r, body, what, []);
      const te = r.pick(['Transfer_Encoding: chunked', 'X-Pad2: x\r\n Transfer-Encoding: chunked', 'X-Pad2: x\rTransfer-Encoding: chunked']);
      head.push(te, `Content-Length: ${chunk.bytes.length}`);
      bodyBytes = chunk.bytes;
      // Read per RFC 9112, none of these is a Transfer-Encoding: the chunked bytes are the body.
      intended = chunk.bytes;
      what.push(`hidden TE ${JSON.stringify(te)}`);
    }
  } else if (kind === 'post-chunked') {
    const trailers: string[] = [];
    if (r.chance(0.35)) {
      trailers.push(`X-Trailer-${marker}: ${marker}`);
      if (r.chance(0.4)) trailers.push(r.pick(['Content-Length: 99', 'Transfer-Encoding: chunked', `Host: evil.test`, `X-Api-Key: ${API_KEY}`, 'X-Fuzz-Reply: 101']));
      what.push(`trailers ${trailers.length}`);
    }
    const chunk = chunked(r, body, what, trailers);
    bodyBytes = chunk.bytes;
    cls = worst(cls, chunk.cls);
    const v = r.int(0, 19);
    const te = (lines: string[], c: Cls, label: string): void => {
      head.push(...lines);
      cls = worst(cls, c);
      if (label) what.push(`TE ${label}`);
    };
    if (v < 8) te(['Transfer-Encoding: chunked'], 'ok', '');
    else if (v === 8) te([`Transfer-Encoding: ${r.pick(['Chunked', 'CHUNKED', ' chunked  ', '\tchunked'])}`], 'ok', 'case/OWS');
    else if (v === 9) te([r.pick(['Transfer-Encoding: gzip, chunked', 'Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked'])], 'ok', 'list');
    else if (v === 10) te([r.pick(['Transfer-Encoding: chunked, chunked', 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked'])], 'ok', 'chunked twice');
    else if (v === 11) te([`Transfer-Encoding: ${r.pick(['chunked, identity', 'identity', 'chunked, gzip', 'xchunked', '"chunked"', 'chu nked', 'chunked\x0b', 'chunked\x00'])}`], 'frame-error', 'bad value');
    else if (v === 12) te(['Transfer-Encoding: chunked', 'Transfer-Encoding: identity'], 'frame-error', 'chunked then identity');
    else if (v === 13) te([`${r.pick(['Transfer-Encoding :', 'Transfer-Encoding\t:'])} chunked`], 'frame-error', 'space before colon');
    else if (v === 14) te(['Transfer-Encoding:\r\n chunked'], 'ok', 'obs-fold value');
    else if (v === 15) {
      version = 'HTTP/1.0';
      te(['Transfer-Encoding: chunked'], 'terminal', 'on HTTP/1.0');
    } else {
      const clValue = r.pick([bodyBytes.length, 0, 4, r.int(1, 60)]);
      te(r.chance(0.5) ? ['Transfer-Encoding: chunked', `Content-Length: ${clValue}`] : [`Content-Length: ${clValue}`, 'Transfer-Encoding: chunked'], 'terminal', `with CL ${clValue}`);
    }
  }
  if (cls === 'frame-error') intended = undefined;

  // One mutation of the head's other lines.
  let startLine = `${method} ${target} ${version}`;
  let prefix = '';
  let eols: string[] = head.map(() => '\r\n');
  let eolStart = '\r\n';
  let eolEnd = '\r\n';
  if (r.chance(0.2)) {
    // Connection mutations would fight an Upgrade request's own Connection header.
    const m = r.int(0, kind === 'upgrade' ? 15 : 19);
    const padAt = head.findIndex((l) => l.startsWith('X-Pad:'));
    const hostAt = head.findIndex((l) => l.startsWith('Host:'));
    const mutate = (label: string, c: Cls, fn: () => void): void => {
      fn();
      cls = worst(cls, c);
      what.push(label);
    };
    if (m === 0) mutate('name casing', 'ok', () => (head[hostAt] = `hOsT: ${HOST}`));
    if (m === 1) mutate('no OWS', 'ok', () => (head[padAt] = head[padAt]!.replace(': ', ':')));
    if (m === 2) mutate('obs-fold', 'ok', () => (head[padAt] = `${head[padAt]}\r\n  folded`));
    if (m === 3) mutate('space before colon', 'reject', () => (head[padAt] = head[padAt]!.replace(':', ' :')));
    if (m === 4) mutate('NUL in value', 'reject', () => (head[padAt] = `${head[padAt]}\x00x`));
    if (m === 5) mutate('bare CR in value', 'ok', () => (head[padAt] = `${head[padAt]}\rx`));
    if (m === 6) mutate('LF-only lines', 'ok', () => ((eols = head.map(() => '\n')), (eolStart = '\n'), (eolEnd = '\n')));
    if (m === 7) mutate('LF-only line', 'ok', () => (eols[padAt] = '\n'));
    if (m === 8) mutate('duplicate Host', 'reject', () => head.push(`Host: ${r.pick([HOST, 'evil.test'])}`));
    if (m === 9) mutate('no Host', 'reject', () => void head.splice(hostAt, 1));
    if (m === 10) mutate('Host variant', 'ok', () => (head[hostAt] = `Host: ${r.pick([`${HOST}:80`, `${HOST}.`, 'GATEWAY.test', ''])}`));
    if (m === 11) mutate('Host list', 'reject', () => (head[hostAt] = `Host: ${HOST}, evil.test`));
    if (m === 12) mutate('bad field name', 'reject', () => (head[padAt] = r.pick(['X Pad: v', 'X-Pad(: v', ': v', 'X-Pad\x7f: v'])));
    // RFC 9112 section 2.2: a whitespace-preceded first line is rejected or ignored, never a field.
    if (m === 13) mutate('whitespace line after start line', 'ok', () => (prefix = r.pick([' X-Pad3: v\r\n', ' Transfer-Encoding: chunked\r\n', '\tContent-Length: 7\r\n'])));
    if (m === 14) mutate('request line spacing', 'ok', () => (startLine = r.pick([`${method}  ${target} ${version}`, `${method} ${target} ${version} `])));
    if (m === 15) mutate('leading CRLF', 'ok', () => (startLine = `\r\n${startLine}`));
    // RFC 9112 section 9.6: no request after one with "close" may be processed.
    if (m === 16) mutate('Connection: close', 'terminal', () => head.push(r.pick(['Connection: close', 'connection: keep-alive, Close'])));
    // The proxy's own X-Forwarded-Proto must survive a client naming it hop-by-hop.
    if (m === 17) mutate('Connection names a proxy header', 'ok', () => head.push('Connection: keep-alive, X-Forwarded-Proto, X-Request-Id'));
    if (m === 18) mutate('Proxy-Authorization', 'ok', () => head.push('Proxy-Authorization: Basic Zm9vOmJhcg=='));
    if (m === 19) mutate('huge header', 'ok', () => (head[padAt] = `X-Pad: ${'p'.repeat(r.pick([9000, 17000, 70000]))}`));
  }
  const headText = `${startLine}${eolStart}${prefix}${head.map((l, i) => `${l}${eols[i] ?? '\r\n'}`).join('')}${eolEnd}`;
  const bytes = Buffer.concat([b(headText), bodyBytes]);
  const message: Message = { marker, method, cls, bytes, body: cls === 'reject' ? undefined : intended, keyed, upgrade101, what };
  return { message, glue: kind === 'upgrade' };
}

export function generateCase(seed: number, index: number): FuzzCase {
  const r = new Rng(seed, index);
  const conns: ClientConn[] = [];
  const connCount = r.chance(0.25) ? 2 : 1;
  for (let c = 0; c < connCount; c++) {
    const messages: Message[] = [];
    let smuggled = 0;
    const smuggleMarker = (): string => `FZ${seed}.${index}.${c}.S${smuggled++}`;
    const count = r.int(1, r.pick([3, 3, 6]));
    let tunnelFollower = false;
    let tunnelled = false;
    const glued: number[] = [];
    for (let i = 0; i < count || tunnelFollower; i++) {
      const built = buildMessage(r, `FZ${seed}.${index}.${c}.${i}`, smuggleMarker, tunnelFollower);
      const m = built.message;
      messages.push(m);
      if (m.cls === 'terminal' || m.cls === 'frame-error') {
        const marker = smuggleMarker();
        messages.push({ marker, method: 'GET', cls: 'smuggled', bytes: b(smuggledRequest(r, marker)), body: undefined, keyed: false, upgrade101: false, what: ['after terminal'] });
        break;
      }
      // An Upgrade request always has a follower in the same write: a keyless
      // /admin request (tunnel data if a 101 comes, else the next request).
      if (built.glue) glued.push(messages.length);
      if (tunnelled) break;
      tunnelFollower = built.glue;
      tunnelled = m.upgrade101;
    }
    const total = messages.reduce((s, m) => s + m.bytes.length, 0);
    const gluedAt = new Set(glued.map((k) => messages.slice(0, k).reduce((s, m) => s + m.bytes.length, 0)));
    const splits: number[] = [];
    for (let k = r.pick([0, 0, 1, 2, 3]); k > 0; k--) {
      const at = r.int(1, Math.max(1, total - 1));
      if (!gluedAt.has(at)) splits.push(at);
    }
    // Resetting after the last byte leaves answers (slow ones especially) half-sent on a pooled connection.
    const abortAt = r.chance(0.1) ? (r.chance(0.4) ? total : r.int(1, total - 1)) : undefined;
    conns.push({ messages, splits: [...new Set(splits)].sort((x, y) => x - y), halfClose: r.chance(0.15), pause: r.pick([1, 2, 2, 20]), ...(abortAt === undefined ? {} : { abortAt }) });
  }
  return { seed, index, conns };
}
