// Polling for a condition another process or socket brings about, for the
// tests that cannot await an event for it.
import { setTimeout as sleep } from 'node:timers/promises';

/** Polls `cond` every `intervalMs` until it holds; after `timeoutMs` fails, naming `what`. */
export async function until(what: string, cond: () => boolean, timeoutMs = 5000, intervalMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}
