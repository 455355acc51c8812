// Durations and sizes as users write them in YAML, and their conversion to
// milliseconds and bytes. The patterns are shared with the JSON schema so that
// what the schema accepts is exactly what these functions can convert.

const DURATION_UNITS_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;
// Binary multiples: "16kb" is 16 * 1024 bytes, as nginx and HAProxy read it.
const SIZE_UNITS_BYTES = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 } as const;

/** A positive integer with a unit: "500ms", "2s", "1m", "1h". Zero is refused. */
export const DURATION_PATTERN = '^0*[1-9][0-9]*(ms|s|m|h)$';
/** A positive integer with a unit, any case: "512b", "16kb", "10MB", "1gb". */
export const SIZE_PATTERN = '^0*[1-9][0-9]*[ ]?([bB]|[kKmMgG][bB])$';

/** The longest delay Node timers honour (2^31 - 1 ms); longer ones fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

const DURATION_RE = /^(\d+)(ms|s|m|h)$/;
const SIZE_RE = /^(\d+) ?(b|kb|mb|gb)$/;

/** Milliseconds for `"2s"`-style strings or plain integer milliseconds. */
export function parseDuration(value: string | number): number {
  if (typeof value === 'number') return value;
  const m = DURATION_RE.exec(value);
  if (!m) throw new TypeError(`not a duration: ${JSON.stringify(value)}`);
  return Number(m[1]) * DURATION_UNITS_MS[m[2] as keyof typeof DURATION_UNITS_MS];
}

/** Bytes for `"16kb"`-style strings or plain integer bytes. */
export function parseSize(value: string | number): number {
  if (typeof value === 'number') return value;
  const m = SIZE_RE.exec(value.toLowerCase());
  if (!m) throw new TypeError(`not a size: ${JSON.stringify(value)}`);
  return Number(m[1]) * SIZE_UNITS_BYTES[m[2] as keyof typeof SIZE_UNITS_BYTES];
}

/** Exact rendering for summaries: the largest unit that divides evenly (90000 → "90s"). */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [['h', 3_600_000], ['m', 60_000], ['s', 1_000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
