// Upstream connection reuse with the default config, and the metrics that
// show it: connections opened, requests sent on a reused connection, and
// connections closed by reason (idle cap, the upstream asking, unsolicited
// bytes, requests abandoned).
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { startBackend, type Backend } from '../helpers/backend.js';
import { mapLimit, metricsText, metricValue, send } from '../helpers/gateway.js';
import { startSwitchyard, type Switchyard } from '../helpers/switchyard.js';

let backend: Backend;
let sy: Switchyard;

before(async () => {
  backend = await startBackend({
    respond: (req) =>
      req.url === '/close'
        ? { status: 200, headers: [['connection', 'close']], body: 'bye' }
        : { status: 200, body: 'ok' },
  });
  sy = await startSwitchyard({
    workers: 1,
    upstreams: {
      app: { servers: [{ address: backend.address }] },
      capped: { servers: [{ address: backend.address }], max_idle_per_server: 0 },
    },
    routes: [
      { match: { host: '*', path: '/capped' }, upstream: 'capped' },
      { match: { host: '*', path: '/' }, upstream: 'app' },
    ],
  });
});

after(async () => {
  await sy?.stop();
  await backend?.close();
});

const value = (text: string, name: string, labels: Record<string, string>) => metricValue(text, name, labels) ?? 0;

test('with the default idle policy, 160 concurrent keep-alive clients (more than the old fixed idle cap of 128) reuse upstream connections for over 99% of requests', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 160 });
  try {
    const requests = 16_000;
    const replies = await mapLimit(Array.from({ length: requests }), 160, () => send({ port: sy.port, path: '/x', agent }));
    assert.ok(replies.every((r) => r.status === 200));
    const text = await metricsText(sy.adminPort);
    const opened = value(text, 'switchyard_upstream_connections_opened_total', { upstream: 'app' });
    const reused = value(text, 'switchyard_upstream_connection_reuses_total', { upstream: 'app' });
    assert.ok(opened <= 160, `${opened} upstream connections opened for 160 concurrent clients`);
    assert.ok(reused / requests >= 0.99, `reuse ${reused}/${requests}`);
    assert.equal(value(text, 'switchyard_upstream_connections_closed_total', { upstream: 'app', reason: 'idle-cap' }), 0);
  } finally {
    agent.destroy();
  }
});

test('closes are counted by reason: the upstream asking, and the idle cap when one is set', async () => {
  const before = await metricsText(sy.adminPort);
  for (let i = 0; i < 3; i++) assert.equal((await send({ port: sy.port, path: '/close' })).status, 200);
  for (let i = 0; i < 3; i++) assert.equal((await send({ port: sy.port, path: '/capped' })).status, 200);
  const text = await metricsText(sy.adminPort);
  const delta = (upstream: string, reason: string) =>
    value(text, 'switchyard_upstream_connections_closed_total', { upstream, reason }) -
    value(before, 'switchyard_upstream_connections_closed_total', { upstream, reason });
  assert.equal(delta('app', 'upstream-asked'), 3);
  assert.equal(delta('capped', 'idle-cap'), 3);
});
