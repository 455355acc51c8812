// IP addresses between their text and byte forms, strictly: PROXY protocol v1
// carries text that must be canonical (no leading zeros, exactly 128 bits for
// IPv6), v2 carries bytes. Everything downstream (source hashing, rate-limit
// keys, X-Forwarded-For) compares addresses as text, so both versions must
// produce the same spelling Node gives a socket's remoteAddress.

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/;

/** Dotted quad without leading zeros ("010.0.0.1" is refused: octal to some readers). */
export function parseIpv4(text: string): Uint8Array | undefined {
  if (!IPV4.test(text)) return undefined;
  return Uint8Array.from(text.split('.').map(Number));
}

/** Colon-separated hex groups with at most one "::"; no embedded dotted quad, no zone. */
export function parseIpv6(text: string): Uint8Array | undefined {
  if (text.length > 39) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (part: string): string[] | undefined => {
    if (part === '') return [];
    const list = part.split(':');
    return list.every((g) => HEX_GROUP.test(g)) ? list : undefined;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (head === undefined || tail === undefined) return undefined;
  const total = head.length + tail.length;
  if (halves.length === 1 ? total !== 8 : total > 7) return undefined;
  const all = [...head, ...new Array<string>(8 - total).fill('0'), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((g, i) => {
    const v = parseInt(g, 16);
    bytes[i * 2] = v >> 8;
    bytes[i * 2 + 1] = v & 0xff;
  });
  return bytes;
}

export function formatIpv4(bytes: Uint8Array, offset = 0): string {
  return `${bytes[offset]}.${bytes[offset + 1]}.${bytes[offset + 2]}.${bytes[offset + 3]}`;
}

/** RFC 5952: lower case, no leading zeros, the longest run of two or more zero groups as "::"; IPv4-mapped as ::ffff:a.b.c.d. */
export function formatIpv6(bytes: Uint8Array, offset = 0): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((bytes[offset + i * 2]! << 8) | bytes[offset + i * 2 + 1]!);
  if (g.slice(0, 5).every((v) => v === 0) && g[5] === 0xffff) return `::ffff:${formatIpv4(bytes, offset + 12)}`;
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [bestStart, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (list: number[]) => list.map((v) => v.toString(16)).join(':');
  if (bestStart < 0) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}

/** The 16 bytes of an address Node reports for a socket (IPv4 as an IPv4-mapped IPv6 address). */
export function toIpv6Bytes(address: string): Uint8Array | undefined {
  const v4 = parseIpv4(address);
  if (v4 === undefined) return parseIpv6(address);
  const bytes = new Uint8Array(16);
  bytes[10] = 0xff;
  bytes[11] = 0xff;
  bytes.set(v4, 12);
  return bytes;
}
