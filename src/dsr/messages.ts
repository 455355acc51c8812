// The IPC messages between the primary and the DSR forwarder process
// (src/dsr/forwarder-process.ts), and their guards. Plain JSON over the
// child_process channel.
import type { DsrCounters } from '../native.js';
import type { DsrPlanEntry } from './plan.js';

/** Primary → forwarder. */
export type ToForwarder =
  /** Run exactly these entries: same key = setServers (live flows kept), new key = open, missing key = close. */
  | { type: 'dsr-apply'; id: number; entries: DsrPlanEntry[] }
  | { type: 'dsr-counters-request'; id: number }
  /** Close every forwarder and exit 0. */
  | { type: 'dsr-stop' };

/** Per entry of the last apply, in its order: why it is not running (null: it runs). */
export type DsrEntryErrors = (string | null)[];

/** Forwarder → primary. */
export type FromForwarder =
  | { type: 'dsr-applied'; id: number; errors: DsrEntryErrors }
  /** Per entry of the last apply, in its order: its counters, or null when it is not running. */
  | { type: 'dsr-counters'; id: number; counters: (DsrCounters | null)[] };

export function isFromForwarder(m: unknown): m is FromForwarder {
  const t = (m as { type?: unknown } | null)?.type;
  return (t === 'dsr-applied' || t === 'dsr-counters') && typeof (m as { id?: unknown }).id === 'number';
}

export function isToForwarder(m: unknown): m is ToForwarder {
  const t = (m as { type?: unknown } | null)?.type;
  return t === 'dsr-apply' || t === 'dsr-counters-request' || t === 'dsr-stop';
}
