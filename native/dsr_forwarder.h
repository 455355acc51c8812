// The DSR forwarder (issue 13 item 2): AF_PACKET sockets on one interface,
// one native thread each (PACKET_FANOUT_HASH across them when there are
// several, so a connection's frames always meet the same thread and its flow
// table), off the Node event loop. Each thread reads frames (PACKET_VNET_HDR:
// offloads stay on; PACKET_IGNORE_OUTGOING: it never sees its own sends),
// answers ARP for the VIP, and sends TCP segments for balanced VIP ports to
// a server: the connection's tracked server if it still exists, else the
// weighted Maglev table on a hash of the 5-tuple, skipping servers the
// shared-memory region marks unhealthy or drained (new flows only: a tracked
// connection stays where it is). Any segment but an RST that finds no entry
// creates one (normally the SYN; a mid-connection segment after a restart or
// an expiry pins the connection to the server the hash gives now; a full table
// leaves it untracked, see dsr_flow_table.h). Everything else for the VIP is counted and
// dropped; frames not for the VIP are left to the kernel, which gets them too
// (a BPF filter on the sockets keeps them from being copied to the forwarder
// at all; `passed` counts the few that get through, e.g. for another MAC).
//
// Server changes (SetServers) build a new immutable Config; each thread picks
// it up at its next batch (a generation number, read once per batch). Flow
// entries name servers by a stable id (one per identity ever seen), so a
// rebuild needs no pass over the tables: an entry whose id is no longer in
// the config is re-picked, which breaks only the removed server's flows.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "dsr_packet.h"
#include "maglev.h"

namespace switchyard {

class ShmRegion;

namespace dsr {

struct ServerSpec {
  std::string identity;
  uint32_t ip;  // network byte order
  uint8_t mac[6];
  uint32_t weight;
  uint32_t region_index;
};

struct Options {
  std::string interface;
  uint32_t vip;  // network byte order
  std::vector<uint16_t> ports;
  bool l3;
  uint8_t dscp;
  uint32_t threads;
  uint32_t flow_table_size;
  uint32_t flow_idle_ms;
};

struct ServerCounters {
  std::string identity;
  uint64_t packets, bytes, connections;
};

struct Counters {
  uint64_t rx_packets, forwarded_packets, forwarded_bytes, arp_replies;
  uint64_t flows, flows_created, flows_expired, untracked, passed;
  uint64_t drops[kDropCount];
  std::vector<ServerCounters> servers;  // those in the current config
};

class Forwarder {
 public:
  // The most distinct identities over a forwarder's life: flow entries hold
  // 16-bit ids (0xffff marks an ARP reply in a send batch). Ids are never
  // reused, because a flow entry may still name a removed server's id; past
  // the limit SetServers fails and the forwarder must be restarted.
  static constexpr uint32_t kMaxServerIds = 0xffff;

  // Opens the sockets and starts the threads; nullptr with *error set (which
  // interface, which system call and why) on failure.
  static std::unique_ptr<Forwarder> Open(const Options& options, const std::vector<ServerSpec>& servers,
                                         std::shared_ptr<ShmRegion> region, std::string* error);
  ~Forwarder();

  // Rebuilds the Maglev table; false with *error on invalid input (nothing changes then).
  bool SetServers(const std::vector<ServerSpec>& servers, std::shared_ptr<ShmRegion> region,
                  std::string* error);
  Counters Read() const;
  // Stops the threads and closes the sockets; idempotent.
  void Close();

 private:
  struct Server {
    uint32_t ip;
    uint8_t mac[6];
    uint16_t id;  // stable id
    uint32_t region_index;
  };
  struct Config {
    std::vector<Server> servers;    // Maglev index -> server
    std::vector<int32_t> by_id;     // stable id -> Maglev index, -1 if absent
    MaglevTable maglev;
    std::shared_ptr<ShmRegion> region;  // null: every server eligible
  };
  struct alignas(64) ThreadCounters {
    std::atomic<uint64_t> rx{0}, forwarded{0}, forwarded_bytes{0}, arp{0}, passed{0};
    std::atomic<uint64_t> created{0}, expired{0}, untracked{0}, live{0};
    std::atomic<uint64_t> drops[kDropCount] = {};
  };
  // Not padded to a cache line: 65535 of them are allocated up front.
  struct PerServer {
    std::atomic<uint64_t> packets{0}, bytes{0};
    std::atomic<int64_t> connections{0};
  };
  class Worker;

  Forwarder() = default;
  bool BuildConfig(const std::vector<ServerSpec>& servers, std::shared_ptr<ShmRegion> region,
                   std::shared_ptr<const Config>* out, std::string* error);
  std::shared_ptr<const Config> CurrentConfig(uint64_t* generation) const;

  Options options_;
  uint8_t mac_[6] = {};
  int ifindex_ = 0;
  uint8_t ports_[8192] = {};  // bitmap of balanced ports
  int stop_fd_ = -1;          // eventfd: written once to stop every thread

  mutable std::mutex mu_;  // guards config_, ids_ (threads copy the config pointer under it once per change)
  std::shared_ptr<const Config> config_;
  std::unordered_map<std::string, uint16_t> ids_;
  std::vector<std::string> id_names_;
  std::atomic<uint64_t> generation_{0};

  std::unique_ptr<PerServer[]> per_server_;  // by stable id
  std::vector<std::unique_ptr<ThreadCounters>> counters_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
  bool closed_ = false;
};

}  // namespace dsr
}  // namespace switchyard
