// Coarse deadlines for the data path. Arming a Node timer per request (and
// re-arming it on every chunk) costs more than the rest of a small proxied
// request, so each connection instead records absolute deadlines in plain
// fields and one interval per worker sweeps the live connections. Deadlines
// therefore fire up to 2 x TICK_MS late (never early: the cached time may
// be a tick old, so a deadline adds one tick), which no timeout in the
// config is sensitive to.

export const TICK_MS = 100;

export interface Expirable {
  /** Called on every tick with the cached current time. */
  checkDeadlines(now: number): void;
}

let cachedNow = Date.now();
const members = new Set<Expirable>();
let interval: NodeJS.Timeout | undefined;

/** Milliseconds since the epoch, refreshed every tick: cheap enough for per-chunk use. */
export function now(): number {
  return cachedNow;
}

/** The absolute deadline `ms` from now, never before `ms` have really passed. */
export function deadlineIn(ms: number): number {
  return cachedNow + ms + TICK_MS;
}

export function track(member: Expirable): void {
  members.add(member);
  if (interval === undefined) {
    cachedNow = Date.now();
    interval = setInterval(sweep, TICK_MS);
    interval.unref();
  }
}

export function untrack(member: Expirable): void {
  members.delete(member);
}

function sweep(): void {
  cachedNow = Date.now();
  for (const member of members) member.checkDeadlines(cachedNow);
}
