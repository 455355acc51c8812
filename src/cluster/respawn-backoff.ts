// The respawn policy shared by the primary's worker slots and the DSR
// forwarder's supervisor: the first respawn after 100 ms, doubling to 5 s
// while the process keeps dying young; one that lived 10 s starts over.
const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5_000;
/** A process that lived this long resets the backoff. */
const STABLE_MS = 10_000;

export class RespawnBackoff {
  private nextMs = BACKOFF_MIN_MS;

  /** The delay before respawning a process that started at `startedAt` and just died. */
  afterDeath(startedAt: number, now = Date.now()): number {
    if (now - startedAt >= STABLE_MS) this.nextMs = BACKOFF_MIN_MS;
    const delay = this.nextMs;
    this.nextMs = Math.min(delay * 2, BACKOFF_MAX_MS);
    return delay;
  }

  /** A fresh start (a replacement that came up ready). */
  reset(): void {
    this.nextMs = BACKOFF_MIN_MS;
  }
}
