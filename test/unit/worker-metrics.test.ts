// Worker metrics: label sets pre-created from the config, counts per status
// class, histogram buckets, and the Prometheus text after summing several
// workers' snapshots together with the primary's registry.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AggregatorRegistry } from 'prom-client';
import { parseConfigText } from '../../src/config/load.js';
import { clusterMetricsText, createPrimaryRegistry } from '../../src/metrics/cluster-metrics.js';
import { WorkerMetrics } from '../../src/metrics/worker-metrics.js';

const config = parseConfigText(
  `admin: { token: t }
upstreams:
  app:
    servers: [{ address: "127.0.0.1:9001" }, { address: "127.0.0.1:9002" }]
  api:
    servers: [{ address: "127.0.0.1:9101" }]
routes:
  - { match: { path: / }, upstream: app }
  - { name: api, match: { path: /api/ }, upstream: api }
`,
  'test.yaml',
).config;

type Sample = { name: string; labels: Record<string, string>; value: number };

/** The samples of a Prometheus text exposition (comments skipped). */
function parse(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `malformed line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = v!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

const render = async (...workers: WorkerMetrics[]) => parse(await AggregatorRegistry.aggregate(workers.map((w) => w.snapshot())).metrics());
const pick = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
const total = (samples: Sample[]) => samples.reduce((n, s) => n + s.value, 0);

describe('worker metrics', () => {
  it('exports every configured label set at 0 before any request', async () => {
    const samples = await render(new WorkerMetrics(config, { answerPrimary: false }));
    const requests = pick(samples, 'switchyard_requests_total');
    // (route "/" x {"", 9001, 9002}) + (route api x {"", 9101}) + ("", "", "") = 6 series x 5 classes.
    assert.equal(requests.length, 6 * 5);
    assert.equal(total(requests), 0);
    assert.deepEqual(
      pick(requests, 'switchyard_requests_total', { status_class: '2xx' }).map((s) => `${s.labels.route}|${s.labels.upstream}|${s.labels.server}`).sort(),
      ['*/|app|', '*/|app|127.0.0.1:9001', '*/|app|127.0.0.1:9002', 'api|api|', 'api|api|127.0.0.1:9101', '||'],
    );
    assert.deepEqual(pick(samples, 'switchyard_upstream_retries_total').map((s) => [s.labels.upstream, s.value]), [
      ['app', 0],
      ['api', 0],
    ]);
    assert.equal(pick(samples, 'switchyard_upstream_ejections_total').length, 3);
    assert.deepEqual(pick(samples, 'switchyard_active_connections').map((s) => s.value), [0]);
  });

  it('counts requests by route, upstream, server and status class', async () => {
    const m = new WorkerMetrics(config, { answerPrimary: false });
    m.requestDone('*/', 'app', '127.0.0.1:9001', 200, 0.002);
    m.requestDone('*/', 'app', '127.0.0.1:9001', 204, 0.002);
    m.requestDone('*/', 'app', '127.0.0.1:9002', 502, 0.02);
    m.requestDone('*/', 'app', undefined, 503, 0.0001);
    m.requestDone(undefined, undefined, undefined, 404, 0.0001);
    m.requestDone('api', 'api', '127.0.0.1:9101', 101, 3);
    m.requestDone('api', 'api', '127.0.0.1:9101', 0, 0.5); // client left before any answer
    m.requestDone('unknown', 'elsewhere', '10.0.0.1:1', 302, 0.001); // not in the config: created on first use
    const samples = await render(m);
    const req = (labels: Record<string, string>) => total(pick(samples, 'switchyard_requests_total', labels));
    assert.equal(req({}), 8);
    assert.equal(req({ route: '*/', server: '127.0.0.1:9001', status_class: '2xx' }), 2);
    assert.equal(req({ route: '*/', server: '127.0.0.1:9002', status_class: '5xx' }), 1);
    assert.equal(req({ route: '*/', upstream: 'app', server: '', status_class: '5xx' }), 1);
    assert.equal(req({ route: '', upstream: '', server: '', status_class: '4xx' }), 1);
    assert.equal(req({ route: 'api', status_class: '1xx' }), 1);
    assert.equal(req({ route: 'api', status_class: 'other' }), 1);
    assert.equal(req({ route: 'unknown', upstream: 'elsewhere', server: '10.0.0.1:1', status_class: '3xx' }), 1);

    const bucket = (route: string, le: string) =>
      pick(samples, 'switchyard_request_duration_seconds_bucket', { route, le }).map((s) => s.value)[0];
    assert.equal(bucket('*/', '0.001'), 1, '0.0001 s');
    assert.equal(bucket('*/', '0.0025'), 3, 'cumulative: plus the two 0.002 s');
    assert.equal(bucket('*/', '0.025'), 4);
    assert.equal(bucket('*/', '+Inf'), 4);
    assert.equal(bucket('api', '2.5'), 1, 'only the 0.5 s one');
    assert.equal(bucket('api', '5'), 2);
    const count = pick(samples, 'switchyard_request_duration_seconds_count', { route: 'api' })[0]!.value;
    const sum = pick(samples, 'switchyard_request_duration_seconds_sum', { route: 'api' })[0]!.value;
    assert.equal(count, 2);
    assert.equal(sum, 3.5);
  });

  it('counts retries, ejections and the active connections gauge', async () => {
    const m = new WorkerMetrics(config, { answerPrimary: false });
    m.retry('app');
    m.retry('app');
    m.ejection('app', '127.0.0.1:9002');
    m.setActiveConnections(7);
    const samples = await render(m);
    assert.equal(total(pick(samples, 'switchyard_upstream_retries_total', { upstream: 'app' })), 2);
    assert.equal(total(pick(samples, 'switchyard_upstream_ejections_total', { server: '127.0.0.1:9002' })), 1);
    assert.equal(total(pick(samples, 'switchyard_upstream_ejections_total', { server: '127.0.0.1:9001' })), 0);
    assert.equal(total(pick(samples, 'switchyard_active_connections')), 7);
  });

  it('sums workers series by series, histograms included', async () => {
    const a = new WorkerMetrics(config, { answerPrimary: false });
    const b = new WorkerMetrics(config, { answerPrimary: false });
    for (let i = 0; i < 3; i++) a.requestDone('*/', 'app', '127.0.0.1:9001', 200, 0.004);
    for (let i = 0; i < 4; i++) b.requestDone('*/', 'app', '127.0.0.1:9001', 200, 0.2);
    a.setActiveConnections(2);
    b.setActiveConnections(3);
    const samples = await render(a, b);
    assert.equal(total(pick(samples, 'switchyard_requests_total', { server: '127.0.0.1:9001', status_class: '2xx' })), 7);
    assert.equal(pick(samples, 'switchyard_request_duration_seconds_bucket', { route: '*/', le: '0.005' })[0]!.value, 3);
    assert.equal(pick(samples, 'switchyard_request_duration_seconds_bucket', { route: '*/', le: '0.25' })[0]!.value, 7);
    assert.equal(total(pick(samples, 'switchyard_active_connections')), 5);
  });
});

describe('cluster metrics (primary registry)', () => {
  it('renders health, worker count and restarts, and says no worker was missing', async () => {
    let healthy = true;
    const registry = createPrimaryRegistry({
      health: () => [
        { upstream: 'app', index: 0, address: '127.0.0.1:9001', healthy },
        { upstream: 'app', index: 1, address: '127.0.0.1:9002', healthy: true },
      ],
      workers: () => 2,
      restarts: () => 3,
      acme: () => [],
    });
    let samples = parse(await clusterMetricsText(registry, []));
    assert.deepEqual(pick(samples, 'switchyard_upstream_server_healthy').map((s) => [s.labels.server, s.value]), [
      ['127.0.0.1:9001', 1],
      ['127.0.0.1:9002', 1],
    ]);
    assert.equal(total(pick(samples, 'switchyard_workers')), 2);
    assert.equal(total(pick(samples, 'switchyard_worker_restarts_total')), 3);
    assert.equal(total(pick(samples, 'switchyard_metrics_workers_missing')), 0);

    healthy = false;
    samples = parse(await clusterMetricsText(registry, []));
    assert.equal(pick(samples, 'switchyard_upstream_server_healthy', { server: '127.0.0.1:9001' })[0]!.value, 0);
  });
});
