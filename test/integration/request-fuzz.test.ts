// Issue 10: the differential request fuzzer (test/fuzz/) in the regular run:
// a fixed slice of seed 1 through the real proxy to the strict backend. Any
// finding fails with its bytes; `npm run fuzz -- --seed 1 --case N` replays it.
// Keyless requests that reach /admin through another spelling of the path
// (defect 5) are reported by their own test.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { formatFinding, runCases, startTarget, type Target } from '../fuzz/driver.js';
import type { Finding } from '../fuzz/oracle.js';
import type { FuzzCase } from '../fuzz/generate.js';

const SEED = 1;
const CASES = 500;

let target: Target;
const framing: string[] = [];
const spelling: string[] = [];
let run = 0;

/** Whether a finding is a keyless request that got in through a respelled /admin path. */
const bySpelling = (f: Finding, fc: FuzzCase): boolean =>
  f.kind === 'auth-bypass' && fc.conns.some((c) => c.messages.some((m) => f.detail.startsWith(`${m.marker} `) && m.what.some((w) => w.startsWith('path '))));

before(async () => {
  target = await startTarget();
  const result = await runCases(target, {
    seed: SEED,
    cases: Array.from({ length: CASES }, (_, i) => i),
    onFinding: (f, fc) => (bySpelling(f, fc) ? spelling : framing).push(formatFinding(f, fc)),
  });
  run = result.cases;
});
after(async () => {
  await target?.stop();
});

test(`${CASES} fuzz cases of seed ${SEED}: nothing smuggled, crossed, ill-framed, unauthenticated, hung or crashed`, () => {
  assert.equal(run, CASES);
  assert.equal(framing.length, 0, `${framing.length} findings; the first ones:\n${framing.slice(0, 5).join('\n')}`);
});

test('no respelled /admin path reaches the backend without the key', () => {
  assert.equal(spelling.length, 0, `${spelling.length} findings; the first ones:\n${spelling.slice(0, 5).join('\n')}`);
});
