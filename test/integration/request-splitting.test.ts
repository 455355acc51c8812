// Issue 10, request splitting: known smuggling shapes sent byte for byte
// through the real proxy (2 workers) to the fuzzer's strict raw-TCP backend,
// with /admin behind an API key and `/` open on the same upstream. Whatever
// the proxy answers (400, 401, a close), the backend must never see a request
// the client hid (SMUGGLED in its path), a keyless /admin request, a request
// passed through without the proxy's own processing, or an ill-framed forward;
// and nothing of one message (trailers) may show up in another.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTarget, type Target } from '../fuzz/driver.js';
import { underAdmin } from '../fuzz/oracle.js';
import type { ForwardedRequest } from '../fuzz/strict-backend.js';
import { RawConnection, type RawResponse } from '../helpers/raw-client.js';

const HOST = 'Host: gateway.test\r\n';
/** A request hidden where the client framed body or nothing: it must never reach the backend. */
const smuggled = (name: string, path = '/SMUGGLED'): string => `GET ${path}/${name} HTTP/1.1\r\n${HOST}\r\n`;
const adminSmuggled = (name: string): string => `POST /admin/SMUGGLED/${name} HTTP/1.1\r\n${HOST}Content-Length: 0\r\n\r\n`;
const len = (s: string): number => Buffer.byteLength(s, 'latin1');

interface Shape {
  name: string;
  /** One string per client connection, opened one after the other. */
  conns: string[];
  /** Extra checks on what the backend and the clients got. */
  check?: (forwarded: ForwardedRequest[], responses: RawResponse[][]) => void;
  todo?: string;
}

const teCl = (name: string, te: string): Shape => {
  const hidden = adminSmuggled(name);
  const body = `${len(hidden).toString(16)}\r\n${hidden}\r\n0\r\n\r\n`;
  // CL 4 covers only the chunk-size line: a CL reader takes the hidden request as the next one.
  return { name: `TE.CL with ${JSON.stringify(te)}`, conns: [`POST /f/${name} HTTP/1.1\r\n${HOST}Content-Length: 4\r\n${te}\r\n\r\n${body}${smuggled(name)}`] };
};

const SHAPES: Shape[] = [
  (() => {
    const rest = `0\r\n\r\n${adminSmuggled('cl-te')}`;
    return { name: 'CL.TE: Content-Length covers a hidden request, TE ends the body first', conns: [`POST /f/cl-te HTTP/1.1\r\n${HOST}Content-Length: ${len(rest)}\r\nTransfer-Encoding: chunked\r\n\r\n${rest}${smuggled('cl-te')}`] };
  })(),
  teCl('te-cl', 'Transfer-Encoding: chunked'),
  teCl('te-te-second', 'Transfer-Encoding: chunked\r\nTransfer-Encoding: x'),
  teCl('te-te-space', 'Transfer-Encoding : chunked'),
  teCl('te-te-xchunked', 'Transfer-Encoding: xchunked'),
  teCl('te-te-identity', 'Transfer-Encoding: chunked, identity'),
  teCl('te-te-vtab', 'Transfer-Encoding: \x0bchunked'),
  teCl('te-te-fold', 'X-Pad: a\r\n Transfer-Encoding: chunked'),
  teCl('te-te-lf', 'X-Pad: a\nTransfer-Encoding: chunked'),
  teCl('te-te-cr', 'X-Pad: a\rTransfer-Encoding: chunked'),
  teCl('te-te-underscore', 'Transfer_Encoding: chunked'),
  (() => {
    const hidden = adminSmuggled('cl-dup');
    return { name: 'two Content-Length values', conns: [`POST /f/cl-dup HTTP/1.1\r\n${HOST}Content-Length: 0\r\nContent-Length: ${len(hidden)}\r\n\r\n${hidden}${smuggled('cl-dup')}`] };
  })(),
  (() => {
    const hidden = adminSmuggled('cl-list');
    return { name: 'a Content-Length list of different values', conns: [`POST /f/cl-list HTTP/1.1\r\n${HOST}Content-Length: ${len(hidden)}, 0\r\n\r\n${hidden}${smuggled('cl-list')}`] };
  })(),
  { name: 'Content-Length with a sign', conns: [`POST /f/cl-sign HTTP/1.1\r\n${HOST}Content-Length: +0\r\n\r\n${adminSmuggled('cl-sign')}`] },
  { name: 'Content-Length of 2^64 (wraps to 0)', conns: [`POST /f/cl-wrap HTTP/1.1\r\n${HOST}Content-Length: 18446744073709551616\r\n\r\n${adminSmuggled('cl-wrap')}`] },
  // A size that wraps to 0 in a 64-bit accumulator ends the body at once: the data is then a request.
  { name: 'chunk-size overflow', conns: [`POST /f/chunk-overflow HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\n\r\n${adminSmuggled('chunk-overflow')}0\r\n\r\n`] },
  { name: 'LF-only line ends, keyless /admin', conns: [`GET /admin/lf HTTP/1.1\n${HOST.replace('\r\n', '\n')}\nGET /admin/lf2 HTTP/1.1\r\n${HOST}\r\n`] },
  {
    name: 'LF-only chunk lines hide a request',
    conns: [`POST /f/chunk-lf HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n${len(adminSmuggled('chunk-lf')).toString(16)}\n${adminSmuggled('chunk-lf')}\n0\n\n`],
  },
  {
    name: 'Upgrade answered 200, then a keyless POST /admin in the same write',
    conns: [`GET /f/upgrade HTTP/1.1\r\n${HOST}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\nPOST /admin/delete-all HTTP/1.1\r\n${HOST}Content-Length: 0\r\n\r\n`],
  },
  {
    name: 'Upgrade answered 200, then an open request: processed by the proxy, not passed raw',
    conns: [`GET /f/upgrade2 HTTP/1.1\r\n${HOST}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\nGET /f/after-upgrade HTTP/1.1\r\n${HOST}X-Forwarded-Proto: spoofed\r\n\r\n`],
    check: (forwarded) => {
      for (const r of forwarded.filter((f) => f.target === '/f/after-upgrade')) {
        assert.deepEqual(r.headers.filter(([n]) => n.toLowerCase() === 'x-forwarded-proto').map(([, v]) => v), ['http'], `passed through raw: ${r.head}`);
      }
    },
  },
  { name: 'behind a 400 for a duplicate Host', conns: [`GET /f/dup-host HTTP/1.1\r\n${HOST}Host: other.test\r\n\r\n${smuggled('dup-host')}`] },
  { name: 'behind a 400 for absolute-form to another host', conns: [`GET http://evil.test/f/abs HTTP/1.1\r\n${HOST}\r\n${smuggled('abs')}`] },
  { name: 'behind a 400 for a bad Transfer-Encoding list', conns: [`POST /f/te-list HTTP/1.1\r\n${HOST}Transfer-Encoding: gzip, chunked, identity\r\n\r\n0\r\n\r\n${smuggled('te-list')}`] },
  {
    name: 'behind a 401 with Expect: 100-continue, the body is a request',
    conns: [`POST /admin/expect HTTP/1.1\r\n${HOST}Expect: 100-continue\r\nContent-Length: ${len(smuggled('expect'))}\r\n\r\n${smuggled('expect')}`],
  },
  {
    name: 'a chunked POST with a trailer, then a GET on the same connection',
    conns: [`POST /f/first HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer-First: t1\r\n\r\nGET /f/second HTTP/1.1\r\n${HOST}\r\n`],
    check: (forwarded) => {
      const targets = forwarded.map((f) => f.target);
      assert.ok(targets.includes('/f/second') || targets.length <= 1, `targets ${JSON.stringify(targets)}`);
      for (const f of forwarded) {
        assert.ok(f.target === '/f/first' || f.target === '/f/second', `merged target ${f.target}`);
        if (f.target === '/f/second') assert.ok(!/x-trailer-first/i.test(f.head), `the first request's trailer in the second: ${f.head}`);
        if (f.target === '/f/first') assert.equal(f.body.toString(), 'abc');
      }
    },
  },
  {
    name: 'a response trailer on one client, then new clients on the same upstream',
    // Three clients: consecutive connections go to alternating workers, so one shares A's pool.
    conns: ['a', 'b', 'c'].map((c) => `GET /f/trailer-${c} HTTP/1.1\r\n${HOST}X-Fuzz-Id: client-${c}\r\nX-Fuzz-Reply: trailer\r\n\r\n`),
    check: (_forwarded, responses) => {
      responses.forEach((list, c) => {
        for (const res of list) {
          const leaked = res.rawHeaders.filter(([n]) => /^x-secret-/i.test(n) && n.toLowerCase() !== `x-secret-client-${'abc'[c]}`);
          assert.deepEqual(leaked, [], `client ${'abc'[c]} got another client's trailer as a header`);
        }
      });
    },
  },
  {
    name: 'an unsolicited second answer of the backend never reaches the next request on its connection',
    // A backend that read one request as two answers twice (in one write); the pooled connection must not hand the spare on.
    conns: ['a', 'b', 'c', 'd'].map((c) => `GET /f/extra-${c} HTTP/1.1\r\n${HOST}X-Fuzz-Id: extra-${c}\r\nX-Fuzz-Reply: ${c === 'a' ? 'extra' : 'cl'}\r\n\r\n`),
    check: (_forwarded, responses) => {
      responses.forEach((list, c) => {
        const echoes = list.map((res) => res.header('x-fuzz-echo') ?? `(${res.status} of the proxy)`);
        assert.deepEqual(echoes.slice(0, 1), [`extra-${'abcd'[c]}`], `client ${'abcd'[c]} got another request's answer: ${list.map((r) => r.body.toString()).join(' | ')}`);
      });
    },
  },
];

/** Writes one connection's bytes and reads responses until it closes or goes quiet. */
async function converse(port: number, bytes: string): Promise<RawResponse[]> {
  const conn = await RawConnection.open(port);
  const out: RawResponse[] = [];
  try {
    conn.write(bytes);
    for (let i = 0; i < 6; i++) {
      const res = await conn.read({ timeoutMs: 1000 }).catch(() => undefined);
      if (!res) break;
      out.push(res);
      if (res.status === 101) break;
    }
  } finally {
    conn.destroy();
  }
  return out;
}

describe('request splitting through the gateway', () => {
  let target: Target;
  before(async () => {
    target = await startTarget();
  });
  after(async () => {
    await target?.stop();
  });

  for (const shape of SHAPES) {
    test(shape.name, shape.todo === undefined ? {} : { todo: shape.todo }, async () => {
      const { backend, sy } = target;
      backend.requests.splice(0);
      backend.illFramed.splice(0);
      const responses: RawResponse[][] = [];
      for (const bytes of shape.conns) responses.push(await converse(sy.port, bytes));
      // Let forwards that trail the last response land.
      await sleep(100);
      const forwarded = backend.requests.splice(0);
      const shown = forwarded.map((f) => f.head).join('\n');
      assert.deepEqual(backend.illFramed.map((f) => `${f.reason}: ${f.bytes.toString('latin1').slice(0, 300)}`), [], 'ill-framed forwards');
      assert.deepEqual(forwarded.filter((f) => f.target.includes('SMUGGLED')).map((f) => f.target), [], `smuggled requests reached the backend:\n${shown}`);
      // No shape sends the key: every /admin request the backend sees got past the auth route.
      const keyless = forwarded.filter((f) => underAdmin(f.target));
      assert.deepEqual(keyless.map((f) => f.target), [], `keyless /admin requests reached the backend:\n${shown}`);
      shape.check?.(forwarded, responses);
    });
  }

  // Found by the fuzzer: an answer of the proxy's own to a HEAD carried its
  // text body, which the client then reads as the start of the next response.
  test('a HEAD refused by the gateway gets no body: the next answer on the connection is intact', async () => {
    const conn = await RawConnection.open(target.sy.port);
    try {
      conn.write(`HEAD /admin/head HTTP/1.1\r\n${HOST}\r\nGET /f/after-head HTTP/1.1\r\n${HOST}X-Fuzz-Id: after-head\r\n\r\n`);
      const first = await conn.expectResponse({ method: 'HEAD', timeoutMs: 2000 });
      assert.equal(first.status, 401);
      const second = await conn.expectResponse({ timeoutMs: 2000 });
      assert.equal(second.status, 200);
      assert.equal(second.header('x-fuzz-echo'), 'after-head');
    } finally {
      conn.destroy();
    }
  });
});
