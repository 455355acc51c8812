// The key `source` balancing hashes, from `hash.key` in the config:
//   source-ip     the client address (the data path resolves trusted
//                 X-Forwarded-For into PickContext.clientIp)
//   header:NAME   the value of request header NAME (case-insensitive name)
//   cookie:NAME   the value of cookie NAME (case-sensitive, RFC 6265)
// An absent or empty header or cookie yields undefined, and the balancer
// falls back to the client address: an empty value would pile every such
// client onto one server.
//
// compileHashKey() parses the spec once (control plane, may throw); the
// extractor it returns runs per request on the raw header list and allocates
// only the returned string.

/** Extracts the key from raw headers ([name, value, ...], names in received case). */
export type HashKeyExtractor = (rawHeaders: readonly string[]) => string | undefined;

/** undefined for `source-ip` (nothing to extract); throws on a spec the schema would reject. */
export function compileHashKey(spec: string): HashKeyExtractor | undefined {
  if (spec === 'source-ip') return undefined;
  const colon = spec.indexOf(':');
  const kind = spec.slice(0, colon);
  const name = spec.slice(colon + 1);
  if (colon < 0 || name === '' || !TOKEN.test(name) || (kind !== 'header' && kind !== 'cookie')) {
    throw new TypeError(`hash key must be source-ip, header:NAME or cookie:NAME, got ${JSON.stringify(spec)}`);
  }
  if (kind === 'header') {
    const lower = name.toLowerCase();
    return (raw) => headerValue(raw, lower);
  }
  return (raw) => cookieValue(raw, name);
}

/** One-off form of compileHashKey(spec)(rawHeaders); undefined for source-ip. */
export function extractHashKey(spec: string, rawHeaders: readonly string[]): string | undefined {
  return compileHashKey(spec)?.(rawHeaders);
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function isName(raw: string, lower: string): boolean {
  return raw.length === lower.length && (raw === lower || raw.toLowerCase() === lower);
}

/** Field lines of the same name join with ", " (RFC 9110 section 5.3). */
function headerValue(raw: readonly string[], lower: string): string | undefined {
  let value: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (!isName(raw[i]!, lower)) continue;
    const v = raw[i + 1]!.trim();
    if (v === '') continue;
    value = value === undefined ? v : `${value}, ${v}`;
  }
  return value;
}

/** The first cookie `name` over all Cookie field lines, quotes removed. */
function cookieValue(raw: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (!isName(raw[i]!, 'cookie')) continue;
    const value = findCookie(raw[i + 1]!, name);
    if (value !== undefined) return value;
  }
  return undefined;
}

// cookie-string = cookie-pair *( ";" SP cookie-pair ), parsed leniently as
// browsers send it (RFC 6265 section 5.4): pairs split at ";", optional
// whitespace around names and values; a pair without "=" has no name.
function findCookie(header: string, name: string): string | undefined {
  let at = 0;
  while (at < header.length) {
    let end = header.indexOf(';', at);
    if (end < 0) end = header.length;
    let start = at;
    while (start < end && isSpace(header.charCodeAt(start))) start++;
    if (header.startsWith(name, start)) {
      let eq = start + name.length;
      while (eq < end && isSpace(header.charCodeAt(eq))) eq++;
      if (eq < end && header.charCodeAt(eq) === 61 /* = */) {
        let value = header.slice(eq + 1, end).trim();
        // cookie-value may be DQUOTE *cookie-octet DQUOTE: the same key either way.
        if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
        if (value !== '') return value;
      }
    }
    at = end + 1;
  }
  return undefined;
}

function isSpace(c: number): boolean {
  return c === 32 || c === 9;
}
