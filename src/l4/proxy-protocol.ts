// PROXY protocol v1 and v2 (haproxy's doc/proxy-protocol.txt): a strict
// parser for headers received from trusted L4 balancers, and the encoders for
// headers Switchyard sends to servers. Written by hand on purpose: this is a
// security boundary (the address it yields is believed for X-Forwarded-For,
// source hashing and rate-limit keys), so anything that does not match the
// specification exactly is refused rather than guessed at.
import { crc32c } from './crc32c.js';
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6, toIpv6Bytes } from './ip-text.js';

/** The client side of a connection as the PROXY header reports it (or as the socket shows it). */
export interface ConnectionOrigin {
  sourceAddress: string;
  sourcePort: number;
  destAddress: string;
  destPort: number;
}

export type ParseResult =
  | { kind: 'incomplete' }
  | { kind: 'invalid'; reason: string }
  /** `origin` undefined: LOCAL, UNKNOWN or an unspecified family: the real endpoints stand. */
  | { kind: 'header'; version: 1 | 2; length: number; origin: ConnectionOrigin | undefined };

export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** The longest v1 line, CRLF included (the specification's worst case). */
export const V1_MAX_LENGTH = 107;
/**
 * The largest v2 header accepted: the address block and TLVs of real senders
 * (ALPN, authority, a 128-byte unique id, SSL details) fit many times over;
 * the 64 KB the length field allows would only be buffered for an attacker.
 */
export const V2_MAX_LENGTH = 4096;

const CMD_LOCAL = 0x0;
const CMD_PROXY = 0x1;
/** Family and transport bytes the specification defines (UNSPEC, TCP/UDP over IPv4/IPv6, UNIX stream/datagram). */
const ADDRESS_BYTES = new Map([
  [0x00, 0],
  [0x11, 12],
  [0x12, 12],
  [0x21, 36],
  [0x22, 36],
  [0x31, 216],
  [0x32, 216],
]);
const TLV_CRC32C = 0x03;
const TLV_UNIQUE_ID = 0x05;
const TLV_SSL = 0x20;
const UNIQUE_ID_MAX = 128;

const invalid = (reason: string): ParseResult => ({ kind: 'invalid', reason });

/**
 * Decides on the bytes received so far: a complete header (and its length:
 * the rest is the client's payload), more bytes needed, or a refusal. A
 * prefix that already differs from both versions is refused at once.
 */
export function parseProxyHeader(buf: Buffer): ParseResult {
  if (buf.length === 0) return { kind: 'incomplete' };
  if (startsLike(buf, V2_SIGNATURE)) return buf.length < 16 ? { kind: 'incomplete' } : parseV2(buf);
  if (startsLike(buf, V1_PREFIX)) return parseV1(buf);
  return invalid('not a PROXY protocol header (no v1 "PROXY " or v2 signature)');
}

/** The bytes so far agree with `prefix` (as far as either goes). */
function startsLike(buf: Buffer, prefix: Buffer): boolean {
  const n = Math.min(buf.length, prefix.length);
  return buf.compare(prefix, 0, n, 0, n) === 0;
}

function parseV1(buf: Buffer): ParseResult {
  // The CR can be at most at index 105, so that CRLF ends within 107 bytes.
  const window = Math.min(buf.length, V1_MAX_LENGTH - 1);
  let end = -1;
  for (let i = 0; i < window; i++) {
    const c = buf[i]!;
    if (c === 0x0a) return invalid('v1 line has a LF without CR');
    if (c === 0x0d) {
      if (i + 1 >= buf.length) return { kind: 'incomplete' };
      if (buf[i + 1] !== 0x0a) return invalid('v1 line has a CR without LF');
      end = i;
      break;
    }
    if (c < 0x20 || c > 0x7e) return invalid('v1 line has a byte that is not printable US-ASCII');
  }
  if (end < 0) return buf.length >= V1_MAX_LENGTH - 1 ? invalid(`v1 line longer than ${V1_MAX_LENGTH} bytes`) : { kind: 'incomplete' };
  const length = end + 2;
  const parts = buf.toString('latin1', 0, end).split(' ');
  const proto = parts[1];
  // UNKNOWN: the sender could not tell; the rest of the line is ignored, as the specification says.
  if (proto === 'UNKNOWN') return { kind: 'header', version: 1, length, origin: undefined };
  if (proto !== 'TCP4' && proto !== 'TCP6') return invalid(`v1 protocol must be TCP4, TCP6 or UNKNOWN, got ${JSON.stringify(proto?.slice(0, 16))}`);
  if (parts.length !== 6) return invalid('v1 line must be "PROXY TCPn SRC DST SPORT DPORT" separated by single spaces');
  const [, , src, dst, sport, dport] = parts as [string, string, string, string, string, string];
  const parseAddr = proto === 'TCP4' ? parseIpv4 : parseIpv6;
  const format = proto === 'TCP4' ? formatIpv4 : formatIpv6;
  const srcBytes = parseAddr(src);
  const dstBytes = parseAddr(dst);
  if (srcBytes === undefined) return invalid(`v1 source address is not a canonical ${proto === 'TCP4' ? 'IPv4' : 'IPv6'} address`);
  if (dstBytes === undefined) return invalid(`v1 destination address is not a canonical ${proto === 'TCP4' ? 'IPv4' : 'IPv6'} address`);
  const sourcePort = parsePort(sport);
  const destPort = parsePort(dport);
  if (sourcePort === undefined) return invalid('v1 source port must be 0..65535 without leading zeros');
  if (destPort === undefined) return invalid('v1 destination port must be 0..65535 without leading zeros');
  return { kind: 'header', version: 1, length, origin: { sourceAddress: format(srcBytes), sourcePort, destAddress: format(dstBytes), destPort } };
}

function parsePort(text: string): number | undefined {
  if (!/^(0|[1-9]\d{0,4})$/.test(text)) return undefined;
  const port = Number(text);
  return port <= 65535 ? port : undefined;
}

function parseV2(buf: Buffer): ParseResult {
  const version = buf[12]! >> 4;
  const command = buf[12]! & 0x0f;
  if (version !== 2) return invalid(`v2 version nibble must be 2, got ${version}`);
  if (command !== CMD_LOCAL && command !== CMD_PROXY) return invalid(`v2 command must be LOCAL (0) or PROXY (1), got ${command}`);
  const family = buf[13]!;
  const addressBytes = ADDRESS_BYTES.get(family);
  if (addressBytes === undefined) return invalid(`v2 family/transport byte 0x${family.toString(16).padStart(2, '0')} is not defined`);
  const length = 16 + buf.readUInt16BE(14);
  if (length > V2_MAX_LENGTH) return invalid(`v2 header of ${length} bytes is over the ${V2_MAX_LENGTH}-byte limit`);
  if (buf.length < length) return { kind: 'incomplete' };
  if (length - 16 < addressBytes) return invalid(`v2 length ${length - 16} is shorter than the ${addressBytes}-byte address block`);
  const tlvProblem = checkTlvs(buf.subarray(0, length), 16 + addressBytes);
  if (tlvProblem !== undefined) return invalid(tlvProblem);
  if (command === CMD_LOCAL) return { kind: 'header', version: 2, length, origin: undefined };
  // A datagram family cannot describe a stream connection; UNSPEC and UNIX fall back to the real endpoints.
  if ((family & 0x0f) === 0x2) return invalid('v2 announces a datagram transport on a stream connection');
  if (family !== 0x11 && family !== 0x21) return { kind: 'header', version: 2, length, origin: undefined };
  const v4 = family === 0x11;
  const size = v4 ? 4 : 16;
  const format = v4 ? formatIpv4 : formatIpv6;
  return {
    kind: 'header',
    version: 2,
    length,
    origin: {
      sourceAddress: format(buf, 16),
      destAddress: format(buf, 16 + size),
      sourcePort: buf.readUInt16BE(16 + 2 * size),
      destPort: buf.readUInt16BE(18 + 2 * size),
    },
  };
}

/** Every TLV within the header's length; a CRC32C, if present, must match the header. */
function checkTlvs(header: Buffer, start: number): string | undefined {
  let crcAt = -1;
  const problem = walkTlvs(header, start, header.length, (type, at, len) => {
    if (type === TLV_CRC32C) {
      if (len !== 4) return `v2 CRC32C TLV must hold 4 bytes, holds ${len}`;
      if (crcAt >= 0) return 'v2 header has two CRC32C TLVs';
      crcAt = at;
    } else if (type === TLV_UNIQUE_ID && len > UNIQUE_ID_MAX) {
      return `v2 UNIQUE_ID TLV over ${UNIQUE_ID_MAX} bytes`;
    } else if (type === TLV_SSL) {
      // client (1 byte), verify (4), then sub-TLVs bounded by this TLV.
      if (len < 5) return 'v2 SSL TLV shorter than its 5-byte fixed part';
      return walkTlvs(header, at + 5, at + len, () => undefined);
    }
    return undefined;
  });
  if (problem !== undefined) return problem;
  if (crcAt >= 0) {
    const expected = header.readUInt32BE(crcAt);
    const zeroed = Buffer.from(header);
    zeroed.fill(0, crcAt, crcAt + 4);
    if (crc32c(zeroed) !== expected) return 'v2 CRC32C does not match the header';
  }
  return undefined;
}

function walkTlvs(buf: Buffer, from: number, to: number, visit: (type: number, valueAt: number, length: number) => string | undefined): string | undefined {
  let at = from;
  while (at < to) {
    if (to - at < 3) return 'v2 TLV truncated (fewer than 3 bytes of type and length)';
    const type = buf[at]!;
    const len = buf.readUInt16BE(at + 1);
    if (at + 3 + len > to) return `v2 TLV 0x${type.toString(16).padStart(2, '0')} of ${len} bytes overruns the header`;
    const problem = visit(type, at + 3, len);
    if (problem !== undefined) return problem;
    at += 3 + len;
  }
  return undefined;
}

/** Both ends in one family: IPv4 if both are IPv4, else both as IPv6 (IPv4-mapped). */
function sameFamily(origin: ConnectionOrigin): { v4: boolean; src: Uint8Array; dst: Uint8Array } | undefined {
  const src4 = parseIpv4(origin.sourceAddress);
  const dst4 = parseIpv4(origin.destAddress);
  if (src4 !== undefined && dst4 !== undefined) return { v4: true, src: src4, dst: dst4 };
  const src = toIpv6Bytes(origin.sourceAddress);
  const dst = toIpv6Bytes(origin.destAddress);
  return src === undefined || dst === undefined ? undefined : { v4: false, src, dst };
}

/** "PROXY TCP4 ..." for the origin; "PROXY UNKNOWN" if its addresses cannot be written (never for TCP sockets). */
export function encodeProxyV1(origin: ConnectionOrigin): Buffer {
  const ends = sameFamily(origin);
  if (ends === undefined) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  const format = ends.v4 ? formatIpv4 : formatIpv6;
  const line = `PROXY ${ends.v4 ? 'TCP4' : 'TCP6'} ${format(ends.src)} ${format(ends.dst)} ${origin.sourcePort} ${origin.destPort}\r\n`;
  return Buffer.from(line, 'latin1');
}

/** v2 LOCAL, UNSPEC, no addresses: a connection the proxy makes on its own behalf (health checks). */
export const PROXY_V2_LOCAL = Buffer.concat([V2_SIGNATURE, Buffer.from([0x20 | CMD_LOCAL, 0x00, 0, 0])]);

/** A v2 PROXY command over TCP, without TLVs; LOCAL if the addresses cannot be written. */
export function encodeProxyV2(origin: ConnectionOrigin): Buffer {
  const ends = sameFamily(origin);
  if (ends === undefined) return PROXY_V2_LOCAL;
  const size = ends.v4 ? 4 : 16;
  const out = Buffer.alloc(16 + 2 * size + 4);
  V2_SIGNATURE.copy(out, 0);
  out[12] = 0x20 | CMD_PROXY;
  out[13] = ends.v4 ? 0x11 : 0x21;
  out.writeUInt16BE(2 * size + 4, 14);
  out.set(ends.src, 16);
  out.set(ends.dst, 16 + size);
  out.writeUInt16BE(origin.sourcePort, 16 + 2 * size);
  out.writeUInt16BE(origin.destPort, 18 + 2 * size);
  return out;
}
