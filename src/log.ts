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

