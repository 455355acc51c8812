// `npm run fuzz -- --cases 20000 --seed N [--from K] [--case K] [--lanes L] [--workers W]`:
// runs cases [from, from + cases) of seed N (or the single case K) against a
// fresh proxy, prints each finding with its exact bytes as it is judged, then
// one summary line; exits 1 when there are findings.

import { parseArgs } from 'node:util';
import { formatFinding, runCases, startTarget, type RunResult } from './driver.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: '1' },
    cases: { type: 'string', default: '1000' },
    from: { type: 'string', default: '0' },
    case: { type: 'string' },
    lanes: { type: 'string', default: '4' },
    workers: { type: 'string', default: '2' },
  },
});
const seed = Number(values.seed);
const from = values.case !== undefined ? Number(values.case) : Number(values.from);
const count = values.case !== undefined ? 1 : Number(values.cases);
if (![seed, from, count, Number(values.lanes), Number(values.workers)].every(Number.isInteger)) throw new Error('--seed, --cases, --from, --case, --lanes and --workers take integers');

const target = await startTarget(Number(values.workers));
const started = Date.now();
const kinds = new Map<string, number>();
let result: RunResult;
try {
  result = await runCases(target, {
    seed,
    cases: Array.from({ length: count }, (_, i) => from + i),
    lanes: Number(values.lanes),
    onFinding: (f, fc) => {
      kinds.set(f.kind, (kinds.get(f.kind) ?? 0) + 1);
      console.log(formatFinding(f, fc));
    },
    onProgress: (n) => {
      if (n % 1000 === 0) console.error(`... ${n} cases`);
    },
  });
} finally {
  await target.stop();
}
const statuses = [...result.statuses].sort().map(([k, n]) => `${k}:${n}`).join(' ');
console.log(`fuzz: ${result.forwarded} requests forwarded; client saw ${statuses}`);
const byKind = [...kinds].map(([k, n]) => `${k}=${n}`).join(' ');
console.log(`fuzz: seed ${seed}, cases ${from}..${from + result.cases - 1}: ${result.cases} run, ${result.findings.length} findings${byKind ? ` (${byKind})` : ''}, ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exitCode = result.findings.length > 0 ? 1 : 0;
