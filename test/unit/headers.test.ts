import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildClientHead, buildUpstreamHead, clientEndToEndHeaders, inspectRequestHeaders, inspectResponseHeaders, isDroppedDown } from '../../src/proxy/headers.ts';

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

/** The names dropped, as the proxy documents them: hop-by-hop and framing both ways, and on the way up those it sets itself. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'content-length'];
const SET_BY_PROXY_UP = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id', 'expect', 'proxy-authorization'];

test('dropped header names are matched in any letter case, and nothing else of the same length is', () => {
  // A seeded walk: every spelling below is compared with the plain model (lower-case it, look it up).
  let seed = 7;
  const random = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed % n);
  const mixCase = (name: string): string => [...name].map((c) => (random(2) === 0 ? c.toUpperCase() : c)).join('');
  // Same length, one character changed: to its neighbours in the code table (around the A-Z and a-z
  // boundaries and the case bit), to latin1 letters that lower-case to non-ASCII ones, and to CR.
  const oneOff = (name: string): string[] => {
    const out: string[] = [];
    for (let i = 0; i < name.length; i++) {
      const c = name.charCodeAt(i);
      for (const d of [c - 1, c + 1, c ^ 0x20, c - 0x20, 0x40, 0x5b, 0x60, 0x7b, 0x0d, 0xc0, 0xe0, 0x2d, 0x5f]) {
        if (d > 0 && d <= 0xff && d !== c) out.push(name.slice(0, i) + String.fromCharCode(d) + name.slice(i + 1));
      }
    }
    return out;
  };
  const modelDown = (name: string): boolean => HOP_BY_HOP.includes(name.toLowerCase());
  const modelUp = (name: string): boolean => modelDown(name) || SET_BY_PROXY_UP.includes(name.toLowerCase());
  const keptUp = (name: string): boolean => {
    const raw = [name, 'v'];
    return clientEndToEndHeaders(raw, inspectRequestHeaders(raw), false).length === 2;
  };
  let checked = 0;
  for (const base of [...HOP_BY_HOP, ...SET_BY_PROXY_UP, 'content-type', 'x-request-ie', 'accept', 'host']) {
    for (const name of [base, base.toUpperCase(), ...Array.from({ length: 8 }, () => mixCase(base)), ...oneOff(base), ...oneOff(mixCase(base))]) {
      assert.equal(isDroppedDown(name, undefined), modelDown(name), `down: ${JSON.stringify(name)}`);
      assert.equal(!keptUp(name), modelUp(name), `up: ${JSON.stringify(name)}`);
      checked++;
    }
  }
  assert.ok(checked > 2000);
  // Names a Connection header lists are dropped in any case too, whatever their length.
  assert.equal(isDroppedDown('X-Internal-Thing', ['x-internal-thing']), true);
  assert.equal(isDroppedDown('X-Internal-Thinh', ['x-internal-thing']), false);
});

test('the headers the proxy acts on are found in any letter case, and not under a name one letter off', () => {
  const values: Array<[string, string]> = [
    ['host', 'a.test'], ['expect', '100-continue'], ['upgrade', 'websocket'], ['connection', 'x-y'], ['x-request-id', 'r1'],
    ['content-length', '7'], ['x-forwarded-for', '192.0.2.1'], ['x-forwarded-host', 'b.test'], ['x-forwarded-proto', 'https'], ['transfer-encoding', 'chunked'],
  ];
  const expected = inspectRequestHeaders(values.flat());
  const spellings = (name: string): string[] => [name.toUpperCase(), name.replace(/(^|-)[a-z]/g, (m) => m.toUpperCase()), [...name].map((c, i) => (i % 2 ? c.toUpperCase() : c)).join('')];
  for (const n of [0, 1, 2]) {
    assert.deepEqual(inspectRequestHeaders(values.flatMap(([name, value]) => [spellings(name)[n]!, value])), expected, `spelling ${n}`);
  }
  // One letter off (the last one moved up by one): none of them counts.
  const nothing = inspectRequestHeaders([]);
  const offByOne = values.flatMap(([name, value]) => [name.slice(0, -1) + String.fromCharCode(name.charCodeAt(name.length - 1) + 1), value]);
  assert.deepEqual(inspectRequestHeaders(offByOne), { ...nothing, underscored: false });
  const response = inspectResponseHeaders(['CONTENT-LENGTH', '12', 'Connection', 'Close, X-A', 'x-REQUEST-id', 'r', 'UpGrade', 'h2c']);
  assert.deepEqual(response, { contentLength: 12, hasContentLength: true, hasRequestId: true, upgrade: 'h2c', connectionTokens: ['close', 'x-a'] });
});
