// Credentials sent in the query (api_key `query`, jwt `from: query:NAME`) are
// for the gateway only: the parameter is removed from the target forwarded
// upstream and redacted in the access log, matched exactly as the
// authenticator reads it, every other byte kept as it came.

/**
 * `target` without query parameter `name`: every pair whose name decodes to
 * `name` as the authenticator reads it (URLSearchParams: "+" is a space,
 * percent-escapes are UTF-8, so "api%5Fkey" is "api_key") goes, with its
 * "&"; every other byte of the target stays as it was. A query left empty
 * goes with its "?".
 */
export function removeQueryParam(target: string, name: string): string {
  const query = parseQuery(target, name);
  if (query === undefined || !query.named.includes(true)) return target;
  const rest = query.lead + query.segments.filter((_, i) => !query.named[i]).join('&');
  return rest === '' ? query.path : `${query.path}?${rest}`;
}

/** `url` with the value of query parameter `name` replaced by "REDACTED" (every occurrence, matched as removeQueryParam does). */
export function redactQueryParam(url: string, name: string): string {
  const query = parseQuery(url, name);
  if (query === undefined || !query.named.includes(true)) return url;
  const parts = query.segments.map((seg, i) => {
    if (!query.named[i]) return seg;
    const eq = seg.indexOf('=');
    return `${eq < 0 ? seg : seg.slice(0, eq)}=REDACTED`;
  });
  return `${query.path}?${query.lead}${parts.join('&')}`;
}

/**
 * The query of `target` as its "&"-separated segments, byte for byte, and
 * which of them carry parameter `name`. Names are decoded by URLSearchParams
 * itself, so the match is exactly the authenticator's queryValue(): it parses
 * the query after one leading "?" (kept here as `lead`) and skips empty
 * segments, so its names line up with the non-empty segments in order.
 */
function parseQuery(target: string, name: string): { path: string; lead: string; segments: string[]; named: boolean[] } | undefined {
  const q = target.indexOf('?');
  if (q < 0) return undefined;
  const query = target.slice(q + 1);
  const lead = query.startsWith('?') ? '?' : '';
  const segments = query.slice(lead.length).split('&');
  const names = [...new URLSearchParams(query).keys()];
  let next = 0;
  const named = segments.map((seg) => seg !== '' && names[next++] === name);
  return { path: target.slice(0, q), lead, segments, named };
}
