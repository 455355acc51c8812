// The PROXY protocol parser and encoders (src/l4/proxy-protocol.ts) against
// haproxy's doc/proxy-protocol.txt: every malformed header is refused with
// its reason, byte-wise prefixes of a valid header are "incomplete", never a
// verdict, and what the encoders write parses back to the same origin.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crc32c } from '../../src/l4/crc32c.js';
import { encodeProxyV1, encodeProxyV2, parseProxyHeader, PROXY_V2_LOCAL, V2_SIGNATURE, type ConnectionOrigin } from '../../src/l4/proxy-protocol.js';

const v1 = (line: string): Buffer => Buffer.from(line, 'latin1');

/** A v2 header: ver_cmd, family byte, address block and TLVs, with the length field computed unless given. */
function v2(verCmd: number, family: number, body: Buffer, length?: number): Buffer {
  const head = Buffer.alloc(4);
  head[0] = verCmd;
  head[1] = family;
  head.writeUInt16BE(length ?? body.length, 2);
  return Buffer.concat([V2_SIGNATURE, head, body]);
}
const tlv = (type: number, value: Buffer): Buffer => Buffer.concat([Buffer.from([type, value.length >> 8, value.length & 0xff]), value]);
/** 192.0.2.1:56324 → 198.51.100.7:443 */
const INET = Buffer.from([192, 0, 2, 1, 198, 51, 100, 7, 0xdc, 0x04, 0x01, 0xbb]);
const INET6 = Buffer.concat([Buffer.from('20010db8000000000000000000000001', 'hex'), Buffer.from('20010db8000000000000000000000002', 'hex'), Buffer.from([0x30, 0x39, 0x00, 0x50])]);

/** A v2 TCP4 header with a CRC32C TLV holding the right checksum (or `corrupt` xor it). */
function withCrc(corrupt = 0, extra: Buffer = Buffer.alloc(0)): Buffer {
  const header = v2(0x21, 0x11, Buffer.concat([INET, extra, tlv(0x03, Buffer.alloc(4))]));
  const crc = crc32c(header);
  header.writeUInt32BE((crc ^ corrupt) >>> 0, header.length - 4);
  return header;
}

describe('PROXY protocol: CRC32C', () => {
  it('matches the RFC 3720 check value', () => {
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
    assert.equal(crc32c(Buffer.alloc(32)), 0x8a9136aa);
  });
});

describe('PROXY protocol: valid headers', () => {
  const cases: Array<[string, Buffer, ConnectionOrigin | undefined]> = [
    ['v1 TCP4', v1('PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n'), { sourceAddress: '192.0.2.1', sourcePort: 56324, destAddress: '198.51.100.7', destPort: 443 }],
    ['v1 TCP6, canonicalised', v1('PROXY TCP6 2001:DB8:0:0:0:0:0:1 2001:db8::2 0 65535\r\n'), { sourceAddress: '2001:db8::1', sourcePort: 0, destAddress: '2001:db8::2', destPort: 65535 }],
    ['v1 UNKNOWN short form', v1('PROXY UNKNOWN\r\n'), undefined],
    ['v1 UNKNOWN with ignored rest', v1('PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n'), undefined],
    ['v1 longest line (107 bytes)', v1(`PROXY UNKNOWN ${'f'.repeat(39)} ${'f'.repeat(39)} 65535 65535\r\n`), undefined],
    ['v2 PROXY TCP4', v2(0x21, 0x11, INET), { sourceAddress: '192.0.2.1', sourcePort: 56324, destAddress: '198.51.100.7', destPort: 443 }],
    ['v2 PROXY TCP6', v2(0x21, 0x21, INET6), { sourceAddress: '2001:db8::1', sourcePort: 12345, destAddress: '2001:db8::2', destPort: 80 }],
    ['v2 LOCAL ignores addresses', v2(0x20, 0x11, INET), undefined],
    ['v2 LOCAL UNSPEC empty', PROXY_V2_LOCAL, undefined],
    ['v2 PROXY UNSPEC: real endpoints', v2(0x21, 0x00, Buffer.alloc(0)), undefined],
    ['v2 PROXY UNIX stream: real endpoints', v2(0x21, 0x31, Buffer.alloc(216)), undefined],
    ['v2 with TLVs (ALPN, authority, NOOP, unique id)', v2(0x21, 0x11, Buffer.concat([INET, tlv(1, v1('h2')), tlv(2, v1('a.example')), tlv(4, Buffer.alloc(0)), tlv(5, Buffer.alloc(128))])), { sourceAddress: '192.0.2.1', sourcePort: 56324, destAddress: '198.51.100.7', destPort: 443 }],
    ['v2 with an SSL TLV and sub-TLVs', v2(0x21, 0x11, Buffer.concat([INET, tlv(0x20, Buffer.concat([Buffer.from([1, 0, 0, 0, 0]), tlv(0x21, v1('TLSv1.3'))]))])), { sourceAddress: '192.0.2.1', sourcePort: 56324, destAddress: '198.51.100.7', destPort: 443 }],
    ['v2 with a good CRC32C', withCrc(), { sourceAddress: '192.0.2.1', sourcePort: 56324, destAddress: '198.51.100.7', destPort: 443 }],
  ];
  for (const [name, header, origin] of cases) {
    it(name, () => {
      const payload = Buffer.from('GET / HTTP/1.1\r\n');
      const result = parseProxyHeader(Buffer.concat([header, payload]));
      assert.deepEqual(result, { kind: 'header', version: header[0] === 0x50 ? 1 : 2, length: header.length, origin });
      // Every strict prefix is undecided: a header split over reads is waited for, not judged.
      for (let n = 0; n < header.length; n++) assert.deepEqual(parseProxyHeader(header.subarray(0, n)), { kind: 'incomplete' }, `prefix of ${n} bytes`);
    });
  }
});

describe('PROXY protocol: malformed headers are refused', () => {
  const cases: Array<[string, Buffer, RegExp]> = [
    ['wrong signature (plain HTTP)', v1('GET / HTTP/1.1\r\n'), /not a PROXY protocol header/],
    ['wrong signature (v2 with one byte off)', Buffer.concat([V2_SIGNATURE.subarray(0, 11), Buffer.from([0x0b, 0x21, 0x11, 0, 12]), INET]), /not a PROXY protocol header/],
    ['lower-case v1 keyword', v1('proxy TCP4 192.0.2.1 198.51.100.7 1 2\r\n'), /not a PROXY protocol header/],
    ['v2 bad version nibble (1)', v2(0x11, 0x11, INET), /version nibble must be 2, got 1/],
    ['v2 bad version nibble (3)', v2(0x31, 0x11, INET), /version nibble must be 2, got 3/],
    ['v2 bad command', v2(0x22, 0x11, INET), /command must be LOCAL \(0\) or PROXY \(1\), got 2/],
    ['v2 bad family', v2(0x21, 0x41, INET), /family\/transport byte 0x41/],
    ['v2 bad transport', v2(0x21, 0x13, INET), /family\/transport byte 0x13/],
    ['v2 family without transport', v2(0x21, 0x10, INET), /family\/transport byte 0x10/],
    ['v2 datagram on a stream', v2(0x21, 0x12, INET), /datagram/],
    ['v2 length overflow (over the limit)', v2(0x21, 0x11, INET, 0xffff), /over the 4096-byte limit/],
    ['v2 length shorter than the address block', v2(0x21, 0x21, INET), /shorter than the 36-byte address block/],
    ['v2 TLV header truncated', v2(0x21, 0x11, Buffer.concat([INET, Buffer.from([0x04, 0x00])])), /TLV truncated/],
    ['v2 TLV overrunning the header', v2(0x21, 0x11, Buffer.concat([INET, Buffer.from([0x02, 0x00, 0x10]), v1('short')])), /TLV 0x02 of 16 bytes overruns/],
    ['v2 SSL sub-TLV overrunning its TLV', v2(0x21, 0x11, Buffer.concat([INET, tlv(0x20, Buffer.concat([Buffer.from([1, 0, 0, 0, 0]), Buffer.from([0x21, 0x00, 0x09]), v1('TLS')]))])), /TLV 0x21 of 9 bytes overruns/],
    ['v2 SSL TLV shorter than its fixed part', v2(0x21, 0x11, Buffer.concat([INET, tlv(0x20, Buffer.from([1, 0]))])), /SSL TLV shorter/],
    ['v2 unique id over 128 bytes', v2(0x21, 0x11, Buffer.concat([INET, tlv(5, Buffer.alloc(129))])), /UNIQUE_ID TLV over 128/],
    ['v2 bad CRC32C', withCrc(1), /CRC32C does not match/],
    ['v2 CRC32C of the wrong size', v2(0x21, 0x11, Buffer.concat([INET, tlv(0x03, Buffer.alloc(3))])), /must hold 4 bytes/],
    ['v2 two CRC32C TLVs', withCrc(0, tlv(0x03, Buffer.alloc(4))), /two CRC32C/],
    ['v1 too long (no CRLF in 107 bytes)', v1(`PROXY UNKNOWN ${'f'.repeat(100)}`), /longer than 107/],
    ['v1 too long (CRLF at byte 108)', v1(`PROXY UNKNOWN ${'f'.repeat(40)} ${'f'.repeat(39)} 65535 65535\r\n`), /longer than 107/],
    ['v1 bare LF', v1('PROXY TCP4 192.0.2.1 198.51.100.7 1 2\n'), /LF without CR/],
    ['v1 CR without LF', v1('PROXY TCP4 192.0.2.1 198.51.100.7 1 2\rX'), /CR without LF/],
    ['v1 NUL byte', v1('PROXY TCP4 192.0.2.1\x00 198.51.100.7 1 2\r\n'), /not printable/],
    ['v1 unknown protocol', v1('PROXY UDP4 192.0.2.1 198.51.100.7 1 2\r\n'), /must be TCP4, TCP6 or UNKNOWN/],
    ['v1 double space', v1('PROXY TCP4  192.0.2.1 198.51.100.7 1 2\r\n'), /single spaces/],
    ['v1 missing port', v1('PROXY TCP4 192.0.2.1 198.51.100.7 1\r\n'), /single spaces/],
    ['v1 trailing space', v1('PROXY TCP4 192.0.2.1 198.51.100.7 1 2 \r\n'), /single spaces/],
    ['v1 IPv4 octet over 255', v1('PROXY TCP4 192.0.2.256 198.51.100.7 1 2\r\n'), /source address is not a canonical IPv4/],
    ['v1 IPv4 leading zero', v1('PROXY TCP4 192.0.2.1 198.051.100.7 1 2\r\n'), /destination address is not a canonical IPv4/],
    ['v1 IPv4 three octets', v1('PROXY TCP4 192.0.2 198.51.100.7 1 2\r\n'), /source address/],
    ['v1 IPv6 address under TCP4', v1('PROXY TCP4 ::1 198.51.100.7 1 2\r\n'), /source address is not a canonical IPv4/],
    ['v1 IPv4 address under TCP6', v1('PROXY TCP6 ::1 198.51.100.7 1 2\r\n'), /destination address is not a canonical IPv6/],
    ['v1 IPv6 with two "::"', v1('PROXY TCP6 1::2::3 ::1 1 2\r\n'), /source address is not a canonical IPv6/],
    ['v1 IPv6 with a five-digit group', v1('PROXY TCP6 1:2:3:4:5:6:7:00008 ::1 1 2\r\n'), /source address/],
    ['v1 IPv6 with a zone', v1('PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n'), /source address/],
    ['v1 IPv6 too few groups', v1('PROXY TCP6 1:2:3:4:5:6:7 ::1 1 2\r\n'), /source address/],
    ['v1 port over 65535', v1('PROXY TCP4 192.0.2.1 198.51.100.7 65536 2\r\n'), /source port/],
    ['v1 port with a leading zero', v1('PROXY TCP4 192.0.2.1 198.51.100.7 1 080\r\n'), /destination port/],
    ['v1 negative port', v1('PROXY TCP4 192.0.2.1 198.51.100.7 -1 2\r\n'), /source port/],
    ['v1 port with a sign', v1('PROXY TCP4 192.0.2.1 198.51.100.7 +1 2\r\n'), /source port/],
  ];
  for (const [name, header, reason] of cases) {
    it(name, () => {
      const result = parseProxyHeader(header);
      assert.equal(result.kind, 'invalid', `got ${JSON.stringify(result)}`);
      assert.match((result as { reason: string }).reason, reason);
    });
  }

  it('a wrong first byte is refused at once, without waiting for more', () => {
    assert.equal(parseProxyHeader(Buffer.from('G')).kind, 'invalid');
    assert.equal(parseProxyHeader(Buffer.from([0x0d, 0x0a, 0x0d, 0x0b])).kind, 'invalid');
  });
});

describe('PROXY protocol: encoders', () => {
  const origins: ConnectionOrigin[] = [
    { sourceAddress: '203.0.113.9', sourcePort: 40000, destAddress: '127.0.0.1', destPort: 5432 },
    { sourceAddress: '2001:db8::9', sourcePort: 1, destAddress: '::1', destPort: 65535 },
  ];
  for (const origin of origins) {
    it(`v1 and v2 round-trip ${origin.sourceAddress}`, () => {
      for (const encoded of [encodeProxyV1(origin), encodeProxyV2(origin)]) {
        assert.deepEqual(parseProxyHeader(encoded), { kind: 'header', version: encoded[0] === 0x50 ? 1 : 2, length: encoded.length, origin });
      }
    });
  }

  it('mixed families are written as IPv6 (IPv4-mapped)', () => {
    const mixed = { sourceAddress: '192.0.2.1', sourcePort: 5, destAddress: '::1', destPort: 6 };
    assert.equal(encodeProxyV1(mixed).toString('latin1'), 'PROXY TCP6 ::ffff:192.0.2.1 ::1 5 6\r\n');
    const parsed = parseProxyHeader(encodeProxyV2(mixed));
    assert.deepEqual(parsed.kind === 'header' && parsed.origin, { ...mixed, sourceAddress: '::ffff:192.0.2.1' });
  });

  it('matches the specification\'s examples byte for byte', () => {
    assert.equal(encodeProxyV1(origins[0]!).toString('latin1'), 'PROXY TCP4 203.0.113.9 127.0.0.1 40000 5432\r\n');
    assert.equal(encodeProxyV2(origins[0]!).toString('hex'), `${V2_SIGNATURE.toString('hex')}2111000c` + 'cb007109' + '7f000001' + '9c40' + '1538');
  });
});
