// Per-route header rewriting on node's flat [name, value, name, value, ...]
// header lists (req.rawHeaders, or what is sent upstream / to the client).
import type { HeaderRules } from '../config/types.js';

/**
 * Applies `rules` to `raw` and returns a new list: every header named in
 * `remove` or `set` is dropped (names compared case-insensitively), then each
 * `set` pair is appended once (so it replaces all earlier copies), then each
 * `add` pair is appended (kept alongside any copies already there). Pure:
 * `raw` and `rules` are not modified. Names are compared in place, without
 * lower-casing copies, since it runs per request.
 */
export function applyHeaderRules(raw: readonly string[], rules: HeaderRules): string[] {
  const { set, add, remove } = rules;
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (listed(name, remove) || namedIn(name, set)) continue;
    out.push(name, raw[i + 1]!);
  }
  for (const [name, value] of set) out.push(name, value);
  for (const [name, value] of add) out.push(name, value);
  return out;
}

function listed(name: string, names: readonly string[]): boolean {
  for (const n of names) if (headerNameEquals(name, n)) return true;
  return false;
}

function namedIn(name: string, pairs: ReadonlyArray<readonly [string, string]>): boolean {
  for (const pair of pairs) if (headerNameEquals(name, pair[0])) return true;
  return false;
}

/** ASCII case-insensitive equality of two header names (only A-Z fold, as HTTP defines). */
export function headerNameEquals(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    const lower = x | 0x20;
    if (lower !== (y | 0x20) || lower < 0x61 || lower > 0x7a) return false;
  }
  return true;
}
