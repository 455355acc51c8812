// What a request head must satisfy, beyond llhttp's own strictness, before
// anything about it is routed or forwarded: one HTTP/1 Host that is a valid
// authority, no CONNECT, no Transfer-Encoding but chunked (and none at all
// in HTTP/1.0), an origin-form
// target (absolute-form only for the host it is already addressed to), the
// URL, body and header-name policies of the config.
import type { LimitsConfig, UnderscorePolicy } from '../config/types.js';
import type { ProxyErrorReason } from './errors.js';
import type { RequestHeadInfo } from './headers.js';

/** Host header value: reg-name, IPv4 or [IPv6], optional port (RFC 3986 §3.2.2). */
const VALID_HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::\d*)?$/;

export interface RequestLine {
  method: string;
  url: string;
  versionMajor: number;
  versionMinor: number;
}

/** The target to route and forward (origin-form, or "*"), or why the request is refused. */
export type CheckedTarget = { ok: true; target: string } | { ok: false; reason: ProxyErrorReason };

export function checkRequest(line: RequestLine, info: RequestHeadInfo, limits: LimitsConfig, underscores: UnderscorePolicy): CheckedTarget {
  const refuse = (reason: ProxyErrorReason): CheckedTarget => ({ ok: false, reason });
  const { method, url } = line;
  if (line.versionMajor !== 1) return refuse('unsupported-version');
  if (method === 'CONNECT') return refuse('connect-method');
  if (info.hostCount > 1 || (line.versionMinor >= 1 && info.hostCount === 0)) return refuse('bad-host');
  if (info.host !== undefined && !VALID_HOST.test(info.host)) return refuse('bad-host');
  // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message is faulty framing (a 1.0 sender cannot
  // mean chunked; a smuggler can): refused, and the connection closes, whatever Content-Length says.
  if (line.versionMinor === 0 && info.transferEncoding !== undefined) return refuse('http10-transfer-encoding');
  // llhttp reports a bad final coding only after the head callback, so check it here,
  // before anything is forwarded. Codings other than chunked are not supported (RFC 9112 §6.1).
  if (info.transferEncoding !== undefined && info.transferEncoding.trim().toLowerCase() !== 'chunked') return refuse('bad-request');
  if (url.length > limits.maxUrlBytes) return refuse('url-too-long');
  let target = url;
  if (url.charCodeAt(0) !== 0x2f /* / */) {
    if (url === '*' && method === 'OPTIONS') target = '*';
    else {
      const origin = absoluteFormTarget(url, info.host);
      if (origin === undefined) return refuse('foreign-absolute-form');
      target = origin;
    }
  }
  if (info.expect !== undefined && info.expect.toLowerCase() !== '100-continue') return refuse('expectation-failed');
  if (info.underscored && underscores === 'reject') return refuse('bad-request');
  if (info.contentLength > limits.maxBodyBytes) return refuse('body-too-large');
  return { ok: true, target };
}

/** A request id we pass through: short, printable ASCII, no spaces. */
export function isPlainId(id: string): boolean {
  return id.length > 0 && id.length <= 200 && /^[\x21-\x7e]+$/.test(id);
}

/**
 * Absolute-form (RFC 9112 §3.2.2) is accepted only for the host the request
 * is already addressed to; Switchyard is not a forward proxy. Returns the
 * origin-form target, or undefined when the authority differs.
 */
function absoluteFormTarget(url: string, host: string | undefined): string | undefined {
  const m = /^https?:\/\/([^/?#]*)(.*)$/i.exec(url);
  if (m === null || host === undefined) return undefined;
  if (m[1]!.toLowerCase() !== host.toLowerCase()) return undefined;
  const rest = m[2]!;
  return rest === '' ? '/' : rest.startsWith('?') ? `/${rest}` : rest;
}
