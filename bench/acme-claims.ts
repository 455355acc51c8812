// ns per "is this request an ACME HTTP-01 challenge?" check, which every
// request on a worker with ACME configured pays before routing, for typical
// request targets (static files, API paths with queries): the regular
// expression the check used to start with (pathKind) against
// AcmeChallenges.claims, side by side in one run.
//   node --import tsx bench/acme-claims.ts [iterations]
import { AcmeChallenges } from '../src/proxy/acme-challenge.js';
import { pathKind, SLOW } from '../src/proxy/request-target.js';

const iterations = Number(process.argv[2] ?? 2_000_000);
const targets = Array.from({ length: 1024 }, (_, k) =>
  k % 4 === 0 ? `/static/js/app.${k}.js` : k % 4 === 1 ? `/api/v1/users/${k}/orders?page=${k % 9}&sort=desc` : k % 4 === 2 ? `/favicon.ico` : `/products/item-${k}/reviews`,
);
const acme = new AcmeChallenges('decode');
let sink = 0;

/** ns per call of the check `which` over one round (a loop per check, so each call site stays monomorphic). */
function round(which: 'before' | 'now'): number {
  const start = process.hrtime.bigint();
  if (which === 'before') for (let k = 0; k < iterations; k++) sink += pathKind(targets[k & 1023]!) === SLOW ? 1 : 0;
  else for (let k = 0; k < iterations; k++) sink += acme.claims(targets[k & 1023]!) ? 1 : 0;
  return Number(process.hrtime.bigint() - start) / iterations;
}

// Warm-up, then 7 rounds of each, interleaved; medians.
round('before');
round('now');
const times = { before: [] as number[], now: [] as number[] };
for (let r = 0; r < 7; r++) for (const which of ['before', 'now'] as const) times[which].push(round(which));
const median = (xs: number[]): number => xs.sort((a, b) => a - b)[3]!;
const before = median(times.before);
const after = median(times.now);
console.table([{ 'regex first (before) ns': before.toFixed(1), 'claims (now) ns': after.toFixed(1), ratio: `${(before / after).toFixed(1)}x` }]);
if (sink === -1) console.log(sink);
