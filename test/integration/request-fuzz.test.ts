// Issue 10: the differential request fuzzer (test/fuzz/) in the regular run:
// a fixed slice of seed 1 through the real proxy to the strict backend. Any
// finding fails with its bytes; `npm run fuzz -- --seed 1 --case N` replays it.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { formatFinding, runCases, startTarget, type Target } from '../fuzz/driver.js';

const SEED = 1;
const CASES = 300;

let target: Target;
before(async () => {
  target = await startTarget();
});
after(async () => {
  await target?.stop();
});

test(`${CASES} fuzz cases of seed ${SEED}: nothing smuggled, crossed, ill-framed, unauthenticated, hung or crashed`, async () => {
  const reports: string[] = [];
  const result = await runCases(target, {
    seed: SEED,
    cases: Array.from({ length: CASES }, (_, i) => i),
    onFinding: (f, fc) => reports.push(formatFinding(f, fc)),
  });
  assert.equal(result.cases, CASES);
  assert.equal(reports.length, 0, `${reports.length} findings; the first ones:\n${reports.slice(0, 5).join('\n')}`);
});
