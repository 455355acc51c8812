// Key hashing for Switchyard: XXH64 (Yann Collet's xxHash, 64-bit variant,
// https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md), written out
// here so the C++ addon and the TypeScript reference
// (src/balancer/maglev-reference.ts) compute bit-identical values on every
// machine. XXH64 was picked because it is fast on short inputs (an IPv4 key is
// 4 bytes), has a public specification with test vectors, and is easy to
// reproduce in TypeScript with BigInt. Seeds are fixed constants so tables and
// key placements agree across processes, restarts and hosts.
//
// Client addresses are hashed as their network-order bytes: 4 bytes for IPv4,
// 16 for IPv6, and an IPv4-mapped IPv6 address (::ffff:a.b.c.d) as its 4 IPv4
// bytes, so a dual-stack listener and an IPv4 listener place a client alike.
// The string form is parsed here rather than in TypeScript: one N-API call
// with the string covers IPv4, IPv6 and IPv4-mapped alike, and no bytes object
// is allocated per request. bench/native-lookup.ts measured a TS dotted-quad
// parse + lookupIpv4(u32) within 10-30 ns of lookupIp(string) for IPv4 (both
// ~1.5-2x the bare call), too little to justify a second parser in TS, so
// lookupIp(string) is the path for client addresses; lookupIpv4(u32) is for
// callers that already hold the integer.
#pragma once

#include <arpa/inet.h>
#include <strings.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace switchyard {

// Seeds: arbitrary fixed values; changing any of them moves every key.
constexpr uint64_t kKeySeed = 0x5357594b45593031ULL;     // "SWYKEY01"
constexpr uint64_t kOffsetSeed = 0x5357594f46463031ULL;  // "SWYOFF01"
constexpr uint64_t kSkipSeed = 0x535759534b503031ULL;    // "SWYSKP01"

namespace xxh64_detail {
constexpr uint64_t P1 = 0x9E3779B185EBCA87ULL;
constexpr uint64_t P2 = 0xC2B2AE3D27D4EB4FULL;
constexpr uint64_t P3 = 0x165667B19E3779F9ULL;
constexpr uint64_t P4 = 0x85EBCA77C2B2AE63ULL;
constexpr uint64_t P5 = 0x27D4EB2F165667C5ULL;

inline uint64_t Rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

// Little-endian reads, as the specification requires (byte order of the
// input, not of the host).
inline uint64_t Read64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
inline uint64_t Read32(const uint8_t* p) {
  return static_cast<uint64_t>(p[0]) | static_cast<uint64_t>(p[1]) << 8 |
         static_cast<uint64_t>(p[2]) << 16 | static_cast<uint64_t>(p[3]) << 24;
}
inline uint64_t Round(uint64_t acc, uint64_t input) {
  acc += input * P2;
  acc = Rotl(acc, 31);
  return acc * P1;
}
inline uint64_t MergeRound(uint64_t acc, uint64_t val) {
  acc ^= Round(0, val);
  return acc * P1 + P4;
}
}  // namespace xxh64_detail

inline uint64_t Xxh64(const void* data, size_t len, uint64_t seed) {
  using namespace xxh64_detail;
  const uint8_t* p = static_cast<const uint8_t*>(data);
  const uint8_t* end = p + len;
  uint64_t h;
  if (len >= 32) {
    uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
    for (; p + 32 <= end; p += 32) {
      v1 = Round(v1, Read64(p));
      v2 = Round(v2, Read64(p + 8));
      v3 = Round(v3, Read64(p + 16));
      v4 = Round(v4, Read64(p + 24));
    }
    h = Rotl(v1, 1) + Rotl(v2, 7) + Rotl(v3, 12) + Rotl(v4, 18);
    h = MergeRound(h, v1);
    h = MergeRound(h, v2);
    h = MergeRound(h, v3);
    h = MergeRound(h, v4);
  } else {
    h = seed + P5;
  }
  h += static_cast<uint64_t>(len);
  for (; p + 8 <= end; p += 8) {
    h ^= Round(0, Read64(p));
    h = Rotl(h, 27) * P1 + P4;
  }
  if (p + 4 <= end) {
    h ^= Read32(p) * P1;
    h = Rotl(h, 23) * P2 + P3;
    p += 4;
  }
  for (; p < end; ++p) {
    h ^= static_cast<uint64_t>(*p) * P5;
    h = Rotl(h, 11) * P1;
  }
  h ^= h >> 33;
  h *= P2;
  h ^= h >> 29;
  h *= P3;
  h ^= h >> 32;
  return h;
}

// Hash of an arbitrary key (header: / cookie: values, or any string).
inline uint64_t HashBytes(const void* data, size_t len) { return Xxh64(data, len, kKeySeed); }

// Hash of an IPv4 address given as a host-order 32-bit integer (a.b.c.d =
// a<<24|b<<16|c<<8|d); hashed as its 4 network-order bytes.
inline uint64_t HashIpv4(uint32_t addr) {
  const uint8_t b[4] = {static_cast<uint8_t>(addr >> 24), static_cast<uint8_t>(addr >> 16),
                        static_cast<uint8_t>(addr >> 8), static_cast<uint8_t>(addr)};
  return HashBytes(b, 4);
}

// Parses an IPv4 or IPv6 literal (no zone id, no brackets) and hashes its
// bytes, folding IPv4-mapped IPv6 to IPv4. Returns false if `ip` is not an
// address; `*out` is then untouched.
// Strict dotted quad (what inet_pton(AF_INET) and Node's net.isIPv4 accept:
// four decimal parts 0..255, no leading zeros). Hand-written because it is the
// common case and glibc's inet_pton costs about as much as the N-API call.
inline bool ParseIpv4(const char* s, uint8_t out[4]) {
  for (int part = 0; part < 4; ++part) {
    if (part > 0 && *s++ != '.') return false;
    if (*s < '0' || *s > '9') return false;
    unsigned v = 0;
    const char* start = s;
    while (*s >= '0' && *s <= '9' && s - start < 3) v = v * 10 + static_cast<unsigned>(*s++ - '0');
    if (v > 255 || (*start == '0' && s - start > 1)) return false;
    out[part] = static_cast<uint8_t>(v);
  }
  return *s == '\0';
}

inline bool HashIpString(const char* ip, uint64_t* out) {
  uint8_t b[16];
  // "::ffff:a.b.c.d" is what a dual-stack listener reports for IPv4 clients.
  if (ParseIpv4(ip, b) || (strncasecmp(ip, "::ffff:", 7) == 0 && ParseIpv4(ip + 7, b))) {
    *out = HashBytes(b, 4);
    return true;
  }
  if (inet_pton(AF_INET6, ip, b) != 1) return false;
  static const uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  *out = std::memcmp(b, kMappedPrefix, 12) == 0 ? HashBytes(b + 12, 4) : HashBytes(b, 16);
  return true;
}

// The probe sequence of the fallback lookup (see maglev.h): splitmix64's
// finaliser applied to the previous hash plus the golden-ratio increment.
inline uint64_t Rehash(uint64_t h) {
  h += 0x9E3779B97F4A7C15ULL;
  h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ULL;
  h = (h ^ (h >> 27)) * 0x94D049BB133111EBULL;
  return h ^ (h >> 31);
}

}  // namespace switchyard
