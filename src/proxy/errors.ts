// Responses Switchyard generates itself (design.md, "Errors a client can see").
// Each is short plain text naming the request id, so a user reporting a
// failure can hand over the id that is also in the log line.
import { STATUS_CODES } from 'node:http';

export type ProxyErrorReason =
  | 'bad-request'
  | 'bad-host'
  | 'connect-method'
  | 'foreign-absolute-form'
  | 'unsupported-version'
  | 'expectation-failed'
  | 'no-route'
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
  | 'shutting-down';

export const STATUS_FOR: Record<ProxyErrorReason, number> = {
  'bad-request': 400,
  'bad-host': 400,
  'connect-method': 400,
  'foreign-absolute-form': 400,
  'unsupported-version': 505,
  'expectation-failed': 417,
  'no-route': 404,
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
  'shutting-down': 503,
};

/** A complete response (head and body) for `reason`, as latin1 text. */
export function errorResponse(reason: ProxyErrorReason, requestId: string, keepAlive: boolean): string {
  const status = STATUS_FOR[reason];
  const text = STATUS_CODES[status] ?? 'Error';
  const body = `${status} ${text} (${reason})\nrequest-id: ${requestId}\n`;
  return (
    `HTTP/1.1 ${status} ${text}\r\n` +
    'Content-Type: text/plain; charset=utf-8\r\n' +
    `Content-Length: ${body.length}\r\n` +
    `X-Request-Id: ${requestId}\r\n` +
    (keepAlive ? '' : 'Connection: close\r\n') +
    '\r\n' +
    body
  );
}
