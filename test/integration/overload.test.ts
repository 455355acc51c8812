// Overload behaviour: listen[].backlog (default 4096) reaches the kernel, limits.max_connections
// closes what is over the cap at once (and counts it), and a flood of one
// failure writes a bounded number of log lines.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { closedPort, startBackend } from '../helpers/backend.js';
import { logLines, mapLimit, metricsText, metricValue, send } from '../helpers/gateway.js';
import { RawConnection } from '../helpers/raw-client.js';
import { freePort, startSwitchyard, type Switchyard } from '../helpers/switchyard.js';

let sy: Switchyard;

before(async () => {
  sy = await startSwitchyard({
    workers: 1,
    listen: [{ host: '127.0.0.1', port: await freePort(), backlog: 37 }],
    logging: { level: 'warn', access: false },
    limits: { max_connections: 20 },
    // Nothing listens there: every request fails the same way.
    upstreams: { dead: { servers: [{ address: `127.0.0.1:${await closedPort()}` }], retries: 0 } },
    routes: [{ match: { host: '*', path: '/' }, upstream: 'dead' }],
  });
});

after(async () => {
  await sy?.stop();
});

test('listen[].backlog is the listening socket\'s queue length', () => {
  // For a listening TCP socket, ss shows the backlog in the Send-Q column.
  const out = execFileSync('ss', ['-ltnH', `sport = :${sy.port}`], { encoding: 'utf8' });
  const sendQ = out.trim().split(/\s+/)[2];
  assert.equal(sendQ, '37', out);
});

test('without listen[].backlog the queue is 4096 deep, or the kernel ceiling (net.core.somaxconn) when lower', async () => {
  const plain = await startSwitchyard({ workers: 1, listen: [{ host: '127.0.0.1', port: await freePort() }], upstreams: { dead: { servers: [{ address: `127.0.0.1:${await closedPort()}` }] } }, routes: [{ match: { host: '*', path: '/' }, upstream: 'dead' }] });
  try {
    const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
    const out = execFileSync('ss', ['-ltnH', `sport = :${plain.port}`], { encoding: 'utf8' });
    assert.equal(out.trim().split(/\s+/)[2], String(Math.min(4096, somaxconn)), out);
  } finally {
    await plain.stop();
  }
});

test('beyond limits.max_connections a new connection is closed at once, counted, and the others keep working', async () => {
  const held: RawConnection[] = [];
  try {
    for (let i = 0; i < 20; i++) held.push(await RawConnection.open(sy.port));
    await sleep(100);
    const extra = await RawConnection.open(sy.port);
    assert.ok(await extra.waitClosed(2000), 'the 21st connection was closed');
    extra.destroy();
    // One held connection still gets answers (502: the upstream is down).
    held[0]!.write('GET / HTTP/1.1\r\nHost: a.test\r\n\r\n');
    assert.equal((await held[0]!.expectResponse()).status, 502);
    const text = await metricsText(sy.adminPort);
    assert.ok((metricValue(text, 'switchyard_refused_connections_total') ?? 0) >= 1);
  } finally {
    for (const c of held) c.destroy();
  }
});

test('a flood of one failure logs a bounded number of lines, each saying how many were held back', async () => {
  const before = logLines(sy.output()).filter((l) => l.msg === 'request failed').length;
  const requests = 400;
  const started = Date.now();
  await mapLimit(Array.from({ length: requests }), 10, () => send({ port: sy.port, path: '/' }));
  const seconds = Math.ceil((Date.now() - started) / 1000) + 1;
  await sleep(200);
  const lines = logLines(sy.output()).filter((l) => l.msg === 'request failed').slice(before);
  // At most a burst of 100 lines, then 10 a second.
  assert.ok(lines.length <= 100 + 10 * seconds, `${lines.length} lines for ${requests} failures in ~${seconds} s`);
  assert.ok(lines.length >= 10);
  const accounted = lines.length + lines.reduce((n, l) => n + Number(l.heldBack ?? 0), 0);
  assert.ok(accounted <= requests);
});

test('with file descriptors exhausted the process stays up, logs a bounded number of lines, and recovers', async () => {
  const backend = await startBackend();
  const limited = await startSwitchyard(
    { workers: 1, upstreams: { app: { servers: [{ address: backend.address }], retries: 0 } }, routes: [{ match: { host: '*', path: '/' }, upstream: 'app' }] },
    { nofile: 128 },
  );
  const sockets: RawConnection[] = [];
  try {
    const [worker] = limited.workerPids();
    // 300 clients against 128 descriptors: accepts and upstream connects fail with EMFILE.
    for (let i = 0; i < 300; i++) {
      try {
        sockets.push(await RawConnection.open(limited.port));
      } catch {
        // refused or reset while the worker is out of descriptors: expected
      }
    }
    const deadline = Date.now() + 2000;
    while (Date.now() < deadline) {
      for (const c of sockets) c.write('GET / HTTP/1.1\r\nHost: a.test\r\n\r\n');
      await sleep(100);
    }
    for (const c of sockets) c.destroy();
    sockets.length = 0;
    await sleep(500);
    assert.deepEqual(limited.workerPids(), [worker], 'the worker survived');
    const reply = await send({ port: limited.port, path: '/' });
    assert.equal(reply.status, 200, 'recovered once the clients left');
    const output = limited.output();
    assert.ok(output.length < 60_000, `${output.length} bytes of log for a 2 s flood`);
  } finally {
    for (const c of sockets) c.destroy();
    await limited.stop();
    await backend.close();
  }
});
