#include "dsr_packet.h"

#include <arpa/inet.h>

#include <cstring>

namespace switchyard {
namespace dsr {
namespace {

constexpr uint16_t kEthIp = 0x0800, kEthArp = 0x0806;
constexpr uint8_t kProtoTcp = 6;

inline uint16_t Get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint16_t Raw16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline void PutRaw16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

// One's complement addition of 16-bit words (host arithmetic on values that
// are all in the same byte order: the sum is byte-order independent, RFC 1071).
inline uint32_t Fold(uint32_t sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  return (sum & 0xffff) + (sum >> 16);
}

}  // namespace

const char* DropReasonName(uint32_t reason) {
  static const char* const kNames[kDropCount] = {"malformed", "fragment", "not_tcp",    "port",
                                                 "no_server", "tx_error", "rx_overflow"};
  return reason < kDropCount ? kNames[reason] : "unknown";
}

uint16_t CsumReplace16(uint16_t check, uint16_t from, uint16_t to, bool partial) {
  // HC' = ~(~HC + ~m + m'); for a plain sum S' = S + ~m + m'.
  const uint32_t hc = partial ? check : static_cast<uint16_t>(~check);
  const uint32_t sum = Fold(hc + static_cast<uint16_t>(~from) + to);
  return partial ? static_cast<uint16_t>(sum) : static_cast<uint16_t>(~sum);
}

uint16_t CsumReplace32(uint16_t check, uint32_t from, uint32_t to, bool partial) {
  const uint32_t hc = partial ? check : static_cast<uint16_t>(~check);
  const uint32_t sum = Fold(hc + static_cast<uint16_t>(~from) + static_cast<uint16_t>(~(from >> 16)) +
                            (to & 0xffff) + (to >> 16));
  return partial ? static_cast<uint16_t>(sum) : static_cast<uint16_t>(~sum);
}

void Classify(uint8_t* buf, size_t len, const Target& t, Frame* f) {
  f->verdict = Verdict::kPass;
  f->drop = kDropMalformed;
  if (len < kVnetHdrLen + kEthHdrLen) {
    f->verdict = Verdict::kDrop;  // too short to be anything the kernel would take either
    return;
  }
  f->vnet = buf;
  f->eth = buf + kVnetHdrLen;
  f->eth_len = len - kVnetHdrLen;
  const uint8_t* eth = f->eth;
  const uint16_t type = Get16(eth + 12);
  const bool to_us = std::memcmp(eth, t.mac, 6) == 0;

  if (type == kEthArp) {
    // Ethernet/IPv4 request (htype 1, ptype 0x0800, hlen 6, plen 4, op 1) for the VIP.
    const uint8_t* a = eth + kEthHdrLen;
    if (f->eth_len < kEthHdrLen + 28) return;
    if (Get16(a) != 1 || Get16(a + 2) != kEthIp || a[4] != 6 || a[5] != 4 || Get16(a + 6) != 1) return;
    uint32_t tpa;
    std::memcpy(&tpa, a + 24, 4);
    if (tpa == t.vip) f->verdict = Verdict::kArp;
    return;
  }
  if (type != kEthIp || !to_us) return;  // VLAN tags, IPv6, frames for other MACs: the kernel's

  const size_t ip_off = kEthHdrLen;
  if (f->eth_len < ip_off + 20) return;  // cannot tell whether it is for the VIP: the kernel drops it
  const uint8_t* ip = eth + ip_off;
  uint32_t daddr;
  std::memcpy(&daddr, ip + 16, 4);
  if (daddr != t.vip) return;

  f->verdict = Verdict::kDrop;
  const size_t ihl = static_cast<size_t>(ip[0] & 0x0f) * 4;
  const size_t tot = Get16(ip + 2);
  // tot may be shorter than the frame (Ethernet padding), never longer.
  if ((ip[0] >> 4) != 4 || ihl < 20 || tot < ihl || ip_off + tot > f->eth_len) return;
  const uint16_t frag = Get16(ip + 6);
  if ((frag & 0x3fff) != 0) {  // MF set or an offset: a fragment
    f->drop = kDropFragment;
    return;
  }
  if (ip[9] != kProtoTcp) {
    f->drop = kDropNotTcp;
    return;
  }
  const size_t tcp_off = ip_off + ihl;
  if (tot - ihl < 20) return;
  const uint8_t* tcp = eth + tcp_off;
  const size_t doff = static_cast<size_t>(tcp[12] >> 4) * 4;
  if (doff < 20 || doff > tot - ihl) return;
  const uint16_t dport = Get16(tcp + 2);
  if (!(t.ports[dport >> 3] & (1u << (dport & 7)))) {
    f->drop = kDropPort;
    return;
  }
  f->verdict = Verdict::kForward;
  f->ip_off = ip_off;
  f->tcp_off = tcp_off;
  std::memcpy(&f->saddr, ip + 12, 4);
  f->sport = Get16(tcp);
  f->dport = dport;
  f->tcp_flags = tcp[13];
}

size_t BuildArpReply(Frame* f, const uint8_t* mac) {
  uint8_t* eth = f->eth;
  uint8_t* a = eth + kEthHdrLen;
  uint8_t sha[6], spa[4], tpa[4];
  std::memcpy(sha, a + 8, 6);
  std::memcpy(spa, a + 14, 4);
  std::memcpy(tpa, a + 24, 4);
  std::memcpy(eth, sha, 6);
  std::memcpy(eth + 6, mac, 6);
  a[6] = 0;
  a[7] = 2;  // reply
  std::memcpy(a + 8, mac, 6);
  std::memcpy(a + 14, tpa, 4);  // the VIP
  std::memcpy(a + 18, sha, 6);
  std::memcpy(a + 24, spa, 4);
  std::memset(f->vnet, 0, kVnetHdrLen);
  return kVnetHdrLen + kEthHdrLen + 28;
}

void RewriteL2(Frame* f, const uint8_t* server_mac, const uint8_t* own_mac) {
  std::memcpy(f->eth, server_mac, 6);
  std::memcpy(f->eth + 6, own_mac, 6);
}

void RewriteL3(Frame* f, const uint8_t* server_mac, const uint8_t* own_mac, uint32_t server_ip,
               uint8_t dscp) {
  RewriteL2(f, server_mac, own_mac);
  uint8_t* ip = f->eth + f->ip_off;
  uint8_t* tcp = f->eth + f->tcp_off;

  // DSCP: the first 16-bit word of the header is version/IHL + TOS.
  const uint16_t word0 = Raw16(ip);
  ip[1] = static_cast<uint8_t>(dscp << 2 | (ip[1] & 0x03));
  uint16_t ip_check = CsumReplace16(Raw16(ip + 10), word0, Raw16(ip), false);

  uint32_t old_daddr;
  std::memcpy(&old_daddr, ip + 16, 4);
  std::memcpy(ip + 16, &server_ip, 4);
  PutRaw16(ip + 10, CsumReplace32(ip_check, old_daddr, server_ip, false));

  // The TCP checksum covers the pseudo-header's destination address.
  const bool partial = (f->vnet[0] & kVnetNeedsCsum) != 0;
  PutRaw16(tcp + 16, CsumReplace32(Raw16(tcp + 16), old_daddr, server_ip, partial));
}

}  // namespace dsr
}  // namespace switchyard
