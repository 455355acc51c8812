// ns per rate-limit take through N-API (native/rate_limit.h): one hot key,
// and 100k distinct keys over a 65,536-slot table (misses and evictions),
// raw (RateTable.take, result read from its Float64Array) and through
// RateLimiter.take (which also builds the decision object). Then P processes
// hammering one key at once (the group lock under contention).
//   node --import tsx bench/rate-limit.ts [iterations] [processes]
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { RateTable } from '../src/native.js';
import { RateLimiter } from '../src/gateway/rate-limit.js';

const iterations = Number(process.argv[2] ?? 2_000_000);
const processes = Number(process.argv[3] ?? 2);
const rounds = 5;
let sink = 0; // keeps results alive so nothing is optimised away

function measure(name: string, fn: (i: number) => number): Record<string, string> {
  for (let i = 0; i < Math.min(iterations, 100_000); i++) sink += fn(i);
  const perRound = Math.max(1, Math.floor(iterations / rounds));
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < perRound; i++) sink += fn(i);
    samples.push(Number(process.hrtime.bigint() - start) / perRound);
  }
  samples.sort((a, b) => a - b);
  return { name, 'ns/take (min)': samples[0]!.toFixed(1), 'ns/take (median)': samples[rounds >> 1]!.toFixed(1) };
}

const keys = Array.from({ length: 100_000 }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
const cfg = { ratePerSecond: 1e6, burst: 1e6, key: 'client-ip' };
const name = `/switchyard-bench-${process.pid}-rl`;
const limiter = RateLimiter.create(65_536, { name });
const table = RateTable.attach(name);
try {
  const rows = [
    measure('raw take, one key', () => (table.take('api', '10.0.0.1', 1e6, 1e6) ? table.out[1]! : 0)),
    measure('raw take, 100k keys', (i) => (table.take('api', keys[i % keys.length]!, 1e6, 1e6) ? table.out[1]! : 0)),
    measure('RateLimiter.take, one key', () => limiter.take('api', '10.0.0.1', cfg).remaining),
    measure('RateLimiter.take, 100k keys', (i) => limiter.take('api', keys[i % keys.length]!, cfg).remaining),
  ];
  console.table(rows);
  console.log(`table: ${limiter.slots} slots, ${(limiter.bytes / 1024).toFixed(0)} KiB; stats`, limiter.stats());

  // Contention: P processes on one key at once, each timing its own takes.
  const n = Math.floor(iterations / 2);
  const child = `
    import { RateTable } from ${JSON.stringify(fileURLToPath(new URL('../src/native.ts', import.meta.url)))};
    const t = RateTable.attach(${JSON.stringify(name)});
    while (Date.now() < START) {}
    const start = process.hrtime.bigint();
    let ok = 0;
    for (let i = 0; i < ${n}; i++) if (t.take('api', 'shared', 1e6, 1e6)) ok++;
    console.log(JSON.stringify({ ns: Number(process.hrtime.bigint() - start) / ${n}, ok }));
    t.close();
  `;
  const startAt = Date.now() + 1500;
  const outs = await Promise.all(
    Array.from({ length: processes }, () =>
      promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', child.replace('START', String(startAt))]),
    ),
  );
  const ns = outs.map((o) => (JSON.parse(o.stdout) as { ns: number }).ns);
  console.log(`${processes} processes on one key: ns/take ${ns.map((v) => v.toFixed(1)).join(', ')}; stats`, limiter.stats());
} finally {
  table.close();
  limiter.close();
  limiter.unlink();
}
if (sink === -1) console.log(sink);
