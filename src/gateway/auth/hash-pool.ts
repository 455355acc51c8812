// Slow password hashes (bcrypt, scrypt) run on a small pool of worker
// threads, never on the event loop: a bcrypt of cost 10 is ~90 ms of CPU,
// and a worker that computed one per wrong password would stall every
// request it serves. A dedicated pool rather than libuv's threadpool (where
// a native bcrypt or crypto.scrypt would run) keeps password checks from
// queueing ahead of file and DNS work, and bounds them by itself: `threads`
// hashes at once per process, at most `maxQueued` waiting; a check beyond
// that is refused at once ("busy") instead of growing a backlog. The threads
// run at the lowest CPU priority (nice 19): off the event loop is not enough
// when CPUs are few, as hashing threads would still take CPU time from the
// event loops. They start on the first check and are unref'd, so an idle
// pool costs nothing and never keeps a process alive.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

export type HashJob =
  | { kind: 'bcrypt'; password: string; hash: string }
  | { kind: 'scrypt'; password: string; N: number; r: number; p: number; maxmem: number; salt: Uint8Array; expected: Uint8Array };

/** A verification's outcome: "busy" when the queue was full and nothing was computed. */
export type HashOutcome = boolean | 'busy';

interface Pending {
  job: HashJob;
  resolve: (ok: boolean) => void;
}

// The thread's code, as a CommonJS script rather than a module file: a thread
// does not inherit the loader that runs this project from source (tsx), so a
// .ts worker file would load only from dist. bcryptjs is resolved here, by
// path, so the thread finds it wherever the process was started.
const WORKER_SOURCE = `
const { scryptSync, timingSafeEqual } = require('node:crypto');
const { parentPort, workerData } = require('node:worker_threads');
const bcrypt = require(workerData.bcryptjs);
// Nice 19 for this thread only (Linux: a thread id names one thread): when
// CPUs are short, request handling runs and password checks wait.
try {
  require('node:os').setPriority(Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop()), 19);
} catch {
  // Elsewhere the thread keeps the process's priority.
}
parentPort.on('message', (job) => {
  let ok = false;
  try {
    if (job.kind === 'bcrypt') {
      ok = bcrypt.compareSync(job.password, job.hash);
    } else {
      const expected = Buffer.from(job.expected);
      const derived = scryptSync(job.password, Buffer.from(job.salt), expected.length, { N: job.N, r: job.r, p: job.p, maxmem: job.maxmem });
      ok = timingSafeEqual(derived, expected);
    }
  } catch {
    ok = false; // a hash that cannot be computed matches nothing
  }
  parentPort.postMessage({ ok });
});
`;
const BCRYPTJS = createRequire(import.meta.url).resolve('bcryptjs');

export class HashPool {
  readonly #idle: Worker[] = [];
  readonly #busy = new Map<Worker, Pending>();
  readonly #queue: Pending[] = [];
  #started = 0;

  constructor(
    readonly threads = 1,
    readonly maxQueued = 64,
  ) {}

  verify(job: HashJob): Promise<HashOutcome> {
    if (this.#queue.length >= this.maxQueued) return Promise.resolve('busy');
    return new Promise((resolve) => {
      this.#queue.push({ job, resolve });
      this.#pump();
    });
  }

  /** Checks waiting for a thread (for tests and metrics). */
  get queued(): number {
    return this.#queue.length;
  }

  #pump(): void {
    while (this.#queue.length > 0) {
      const worker = this.#idle.pop() ?? (this.#started < this.threads ? this.#spawn() : undefined);
      if (worker === undefined) return;
      const next = this.#queue.shift()!;
      this.#busy.set(worker, next);
      worker.ref(); // a check in flight keeps the process up until it answers
      worker.postMessage(next.job);
    }
  }

  #spawn(): Worker {
    this.#started++;
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { bcryptjs: BCRYPTJS } });
    worker.unref();
    worker.on('message', (msg: { ok: boolean }) => {
      const done = this.#busy.get(worker);
      this.#busy.delete(worker);
      worker.unref();
      this.#idle.push(worker);
      done?.resolve(msg.ok);
      this.#pump();
    });
    // A thread that dies fails its check (matches nothing) and is replaced on demand.
    let gone = false;
    const lost = (): void => {
      if (gone) return; // 'error' is followed by 'exit'
      gone = true;
      const done = this.#busy.get(worker);
      this.#busy.delete(worker);
      const i = this.#idle.indexOf(worker);
      if (i >= 0) this.#idle.splice(i, 1);
      this.#started--;
      done?.resolve(false);
      this.#pump();
    };
    worker.on('error', lost);
    worker.on('exit', lost);
    return worker;
  }
}

/** One pool per process, shared by every route's Basic users. */
export const hashPool = new HashPool();
