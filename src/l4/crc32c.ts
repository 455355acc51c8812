// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as RFC 4960 appendix B
// defines it: the checksum of PROXY protocol v2 headers (PP2_TYPE_CRC32C).
// Node 20 has no CRC32C (zlib.crc32 is plain CRC-32 and only from Node 22);
// a table-driven loop over headers of at most a few KB is all it takes.

const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = TABLE[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
