// Black-box header handling of the data path: X-Forwarded-*, hop-by-hop
// removal in both directions, request ids, repeated Set-Cookie, and byte-exact
// forwarding of paths, queries and header values. 127.0.0.1 is a trusted
// proxy here; connecting from 127.0.0.2 (also loopback) makes an untrusted peer.

import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import { startBackend } from '../helpers/backend.js';
import type { Backend, ReceivedRequest } from '../helpers/backend.js';
import { RawConnection, exchange } from '../helpers/raw-client.js';
import type { RawResponse } from '../helpers/raw-client.js';
import { startSwitchyard } from '../helpers/switchyard.js';
import type { Switchyard } from '../helpers/switchyard.js';

const TRUSTED = '127.0.0.1';
const UNTRUSTED = '127.0.0.2';

let backend: Backend;
let sy: Switchyard;

before(async () => {
  backend = await startBackend();
  sy = await startSwitchyard({
    trusted_proxies: [`${TRUSTED}/32`],
    upstreams: { app: { servers: [{ address: backend.address }], retries: 0, timeouts: { response: '5s' } } },
    routes: [{ match: { host: '*', path: '/' }, upstream: 'app' }],
  });
});

after(async () => {
  await sy?.stop();
  await backend?.close();
});

beforeEach(() => {
  backend.reset();
  backend.respond = () => ({ status: 200, body: 'ok' });
});

/** Sends one raw request (Connection: close unless given) and returns what both ends saw. */
async function roundTrip(
  requestLine: string,
  headerLines: string[],
  from = TRUSTED,
): Promise<{ res: RawResponse; got: ReceivedRequest }> {
  const close = headerLines.some((l) => /^connection:/i.test(l)) ? [] : ['Connection: close'];
  const head = [requestLine, ...headerLines, ...close, '', ''].join('\r\n');
  const { response } = await exchange(sy.port, head, { localAddress: from });
  assert.ok(response, 'no response');
  assert.equal(response.status, 200, `status ${response.status}: ${response.body.toString()}`);
  assert.equal(backend.requests.length, 1, 'exactly one request upstream');
  return { res: response, got: backend.requests[0]! };
}

/** Tokens of a Connection header, lower-cased. */
const tokens = (v: string | string[] | undefined): string[] =>
  (Array.isArray(v) ? v.join(',') : (v ?? '')).split(',').map((t) => t.trim().toLowerCase()).filter(Boolean);

test('X-Forwarded-For is appended to when the peer is a trusted proxy', async () => {
  const { got } = await roundTrip('GET / HTTP/1.1', ['Host: app.test', 'X-Forwarded-For: 203.0.113.7']);
  assert.equal(got.headers['x-forwarded-for'], `203.0.113.7, ${TRUSTED}`);
});

test('X-Forwarded-For from an untrusted peer is replaced by the peer address', async () => {
  const { got } = await roundTrip('GET / HTTP/1.1', ['Host: app.test', 'X-Forwarded-For: 203.0.113.7'], UNTRUSTED);
  assert.equal(got.headers['x-forwarded-for'], UNTRUSTED);
});

test('X-Forwarded-For is set to the peer when absent', async () => {
  const { got } = await roundTrip('GET / HTTP/1.1', ['Host: app.test'], UNTRUSTED);
  assert.equal(got.headers['x-forwarded-for'], UNTRUSTED);
});

test('X-Forwarded-Proto is http, X-Forwarded-Host is the original Host, Host is preserved', async () => {
  const { got } = await roundTrip('GET / HTTP/1.1', ['Host: app.test:8123']);
  assert.equal(got.headers['x-forwarded-proto'], 'http');
  assert.equal(got.headers['x-forwarded-host'], 'app.test:8123');
  assert.equal(got.headers.host, 'app.test:8123');
});

test('X-Forwarded-Proto and X-Forwarded-Host from an untrusted peer are not believed', async () => {
  const { got } = await roundTrip(
    'GET / HTTP/1.1',
    ['Host: app.test', 'X-Forwarded-Proto: https', 'X-Forwarded-Host: spoofed.example'],
    UNTRUSTED,
  );
  assert.equal(got.headers['x-forwarded-proto'], 'http');
  assert.equal(got.headers['x-forwarded-host'], 'app.test');
});

test('hop-by-hop request headers and headers named in Connection are removed', async () => {
  const { got } = await roundTrip('GET /hop HTTP/1.1', [
    'Host: app.test',
    'Connection: close, X-Secret',
    'X-Secret: s3cret-value',
    'Keep-Alive: timeout=99',
    'Proxy-Connection: keep-alive',
    'TE: trailers',
    'Trailer: X-Trail',
    'Upgrade: h2c',
    'X-Kept: yes',
  ]);
  for (const h of ['x-secret', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade']) {
    assert.equal(got.headers[h], undefined, `${h} must not be forwarded`);
  }
  assert.equal(got.headers['x-kept'], 'yes');
  for (const t of tokens(got.headers.connection)) assert.ok(['keep-alive', 'close'].includes(t), `Connection token ${t} forwarded`);
  assert.ok(!backend.rawText().includes('s3cret-value'), 'the secret value never went upstream');
  assert.ok(!backend.rawText().includes('timeout=99'), 'the client Keep-Alive never went upstream');
});

test('hop-by-hop response headers and headers named in Connection are removed', async () => {
  backend.respond = () => ({
    status: 200,
    headers: [
      ['Connection', 'keep-alive, X-Backend-Secret'],
      ['X-Backend-Secret', 'hidden-value'],
      ['Keep-Alive', 'timeout=777, max=999'],
      ['Proxy-Connection', 'keep-alive'],
      ['Trailer', 'X-Trail'],
      ['Upgrade', 'h2c'],
      ['X-Visible', 'yes'],
    ],
    // Chunked: node:http refuses a Trailer header on a Content-Length response.
    chunks: ['bo', 'dy'],
  });
  const { res } = await roundTrip('GET /hop HTTP/1.1', ['Host: app.test']);
  for (const h of ['x-backend-secret', 'proxy-connection', 'trailer', 'upgrade']) {
    assert.equal(res.header(h), undefined, `${h} must not reach the client`);
  }
  assert.ok(!(res.header('keep-alive') ?? '').includes('777'), "the backend's Keep-Alive must not reach the client");
  for (const t of tokens(res.header('connection'))) assert.ok(['keep-alive', 'close'].includes(t), `Connection token ${t} forwarded`);
  assert.equal(res.header('x-visible'), 'yes');
  assert.equal(res.body.toString(), 'body');
});

test('x-request-id is generated when absent: non-empty, unique, same upstream and downstream', async () => {
  const ids = new Set<string>();
  for (let i = 0; i < 3; i++) {
    backend.reset();
    const { res, got } = await roundTrip(`GET /id/${i} HTTP/1.1`, ['Host: app.test']);
    const upstream = got.headers['x-request-id'];
    assert.equal(typeof upstream, 'string');
    assert.ok((upstream as string).length > 0, 'non-empty');
    assert.equal(res.header('x-request-id'), upstream, 'the client sees the id the backend saw');
    ids.add(upstream as string);
  }
  assert.equal(ids.size, 3, 'ids are unique');
});

test('an incoming x-request-id is passed through and returned', async () => {
  const { res, got } = await roundTrip('GET / HTTP/1.1', ['Host: app.test', 'X-Request-Id: client-chosen-42']);
  assert.equal(got.headers['x-request-id'], 'client-chosen-42');
  assert.equal(res.header('x-request-id'), 'client-chosen-42');
});

test('several Set-Cookie headers arrive as separate header lines', async () => {
  const cookies = ['a=1; Path=/', 'b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT; HttpOnly', 'c=3; SameSite=Lax'];
  backend.respond = () => ({ status: 200, headers: cookies.map((c): [string, string] => ['Set-Cookie', c]), body: 'ok' });
  const { res } = await roundTrip('GET / HTTP/1.1', ['Host: app.test']);
  assert.deepEqual(res.headerAll('set-cookie'), cookies);
});

test('paths and queries are forwarded byte for byte', async () => {
  for (const target of ['/a%2Fb/../c?x=%20&y=a+b&z', '//double//slash', '/caf%C3%A9', '/p;param?q=%2e%2E&&empty=']) {
    backend.reset();
    const { got } = await roundTrip(`GET ${target} HTTP/1.1`, ['Host: app.test']);
    assert.equal(got.url, target);
  }
});

test('header values are forwarded byte for byte (whitespace, obs-text, UTF-8 bytes)', async () => {
  const value = 'a  b\t c \xe9\xff caf\xc3\xa9 "q,u;o=t\'e"';
  const { got } = await roundTrip('GET / HTTP/1.1', ['Host: app.test', `X-Bytes: ${value}`]);
  const i = got.rawHeaders.findIndex((n, k) => k % 2 === 0 && n.toLowerCase() === 'x-bytes');
  assert.ok(i >= 0, 'header forwarded');
  assert.equal(Buffer.from(got.rawHeaders[i + 1]!, 'latin1').toString('hex'), Buffer.from(value, 'latin1').toString('hex'));
});

test('repeated request headers keep all their values', async () => {
  const { got } = await roundTrip('GET / HTTP/1.1', ['Host: app.test', 'X-Multi: one', 'X-Multi: two']);
  assert.equal(got.headers['x-multi'], 'one, two');
});

test('response header values are forwarded byte for byte', async () => {
  const value = 'v\xe9 \t x';
  backend.respond = () => ({ status: 200, headers: [['X-Resp-Bytes', value]], body: 'ok' });
  const conn = await RawConnection.open(sy.port);
  try {
    conn.write('GET / HTTP/1.1\r\nHost: app.test\r\n\r\n');
    const res = await conn.expectResponse();
    assert.equal(Buffer.from(res.header('x-resp-bytes') ?? '', 'latin1').toString('hex'), Buffer.from(value, 'latin1').toString('hex'));
  } finally {
    conn.destroy();
  }
});
