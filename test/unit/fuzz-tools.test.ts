// The fuzzer's own parts (test/fuzz): a case is the same bytes every time, the
// strict backend parser accepts what RFC 9112 senders produce and refuses the
// rest, and the oracle's path resolution sees every spelling of /admin.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connBytes, generateCase } from '../fuzz/generate.js';
import { underAdmin } from '../fuzz/oracle.js';
import { parseStrict } from '../fuzz/strict-backend.js';

const bytesOf = (seed: number, index: number): string => generateCase(seed, index).conns.map((c) => `${connBytes(c).toString('latin1')}|${c.splits.join(',')}`).join('||');

test('case N of seed S is always the same bytes and split points; neighbours differ', () => {
  for (let i = 0; i < 50; i++) assert.equal(bytesOf(7, i), bytesOf(7, i));
  const distinct = new Set(Array.from({ length: 50 }, (_, i) => bytesOf(7, i)));
  assert.equal(distinct.size, 50);
  assert.notEqual(bytesOf(7, 3), bytesOf(8, 3));
});

test('the strict parser takes well-formed requests, chunked with extensions and trailers', () => {
  const chunked = Buffer.from('POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3;x="y z"\r\nabc\r\n0\r\nX-T: 1\r\n\r\nGET /b');
  const got = parseStrict(chunked);
  assert.notEqual(got, 'need-more');
  if (got === 'need-more') return;
  assert.equal(got.req.body.toString(), 'abc');
  assert.deepEqual(got.req.trailers, [['X-T', '1']]);
  assert.equal(chunked.subarray(got.consumed).toString(), 'GET /b');
  assert.equal(parseStrict(Buffer.from('POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab')), 'need-more');
});

test('the strict parser refuses what a sender must not generate', () => {
  const bad = [
    'GET /a HTTP/1.1\nHost: h\r\n\r\n',
    'GET /a HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n',
    'GET /a HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n',
    'GET /a HTTP/1.1\r\nHost : h\r\n\r\n',
    'GET /a HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n',
    'GET /a HTTP/1.1\r\n\r\n',
    'GET  /a HTTP/1.1\r\nHost: h\r\n\r\n',
    'POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n',
    'POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n',
    'POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\n',
    'POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n',
    'POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n',
    'POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n',
    'POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n',
  ];
  for (const text of bad) assert.throws(() => parseStrict(Buffer.from(text, 'latin1')), /./, JSON.stringify(text));
});

test('the oracle resolves the spellings a lenient backend merges into /admin', () => {
  for (const p of ['/admin', '/admin/x', '/ADMIN/x', '//admin/x', '/%61dmin/x', '/./admin/x', '/f/../admin/x', '/f/%2e%2e/admin', '/admin;x/y', 'http://h/admin?q']) {
    assert.ok(underAdmin(p), p);
  }
  for (const p of ['/f/admin', '/administrator', '/f/%2fadmin', '/']) assert.ok(!underAdmin(p), p);
});
