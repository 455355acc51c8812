// The forms of a request path that routing compares, and the host it routes
// by. Backends disagree on what a path means: some percent-decode it, resolve
// "." and ".." and merge slashes (nginx, Python, static file servers, IIS),
// some compare case-insensitively (Express, IIS), some drop ";params"
// (Tomcat, Spring), some take it as received (node:http). A route's checks
// must hold whichever of them sits behind it, so a path is matched in every
// form such a backend could give it, and the router refuses the request when
// those forms belong to different routes (see Router.match). The forms:
//   as received      the path up to "?", byte for byte;
//   decoded          RFC 3986 §6: escapes of unreserved characters decoded,
//                    the rest upper-cased (%2f → %2F), bytes that need an
//                    escape escaped, "\" and (by default) %2F and %5C as "/"
//                    (what a backend that decodes but resolves nothing sees);
//   resolved         decoded, then dot segments removed (§5.2.4, clamped at
//                    the root) and repeated slashes merged;
// each of those also without ";params" in every segment (a literal ";" or
// %3B ends a segment's name) when the path has one, and each of all those
// lower-cased (ASCII only) when case could matter.
// What cannot be made unambiguous is refused with a reason (400): "#" (never
// valid in a request-target, RFC 9112 §3.2), invalid or truncated escapes,
// %00 and other control characters, a double-encoded escape (%252e), "." or
// ".." carrying ";params" (a dot segment to Tomcat, a name elsewhere), and
// %2F/%5C when escaped_slashes is "reject".

export type EscapedSlashes = 'decode' | 'reject';

/** The forms of one path to match: plain ones compare case-sensitively, folded ones in lower case. */
export interface PathForms {
  plain: string[];
  folded: string[];
}

const HEX = '0123456789ABCDEF';
/**
 * Per ASCII code: 1 = kept as is in every form (lower-case letters, digits,
 * "-._~", sub-delims but ";", ":", "@", "/"); 2 = upper-case letter. Anything
 * else (%, ;, \, bytes that need escaping) sends a path down the slow path.
 */
const CLASS = new Uint8Array(128);
for (const c of "abcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,=:@/") CLASS[c.charCodeAt(0)] = 1;
for (let c = 65; c <= 90; c++) CLASS[c] = 2;
/** Characters a resolved path keeps unescaped (RFC 3986 pchar and "/"). */
const PCHAR = new Uint8Array(128);
for (const c of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@") PCHAR[c.charCodeAt(0)] = 1;
const UNRESERVED = /[A-Za-z0-9\-._~]/;

/**
 * How much work the path of `target` needs: PLAIN when it is already in
 * every form at once (no escapes, ";", "\\", "//", dot segments or upper-case
 * letters: the common case, checked without allocating), PLAIN_UPPER when
 * only its case could matter, else SLOW.
 */
export const PLAIN = 0;
export const PLAIN_UPPER = 1;
export const SLOW = 2;
export function pathKind(target: string): number {
  let kind = PLAIN;
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c === 0x3f /* ? */) return target.indexOf('#', i) < 0 ? kind : SLOW;
    const cls = c < 128 ? CLASS[c]! : 0;
    if (cls === 2) kind = PLAIN_UPPER;
    else if (cls !== 1) return SLOW;
    else if (c === 0x2f && i > 0 && target.charCodeAt(i - 1) === 0x2f) return SLOW;
    else if (c === 0x2e && target.charCodeAt(i - 1) === 0x2f) {
      // "/." starting a "." or ".." segment ("/.well-known" is a name).
      const next = i + 1 < target.length ? target.charCodeAt(i + 1) : 0x2f;
      const after = i + 2 < target.length ? target.charCodeAt(i + 2) : 0x2f;
      if (next === 0x2f || next === 0x3f || (next === 0x2e && (after === 0x2f || after === 0x3f))) return SLOW;
    }
  }
  return kind;
}

/**
 * The forms of the path of `target` (origin-form, starting with "/"), or a
 * string saying why it is refused. `foldAlways`: the route table itself has
 * upper-case paths, so even a lower-case path must be compared both ways.
 */
export function pathForms(target: string, escapedSlashes: EscapedSlashes, foldAlways: boolean): PathForms | string {
  if (target.indexOf('#') >= 0) return 'a "#" in the request-target (RFC 9112 §3.2)';
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  const forms = new Set([path]);
  if (pathKind(path) === SLOW) {
    for (const dots of [false, true]) {
      const form = resolve(path, escapedSlashes, dots);
      if (typeof form !== 'string') return form.refused;
      forms.add(form);
    }
  }
  for (const form of [...forms]) if (form.indexOf(';') >= 0 || /%3B/i.test(form)) forms.add(withoutParams(form));
  const plain = [...forms];
  const folded = foldAlways || plain.some((f) => /[A-Z]/.test(f)) ? [...new Set(plain.map(asciiLower))] : [];
  return { plain, folded };
}

/** The resolved form of a path (see the top of this file), or with `dots` false the decoded one; or why it is refused. */
export function resolve(path: string, escapedSlashes: EscapedSlashes, dots = true): string | { refused: string } {
  const segments: string[] = [];
  let segment = '';
  // Whether the path ends in a slash once resolved ("/a/", "/a/.", "/a/b/..").
  let trailing = false;
  const close = (): string | undefined => {
    const name = paramsStart(segment) < 0 ? segment : segment.slice(0, paramsStart(segment));
    if ((name === '.' || name === '..') && name !== segment) return `a "${name}" segment with ";params" (${JSON.stringify(segment)})`;
    trailing = segment === '' || segment === '.' || segment === '..';
    if (!dots) segments.push(segment);
    else if (segment === '..') segments.pop();
    else if (!trailing) segments.push(segment);
    segment = '';
    return undefined;
  };
  for (let i = 1; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 0x2f || c === 0x5c) {
      const bad = close();
      if (bad !== undefined) return { refused: bad };
    } else if (c === 0x25) {
      const hi = hexValue(path.charCodeAt(i + 1));
      const lo = hexValue(path.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return { refused: `an invalid percent-escape ${JSON.stringify(path.slice(i, i + 3))}` };
      const byte = hi * 16 + lo;
      i += 2;
      if (byte < 0x20 || byte === 0x7f) return { refused: `an escaped control character %${HEX[hi]}${HEX[lo]}` };
      if (byte === 0x25 && hexValue(path.charCodeAt(i + 1)) >= 0 && hexValue(path.charCodeAt(i + 2)) >= 0) {
        return { refused: `a double-encoded escape ${JSON.stringify(path.slice(i - 2, i + 3))}` };
      }
      if (byte === 0x2f || byte === 0x5c) {
        if (escapedSlashes === 'reject') return { refused: `an escaped slash %${HEX[hi]}${HEX[lo]} (normalize.escaped_slashes: reject)` };
        const bad = close();
        if (bad !== undefined) return { refused: bad };
      } else if (UNRESERVED.test(String.fromCharCode(byte))) segment += String.fromCharCode(byte);
      else segment += `%${HEX[hi]}${HEX[lo]}`;
    } else if (c < 128 && PCHAR[c] === 1) segment += path[i];
    else if (c < 0x20 || c === 0x7f || c > 0xff) return { refused: `a control or non-byte character in the path` };
    else segment += `%${HEX[c >> 4]}${HEX[c & 15]}`;
  }
  const bad = close();
  if (bad !== undefined) return { refused: bad };
  return '/' + segments.join('/') + (dots && trailing && segments.length > 0 ? '/' : '');
}

/**
 * `target` with its path resolved and its query as received, for routes that
 * rewrite their prefix: forwarding this form leaves no "..", raw or escaped,
 * to climb out of the new base. Only for targets the router accepted (a path
 * it refused comes back unchanged).
 */
export function resolvedTarget(target: string): string {
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  if (pathKind(path) !== SLOW) return target;
  const resolved = resolve(path, 'decode');
  return typeof resolved === 'string' ? (q < 0 ? resolved : resolved + target.slice(q)) : target;
}

/** A path with every segment cut at its ";params" (literal ";" or %3B), empty segments merged. */
function withoutParams(path: string): string {
  const parts = path.split('/');
  const kept: string[] = [];
  for (let i = 1; i < parts.length; i++) {
    const part = parts[i]!;
    const cut = paramsStart(part);
    const name = cut < 0 ? part : part.slice(0, cut);
    if (name !== '' || i === parts.length - 1) kept.push(name);
  }
  return '/' + kept.join('/');
}

function paramsStart(segment: string): number {
  const semi = segment.indexOf(';');
  const escaped = segment.search(/%3B/i);
  return semi < 0 ? escaped : escaped < 0 ? semi : Math.min(semi, escaped);
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/** Lower-cases A-Z only: bytes above 0x7f are raw octets, not letters. */
export function asciiLower(text: string): string {
  return text.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

/** Host characters every backend takes: letters, digits, "-", "_", "."; or an IPv6 literal. */
const HOST_NAME = /^(?:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?|\[[0-9A-Fa-f:.]+\])$/;

/**
 * The host a request routes by: the Host header lower-cased, without the
 * port and without a trailing dot ("Admin.Test.:80" → "admin.test"), "" for
 * an empty Host; undefined when it holds what no backend would accept
 * (escapes, sub-delims, empty labels).
 */
export function matchingHost(host: string): string | undefined {
  let end = host.length;
  const colon = host.lastIndexOf(':');
  if (colon >= 0 && host.indexOf(']') < colon) end = colon;
  const name = end === host.length ? host : host.slice(0, end);
  if (name === '') return colon >= 0 ? undefined : '';
  if (!HOST_NAME.test(name)) return undefined;
  return (name.endsWith('.') ? name.slice(0, -1) : name).toLowerCase();
}
