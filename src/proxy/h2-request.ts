// An HTTP/2 request's header block as the HTTP/1.1 request head the rest of
// the data path reads (RFC 9113 §8.3.1): :method and :path make the request
// line, :authority becomes Host, split Cookie fields are joined. From here the
// request goes through exactly what an HTTP/1.1 request goes through
// (request-checks.ts, the router, the gateway step), so nothing is checked
// twice or differently. nghttp2 has already refused, with RST_STREAM
// PROTOCOL_ERROR, what RFC 9113 calls malformed: upper-case names, missing or
// repeated pseudo-headers, connection-specific fields (Connection,
// Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade, TE other than
// "trailers"), and a Content-Length the DATA frames do not add up to.
import type { ProxyErrorReason } from './errors.js';
import { METHODS } from './llhttp.js';

/**
 * The methods HTTP/1.1 clients may send (llhttp's; case-sensitive). nghttp2
 * takes any token as :method; one HTTP/1.1 would refuse (`delete`, `FOO`)
 * could miss a route's `methods` and land on another route, while a backend
 * that upper-cases methods serves it as the one it spells.
 */
const HTTP1_METHODS: ReadonlySet<string> = new Set(METHODS);

export type MappedRequest =
  | { ok: true; method: string; target: string; raw: string[] }
  | { ok: false; method: string; target: string; raw: string[]; reason: ProxyErrorReason; detail: string };

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
  let contentLength = false;
  const raw: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const value = rawHeaders[i + 1]!;
    if (name.charCodeAt(0) === 0x3a /* : */) {
      if (name === ':method') method = value;
      else if (name === ':path') target = value;
      else if (name === ':authority') authority = value;
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
    raw.push(name, value);
  }
  if (!HTTP1_METHODS.has(method)) return refused(method, target, raw, 'bad-request', `method ${JSON.stringify(method)} is not one HTTP/1.1 accepts`);
  if (authority !== undefined && host !== undefined && authority.toLowerCase() !== host.toLowerCase()) {
    return refused(method, target, raw, 'bad-host', `:authority ${JSON.stringify(authority)} and host ${JSON.stringify(host)} differ`);
  }
  const hostValue = authority ?? host;
  if (hostValue !== undefined) raw.unshift('host', hostValue);
  if (cookie !== undefined) raw.push('cookie', cookie);
  // A body of unknown length (no content-length) goes upstream chunked; this is how the exchange learns it.
  if (hasBody && !contentLength) raw.push('transfer-encoding', 'chunked');
  return { ok: true, method, target, raw };
}

function refused(method: string, target: string, raw: string[], reason: ProxyErrorReason, detail: string): MappedRequest {
  return { ok: false, method, target, raw, reason, detail };
}
