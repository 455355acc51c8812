// Request bodies with a Content-Length pass through as the client socket's
// own chunks, without llhttp (client-connection.ts, passBody). What must hold
// whatever the client's bytes: the upstream gets exactly the body the length
// framed, split however the client wrote it; the bytes after it are parsed as
// the next request (pipelining), never as body, and never forwarded after a
// request that was the connection's last; a body cut short never completes
// upstream; the 413 limit and the retry replay see every byte.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { patternBytes, startBackend, startRawBackend, type Backend, type RawBackend, type ReceivedRequest } from '../helpers/backend.js';
import { RawConnection } from '../helpers/raw-client.js';
import { startSwitchyard, type Switchyard } from '../helpers/switchyard.js';

/** The body's length once it has ended (or the connection closed), polled: the responder is called at the head. */
async function bodyLength(req: ReceivedRequest): Promise<number> {
  for (let i = 0; i < 500 && !req.complete; i++) await sleep(10);
  return req.bodyBytes;
}

/**
 * Data segments the kernel sent on every socket connected to `port` (ss -ti,
 * data_segs_out): the proxy's side of its upstream connections to a backend.
 */
function dataSegmentsTo(port: number): number {
  const out = execFileSync('ss', ['-tinH', `dport = :${port}`], { encoding: 'utf8' });
  return [...out.matchAll(/data_segs_out:(\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const post = (path: string, body: Buffer, extra = ''): Buffer =>
  Buffer.concat([Buffer.from(`POST ${path} HTTP/1.1\r\nHost: t\r\nContent-Length: ${body.length}\r\n${extra}\r\n`, 'latin1'), body]);

describe('request bodies passed through', () => {
  let backend: Backend;
  let sy: Switchyard;

  before(async () => {
    // Answers once the whole body is in (the responder runs at the head): its length, as the backend counted it.
    // /slow answers after 300 ms, holding the requests pipelined behind it.
    backend = await startBackend({
      respond: async (req) => {
        if (req.url === '/slow') await sleep(300);
        return { status: 200, body: `${req.url} ${await bodyLength(req)}` };
      },
    });
    sy = await startSwitchyard({
      workers: 1,
      limits: { max_body_bytes: 100_000 },
      upstreams: { app: { servers: [{ address: backend.address }] } },
      // Only Host: t is routed: another host gets a 404 from the request's head.
      routes: [{ match: { host: 't', path: '/' }, upstream: 'app' }],
    });
  });
  after(async () => {
    await sy?.stop();
    await backend?.close();
  });

  test('a body split into 1-byte writes arrives whole and exact', async () => {
    backend.reset();
    const body = patternBytes(7, 5000);
    const conn = await RawConnection.open(sy.port);
    try {
      const bytes = post('/split', body);
      const head = bytes.length - body.length;
      conn.write(bytes.subarray(0, head + 3));
      for (let i = head + 3; i < head + 40; i++) {
        conn.write(bytes.subarray(i, i + 1));
        await sleep(2);
      }
      conn.write(bytes.subarray(head + 40));
      const res = await conn.expectResponse();
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), '/split 5000');
    } finally {
      conn.destroy();
    }
    const got = backend.requests.find((r) => r.url === '/split')!;
    assert.equal(got.complete, true);
    assert.equal(sha(got.body), sha(body));
  });

  test('a head and the body that came in the same read go upstream in one segment', async () => {
    // Written one after the other (TCP_NODELAY), the head and the body took a segment, a syscall and a wake-up of the server each.
    backend.reset();
    const n = 20;
    const conn = await RawConnection.open(sy.port);
    let before = 0;
    try {
      // The first request opens the upstream connection; count from the second on.
      conn.write(post('/warm', Buffer.from('x')));
      assert.equal((await conn.expectResponse()).status, 200);
      before = dataSegmentsTo(backend.port);
      for (let i = 0; i < n; i++) {
        conn.write(post(`/one-${i}`, patternBytes(i, 4096)));
        assert.equal((await conn.expectResponse()).body.toString(), `/one-${i} 4096`);
      }
    } finally {
      conn.destroy();
    }
    const segments = dataSegmentsTo(backend.port) - before;
    assert.ok(segments >= n && segments <= n + 2, `${n} requests of head + 4 KB body each went upstream in ${segments} data segments (expected ${n})`);
  });

  test('a POST after an Upgrade request answered from its head, in the same write, is forwarded whole', async () => {
    // The POST is parsed by a nested read (the bytes held behind the Upgrade request): its corked head must still go out.
    backend.reset();
    const conn = await RawConnection.open(sy.port);
    try {
      // An idle upstream connection, so the POST's head is written inside the read that parsed it.
      conn.write(post('/warm-up', Buffer.from('x')));
      assert.equal((await conn.expectResponse()).status, 200);
      const upgrade = 'GET /ws HTTP/1.1\r\nHost: unrouted\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n';
      conn.write(Buffer.concat([Buffer.from(upgrade, 'latin1'), post('/after-upgrade', Buffer.from('hello'))]));
      assert.equal((await conn.expectResponse()).status, 404);
      const res = await conn.expectResponse({ timeoutMs: 3000 });
      assert.equal(res.body.toString(), '/after-upgrade 5');
    } finally {
      conn.destroy();
    }
  });

  test('pipelined: body, next head and body in one write; each request gets exactly its own bytes', async () => {
    backend.reset();
    const a = patternBytes(0, 3000);
    // The second body looks like a request: it must stay body.
    const b = Buffer.from('GET /SMUGGLED HTTP/1.1\r\nHost: t\r\n\r\n', 'latin1');
    const c = patternBytes(99, 10);
    const conn = await RawConnection.open(sy.port);
    try {
      conn.write(Buffer.concat([post('/p1', a), post('/p2', b), post('/p3', c), Buffer.from('GET /p4 HTTP/1.1\r\nHost: t\r\n\r\n')]));
      const bodies = [];
      for (let i = 0; i < 4; i++) bodies.push((await conn.expectResponse()).body.toString());
      assert.deepEqual(bodies, [`/p1 ${a.length}`, `/p2 ${b.length}`, `/p3 ${c.length}`, '/p4 0']);
    } finally {
      conn.destroy();
    }
    assert.deepEqual(backend.requests.map((r) => r.url), ['/p1', '/p2', '/p3', '/p4']);
    assert.deepEqual(backend.requests.map((r) => sha(r.body)), [a, b, c, Buffer.alloc(0)].map(sha));
  });

  test('the head and the first body bytes in one write, the rest later: no byte lost or doubled', async () => {
    backend.reset();
    const body = patternBytes(3, 70_000);
    const bytes = post('/late', body);
    const conn = await RawConnection.open(sy.port);
    try {
      conn.write(bytes.subarray(0, bytes.length - 65_000));
      await sleep(100);
      conn.write(bytes.subarray(bytes.length - 65_000));
      assert.equal((await conn.expectResponse()).body.toString(), '/late 70000');
    } finally {
      conn.destroy();
    }
    assert.equal(sha(backend.requests[0]!.body), sha(body));
  });

  test('bodies pipelined behind a slow response fill the paused socket, and reading restarts after it', async () => {
    // Behind /slow the socket is paused: what the client sends fills its buffer until the handle stops
    // reading, with the rest still in the kernel (read-ahead.ts: nothing but resume() restarts it).
    backend.reset();
    const a = patternBytes(5, 90_000);
    const b = patternBytes(6, 90_000);
    const conn = await RawConnection.open(sy.port);
    try {
      conn.write(Buffer.concat([Buffer.from('GET /slow HTTP/1.1\r\nHost: t\r\n\r\n', 'latin1'), post('/behind-1', a), post('/behind-2', b)]));
      assert.equal((await conn.expectResponse()).body.toString(), '/slow 0');
      assert.equal((await conn.expectResponse({ timeoutMs: 5000 })).body.toString(), '/behind-1 90000');
      assert.equal((await conn.expectResponse({ timeoutMs: 5000 })).body.toString(), '/behind-2 90000');
    } finally {
      conn.destroy();
    }
    assert.deepEqual(backend.requests.map((r) => r.url), ['/slow', '/behind-1', '/behind-2']);
    assert.deepEqual(backend.requests.slice(1).map((r) => sha(r.body)), [a, b].map(sha));
  });

  test('after a Connection: close request, bytes after its body never reach the upstream', async () => {
    backend.reset();
    const conn = await RawConnection.open(sy.port);
    try {
      conn.write(Buffer.concat([post('/last', Buffer.from('abc'), 'Connection: close\r\n'), Buffer.from('GET /SMUGGLED-after-close HTTP/1.1\r\nHost: t\r\n\r\n')]));
      const res = await conn.expectResponse();
      assert.equal(res.body.toString(), '/last 3');
      assert.equal(await conn.waitClosed(3000), true, 'the connection closes after the last request');
    } finally {
      conn.destroy();
    }
    await sleep(100);
    assert.deepEqual(backend.requests.map((r) => r.url), ['/last']);
    assert.ok(!backend.rawText().includes('SMUGGLED'));
  });

  test('a body cut short by the client never completes upstream, and the worker keeps serving', async () => {
    backend.reset();
    const body = patternBytes(0, 4000);
    const conn = await RawConnection.open(sy.port);
    conn.write(post('/cut', body).subarray(0, 200));
    await sleep(200);
    conn.destroy();
    await sleep(300);
    const cut = backend.requests.find((r) => r.url === '/cut');
    if (cut) assert.equal(cut.complete, false);
    const again = await RawConnection.open(sy.port);
    try {
      again.write(post('/after-cut', Buffer.from('ok')));
      assert.equal((await again.expectResponse()).body.toString(), '/after-cut 2');
    } finally {
      again.destroy();
    }
  });

  // llhttp stops after the head of a passed-through body as after an Upgrade; node's parser then hides
  // parse errors until the next head completes, so a request right after such a body would be read leniently
  // unless the parser starts afresh (passBody's resetParser).
  const framingAttacks: Array<[string, string]> = [
    ['Content-Length with Transfer-Encoding', 'POST /SMUGGLED HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['Transfer-Encoding with Content-Length', 'POST /SMUGGLED HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n'],
    ['two Content-Lengths', 'POST /SMUGGLED HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab'],
    ['a bare LF', 'GET /SMUGGLED HTTP/1.1\nHost: t\r\n\r\n'],
  ];
  for (const [name, bad] of framingAttacks) {
    test(`right after a passed-through body, a request with ${name} is refused with 400, never forwarded`, async () => {
      backend.reset();
      const conn = await RawConnection.open(sy.port);
      try {
        // In the same write and in a later one: the parser's state after the body must not depend on how the bytes came.
        conn.write(Buffer.concat([post('/first', Buffer.from('abc')), Buffer.from(bad, 'latin1')]));
        assert.equal((await conn.expectResponse()).body.toString(), '/first 3');
        assert.equal((await conn.expectResponse({ timeoutMs: 3000 })).status, 400);
      } finally {
        conn.destroy();
      }
      const later = await RawConnection.open(sy.port);
      try {
        later.write(post('/second', Buffer.from('abcd')));
        assert.equal((await later.expectResponse()).body.toString(), '/second 4');
        await sleep(50);
        later.write(bad);
        assert.equal((await later.expectResponse({ timeoutMs: 3000 })).status, 400);
      } finally {
        later.destroy();
      }
      await sleep(100);
      assert.deepEqual(backend.requests.map((r) => r.url), ['/first', '/second']);
      assert.ok(!backend.rawText().includes('SMUGGLED'));
    });
  }

  test('a Content-Length over max_body_bytes is refused with 413 and nothing is forwarded', async () => {
    backend.reset();
    const conn = await RawConnection.open(sy.port);
    try {
      conn.write(`POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 100001\r\n\r\n${'x'.repeat(1000)}`);
      assert.equal((await conn.expectResponse()).status, 413);
    } finally {
      conn.destroy();
    }
    assert.equal(backend.requests.length, 0);
  });
});

describe('request bodies passed through: the retry replay', () => {
  let dropper: RawBackend;
  let good: Backend;
  let sy: Switchyard;

  before(async () => {
    // Reads the whole request, then resets without answering: an idempotent request is retried.
    dropper = await startRawBackend((socket) => {
      let seen = Buffer.alloc(0);
      socket.on('data', (d: Buffer) => {
        seen = Buffer.concat([seen, d]);
        const headEnd = seen.indexOf('\r\n\r\n');
        const m = /content-length: (\d+)/i.exec(seen.toString('latin1'));
        if (headEnd >= 0 && m && seen.length >= headEnd + 4 + Number(m[1])) socket.resetAndDestroy();
      });
    });
    good = await startBackend({ respond: async (req) => ({ status: 200, body: `${await bodyLength(req)}` }) });
    sy = await startSwitchyard({
      workers: 1,
      upstreams: { app: { servers: [{ address: dropper.address }, { address: good.address }], retries: 1, retry_budget: { percent: 100, min_per_second: 100 } } },
      routes: [{ match: { host: '*', path: '/' }, upstream: 'app' }],
    });
  });
  after(async () => {
    await sy?.stop();
    await dropper?.close();
    await good?.close();
  });

  test('a PUT body sent in pieces is replayed whole to the next server', async () => {
    const body = patternBytes(11, 20_000);
    for (let i = 0; i < 4; i++) {
      const bytes = Buffer.concat([Buffer.from(`PUT /r${i} HTTP/1.1\r\nHost: t\r\nContent-Length: ${body.length}\r\n\r\n`), body]);
      const conn = await RawConnection.open(sy.port);
      try {
        conn.write(bytes.subarray(0, 100));
        await sleep(20);
        conn.write(bytes.subarray(100, 9000));
        await sleep(20);
        conn.write(bytes.subarray(9000));
        const res = await conn.expectResponse();
        assert.equal(res.status, 200, res.body.toString());
        assert.equal(res.body.toString(), String(body.length));
      } finally {
        conn.destroy();
      }
    }
    // Round-robin put some first attempts on the dropper: those were replays, and every body that arrived is exact.
    assert.ok(dropper.connections.length > 0, 'some attempts went to the server that resets');
    for (const r of good.requests) assert.equal(sha(r.body), sha(body));
  });
});
