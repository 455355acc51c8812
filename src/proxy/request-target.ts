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
//   Windows          decoded and resolved, each name without its trailing
//                    dots and spaces and a "::$DATA" suffix (what IIS and
//                    files on NTFS take "/admin." and "/admin::$DATA" for);
//   compatibility    when the path has non-ASCII bytes: their UTF-8 text
//                    mapped as NFKC-normalising frameworks and Windows
//                    "best fit" conversions do ("／" U+FF0F and "∕" to "/",
//                    "‥" U+2025 to "..", "．" to ".", "ａ" to "a"), then
//                    decoded, resolved and Windows-named as above;
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
 * A path every form leaves as it is (but case): "/"-led segments of pchars
 * but ";" and "$" ("::$DATA"), none empty, starting or ending with "."; then the query.
 */
const PLAIN_PATH = /^(?:\/(?![/.])(?:[a-z0-9\-._~!&'()*+,=:@]*[a-z0-9\-_~!&'()*+,=:@])?)*(?:\?[^#]*)?$/;
const PLAIN_PATH_ANY_CASE = /^(?:\/(?![/.])(?:[A-Za-z0-9\-._~!&'()*+,=:@]*[A-Za-z0-9\-_~!&'()*+,=:@])?)*(?:\?[^#]*)?$/;
/** What Windows drops from the end of a name (decoded segments: a space is %20). */
const WINDOWS_SUFFIX = /(?:::\$DATA)?(?:\.|%20)*$/i;
/** Characters a resolved path keeps unescaped (RFC 3986 pchar). */
const PCHAR = new Uint8Array(128);
for (const c of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@") PCHAR[c.charCodeAt(0)] = 1;
const UNRESERVED = /[A-Za-z0-9\-._~]/;

/**
 * How much work the path of `target` needs: PLAIN when it is already in
 * every form at once (the common case, one regular expression), PLAIN_UPPER
 * when only its case could matter, else SLOW. A segment starting with "."
 * (even "/.well-known") takes the slow path, which gives it the same answer.
 */
export const PLAIN = 0;
export const PLAIN_UPPER = 1;
export const SLOW = 2;
export function pathKind(target: string): number {
  if (PLAIN_PATH.test(target)) return PLAIN;
  return PLAIN_PATH_ANY_CASE.test(target) ? PLAIN_UPPER : SLOW;
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
  if (!PLAIN_PATH_ANY_CASE.test(path)) {
    const segments = decodeSegments(path, escapedSlashes);
    if (typeof segments === 'string') return segments;
    addDecodedForms(forms, segments);
    if (NON_ASCII.test(path)) {
      const compatible = decodeSegments(compatibilityText(segments), escapedSlashes);
      if (typeof compatible === 'string') return `${compatible} once Unicode compatibility characters are mapped`;
      addDecodedForms(forms, compatible);
    }
  }
  for (const form of [...forms]) if (form.indexOf(';') >= 0 || /%3B/i.test(form)) forms.add(withoutParams(form));
  const plain = [...forms];
  const folded = foldAlways || plain.some(hasUpperCase) ? [...new Set(plain.map(asciiLower))] : [];
  return { plain, folded };
}

/** The decoded, resolved and Windows forms of decoded segments. */
function addDecodedForms(forms: Set<string>, segments: string[]): void {
  forms.add('/' + segments.join('/'));
  forms.add(removeDots(segments));
  const windows = segments.map(windowsName);
  if (windows.some((name, i) => name !== segments[i])) {
    forms.add('/' + windows.join('/'));
    forms.add(removeDots(windows));
  }
}

/** A non-ASCII byte, escaped or raw (llhttp hands bytes over as latin1). */
const NON_ASCII = /%[89A-Fa-f][0-9A-Fa-f]|[\x80-\xff]/;
/** Escaped non-ASCII bytes in a decoded path (decodeSegments upper-cases escapes and escapes raw bytes). */
const ESCAPED_HIGH_RUN = /(?:%[89A-F][0-9A-F])+/g;
/**
 * Characters Windows' "best fit" conversion to a code page turns into a
 * separator while NFKC leaves them: division slash, fraction slash, set
 * minus, reverse solidus operator; yen and won signs (the backslash of the
 * Japanese and Korean code pages).
 */
const BEST_FIT = new Map([
  ['\u2215', '/'],
  ['\u2044', '/'],
  ['\u2216', '\\'],
  ['\u29f5', '\\'],
  ['\u00a5', '\\'],
  ['\u20a9', '\\'],
]);
const BEST_FIT_CHARS = new RegExp(`[${[...BEST_FIT.keys()].join('')}]`, 'gu');
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Decoded segments with their non-ASCII text read as UTF-8 and mapped to
 * what NFKC and best fit make of it, as a path again (non-ASCII left over
 * escaped, ASCII the mapping produced as it is: "／" is now a "/", "％" a "%").
 * A run of bytes that is not UTF-8 is no text to map: it stays as it is.
 */
function compatibilityText(segments: readonly string[]): string {
  const text = ('/' + segments.join('/')).replace(ESCAPED_HIGH_RUN, (run) => {
    const bytes = new Uint8Array(run.length / 3);
    for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(run.slice(3 * i + 1, 3 * i + 3), 16);
    try {
      return UTF8.decode(bytes);
    } catch {
      return run;
    }
  });
  const mapped = text.normalize('NFKC').replace(BEST_FIT_CHARS, (c) => BEST_FIT.get(c)!);
  return mapped.replace(/[^\x00-\x7f]+/gu, (run) => encodeURIComponent(run));
}

/**
 * The characters of a path (escaped UTF-8, as route paths are written) that
 * the compatibility form maps to something else: each escaped, as text, and
 * what it reads as ("%EF%BD%81", "ａ", "a").
 */
export function compatibilityMappings(path: string): Array<{ escaped: string; char: string; readsAs: string }> {
  const out: Array<{ escaped: string; char: string; readsAs: string }> = [];
  for (const [run] of path.toUpperCase().matchAll(ESCAPED_HIGH_RUN)) {
    const bytes = new Uint8Array(run.length / 3);
    for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(run.slice(3 * i + 1, 3 * i + 3), 16);
    let text: string;
    try {
      text = UTF8.decode(bytes);
    } catch {
      continue;
    }
    for (const char of text) {
      const readsAs = char.normalize('NFKC').replace(BEST_FIT_CHARS, (c) => BEST_FIT.get(c)!);
      if (readsAs !== char) out.push({ escaped: encodeURIComponent(char), char, readsAs });
    }
  }
  return out;
}

/** The resolved form of a path (see the top of this file), or with `dots` false the decoded one; or why it is refused. */
export function resolve(path: string, escapedSlashes: EscapedSlashes, dots = true): string | { refused: string } {
  const segments = decodeSegments(path, escapedSlashes);
  if (typeof segments === 'string') return { refused: segments };
  return dots ? removeDots(segments) : '/' + segments.join('/');
}

/** The decoded segments after the leading "/" (see the top of this file), or why the path is refused. */
function decodeSegments(path: string, escapedSlashes: EscapedSlashes): string[] | string {
  const segments: string[] = [];
  let segment = '';
  // Runs of characters kept as they are are copied as one slice, from `run`.
  let run = 1;
  const close = (at: number): string | undefined => {
    segment += path.slice(run, at);
    const cut = paramsStart(segment);
    const name = cut < 0 ? segment : segment.slice(0, cut);
    if ((name === '.' || name === '..') && cut >= 0) return `a "${name}" segment with ";params" (${JSON.stringify(segment)})`;
    segments.push(segment);
    segment = '';
    return undefined;
  };
  for (let i = 1; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c < 128 && PCHAR[c] === 1) continue;
    if (c === 0x2f || c === 0x5c) {
      const bad = close(i);
      if (bad !== undefined) return bad;
      run = i + 1;
      continue;
    }
    segment += path.slice(run, i);
    if (c === 0x25) {
      const hi = hexValue(path.charCodeAt(i + 1));
      const lo = hexValue(path.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return `an invalid percent-escape ${JSON.stringify(path.slice(i, i + 3))}`;
      const byte = hi * 16 + lo;
      const escape = `%${HEX[hi]}${HEX[lo]}`;
      i += 2;
      run = i + 1;
      if (byte < 0x20 || byte === 0x7f) return `an escaped control character ${escape}`;
      if (byte === 0x25 && hexValue(path.charCodeAt(i + 1)) >= 0 && hexValue(path.charCodeAt(i + 2)) >= 0) {
        return `a double-encoded escape ${JSON.stringify(path.slice(i - 2, i + 3))}`;
      }
      if (byte === 0x2f || byte === 0x5c) {
        if (escapedSlashes === 'reject') return `an escaped slash ${escape} (normalize.escaped_slashes: reject)`;
        const bad = close(run);
        if (bad !== undefined) return bad;
      } else segment += UNRESERVED.test(String.fromCharCode(byte)) ? String.fromCharCode(byte) : escape;
    } else if (c < 0x20 || c === 0x7f || c > 0xff) {
      return 'a control or non-byte character in the path';
    } else {
      segment += `%${HEX[c >> 4]}${HEX[c & 15]}`;
      run = i + 1;
    }
  }
  const bad = close(path.length);
  return bad ?? segments;
}

/** A decoded segment as Windows names it: without trailing dots, spaces and "::$DATA"; dot segments ("..", "...") as they are. */
function windowsName(segment: string): string {
  if (/^\.*$/.test(segment)) return segment;
  const name = segment.replace(WINDOWS_SUFFIX, '');
  return name === '' ? segment : name;
}

/** Decoded segments to a path with "." and ".." resolved (RFC 3986 §5.2.4, clamped at the root) and empty segments merged. */
function removeDots(segments: readonly string[]): string {
  const out: string[] = [];
  for (const segment of segments) {
    if (segment === '..') out.pop();
    else if (segment !== '.' && segment !== '') out.push(segment);
  }
  const last = segments[segments.length - 1];
  // "/a/", "/a/." and "/a/b/.." end in a slash.
  const trailing = last === '' || last === '.' || last === '..';
  return '/' + out.join('/') + (trailing && out.length > 0 ? '/' : '');
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

/** Where a segment's ";params" start (a literal ";" or %3B in either case), or -1. */
function paramsStart(segment: string): number {
  let start = -1;
  for (const mark of [';', '%3B', '%3b']) {
    const at = segment.indexOf(mark);
    if (at >= 0 && (start < 0 || at < start)) start = at;
  }
  return start;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/** Whether a path has an upper-case letter outside its escapes (whose hex digits fold harmlessly). */
export function hasUpperCase(path: string): boolean {
  return /[A-Z]/.test(path) && /[A-Z]/.test(path.replace(/%[0-9A-F]{2}/g, ''));
}

/** Lower-cases A-Z only: bytes above 0x7f are raw octets, not letters. */
export function asciiLower(text: string): string {
  return /[^\x00-\x7f]/.test(text) ? text.replace(/[A-Z]+/g, (m) => m.toLowerCase()) : text.toLowerCase();
}

/** Host name characters every backend takes: 1 = as is (lower-case letters, digits, "-", "_"), 2 = upper-case letter. */
const HOST_CHAR = new Uint8Array(128);
for (const c of 'abcdefghijklmnopqrstuvwxyz0123456789-_') HOST_CHAR[c.charCodeAt(0)] = 1;
for (let c = 65; c <= 90; c++) HOST_CHAR[c] = 2;
const IPV6_LITERAL = /^\[[0-9A-Fa-f:.]+\](?::\d*)?$/;

/**
 * The host a request routes by: the Host header lower-cased, without the
 * port and without a trailing dot ("Admin.Test.:80" → "admin.test"), "" for
 * an empty Host; undefined when it holds what no backend would accept
 * (escapes, sub-delims, empty labels). One pass, no copy for the usual
 * lower-case host without a port.
 */
export function matchingHost(host: string): string | undefined {
  if (host.charCodeAt(0) === 0x5b /* [ */) return IPV6_LITERAL.test(host) ? host.slice(0, host.indexOf(']') + 1).toLowerCase() : undefined;
  let upper = false;
  let label = 0;
  let end = host.length;
  for (let i = 0; i < host.length; i++) {
    const c = host.charCodeAt(i);
    if (c === 0x2e /* . */) {
      if (label === 0) return undefined;
      label = 0;
      continue;
    }
    if (c === 0x3a /* : */) {
      for (let j = i + 1; j < host.length; j++) if (host.charCodeAt(j) < 0x30 || host.charCodeAt(j) > 0x39) return undefined;
      end = i;
      break;
    }
    const cls = c < 128 ? HOST_CHAR[c]! : 0;
    if (cls === 0) return undefined;
    if (cls === 2) upper = true;
    label++;
  }
  if (end === 0) return host.length === 0 ? '' : undefined;
  // A trailing dot: the name is fully qualified, the same host.
  if (label === 0) end--;
  const name = end === host.length ? host : host.slice(0, end);
  return upper ? name.toLowerCase() : name;
}
