// Header rewriting for a proxy (RFC 9110 §7.6, RFC 9112). Heads are handled
// as latin1 strings straight from llhttp and written back with the same
// encoding, so every byte of names, values and the request-target passes
// through unchanged. Framing headers are never copied: Switchyard re-frames
// each message itself, so what a peer reads is always what llhttp parsed.

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus the framing ones we regenerate. */
const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'content-length',
];

/**
 * `name` with A-Z lower-cased equals `lower`, without building a lower-cased
 * copy (header names are tokens: ASCII). Lower-casing every name, and
 * hashing the copy for a Set lookup, was 3% of a worker's instructions per
 * proxied request.
 */
function equalsLowerCase(name: string, lower: string): boolean {
  if (name.length !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    let c = name.charCodeAt(i);
    if (c >= 65 && c <= 90) c += 32;
    if (c !== lower.charCodeAt(i)) return false;
  }
  return true;
}

export interface RequestHeadInfo {
  host: string | undefined;
  hostCount: number;
  forwardedFor: string | undefined;
  forwardedProto: string | undefined;
  forwardedHost: string | undefined;
  requestId: string | undefined;
  expect: string | undefined;
  upgrade: string | undefined;
  contentLength: number;
  chunked: boolean;
  /** Transfer-Encoding lines seen, joined: anything but plain "chunked" is refused. */
  transferEncoding: string | undefined;
  /** Lower-cased tokens of Connection: these headers are hop-by-hop too. */
  connectionTokens: string[] | undefined;
  /** Some header name contains "_" (CGI-style servers read it as "-"). */
  underscored: boolean;
}

/** One pass over the request headers for the values the proxy acts on. */
export function inspectRequestHeaders(raw: readonly string[]): RequestHeadInfo {
  const info: RequestHeadInfo = {
    host: undefined,
    hostCount: 0,
    forwardedFor: undefined,
    forwardedProto: undefined,
    forwardedHost: undefined,
    requestId: undefined,
    expect: undefined,
    upgrade: undefined,
    contentLength: -1,
    chunked: false,
    transferEncoding: undefined,
    connectionTokens: undefined,
    underscored: false,
  };
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    if (!info.underscored && name.indexOf('_') >= 0) info.underscored = true;
    switch (name.length) {
      case 4:
        if (equalsLowerCase(name, 'host')) {
          info.host = value;
          info.hostCount++;
        }
        break;
      case 6:
        if (equalsLowerCase(name, 'expect')) info.expect = value;
        break;
      case 7:
        if (equalsLowerCase(name, 'upgrade')) info.upgrade = value;
        break;
      case 10:
        if (equalsLowerCase(name, 'connection')) info.connectionTokens = addTokens(info.connectionTokens, value);
        break;
      case 12:
        if (equalsLowerCase(name, 'x-request-id')) info.requestId = value;
        break;
      case 14:
        if (equalsLowerCase(name, 'content-length')) info.contentLength = Number(value);
        break;
      case 15: {
        if (equalsLowerCase(name, 'x-forwarded-for')) info.forwardedFor = info.forwardedFor === undefined ? value : `${info.forwardedFor}, ${value}`;
        break;
      }
      case 16:
        if (equalsLowerCase(name, 'x-forwarded-host')) info.forwardedHost ??= value;
        break;
      case 17: {
        if (equalsLowerCase(name, 'x-forwarded-proto')) info.forwardedProto ??= value;
        else if (equalsLowerCase(name, 'transfer-encoding')) {
          info.chunked = true;
          info.transferEncoding = info.transferEncoding === undefined ? value : `${info.transferEncoding}, ${value}`;
        }
        break;
      }
    }
  }
  return info;
}

function addTokens(tokens: string[] | undefined, value: string): string[] {
  const list = tokens ?? [];
  for (const part of value.split(',')) {
    const token = part.trim().toLowerCase();
    if (token !== '') list.push(token);
  }
  return list;
}

/**
 * Headers the proxy sets itself on the way up, and Proxy-Authorization, which
 * is addressed to the proxy (RFC 9110 §11.7.2): incoming copies are dropped.
 */
const SET_BY_PROXY_UP = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id', 'expect', 'proxy-authorization'];

/** Names to drop, by length: a header name is compared only with those of its own length. */
type NamesByLength = ReadonlyArray<readonly string[] | undefined>;

function byLength(names: readonly string[]): NamesByLength {
  const table: string[][] = [];
  for (const name of names) (table[name.length] ??= []).push(name);
  return table;
}

const DROPPED_DOWN = byLength(HOP_BY_HOP);
const DROPPED_UP = byLength([...HOP_BY_HOP, ...SET_BY_PROXY_UP]);

/** Whether `name` is one of `table`'s names, ignoring ASCII case (header names are tokens: ASCII). */
function isListed(name: string, table: NamesByLength): boolean {
  const candidates = table[name.length];
  if (candidates === undefined) return false;
  for (const lower of candidates) if (equalsLowerCase(name, lower)) return true;
  return false;
}

/** A header the message's Connection header names (`tokens` lower-cased): hop-by-hop too. */
function isNamedByConnection(name: string, tokens: string[] | undefined): boolean {
  return tokens !== undefined && tokens.includes(name.toLowerCase());
}

/**
 * The client's end-to-end request headers: hop-by-hop ones, those its
 * Connection header names, those the proxy sets itself and (with `dropUnderscored`)
 * names with "_" removed. Runs before the gateway adds anything, so no client
 * header can remove or shadow what the gateway sets.
 */
export function clientEndToEndHeaders(raw: readonly string[], info: RequestHeadInfo, dropUnderscored: boolean): string[] {
  const out: string[] = [];
  const tokens = info.connectionTokens;
  const underscores = dropUnderscored && info.underscored;
  for (let i = 0; i < raw.length; i += 2) {
    if (!isDroppedUp(raw[i]!, tokens, underscores)) out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

/** A request header that never goes upstream as the client sent it. */
function isDroppedUp(name: string, tokens: string[] | undefined, underscores: boolean): boolean {
  return isListed(name, DROPPED_UP) || isNamedByConnection(name, tokens) || (underscores && name.indexOf('_') >= 0);
}

export interface UpstreamHeadOptions {
  method: string;
  target: string;
  /** The client's headers, or the gateway's rewrite of clientEndToEndHeaders() when `filtered`. */
  raw: readonly string[];
  /** `raw` has been through clientEndToEndHeaders() already (and may hold headers the gateway added). */
  filtered: boolean;
  dropUnderscored: boolean;
  info: RequestHeadInfo;
  forwardedFor: string;
  forwardedProto: string;
  forwardedHost: string | undefined;
  requestId: string;
  /** "content-length" with its value, "chunked", or undefined for no body. */
  bodyFraming: { contentLength: number } | 'chunked' | undefined;
  upgrade: boolean;
  /** Sent as Host when the client sent none (HTTP/1.0): the server's address. */
  defaultHost: string;
}

/** The request head sent to the upstream server. */
export function buildUpstreamHead(o: UpstreamHeadOptions): string {
  let head = `${o.method} ${o.target} HTTP/1.1\r\n`;
  if (o.info.host === undefined) head += `Host: ${o.defaultHost}\r\n`;
  const raw = o.raw;
  // Once filtered, only the static set is dropped: what the gateway added stays, whatever the client's Connection said.
  const tokens = o.filtered ? undefined : o.info.connectionTokens;
  const underscores = !o.filtered && o.dropUnderscored && o.info.underscored;
  for (let i = 0; i < raw.length; i += 2) {
    if (!isDroppedUp(raw[i]!, tokens, underscores)) head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  head += `X-Forwarded-For: ${o.forwardedFor}\r\nX-Forwarded-Proto: ${o.forwardedProto}\r\n`;
  if (o.forwardedHost !== undefined) head += `X-Forwarded-Host: ${o.forwardedHost}\r\n`;
  head += `X-Request-Id: ${o.requestId}\r\n`;
  if (o.bodyFraming === 'chunked') head += 'Transfer-Encoding: chunked\r\n';
  else if (o.bodyFraming !== undefined) head += `Content-Length: ${o.bodyFraming.contentLength}\r\n`;
  if (o.upgrade) head += `Connection: upgrade\r\nUpgrade: ${o.info.upgrade}\r\n`;
  return head + '\r\n';
}

export interface ResponseHeadInfo {
  contentLength: number;
  /** True when the upstream declared a Content-Length (even "0"). */
  hasContentLength: boolean;
  hasRequestId: boolean;
  upgrade: string | undefined;
}

export interface ClientHeadOptions {
  statusCode: number;
  statusMessage: string;
  raw: readonly string[];
  requestId: string;
  /** How the body is framed towards the client. */
  framing: 'length' | 'chunked' | 'close' | 'none';
  keepAlive: boolean;
  /** HTTP/1.0 clients need an explicit keep-alive. */
  http10: boolean;
  upgrade: boolean;
  /** Headers the gateway adds (CORS, RateLimit-*). */
  extra?: ReadonlyArray<readonly [string, string]> | undefined;
}

export function inspectResponseHeaders(raw: readonly string[]): ResponseHeadInfo & { connectionTokens: string[] | undefined } {
  const info = { contentLength: -1, hasContentLength: false, hasRequestId: false, upgrade: undefined as string | undefined, connectionTokens: undefined as string[] | undefined };
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    switch (name.length) {
      case 7:
        if (equalsLowerCase(name, 'upgrade')) info.upgrade = raw[i + 1];
        break;
      case 10:
        if (equalsLowerCase(name, 'connection')) info.connectionTokens = addTokens(info.connectionTokens, raw[i + 1]!);
        break;
      case 12:
        if (equalsLowerCase(name, 'x-request-id')) info.hasRequestId = true;
        break;
      case 14:
        if (equalsLowerCase(name, 'content-length')) {
          info.hasContentLength = true;
          info.contentLength = Number(raw[i + 1]);
        }
        break;
    }
  }
  return info;
}

/**
 * A response header that never reaches the client as the upstream sent it:
 * hop-by-hop, framing, or named in the response's Connection header. The
 * same filter serves HTTP/1.1 heads and HTTP/2 HEADERS (where these are the
 * connection-specific fields RFC 9113 §8.2.2 forbids).
 */
export function isDroppedDown(name: string, tokens: string[] | undefined): boolean {
  return isListed(name, DROPPED_DOWN) || isNamedByConnection(name, tokens);
}

/** The response head sent to the client. */
export function buildClientHead(o: ClientHeadOptions, tokens: string[] | undefined, contentLength: number, hasRequestId: boolean, upgradeValue: string | undefined): string {
  let head = `HTTP/1.1 ${o.statusCode} ${o.statusMessage}\r\n`;
  const raw = o.raw;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (isDroppedDown(name, tokens)) continue;
    head += `${name}: ${raw[i + 1]}\r\n`;
  }
  if (!hasRequestId) head += `X-Request-Id: ${o.requestId}\r\n`;
  if (o.extra !== undefined) for (const [name, value] of o.extra) head += `${name}: ${value}\r\n`;
  if (o.framing === 'length') head += `Content-Length: ${contentLength}\r\n`;
  else if (o.framing === 'chunked') head += 'Transfer-Encoding: chunked\r\n';
  if (o.upgrade) head += `Connection: upgrade\r\nUpgrade: ${upgradeValue}\r\n`;
  else if (!o.keepAlive || o.framing === 'close') head += 'Connection: close\r\n';
  else if (o.http10) head += 'Connection: keep-alive\r\n';
  return head + '\r\n';
}

/** What a head is written to: a socket, or an upstream connection's write. */
export interface HeadSink {
  write(data: Buffer): boolean;
  write(data: string, encoding: BufferEncoding): boolean;
}

/**
 * Writes a head (latin1, byte for byte). With Content-Length body bytes to
 * follow it, corked, in one writev, it goes as a Buffer: node's writev takes
 * an array of Buffers as it is, while one string among them costs it an
 * encoding lookup per pass (two) and a copy into storage of its own, several
 * times what Buffer.from costs here (callgrind, one worker: about 4,700 of
 * 93,000 instructions per proxied POST 4 KB). A head written alone stays a
 * string: node writes that straight from V8's string.
 */
export function writeHead(sink: HeadSink, head: string, lengthBodyFollows: boolean): void {
  if (lengthBodyFollows) sink.write(Buffer.from(head, 'latin1'));
  else sink.write(head, 'latin1');
}

/** An interim (1xx) response head, relayed as the upstream sent it. */
export function buildInterimHead(statusCode: number, statusMessage: string, raw: readonly string[]): string {
  let head = `HTTP/1.1 ${statusCode} ${statusMessage}\r\n`;
  for (let i = 0; i < raw.length; i += 2) head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  return head + '\r\n';
}
