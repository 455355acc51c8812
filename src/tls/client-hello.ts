// Reads the server name (SNI) from a TLS ClientHello before the handshake
// starts, so the listener can hand the handshake the right context as its
// initial one. Why not node:tls's SNICallback: Node installs only the SNI
// context's *current* certificate and key into the connection (crypto_tls.cc
// UseSNIContext), so a name with an RSA and an ECDSA certificate would get
// only one of them, the other key type falling back to the default
// certificate's. As the initial context, a context with several key types
// works as OpenSSL intends. This parser reads only what it needs: record and
// handshake framing, then the extensions server_name and ALPN (whether
// "acme-tls/1" is offered: an ACME TLS-ALPN-01 validation, RFC 8737).

export type HelloScan =
  /** More bytes are needed to see the whole ClientHello. */
  | { kind: 'partial' }
  /** Not a ClientHello (plain HTTP to a TLS port, garbage): let OpenSSL answer it with an alert. */
  | { kind: 'not-hello' }
  | { kind: 'hello'; servername: string | undefined; acmeTls: boolean };

const RECORD_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const ACME_TLS = Buffer.from('acme-tls/1', 'latin1');
/** A ClientHello larger than this is refused (post-quantum key shares make them ~2 KB; 16 KB is one full record). */
export const MAX_CLIENT_HELLO = 16384;

/** Looks at the bytes received so far (`data` starts at the first byte of the connection). */
export function scanClientHello(data: Buffer): HelloScan {
  // The handshake message may span several records: join their payloads.
  const body: Buffer[] = [];
  let have = 0;
  let offset = 0;
  let needed = -1;
  while (offset + 5 <= data.length) {
    if (data[offset] !== RECORD_HANDSHAKE || data[offset + 1] !== 3) return { kind: 'not-hello' };
    const length = data.readUInt16BE(offset + 3);
    const payload = data.subarray(offset + 5, Math.min(data.length, offset + 5 + length));
    body.push(payload);
    have += payload.length;
    if (needed < 0 && have >= 4) {
      const head = body.length === 1 ? body[0]! : Buffer.concat(body);
      if (head[0] !== HANDSHAKE_CLIENT_HELLO) return { kind: 'not-hello' };
      needed = 4 + head.readUIntBE(1, 3);
      if (needed > MAX_CLIENT_HELLO) return { kind: 'not-hello' };
    }
    if (needed >= 0 && have >= needed) return { kind: 'hello', ...extensions(Buffer.concat(body).subarray(4, needed)) };
    if (payload.length < length) break;
    offset += 5 + length;
  }
  return data.length > MAX_CLIENT_HELLO + 5 * 8 ? { kind: 'not-hello' } : { kind: 'partial' };
}

/**
 * The host_name of the server_name extension, lower-cased (undefined when
 * absent or malformed: OpenSSL then decides), and whether ALPN offers
 * "acme-tls/1". Anything malformed ends the walk with what was found so far.
 */
function extensions(hello: Buffer): { servername: string | undefined; acmeTls: boolean } {
  const found: { servername: string | undefined; acmeTls: boolean } = { servername: undefined, acmeTls: false };
  let p = 2 + 32; // legacy_version, random
  if (p >= hello.length) return found;
  p += 1 + hello[p]!; // session id
  if (p + 2 > hello.length) return found;
  p += 2 + hello.readUInt16BE(p); // cipher suites
  if (p >= hello.length) return found;
  p += 1 + hello[p]!; // compression methods
  if (p + 2 > hello.length) return found;
  const end = Math.min(hello.length, p + 2 + hello.readUInt16BE(p));
  p += 2;
  while (p + 4 <= end) {
    const type = hello.readUInt16BE(p);
    const length = hello.readUInt16BE(p + 2);
    p += 4;
    if (p + length > end) return found;
    if (type === EXT_SERVER_NAME) found.servername = hostName(hello, p, p + length);
    else if (type === EXT_ALPN) found.acmeTls = offersAcmeTls(hello, p, p + length);
    p += length;
  }
  return found;
}

/** server_name_list: u16 length, then (u8 type, u16 length, name)...; type 0 is host_name. */
function hostName(hello: Buffer, from: number, to: number): string | undefined {
  let q = from + 2;
  while (q + 3 <= to) {
    const nameType = hello[q]!;
    const nameLength = hello.readUInt16BE(q + 1);
    q += 3;
    if (q + nameLength > to) return undefined;
    if (nameType === 0) return hello.toString('latin1', q, q + nameLength).toLowerCase();
    q += nameLength;
  }
  return undefined;
}

/** protocol_name_list: u16 length, then (u8 length, name)... */
function offersAcmeTls(hello: Buffer, from: number, to: number): boolean {
  let q = from + 2;
  while (q < to) {
    const nameLength = hello[q]!;
    q += 1;
    if (q + nameLength > to) return false;
    if (nameLength === ACME_TLS.length && hello.compare(ACME_TLS, 0, ACME_TLS.length, q, q + nameLength) === 0) return true;
    q += nameLength;
  }
  return false;
}

/**
 * How many bytes must have arrived before scanning again is worth it: the
 * whole record when the ClientHello sits in one (the usual case), so a
 * client dribbling its hello a byte at a time costs one scan, not one per
 * byte. A hello over several records is scanned at each arrival (bounded by
 * MAX_CLIENT_HELLO).
 */
export function helloBytesNeeded(data: Buffer): number {
  if (data.length < 9 || data[0] !== RECORD_HANDSHAKE) return Math.min(9, data.length + 1);
  const recordLength = data.readUInt16BE(3);
  const helloLength = 4 + data.readUIntBE(6, 3);
  return helloLength <= recordLength ? 5 + helloLength : data.length + 1;
}
