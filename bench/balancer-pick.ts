// ns per pick of every balancer (createBalancer over a real shared region),
// for 3 and 10 servers, against the naive way of reading shared memory: one
// N-API call per server (region.eligible / region.activeRequests) instead of
// one ServerView call per pick.
//   node --import tsx bench/balancer-pick.ts [picks] [workers]
// `workers`: worker slots holding counts (default 8), out of a region of 64.
import { createBalancer } from '../src/balancer/create.js';
import type { Balancer, PickContext, ServerSlot } from '../src/balancer/types.js';
import { Counter, SharedRegion } from '../src/native.js';
import { eligible } from '../test/helpers/native-probes.ts';
import { upstreamConfig } from '../test/helpers/upstream-config.ts';

const iterations = Number(process.argv[2] ?? 1_000_000);
const workers = Number(process.argv[3] ?? 8);
const SIZES = [3, 10];

// 1024 client addresses, cycled.
const ctxs: PickContext[] = Array.from({ length: 1024 }, (_, i) => {
  const a = (Math.imul(i + 1, 2654435761) | 0x01000000) >>> 0;
  return { clientIp: `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}` };
});

function slots(n: number): ServerSlot[] {
  return Array.from({ length: n }, (_, index) => ({
    address: `127.0.0.1:${9001 + index}`,
    host: '127.0.0.1',
    port: 9001 + index,
    weight: 1 + (index % 3),
    index,
    upstream: 'app',
  }));
}

/** Least-conn the naive way: per server, one N-API call for health and one for the sum. */
function naiveLeastConn(region: SharedRegion, base: number, servers: ServerSlot[]): Balancer {
  let start = 0;
  return {
    pick() {
      let best = -1;
      let bestLoad = 0;
      start = (start + 1) % servers.length;
      for (let k = 0; k < servers.length; k++) {
        const i = (start + k) % servers.length;
        if (!eligible(region, base + i)) continue;
        const load = region.sum(Counter.ActiveRequests, base + i);
        if (best < 0 || load * servers[best]!.weight < bestLoad * servers[i]!.weight) {
          best = i;
          bestLoad = load;
        }
      }
      return best < 0 ? undefined : servers[best];
    },
  };
}

let sink = 0;
const rounds = 5;
function measure(b: Balancer, n: number): { min: number; median: number } {
  for (let i = 0; i < Math.min(n, 100_000); i++) sink += b.pick(ctxs[i & 1023]!)?.index ?? 0;
  const per = Math.max(1, Math.floor(n / rounds));
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < per; i++) sink += b.pick(ctxs[i & 1023]!)?.index ?? 0;
    samples.push(Number(process.hrtime.bigint() - t0) / per);
  }
  samples.sort((a, b) => a - b);
  return { min: samples[0]!, median: samples[rounds >> 1]! };
}

const total = SIZES.reduce((a, b) => a + b, 0);
const ids = Array.from({ length: total }, (_, i) => `s${i}`);
const region = SharedRegion.create(ids, { name: `/switchyard-bench-pick-${process.pid}`, slots: 64 });
try {
  // Some load in every worker's slot, so sums have something to add.
  for (let s = 0; s < total; s++) for (let w = 0; w < workers; w++) region.add(Counter.ActiveRequests, s, w, (s * 7 + w) % 5);
  const rows: Record<string, string>[] = [];
  let base = 0;
  for (const n of SIZES) {
    const servers = slots(n);
    const ctx = { region, base, workerIndex: 0, seed: 1 };
    const cases: [string, Balancer][] = [
      ['round-robin', createBalancer(upstreamConfig('round-robin', servers), servers, ctx)],
      ['least-conn', createBalancer(upstreamConfig('least-conn', servers), servers, ctx)],
      ['least-conn, naive (2 N-API calls per server)', naiveLeastConn(region, base, servers)],
      ['source (IPv4 string)', createBalancer(upstreamConfig('source', servers), servers, ctx)],
      ['source, bounded loads 1.25', createBalancer(upstreamConfig('source', servers, 1.25), servers, ctx)],
      ['random', createBalancer(upstreamConfig('random', servers), servers, ctx)],
    ];
    for (const [name, b] of cases) {
      const { min, median } = measure(b, iterations);
      rows.push({ servers: String(n), balancer: name, 'ns/pick (min)': min.toFixed(1), 'ns/pick (median)': median.toFixed(1) });
    }
    base += n;
  }
  console.log(`node ${process.version}, ${iterations} picks in ${rounds} rounds, counts in ${workers} of 64 worker slots`);
  console.table(rows);
  if (sink === Number.MIN_SAFE_INTEGER) console.log(sink);
} finally {
  region.close();
  region.unlink();
}
