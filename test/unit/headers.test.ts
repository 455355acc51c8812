import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildClientHead, buildUpstreamHead, inspectRequestHeaders, inspectResponseHeaders } from '../../src/proxy/headers.ts';

const raw = [
  'Host', 'example.com',
  'Connection', 'keep-alive, X-Secret',
  'X-Secret', 'drop me',
  'Keep-Alive', 'timeout=5',
  'TE', 'trailers',
  'Proxy-Connection', 'keep-alive',
  'X-Forwarded-For', '203.0.113.9',
  'Accept', 'a/b',
  'accept', 'c/d',
  'X-Request-Id', 'abc-123',
  'Content-Length', '5',
];

function lines(head: string): string[] {
  return head.split('\r\n');
}

test('inspectRequestHeaders finds what the proxy acts on', () => {
  const info = inspectRequestHeaders(raw);
  assert.equal(info.host, 'example.com');
  assert.equal(info.hostCount, 1);
  assert.equal(info.forwardedFor, '203.0.113.9');
  assert.equal(info.requestId, 'abc-123');
  assert.equal(info.contentLength, 5);
  assert.deepEqual(info.connectionTokens, ['keep-alive', 'x-secret']);
});

test('upstream head drops hop-by-hop and Connection-named headers, keeps the rest in order and bytes', () => {
  const info = inspectRequestHeaders(raw);
  const head = buildUpstreamHead({
    method: 'POST', target: '/a%2Fb/../c?x=%20', raw, filtered: false, dropUnderscored: true, info,
    forwardedFor: '203.0.113.9, 127.0.0.1', forwardedProto: 'http', forwardedHost: 'example.com',
    requestId: 'abc-123', bodyFraming: { contentLength: 5 }, upgrade: false, defaultHost: '10.0.0.1:80',
  });
  const l = lines(head);
  assert.equal(l[0], 'POST /a%2Fb/../c?x=%20 HTTP/1.1');
  for (const gone of ['Connection', 'X-Secret', 'Keep-Alive', 'TE', 'Proxy-Connection']) {
    assert.ok(!l.some((x) => x.toLowerCase().startsWith(gone.toLowerCase() + ':')), `${gone} must be removed`);
  }
  assert.ok(l.includes('Accept: a/b') && l.includes('accept: c/d'));
  assert.equal(l.filter((x) => x.startsWith('X-Forwarded-For:')).length, 1);
  assert.ok(l.includes('X-Forwarded-For: 203.0.113.9, 127.0.0.1'));
  assert.ok(l.includes('X-Request-Id: abc-123'));
  assert.ok(l.includes('Content-Length: 5'));
  assert.ok(head.endsWith('\r\n\r\n'));
});

test('HTTP/1.0 request without Host gets the server address as Host', () => {
  const info = inspectRequestHeaders([]);
  const head = buildUpstreamHead({ method: 'GET', target: '/', raw: [], filtered: false, dropUnderscored: true, info, forwardedFor: '1.2.3.4', forwardedProto: 'http', forwardedHost: undefined, requestId: 'r', bodyFraming: undefined, upgrade: false, defaultHost: '10.0.0.1:80' });
  assert.ok(lines(head).includes('Host: 10.0.0.1:80'));
});

test('client head keeps every Set-Cookie and re-frames the body', () => {
  const resp = ['Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Transfer-Encoding', 'chunked', 'Connection', 'close, X-Internal', 'X-Internal', 'x'];
  const info = inspectResponseHeaders(resp);
  const head = buildClientHead(
    { statusCode: 200, statusMessage: 'OK', raw: resp, requestId: 'r1', framing: 'chunked', keepAlive: true, http10: false, upgrade: false },
    info.connectionTokens, info.contentLength, info.hasRequestId, undefined,
  );
  const l = lines(head);
  assert.deepEqual(l.filter((x) => x.startsWith('Set-Cookie')), ['Set-Cookie: a=1', 'Set-Cookie: b=2']);
  assert.equal(l.filter((x) => /^transfer-encoding/i.test(x)).length, 1);
  assert.ok(!l.some((x) => x.startsWith('X-Internal')));
  assert.ok(l.includes('X-Request-Id: r1'));
});
