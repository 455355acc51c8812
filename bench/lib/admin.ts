// Switchyard's admin API as the bench needs it: the scheduling policy the
// primary really runs and the pids of its serving workers (GET /status).
import { setTimeout as sleep } from 'node:timers/promises';

export interface SwitchyardStatus {
  scheduling: string;
  workers: { pid: number | null; state: string }[];
  /** Requests answered, summed over the workers now alive. */
  requests: number;
}

export async function switchyardStatus(port: number, token: string): Promise<SwitchyardStatus> {
  const res = await fetch(`http://127.0.0.1:${port}/status`, {
    headers: { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(3000),
  });
  if (res.status !== 200) throw new Error(`admin GET /status: status ${res.status}`);
  return (await res.json()) as SwitchyardStatus;
}

/** Pids of the workers in state "ready", in slot order. */
export const readyWorkerPids = (status: SwitchyardStatus): number[] =>
  status.workers.flatMap((w) => (w.state === 'ready' && w.pid !== null ? [w.pid] : []));

/**
 * /status once the admin listener is up: the primary opens it only after
 * every worker is ready, so the proxy port can answer a moment earlier.
 */
export async function awaitSwitchyardStatus(port: number, token: string, timeoutMs = 5000): Promise<SwitchyardStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await switchyardStatus(port, token);
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`admin API on port ${port}: ${(err as Error).message}`);
      await sleep(100);
    }
  }
}
