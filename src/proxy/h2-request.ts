// An HTTP/2 request's header block as the HTTP/1.1 request head the rest of
// the data path reads (RFC 9113 §8.3.1): :method and :path make the request
// line, :authority becomes Host, split Cookie fields are joined. From here the
// request goes through exactly what an HTTP/1.1 request goes through
// (request-checks.ts, the router, the gateway step), so nothing is checked
// twice or differently. nghttp2 has already refused, with RST_STREAM
// PROTOCOL_ERROR, what RFC 9113 calls malformed: upper-case names, missing or
// repeated pseudo-headers, connection-specific fields (Connection,
// Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade, TE other than
// "trailers"), a Content-Length the DATA frames do not add up to, `:protocol`
// on any method but CONNECT, and an extended CONNECT without :scheme or :path.
//
// An extended CONNECT (RFC 8441: `:method CONNECT` with `:protocol`) becomes
// the HTTP/1.1 Upgrade request it stands for: `GET :path` with
// `Upgrade: <:protocol>`, routed, checked and logged as that GET (a route's
// `methods: [GET]` and the gateway see what an HTTP/1.1 WebSocket shows them).
// A WebSocket gets a fresh Sec-WebSocket-Key: HTTP/2 has none, the upstream
// needs one, and its 101 must answer it (websocket-handshake.ts).
import type { ProxyErrorReason } from './errors.js';
import { METHODS } from './llhttp.js';
import { newWebSocketKey } from './websocket-handshake.js';

/**
 * The methods HTTP/1.1 clients may send (llhttp's; case-sensitive). nghttp2
 * takes any token as :method; one HTTP/1.1 would refuse (`delete`, `FOO`)
 * could miss a route's `methods` and land on another route, while a backend
 * that upper-cases methods serves it as the one it spells.
 */
const HTTP1_METHODS: ReadonlySet<string> = new Set(METHODS);

/** An extended CONNECT: the protocol asked for, and the key sent upstream for a WebSocket. */
export interface TunnelRequest {
  protocol: string;
  websocketKey: string | undefined;
}

export type MappedRequest =
  | { ok: true; method: string; target: string; raw: string[]; tunnel: TunnelRequest | undefined }
  | { ok: false; method: string; target: string; raw: string[]; reason: ProxyErrorReason; detail: string };

/** An Upgrade token (RFC 9110 §5.6.2): it goes upstream in the Upgrade header as it is. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * `rawHeaders`: name, value, name, value... as nghttp2 decoded them (names
 * lower-case). `hasBody`: the HEADERS frame did not end the stream.
 */
export function mapH2Request(rawHeaders: readonly string[], hasBody: boolean): MappedRequest {
  let method = '';
  let target = '';
  let authority: string | undefined;
  let host: string | undefined;
  let cookie: string | undefined;
  let protocol: string | undefined;
  let contentLength = false;
  const raw: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const value = rawHeaders[i + 1]!;
    if (name.charCodeAt(0) === 0x3a /* : */) {
      if (name === ':method') method = value;
      else if (name === ':path') target = value;
      else if (name === ':authority') authority = value;
      else if (name === ':protocol') protocol = value;
      // :scheme says nothing the listener does not: X-Forwarded-Proto comes from the listener.
      continue;
    }
    if (name === 'cookie') {
      // RFC 9113 §8.2.3: crumbs split over several fields are one Cookie header for HTTP/1.1.
      cookie = cookie === undefined ? value : `${cookie}; ${value}`;
      continue;
    }
    if (name === 'host') {
      if (host !== undefined) return refused(method, target, raw, 'bad-host', 'more than one host field');
      host = value;
      continue;
    }
    if (name === 'content-length') contentLength = true;
    // RFC 8441 §5: not used over HTTP/2; the key the upstream sees is ours.
    if (name === 'sec-websocket-key') continue;
    raw.push(name, value);
  }
  let tunnel: TunnelRequest | undefined;
  if (protocol !== undefined) {
    // nghttp2 resets these first; checked again because what goes upstream rests on it.
    if (method !== 'CONNECT') return refused(method, target, raw, 'bad-request', ':protocol on a request that is not CONNECT');
    if (!TOKEN.test(protocol)) return refused(method, target, raw, 'bad-request', `:protocol ${JSON.stringify(protocol)} is not a token`);
    // The stream's DATA is tunnel payload, never a body: a length would frame a body upstream that never comes.
    if (contentLength) return refused(method, target, raw, 'bad-request', 'content-length on an extended CONNECT');
    const websocketKey = protocol.toLowerCase() === 'websocket' ? newWebSocketKey() : undefined;
    tunnel = { protocol, websocketKey };
    method = 'GET';
    raw.push('upgrade', protocol);
    if (websocketKey !== undefined) raw.push('sec-websocket-key', websocketKey);
  }
  if (!HTTP1_METHODS.has(method)) return refused(method, target, raw, 'bad-request', `method ${JSON.stringify(method)} is not one HTTP/1.1 accepts`);
  if (authority !== undefined && host !== undefined && authority.toLowerCase() !== host.toLowerCase()) {
    return refused(method, target, raw, 'bad-host', `:authority ${JSON.stringify(authority)} and host ${JSON.stringify(host)} differ`);
  }
  const hostValue = authority ?? host;
  if (hostValue !== undefined) raw.unshift('host', hostValue);
  if (cookie !== undefined) raw.push('cookie', cookie);
  // A body of unknown length (no content-length) goes upstream chunked; this is how the exchange learns it.
  if (hasBody && !contentLength && tunnel === undefined) raw.push('transfer-encoding', 'chunked');
  return { ok: true, method, target, raw, tunnel };
}

function refused(method: string, target: string, raw: string[], reason: ProxyErrorReason, detail: string): MappedRequest {
  return { ok: false, method, target, raw, reason, detail };
}
