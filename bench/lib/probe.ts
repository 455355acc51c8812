// The soak's fallback when Switchyard exports no event-loop delay metric: one
// GET every `intervalMs` on a connection of its own, beside the load. Its
// latency is end-to-end (queueing in the worker behind the load included),
// an upper bound on the loop delay, not the delay itself; and it is only
// honest when the load generator is not in this process (wrk, not autocannon).
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ProbeSample {
  /** When the request was sent, ms since the probe started. */
  atMs: number;
  /** Latency in ms; undefined when it failed (error, timeout or non-200). */
  ms?: number;
}

export interface Probe {
  readonly samples: ProbeSample[];
  stop(): Promise<void>;
}

function once(url: string, agent: http.Agent): Promise<number | undefined> {
  const start = process.hrtime.bigint();
  return new Promise((resolve) => {
    const req = http.get(url, { agent, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200 ? Number(process.hrtime.bigint() - start) / 1e6 : undefined));
      res.on('error', () => resolve(undefined));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}

/** Sequential: a slow answer delays the next request instead of piling them up. */
export function startProbe(url: string, intervalMs = 100): Probe {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const samples: ProbeSample[] = [];
  const t0 = performance.now();
  let running = true;
  const loop = (async () => {
    for (let next = t0; running; ) {
      const atMs = performance.now() - t0;
      samples.push({ atMs, ms: await once(url, agent) });
      next += intervalMs;
      const wait = next - performance.now();
      if (wait > 0) await sleep(wait);
      else next = performance.now();
    }
  })();
  return {
    samples,
    stop: async () => {
      running = false;
      await loop;
      agent.destroy();
    },
  };
}
