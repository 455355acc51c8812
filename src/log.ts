// pino set-up shared by the primary and the workers. Logs are JSON lines on
// stdout through an asynchronous destination, so a log call never waits on a
// write; pino flushes the buffer synchronously on process exit.
import pino from 'pino';
import type { LoggingConfig } from './config/types.js';

export type Logger = pino.Logger;

/** One destination per process: every logger of the process shares its buffer. */
let destination: ReturnType<typeof pino.destination> | undefined;

export function createLogger(logging: LoggingConfig, bindings: Record<string, unknown> = {}): Logger {
  destination ??= pino.destination({ dest: 1, sync: false });
  return pino(
    {
      level: logging.level,
      base: { pid: process.pid, ...bindings },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}


/**
 * Bounds repeated log lines: per key (say, an error reason), at most
 * `perSecond` lines a second. A flood of identical failures (an upstream
 * down, file descriptors exhausted) then costs a few lines a second instead
 * of one per request; each line let through says how many of its kind were
 * held back since the previous one.
 */
export class LogThrottle {
  private readonly windows = new Map<string, { start: number; logged: number; held: number }>();

  constructor(private readonly perSecond = 10) {}

  /** undefined: hold this line back; otherwise log it, with this many of its kind held back before it. */
  admit(key: string, now = Date.now()): number | undefined {
    let w = this.windows.get(key);
    if (w === undefined) this.windows.set(key, (w = { start: now, logged: 0, held: 0 }));
    if (now - w.start >= 1000) {
      w.start = now;
      w.logged = 0;
    }
    if (w.logged >= this.perSecond) {
      w.held++;
      return undefined;
    }
    w.logged++;
    const held = w.held;
    w.held = 0;
    return held;
  }
}
