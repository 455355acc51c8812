// What recording one finished request costs a worker: WorkerMetrics.requestDone
// (status class, the upstream histogram and the per-server histogram behind
// the dashboard's p50/p99, two increments of the same array), called the way
// the data path calls it, over a spread of durations so every bucket is hit.
// Prints ns per call, the median of rounds; a proxied request costs a worker
// ~30 µs of CPU (bench/README.md), so this is its share of that.
//
//   node --import tsx bench/metrics-cost.ts [--rounds 5] [--calls 5000000]
import { parseArgs } from 'node:util';
import { WorkerMetrics } from '../src/metrics/worker-metrics.js';
import type { Config } from '../src/config/types.js';
import { median } from './lib/report.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' }, calls: { type: 'string', default: '5000000' } } });
const rounds = Number(values.rounds);
const calls = Number(values.calls);

const servers = ['127.0.0.1:8001', '127.0.0.1:8002'];
const config = {
  routes: [{ name: 'app', upstream: 'app' }],
  upstreams: { app: { balance: 'round-robin', hash: {}, servers: servers.map((address) => ({ address })) } },
} as unknown as Config;
const metrics = new WorkerMetrics(config, { answerPrimary: false });
// Durations from 0.2 ms to ~60 s, as a loaded proxy sees them.
const durations = Float64Array.from({ length: 1024 }, (_, i) => 0.0002 * Math.pow(1.012, i));

const ns: number[] = [];
for (let r = 0; r < rounds + 1; r++) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) metrics.requestDone('app', 'app', servers[i & 1], i % 97 === 0 ? 502 : 200, durations[i & 1023]!);
  const per = Number(process.hrtime.bigint() - t0) / calls;
  if (r > 0) ns.push(per); // round 0 warms the JIT
}
console.log(`WorkerMetrics.requestDone: ${median(ns)!.toFixed(1)} ns per call (median of ${rounds} rounds of ${calls}; rounds: ${ns.map((n) => n.toFixed(1)).join(', ')})`);
