// What a system under test costs, read from /proc: CPU time and resident memory
// of its whole process tree (the root the bench spawned plus every descendant,
// e.g. nginx workers or node:cluster workers). The load generator and the
// backends are the bench's own children beside that tree, never inside it.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

function sysconf(name: string, fallback: number): number {
  try {
    const v = Number(execFileSync('getconf', [name], { encoding: 'utf8' }).trim());
    return Number.isFinite(v) && v > 0 ? v : fallback;
  } catch {
    return fallback;
  }
}

const CLK_TCK = sysconf('CLK_TCK', 100);
const PAGE_BYTES = sysconf('PAGESIZE', 4096);

export interface ProcStat {
  pid: number;
  ppid: number;
  /** utime + stime + cutime + cstime, in clock ticks. */
  ticks: number;
  /** utime + stime: the process's own CPU, without reaped children. */
  ownTicks: number;
  /** minflt + cminflt: page faults served without I/O (a page mapped again from the page cache, a fresh anonymous page). */
  minorFaults: number;
  rssBytes: number;
  /** Start time in ticks since boot: with the pid, a process's identity. */
  startTime: number;
}

/** Parses /proc/PID/stat; undefined when the process is gone. */
export function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm (field 2) may hold spaces and parentheses: fields resume after the last ')'.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state), so field N is f[N - 3].
  return {
    pid,
    ppid: Number(f[1]),
    ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]),
    ownTicks: Number(f[11]) + Number(f[12]),
    minorFaults: Number(f[7]) + Number(f[8]),
    startTime: Number(f[19]),
    rssBytes: Number(f[21]) * PAGE_BYTES,
  };
}

/** The root and all its live descendants. */
export function processTree(root: number): ProcStat[] {
  const byParent = new Map<number, ProcStat[]>();
  let rootStat: ProcStat | undefined;
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const st = readStat(pid);
    if (!st) continue;
    if (pid === root) rootStat = st;
    const siblings = byParent.get(st.ppid);
    if (siblings) siblings.push(st);
    else byParent.set(st.ppid, [st]);
  }
  if (!rootStat) return [];
  const tree = [rootStat];
  for (let i = 0; i < tree.length; i++) tree.push(...(byParent.get(tree[i]!.pid) ?? []));
  return tree;
}

/** CPU time of the tree in microseconds (children that were reaped included via cutime/cstime). */
export function treeCpuMicros(root: number): number {
  let ticks = 0;
  for (const p of processTree(root)) ticks += p.ticks;
  return (ticks * 1e6) / CLK_TCK;
}

/** Minor faults of the tree (reaped children's included via cminflt). */
export function treeMinorFaults(root: number): number {
  let faults = 0;
  for (const p of processTree(root)) faults += p.minorFaults;
  return faults;
}

/** One process's own CPU time in microseconds; undefined when it is gone. */
export function ownCpuMicros(pid: number): number | undefined {
  const st = readStat(pid);
  return st && (st.ownTicks * 1e6) / CLK_TCK;
}

export interface RssPeak {
  /** Highest sum of RSS over the tree seen at one sample. */
  sumBytes: number;
  /** Highest RSS of any one process of the tree. */
  maxBytes: number;
  /** Highest sum of PSS over the tree (undefined where smaps_rollup is not readable). */
  pssSumBytes?: number;
  samples: number;
}

/**
 * Proportional set size of a process from /proc/PID/smaps_rollup: each
 * resident page divided by the number of processes mapping it. RSS counts a
 * page of the node binary once in every process that maps it; summed over a
 * tree, PSS counts it once (shared with processes outside the tree: a share).
 */
export function pssBytes(pid: number): number | undefined {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Samples the tree's RSS every `intervalMs`, and its PSS every `pssEveryN`
 * samples (reading smaps_rollup walks the page tables: costlier than stat),
 * until the returned stop() is called.
 */
export function sampleRss(root: number, intervalMs = 100, pssEveryN = 5): () => RssPeak {
  const peak: RssPeak = { sumBytes: 0, maxBytes: 0, samples: 0 };
  const sample = (): void => {
    let sum = 0;
    let pss: number | undefined = 0;
    const withPss = peak.samples % pssEveryN === 0;
    for (const p of processTree(root)) {
      sum += p.rssBytes;
      if (p.rssBytes > peak.maxBytes) peak.maxBytes = p.rssBytes;
      if (withPss && pss !== undefined) {
        const one = pssBytes(p.pid);
        pss = one === undefined ? undefined : pss + one;
      }
    }
    if (sum > peak.sumBytes) peak.sumBytes = sum;
    if (withPss && pss !== undefined && pss > (peak.pssSumBytes ?? 0)) peak.pssSumBytes = pss;
    peak.samples++;
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return () => {
    clearInterval(timer);
    sample();
    return peak;
  };
}
