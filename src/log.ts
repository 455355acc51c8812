// pino set-up shared by the primary and the workers. Logs are JSON lines on
// stdout through an asynchronous destination, so a log call never waits on a
// write; pino flushes the buffer synchronously on process exit. When stdout
// is a terminal (or `logging.format: pretty`), pino-pretty turns each line
// into a readable one for the person watching; `format: json` keeps JSON.
import { createRequire } from 'node:module';
import pino from 'pino';
import type PinoPretty from 'pino-pretty';
import type { LoggingConfig } from './config/types.js';

/**
 * pino-pretty is loaded only when a process logs for a terminal: it takes
 * tens of milliseconds to load (and seconds on a loaded machine), which every
 * worker start (a reload replaces them all) would pay for nothing with JSON.
 */
const loadPretty = (): typeof PinoPretty => createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;

export type Logger = pino.Logger;

/** One destination per process and format: every logger of the process shares its buffer. */
let destination: pino.DestinationStream | undefined;
let destinationPretty: boolean | undefined;

/** Whether logs of this process are human-readable lines rather than JSON. */
export function prettyLogs(format: LoggingConfig['format'], isTty = process.stdout.isTTY === true): boolean {
  return format === 'pretty' || (format === 'auto' && isTty);
}

function destinationFor(logging: LoggingConfig): pino.DestinationStream {
  const wantPretty = prettyLogs(logging.format);
  if (destination === undefined || destinationPretty !== wantPretty) {
    destinationPretty = wantPretty;
    destination = wantPretty
      ? loadPretty()({
          destination: 1,
          // A terminal is read by a person: every line written before exit beats the last bit of speed.
          sync: true,
          colorize: process.stdout.isTTY === true,
          translateTime: 'SYS:HH:MM:ss.l',
          // The pid stays (primary and workers share the terminal); the host name is noise.
          ignore: 'hostname',
          singleLine: true,
        })
      : pino.destination({ dest: 1, sync: false });
  }
  return destination;
}

export function createLogger(logging: LoggingConfig, bindings: Record<string, unknown> = {}): Logger {
  const destination = destinationFor(logging);
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
 * Bounds repeated log lines: per key (say, an error reason), a token bucket
 * of `burst` lines refilled at `perSecond`. Ordinary error rates are logged
 * line for line; a flood of identical failures (an upstream down, file
 * descriptors exhausted) then costs a few lines a second instead of one per
 * request, and each line let through says how many of its kind were held
 * back since the previous one.
 */
export class LogThrottle {
  private readonly buckets = new Map<string, { tokens: number; at: number; held: number }>();

  constructor(
    private readonly perSecond = 10,
    private readonly burst = 100,
  ) {}

  /** Logs `msg` at warn level unless lines of `key` are held back; a line let through carries `heldBack` when some were. */
  warn(log: Logger, key: string, fields: Record<string, unknown>, msg: string): void {
    const held = this.admit(key);
    if (held === undefined) return;
    log.warn(held > 0 ? { ...fields, heldBack: held } : fields, msg);
  }

  /** undefined: hold this line back; otherwise log it, with this many of its kind held back before it. */
  admit(key: string, now = Date.now()): number | undefined {
    let b = this.buckets.get(key);
    if (b === undefined) this.buckets.set(key, (b = { tokens: this.burst, at: now, held: 0 }));
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSecond);
    b.at = now;
    if (b.tokens < 1) {
      b.held++;
      return undefined;
    }
    b.tokens--;
    const held = b.held;
    b.held = 0;
    return held;
  }
}
