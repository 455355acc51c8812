// A canary reload's observation: one worker runs the new config, the others
// the old; over the window their own metrics (5xx rate, p99 latency) are
// compared and the verdict decides between rolling out and rolling back.
// The primary does the forking and replacing; this module watches and judges,
// and keeps what /status shows about the current or last canary.
import type { Worker } from 'node:cluster';
import { setTimeout as sleep } from 'node:timers/promises';
import { collectFromWorkers } from '../metrics/cluster-metrics.js';
import { addSnapshot, emptyCounts, judge, windowFigures, type WindowFigures } from '../metrics/canary-figures.js';
import type { MetricJson } from '../metrics/worker-metrics.js';
import type { CanaryReport } from '../admin/types.js';

const SNAPSHOT_TIMEOUT_MS = 2_000;

/**
 * The window's figures of `workers`, from two readings; a worker missing
 * from either (exited, or too slow to answer) is left out of both, so a
 * respawn cannot make counts look negative.
 */
function figures(first: readonly (MetricJson[] | undefined)[], second: readonly (MetricJson[] | undefined)[]): { figures: WindowFigures; missing: number } {
  const a = emptyCounts();
  const b = emptyCounts();
  let missing = 0;
  first.forEach((x, i) => {
    const y = second[i];
    if (x === undefined || y === undefined) missing++;
    else {
      addSnapshot(a, x);
      addSnapshot(b, y);
    }
  });
  return { figures: windowFigures(a, b), missing };
}

/**
 * Watches the window and returns the decided report. `canaryExit` settles if
 * the canary worker dies: that is a rollback at once.
 */
export async function observeCanary(report: CanaryReport, canary: Worker, baseline: readonly Worker[], canaryExit: Promise<void>): Promise<CanaryReport> {
  const workers = [canary, ...baseline];
  const first = await collectFromWorkers(workers, SNAPSHOT_TIMEOUT_MS);
  const died = await Promise.race([sleep(report.windowMs).then(() => false), canaryExit.then(() => true)]);
  if (died) return { ...report, state: 'rolled-back', reason: 'the canary worker died during the window' };
  const second = await collectFromWorkers(workers, SNAPSHOT_TIMEOUT_MS);
  const c = figures(first.slice(0, 1), second.slice(0, 1));
  if (c.missing > 0) return { ...report, state: 'rolled-back', reason: 'the canary worker did not report its metrics' };
  const others = figures(first.slice(1), second.slice(1)).figures;
  const verdict = judge(c.figures, others, report.minRequests);
  return { ...report, state: verdict.rollOut ? 'rolled-out' : 'rolled-back', reason: verdict.reason, canary: c.figures, others };
}
