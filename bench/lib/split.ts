// How a cluster's CPU divides over a measured run: the primary's share of the
// whole (with round-robin scheduling the primary accepts every connection and
// hands it to a worker, so that cost shows here) and each worker's share of
// the workers' CPU (how evenly the scheduling policy spread the load).
import { ownCpuMicros } from './proc.js';

export interface CpuSplit {
  /** Primary's own CPU / (primary + workers), in percent. */
  primaryCpuPct: number;
  /** Each worker's own CPU / all workers' CPU, in percent, busiest first. */
  workerCpuPct: number[];
}

/**
 * Snapshots the processes' own CPU now; the returned function takes the
 * delta. Undefined from it when a process vanished or nothing was spent.
 */
export function startCpuSplit(primary: number, workers: number[]): () => CpuSplit | undefined {
  const pids = [primary, ...workers];
  const before = pids.map(ownCpuMicros);
  return () => {
    const spent = pids.map((pid, i) => {
      const now = ownCpuMicros(pid);
      const was = before[i];
      return now === undefined || was === undefined ? undefined : now - was;
    });
    if (spent.some((d) => d === undefined)) return undefined;
    const [own, ...perWorker] = spent as number[];
    const workersTotal = perWorker.reduce((a, b) => a + b, 0);
    if (workersTotal <= 0) return undefined;
    return {
      primaryCpuPct: (own! / (own! + workersTotal)) * 100,
      workerCpuPct: perWorker.map((d) => (d / workersTotal) * 100).sort((a, b) => b - a),
    };
  };
}
