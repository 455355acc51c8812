// Forwarding the authenticated identity upstream. The data path removes every
// incoming copy of these headers first, so what the upstream reads was
// written here and nowhere else.

import type { IdentityForwarding } from '../../config/types.js';
import type { Identity } from './types.js';

/** Anything but HTAB, SP, VCHAR and obs-text (RFC 9110 §5.5), checked on the encoded bytes. */
const UNSAFE = /[\x00-\x08\x0a-\x1f\x7f]/;

/** Lower-cased names of all headers that carry the identity: the data path strips incoming copies. */
export function identityHeaderNames(forward: IdentityForwarding): string[] {
  const names = new Set<string>();
  if (forward.subjectHeader !== undefined) names.add(forward.subjectHeader.toLowerCase());
  for (const [, header] of forward.claimHeaders) names.add(header.toLowerCase());
  return [...names];
}

/**
 * The identity headers to add to the upstream request. Values are latin1
 * strings holding UTF-8 bytes, matching how the data path writes heads, so a
 * non-ASCII subject reaches the upstream as UTF-8. A value holding a control
 * character (CR, LF, NUL...) is left out rather than cleaned: a token that
 * carries one is suspect, and a silently altered identity is worse than none.
 * Absent claims give no header.
 */
export function identityHeaders(forward: IdentityForwarding, identity: Identity): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  if (forward.subjectHeader !== undefined) push(out, forward.subjectHeader, identity.subject);
  for (const [claim, header] of forward.claimHeaders) {
    const value = identity.claims[claim];
    if (value === undefined || value === null) continue;
    push(out, header, Array.isArray(value) ? value.map(claimText).join(',') : claimText(value));
  }
  return out;
}

function claimText(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function push(out: Array<[string, string]>, name: string, value: string): void {
  const wire = Buffer.from(value, 'utf8').toString('latin1');
  if (!UNSAFE.test(wire)) out.push([name, wire]);
}
