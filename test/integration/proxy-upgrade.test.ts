// Black-box Upgrade (WebSocket) tunnelling: the 101 handshake passes through
// with the upgrade headers intact, bytes then flow both ways unchanged
// (including bytes sent in the same packet as either handshake), and a close
// on one side closes the other.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, beforeEach, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { TUNNEL_CLOSE_COMMAND, startBackend, websocketAccept } from '../helpers/backend.js';
import type { Backend } from '../helpers/backend.js';
import { RawConnection } from '../helpers/raw-client.js';
import type { RawResponse } from '../helpers/raw-client.js';
import { startSwitchyard } from '../helpers/switchyard.js';
import type { Switchyard } from '../helpers/switchyard.js';

const GREETING = 'hello-from-backend;';

let backend: Backend;
let sy: Switchyard;

before(async () => {
  backend = await startBackend({ upgradeGreeting: GREETING });
  sy = await startSwitchyard({
    upstreams: { ws: { servers: [{ address: backend.address }], retries: 0, timeouts: { response: '5s', idle: '30s' } } },
    routes: [{ match: { host: '*', path: '/' }, upstream: 'ws' }],
  });
});

after(async () => {
  await sy?.stop();
  await backend?.close();
});

beforeEach(() => backend.reset());

function upgradeRequest(key: string, path = '/socket'): string {
  return (
    `GET ${path} HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
    `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\nOrigin: http://app.test\r\n\r\n`
  );
}

/** Opens a tunnel; `early` bytes go in the same write as the handshake. */
async function openTunnel(early = ''): Promise<{ conn: RawConnection; res: RawResponse; key: string }> {
  const key = randomBytes(16).toString('base64');
  const conn = await RawConnection.open(sy.port);
  conn.write(upgradeRequest(key) + early);
  const res = await conn.expectResponse({ timeoutMs: 3000 });
  return { conn, res, key };
}

const tokens = (v: string | string[] | undefined): string[] =>
  (Array.isArray(v) ? v.join(',') : (v ?? '')).split(',').map((t) => t.trim().toLowerCase());

test('the upgrade handshake passes through: 101, accept key, upgrade headers on both sides', async () => {
  const { conn, res, key } = await openTunnel();
  try {
    assert.equal(res.status, 101);
    assert.equal(res.header('upgrade')?.toLowerCase(), 'websocket');
    assert.ok(tokens(res.header('connection')).includes('upgrade'), `client sees Connection: ${res.header('connection')}`);
    assert.equal(res.header('sec-websocket-accept'), websocketAccept(key));
    assert.equal(backend.upgrades.length, 1, 'the backend took the upgrade path');
    const got = backend.upgrades[0]!;
    assert.ok(tokens(got.headers.connection).includes('upgrade'), `backend got Connection: ${got.headers.connection}`);
    assert.equal(got.headers.upgrade, 'websocket');
    assert.equal(got.headers['sec-websocket-key'], key);
    assert.equal(got.url, '/socket');
    assert.deepEqual(backend.requests, [], 'not handled as a plain request');
  } finally {
    conn.destroy();
  }
});

test('bytes travel both ways unchanged, including bytes sent with either handshake', async () => {
  const { conn, res } = await openTunnel('early-client-bytes;');
  try {
    assert.equal(res.status, 101);
    // The backend greets in the same write as its 101, then echoes what we sent early.
    assert.equal((await conn.readBytes(GREETING.length)).toString(), GREETING);
    assert.equal((await conn.readBytes('early-client-bytes;'.length)).toString(), 'early-client-bytes;');
    for (const size of [1, 1000, 256 * 1024]) {
      const payload = randomBytes(size);
      conn.write(payload);
      assert.ok((await conn.readBytes(size, 5000)).equals(payload), `${size} bytes echoed intact`);
    }
  } finally {
    conn.destroy();
  }
});

test('closing the client side closes the backend side of the tunnel', async () => {
  const { conn, res } = await openTunnel();
  assert.equal(res.status, 101);
  await conn.readBytes(GREETING.length);
  // This tunnel's own backend socket: earlier tests' tunnels may still be closing.
  const tunnel = backend.upgrades.at(-1)!;
  assert.equal(tunnel.socketClosed, undefined);
  conn.destroy();
  for (let i = 0; i < 60 && !tunnel.socketClosed; i++) await sleep(50);
  assert.equal(tunnel.socketClosed, true, 'backend socket closed within 3 s');
});

test('closing the backend side closes the client side of the tunnel', async () => {
  const { conn, res } = await openTunnel();
  try {
    assert.equal(res.status, 101);
    await conn.readBytes(GREETING.length);
    conn.write(TUNNEL_CLOSE_COMMAND);
    assert.ok(await conn.waitClosed(3000), 'client connection closed within 3 s');
  } finally {
    conn.destroy();
  }
});

test('an upgrade the backend refuses is relayed as a normal response', async () => {
  const conn = await RawConnection.open(sy.port);
  try {
    // No Sec-WebSocket-Key: the backend answers 400 instead of 101.
    conn.write('GET /socket HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    const res = await conn.expectResponse({ timeoutMs: 3000 });
    assert.equal(res.status, 400);
    assert.equal(backend.upgrades.length, 1);
  } finally {
    conn.destroy();
  }
});

test('a plain request still works next to tunnels', async () => {
  const conn = await RawConnection.open(sy.port);
  try {
    conn.write('GET /plain HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n');
    assert.equal((await conn.expectResponse()).status, 200);
    assert.equal(backend.requests.length, 1);
  } finally {
    conn.destroy();
  }
});
