// Responses Switchyard generates itself (README, "What a client sees").
// Each is short plain text naming the request id, so a user reporting a
// failure can hand over the id that is also in the log line.
import { STATUS_CODES } from 'node:http';

export type ProxyErrorReason =
  | 'bad-request'
  | 'bad-host'
  | 'bad-path'
  | 'http10-transfer-encoding'
  | 'connect-method'
  | 'foreign-absolute-form'
  | 'unsupported-version'
  | 'expectation-failed'
  | 'no-route'
  | 'upgrade-not-allowed'
  | 'acme-unknown-challenge'
  | 'unauthorized'
  | 'forbidden'
  | 'client-cert-required'
  | 'client-cert-refused'
  | 'rate-limited'
  | 'body-too-large'
  | 'url-too-long'
  | 'headers-too-large'
  | 'headers-timeout'
  | 'request-timeout'
  | 'upstream-connect-failed'
  | 'upstream-reset'
  | 'upstream-bad-response'
  | 'upstream-timeout'
  | 'no-healthy-server'
  | 'internal-error';

export const STATUS_FOR: Record<ProxyErrorReason, number> = {
  'bad-request': 400,
  'bad-host': 400,
  'bad-path': 400,
  'http10-transfer-encoding': 400,
  'connect-method': 400,
  'foreign-absolute-form': 400,
  'unsupported-version': 505,
  'expectation-failed': 417,
  'no-route': 404,
  'upgrade-not-allowed': 403,
  'acme-unknown-challenge': 404,
  unauthorized: 401,
  forbidden: 403,
  'client-cert-required': 401,
  'client-cert-refused': 403,
  'rate-limited': 429,
  'body-too-large': 413,
  'url-too-long': 414,
  'headers-too-large': 431,
  'headers-timeout': 408,
  'request-timeout': 408,
  'upstream-connect-failed': 502,
  'upstream-reset': 502,
  'upstream-bad-response': 502,
  'upstream-timeout': 504,
  'no-healthy-server': 503,
  'internal-error': 500,
};

/** Errors after which the request stream can't be trusted: the connection closes. */
const CLOSES_CONNECTION: ReadonlySet<ProxyErrorReason> = new Set<ProxyErrorReason>([
  'bad-request',
  'bad-host',
  'http10-transfer-encoding',
  'connect-method',
  'foreign-absolute-form',
  'unsupported-version',
  'body-too-large',
  'url-too-long',
  'headers-too-large',
  'headers-timeout',
  'request-timeout',
  'expectation-failed',
  'internal-error',
]);

export function closesConnection(reason: ProxyErrorReason): boolean {
  return CLOSES_CONNECTION.has(reason);
}

/**
 * A complete response (head and body) for `reason`, as latin1 text. `extra`
 * headers (WWW-Authenticate, Retry-After, RateLimit-*, CORS) come from the
 * gateway and are already valid header values. An answer to HEAD has the
 * same head and no body: the client reads none, so body bytes would be taken
 * for the next response on the connection.
 */
export function errorResponse(
  reason: ProxyErrorReason,
  requestId: string,
  keepAlive: boolean,
  extra?: ReadonlyArray<readonly [string, string]>,
  head = false,
): string {
  const status = STATUS_FOR[reason];
  const text = STATUS_CODES[status] ?? 'Error';
  const body = errorBody(reason, requestId);
  let lines = `HTTP/1.1 ${status} ${text}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\nX-Request-Id: ${requestId}\r\n`;
  if (extra !== undefined) for (const [name, value] of extra) lines += `${name}: ${value}\r\n`;
  return lines + (keepAlive ? '' : 'Connection: close\r\n') + '\r\n' + (head ? '' : body);
}

/** The plain-text body of a generated error: the status, the reason and the request id. */
export function errorBody(reason: ProxyErrorReason, requestId: string): string {
  const status = STATUS_FOR[reason];
  return `${status} ${STATUS_CODES[status] ?? 'Error'} (${reason})\nrequest-id: ${requestId}\n`;
}

/** Switchyard's own answer to a CORS preflight: 204 with the policy's headers. */
export function preflightResponse(requestId: string, keepAlive: boolean, headers: ReadonlyArray<readonly [string, string]>): string {
  let head = `HTTP/1.1 204 No Content\r\nX-Request-Id: ${requestId}\r\n`;
  for (const [name, value] of headers) head += `${name}: ${value}\r\n`;
  return head + (keepAlive ? '' : 'Connection: close\r\n') + '\r\n';
}

/** The answer to an ACME HTTP-01 challenge (RFC 8555 §8.3): the key authorization, as the CA expects it. */
export function acmeChallengeResponse(requestId: string, keepAlive: boolean, keyAuthorization: string, head: boolean): string {
  return (
    `HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${keyAuthorization.length}\r\nX-Request-Id: ${requestId}\r\n` +
    (keepAlive ? '' : 'Connection: close\r\n') +
    '\r\n' +
    (head ? '' : keyAuthorization)
  );
}
