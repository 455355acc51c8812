// Frame parsing and rewriting for the DSR forwarder (pure C++, no sockets):
// what a frame read from the AF_PACKET socket is (an ARP request for the VIP,
// a TCP segment for a balanced VIP port, something to leave to the kernel, or
// something to drop and why), the ARP reply, and the L2 / L3 rewrites.
//
// Frames arrive as virtio_net_hdr + Ethernet frame (PACKET_VNET_HDR). The
// header is passed back unchanged on send so checksum and segmentation
// offloads keep working; the one thing it changes here is the TCP checksum
// field: with VIRTIO_NET_HDR_F_NEEDS_CSUM (CHECKSUM_PARTIAL) it holds the
// pseudo-header sum, not the complemented checksum, so the L3 rewrite updates
// it as a plain one's complement sum (RFC 1624 eqn. 3 without the
// complements).
//
// Checksums are updated incrementally (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m'))
// because the rewrite touches 6 bytes of a frame that may be 64 KB (a GSO
// super-frame): a full recompute would read the whole payload.
#pragma once

#include <cstddef>
#include <cstdint>

namespace switchyard {
namespace dsr {

constexpr size_t kVnetHdrLen = 10;  // struct virtio_net_hdr
constexpr size_t kEthHdrLen = 14;
constexpr uint8_t kVnetNeedsCsum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM

// Why a frame for the VIP was not forwarded. Order = DropReasonName().
enum Drop : uint32_t {
  kDropMalformed = 0,  // truncated or inconsistent Ethernet / IPv4 / TCP header
  kDropFragment,       // an IPv4 fragment (no ports to balance on)
  kDropNotTcp,         // UDP, ICMP, ... to the VIP
  kDropPort,           // TCP to a VIP port not balanced
  kDropNoServer,       // no eligible server for a new flow
  kDropTxError,        // the send failed
  kDropRxOverflow,     // frames the kernel dropped because the socket's buffer was full (any frame,
                       // not only the VIP's: PACKET_STATISTICS, not counted in rx)
  kDropCount,
};
const char* DropReasonName(uint32_t reason);

enum class Verdict {
  kPass,     // not for the VIP, or not for this host's MAC: the kernel has it too
  kArp,      // an ARP request for the VIP: answer with BuildArpReply
  kForward,  // a TCP segment for a balanced port: pick a server and rewrite
  kDrop,     // for the VIP but not forwardable: see Frame::drop
};

struct Frame {
  uint8_t* vnet;  // the virtio_net_hdr
  uint8_t* eth;   // the Ethernet frame
  size_t eth_len;
  Verdict verdict;
  Drop drop;
  // kForward: offsets into eth and the TCP fields that matter.
  size_t ip_off;
  size_t tcp_off;
  uint32_t saddr;  // network byte order, as in the header
  uint16_t sport;  // host order
  uint16_t dport;  // host order
  uint8_t tcp_flags;
};

constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04;

struct Target {
  uint32_t vip;          // network byte order
  const uint8_t* mac;    // this interface's MAC (6 bytes)
  const uint8_t* ports;  // bitmap of balanced ports, 8192 bytes
};

// Classifies a frame of `len` bytes (virtio_net_hdr included). Never reads
// outside [buf, buf + len).
void Classify(uint8_t* buf, size_t len, const Target& t, Frame* f);

// Turns the ARP request in f into the reply (in place): who-has VIP -> VIP is
// at `mac`. Returns the frame length to send (vnet header included, zeroed).
size_t BuildArpReply(Frame* f, const uint8_t* mac);

// L2DSR: destination MAC to the server's, source MAC to ours (a bridge that
// saw the client's MAC as source on our port would learn it there).
void RewriteL2(Frame* f, const uint8_t* server_mac, const uint8_t* own_mac);

// L3DSR: L2 rewrite, then DSCP (ECN bits kept) and destination address set,
// IPv4 and TCP checksums updated incrementally.
void RewriteL3(Frame* f, const uint8_t* server_mac, const uint8_t* own_mac, uint32_t server_ip,
               uint8_t dscp);

// RFC 1624 eqn. 3 on a checksum field for one 16-bit word changed from `from`
// to `to` (all values as stored, in network byte order). `partial`: the
// field holds a non-complemented sum (CHECKSUM_PARTIAL).
uint16_t CsumReplace16(uint16_t check, uint16_t from, uint16_t to, bool partial);
uint16_t CsumReplace32(uint16_t check, uint32_t from, uint32_t to, bool partial);

}  // namespace dsr
}  // namespace switchyard
