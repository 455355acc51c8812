// The WebSocket handshake check for HTTP/2 WebSockets (RFC 8441): the key
// Switchyard sends upstream and the 101 it accepts for it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newWebSocketKey, switchProblem, websocketAccept } from '../../src/proxy/websocket-handshake.js';

test("RFC 6455 §1.3's example: the key dGhlIHNhbXBsZSBub25jZQ== is answered with s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", () => {
  assert.equal(websocketAccept('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
});

test('a new key is 16 random bytes in base64, never the same twice', () => {
  const keys = new Set(Array.from({ length: 100 }, () => newWebSocketKey()));
  assert.equal(keys.size, 100);
  for (const k of keys) assert.equal(Buffer.from(k, 'base64').length, 16);
});

test('a 101 passes only with Upgrade: websocket and the Accept of the key sent, each once', () => {
  const key = 'dGhlIHNhbXBsZSBub25jZQ==';
  const accept = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';
  assert.equal(switchProblem(['Upgrade', 'WebSocket', 'Connection', 'Upgrade', 'Sec-WebSocket-Accept', accept], key), undefined);
  assert.match(switchProblem(['Upgrade', 'websocket'], key)!, /0 Sec-WebSocket-Accept/);
  assert.match(switchProblem(['Upgrade', 'websocket', 'Sec-WebSocket-Accept', accept, 'sec-websocket-accept', accept], key)!, /2 Sec-WebSocket-Accept/);
  assert.match(switchProblem(['Upgrade', 'websocket', 'Sec-WebSocket-Accept', websocketAccept('another key')], key)!, /does not answer/);
  assert.match(switchProblem(['Upgrade', 'h2c', 'Sec-WebSocket-Accept', accept], key)!, /not websocket/);
  assert.match(switchProblem(['Sec-WebSocket-Accept', accept], key)!, /not websocket/);
});
