// Passive health, slow start and the retry budget, as one worker's upstream
// runtime sees them over a real shared-memory region (what other workers
// write is simulated by writing their slots directly).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { Counter, SharedRegion } from '../../src/native.ts';
import { eligible } from '../helpers/native-probes.ts';
import { UpstreamRuntime } from '../../src/proxy/upstream-runtime.ts';
import { WorkerMetrics } from '../../src/metrics/worker-metrics.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { regionLayout } from '../../src/balancer/layout.ts';
import { createBalancer } from '../../src/balancer/create.ts';

const yaml = (servers: number, extra = '') => `
admin: { token: t }
upstreams:
  app:
    servers: [${Array.from({ length: servers }, (_, i) => `{ address: "127.0.0.1:${9100 + i}" }`).join(', ')}]
${extra}
routes: [{ match: { path: / }, upstream: app }]
`;

const regions: SharedRegion[] = [];
const runtimes: UpstreamRuntime[] = [];
after(() => {
  for (const r of runtimes) r.close();
  for (const r of regions) {
    r.close();
    r.unlink();
  }
});

function runtime(servers: number, extra = '') {
  const { config } = parseConfigText(yaml(servers, extra), 'x.yaml', { workers: 1 });
  const region = SharedRegion.create(regionLayout(config).identities, { name: `/switchyard-test-passive-${process.pid}-${regions.length}`, slots: 4 });
  regions.push(region);
  const rt = new UpstreamRuntime(config.upstreams.app!, { region, base: 0, slot: 0, workerIndex: 0, log: pino({ level: 'silent' }), metrics: new WorkerMetrics(config, { answerPrimary: false }) }, 16384);
  runtimes.push(rt);
  return { rt, region, config };
}

describe('outlier ejection', () => {
  it('ejects a server after consecutive failures from any worker; a success resets the streak', () => {
    const { rt, region } = runtime(4, '    outlier: { consecutive_failures: 3, base_ejection: 10s }');
    const s = rt.servers[1]!;
    rt.recordOutcome(s, false);
    rt.recordOutcome(s, false);
    rt.recordOutcome(s, true); // streak broken
    rt.recordOutcome(s, false);
    rt.recordOutcome(s, false);
    assert.equal(eligible(region, 1), true);
    region.recordFailure(1); // a third failure seen by another worker...
    rt.recordOutcome(s, false); // ...makes this one the 4th in a row
    assert.equal(eligible(region, 1), false);
    const until = region.ejectedUntil(1) - Date.now();
    assert.ok(until > 9000 && until <= 10_000, `ejected for ${until} ms`);
    assert.equal(region.ejections(1), 1);
  });

  it('ejection time doubles with each repeat, up to max_ejection', () => {
    const { rt, region } = runtime(4, '    outlier: { consecutive_failures: 1, base_ejection: 1s, max_ejection: 3s }');
    const s = rt.servers[0]!;
    const durations: number[] = [];
    for (let i = 0; i < 3; i++) {
      region.setEjectedUntil(0, 0);
      rt.recordOutcome(s, false);
      durations.push(Math.round((region.ejectedUntil(0) - Date.now()) / 1000));
    }
    assert.deepEqual(durations, [1, 2, 3]);
  });

  it('never ejects more than max_ejection_percent of the upstream', () => {
    const { rt, region } = runtime(4, '    outlier: { consecutive_failures: 1, max_ejection_percent: 50 }');
    for (const s of rt.servers) rt.recordOutcome(s, false);
    const ejected = rt.servers.filter((s) => !eligible(region, s.index)).length;
    assert.equal(ejected, 2);
  });

  it('a single-server upstream is never ejected (it would leave nothing to serve)', () => {
    const { rt, region } = runtime(1, '    outlier: { consecutive_failures: 1 }');
    for (let i = 0; i < 5; i++) rt.recordOutcome(rt.servers[0]!, false);
    assert.equal(eligible(region, 0), true);
  });
});

describe('retry budget', () => {
  it('allows min_per_second retries when idle, then a share of the cluster-wide requests', () => {
    const { rt, region } = runtime(2, '    retry_budget: { percent: 20, min_per_second: 3 }');
    let allowed = 0;
    for (let i = 0; i < 10; i++) {
      if (!rt.retryAllowed()) break;
      rt.onRetry(rt.servers[0]!);
      allowed++;
    }
    assert.equal(allowed, 3);
    // 100 requests from another worker's slot: 20% of them may be retried.
    region.add(Counter.RequestsTotal, 1, 2, 100);
    allowed = 0;
    for (let i = 0; i < 50; i++) {
      if (!rt.retryAllowed()) break;
      rt.onRetry(rt.servers[1]!);
      allowed++;
    }
    assert.equal(allowed, 20 - 3);
  });
});

describe('slow start', () => {
  it('a ramping server takes its factor of its weight in round-robin', () => {
    const { rt, region, config } = runtime(3);
    region.setWeightFactor(2, 0.1);
    const rr = createBalancer(config.upstreams.app!, rt.servers, { region, base: 0, workerIndex: 0 });
    const counts = [0, 0, 0];
    for (let i = 0; i < 2100; i++) counts[rr.pick({ clientIp: '1.2.3.4' })!.index]!++;
    assert.deepEqual(counts, [1000, 1000, 100]);
    region.setWeightFactor(2, 1);
    const after = [0, 0, 0];
    for (let i = 0; i < 300; i++) after[rr.pick({ clientIp: '1.2.3.4' })!.index]!++;
    assert.deepEqual(after, [100, 100, 100]);
  });
});
