#include "dsr_forwarder.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "dsr_flow_table.h"
#include "hash.h"
#include "shm_region.h"

namespace switchyard {
namespace dsr {
namespace {

constexpr uint32_t kBatch = 32;
// A GSO super-frame from a veth is at most 64 KB of IP plus the headers.
constexpr size_t kFrameBytes = 65536 + kVnetHdrLen + kEthHdrLen + 64;
constexpr int kPollMs = 100;
constexpr uint32_t kSweepEveryMs = 100;

std::string Errno(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

uint32_t NowMs() {
  using namespace std::chrono;
  return static_cast<uint32_t>(duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count());
}

// The 5-tuple hash Maglev picks a server by (and the flow table's slot).
uint64_t FlowHash(uint32_t saddr, uint32_t vip, uint16_t sport, uint16_t dport) {
  uint8_t b[13];
  std::memcpy(b, &saddr, 4);
  std::memcpy(b + 4, &vip, 4);
  b[8] = static_cast<uint8_t>(sport >> 8);
  b[9] = static_cast<uint8_t>(sport);
  b[10] = static_cast<uint8_t>(dport >> 8);
  b[11] = static_cast<uint8_t>(dport);
  b[12] = 6;
  return HashBytes(b, sizeof b);
}

// The interface that owns `vip` on this host, or "" if none.
std::string OwnerOf(uint32_t vip) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "";
  std::string owner;
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    if (reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr.s_addr == vip) {
      owner = a->ifa_name;
      break;
    }
  }
  freeifaddrs(list);
  return owner;
}

// A classic BPF filter in the socket: only ARP frames asking for the VIP and
// IPv4 frames to the VIP are copied to the forwarder at all; the host's other
// traffic never costs it a wake-up. Offsets are from the Ethernet header
// (the virtio_net_hdr is not part of what the filter sees). A load past the
// end of a short frame ends the filter with 0: dropped, for this socket only.
bool AttachVipFilter(int fd, uint32_t vip, std::string* error) {
  const uint32_t host_vip = ntohl(vip);
  sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12),                // EtherType
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x0806, 0, 2),     // ARP?
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 14 + 24),           //   target protocol address
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, host_vip, 3, 4),   //   the VIP: take it
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x0800, 0, 3),     // IPv4?
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 14 + 16),           //   destination address
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, host_vip, 0, 1),   //   the VIP: take it
      BPF_STMT(BPF_RET | BPF_K, 0x40000),                    // take (up to 256 KB)
      BPF_STMT(BPF_RET | BPF_K, 0),                          // leave it to the kernel
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof code / sizeof code[0]), code};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) != 0) {
    *error = Errno("SO_ATTACH_FILTER");
    return false;
  }
  return true;
}

}  // namespace

// One packet thread: its socket, its flow table, its buffers.
class Forwarder::Worker {
 public:
  Worker(Forwarder* fw, int fd, ThreadCounters* counters)
      : fw_(fw),
        fd_(fd),
        c_(counters),
        flows_((fw->options_.flow_table_size + fw->options_.threads - 1) / fw->options_.threads,
               fw->options_.flow_idle_ms, &Worker::OnRemove, this),
        buffers_(new uint8_t[kBatch * kFrameBytes]) {}
  ~Worker() {
    if (fd_ >= 0) close(fd_);
  }

  void Run() {
    pollfd fds[2] = {{fd_, POLLIN, 0}, {fw_->stop_fd_, POLLIN, 0}};
    uint32_t last_sweep = NowMs();
    for (;;) {
      const int n = poll(fds, 2, kPollMs);
      if (n < 0 && errno != EINTR) break;
      if (fds[1].revents) break;
      const uint32_t now = NowMs();
      if (fds[0].revents & POLLERR) {
        // The interface went down or away (ENETDOWN): reading the error clears it, else poll
        // would report it at once forever and spin. The socket resumes when the interface is up.
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
      }
      if (fds[0].revents & POLLIN) Batch(now);
      if (now - last_sweep >= kSweepEveryMs) {
        last_sweep = now;
        const uint32_t slice = flows_.capacity() / 10;
        flows_.Sweep(slice < 1024 ? 1024 : slice, now);
        c_->live.store(flows_.live(), std::memory_order_relaxed);
        tpacket_stats stats{};  // reset by each read
        socklen_t len = sizeof stats;
        if (getsockopt(fd_, SOL_PACKET, PACKET_STATISTICS, &stats, &len) == 0) Count(c_->drops[kDropRxOverflow], stats.tp_drops);
      }
    }
  }

 private:
  static void OnRemove(void* ctx, uint16_t server_id, bool expired) {
    auto* w = static_cast<Worker*>(ctx);
    w->fw_->per_server_[server_id].connections.fetch_sub(1, std::memory_order_relaxed);
    if (expired) w->c_->expired.fetch_add(1, std::memory_order_relaxed);
  }

  void Count(std::atomic<uint64_t>& c, uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }

  void Batch(uint32_t now) {
    const uint64_t gen = fw_->generation_.load(std::memory_order_acquire);
    if (gen != seen_generation_ || !config_) config_ = fw_->CurrentConfig(&seen_generation_);
    mmsghdr rx[kBatch];
    iovec rx_iov[kBatch];
    for (uint32_t i = 0; i < kBatch; ++i) {
      rx_iov[i] = {buffers_.get() + i * kFrameBytes, kFrameBytes};
      std::memset(&rx[i].msg_hdr, 0, sizeof rx[i].msg_hdr);
      rx[i].msg_hdr.msg_iov = &rx_iov[i];
      rx[i].msg_hdr.msg_iovlen = 1;
    }
    const int got = recvmmsg(fd_, rx, kBatch, MSG_DONTWAIT, nullptr);
    if (got <= 0) return;
    Count(c_->rx, static_cast<uint64_t>(got));

    mmsghdr tx[kBatch];
    iovec tx_iov[kBatch];
    uint16_t tx_server[kBatch];
    uint32_t sends = 0;
    const Target target{fw_->options_.vip, fw_->mac_, fw_->ports_};
    for (int i = 0; i < got; ++i) {
      uint8_t* buf = static_cast<uint8_t*>(rx_iov[i].iov_base);
      Frame f;
      if (rx[i].msg_hdr.msg_flags & MSG_TRUNC) {
        Count(c_->drops[kDropMalformed]);
        continue;
      }
      Classify(buf, rx[i].msg_len, target, &f);
      size_t len = rx[i].msg_len;
      uint16_t server_id = 0xffff;
      switch (f.verdict) {
        case Verdict::kPass:
          Count(c_->passed);
          continue;
        case Verdict::kDrop:
          Count(c_->drops[f.drop]);
          continue;
        case Verdict::kArp:
          len = BuildArpReply(&f, fw_->mac_);
          break;
        case Verdict::kForward: {
          const Server* s = Pick(f, now, &server_id);
          if (s == nullptr) {
            Count(c_->drops[kDropNoServer]);
            continue;
          }
          if (fw_->options_.l3) {
            RewriteL3(&f, s->mac, fw_->mac_, s->ip, fw_->options_.dscp);
          } else {
            RewriteL2(&f, s->mac, fw_->mac_);
          }
          break;
        }
      }
      tx_iov[sends] = {buf, len};
      std::memset(&tx[sends].msg_hdr, 0, sizeof tx[sends].msg_hdr);
      tx[sends].msg_hdr.msg_iov = &tx_iov[sends];
      tx[sends].msg_hdr.msg_iovlen = 1;
      tx_server[sends] = server_id;
      ++sends;
    }
    Send(tx, tx_iov, tx_server, sends);
    c_->live.store(flows_.live(), std::memory_order_relaxed);
  }

  void Send(mmsghdr* tx, const iovec* iov, const uint16_t* server, uint32_t count) {
    uint32_t done = 0;
    while (done < count) {
      const int sent = sendmmsg(fd_, tx + done, count - done, 0);
      if (sent < 0) {
        if (errno == EINTR) continue;
        Count(c_->drops[kDropTxError]);  // this frame; go on with the next
        ++done;
        continue;
      }
      for (int k = 0; k < sent; ++k, ++done) {
        if (server[done] == 0xffff) {
          Count(c_->arp);
          continue;
        }
        const size_t bytes = iov[done].iov_len - kVnetHdrLen;
        Count(c_->forwarded);
        Count(c_->forwarded_bytes, bytes);
        PerServer& ps = fw_->per_server_[server[done]];
        ps.packets.fetch_add(1, std::memory_order_relaxed);
        ps.bytes.fetch_add(bytes, std::memory_order_relaxed);
      }
    }
  }

  // The connection's server: its tracked one if still configured, else a new
  // Maglev pick among eligible servers (tracked unless it is an RST).
  const Server* Pick(const Frame& f, uint32_t now, uint16_t* server_id) {
    const Config& cfg = *config_;
    const FlowKey key{f.saddr, f.sport, f.dport};
    const uint64_t hash = FlowHash(f.saddr, fw_->options_.vip, f.sport, f.dport);
    const bool closing = (f.tcp_flags & (kTcpFin | kTcpRst)) != 0;
    if (const uint16_t* id = flows_.Find(key, hash, now, closing)) {
      const int32_t index = *id < cfg.by_id.size() ? cfg.by_id[*id] : -1;
      if (index >= 0) {
        *server_id = *id;
        return &cfg.servers[index];
      }
      flows_.Erase(key, hash);  // its server is gone: this connection breaks, no other
    }
    const int32_t index = cfg.region ? cfg.maglev.LookupEligible(hash, [&](uint32_t s) {
      return cfg.region->Eligible(cfg.servers[s].region_index);
    })
                                     : cfg.maglev.Lookup(hash);
    if (index < 0) return nullptr;
    const Server& s = cfg.servers[index];
    *server_id = s.id;
    if (f.tcp_flags & kTcpRst) return &s;  // nothing to track
    if (flows_.Insert(key, hash, s.id, now, closing)) {
      Count(c_->created);
      fw_->per_server_[s.id].connections.fetch_add(1, std::memory_order_relaxed);
    } else {
      Count(c_->untracked);
    }
    return &s;
  }

  Forwarder* fw_;
  int fd_;
  ThreadCounters* c_;
  FlowTable flows_;
  std::unique_ptr<uint8_t[]> buffers_;
  std::shared_ptr<const Config> config_;
  uint64_t seen_generation_ = 0;
};

std::shared_ptr<const Forwarder::Config> Forwarder::CurrentConfig(uint64_t* generation) const {
  std::lock_guard<std::mutex> lock(mu_);
  *generation = generation_.load(std::memory_order_relaxed);
  return config_;
}

bool Forwarder::BuildConfig(const std::vector<ServerSpec>& servers, std::shared_ptr<ShmRegion> region,
                            std::shared_ptr<const Config>* out, std::string* error) {
  auto cfg = std::make_shared<Config>();
  std::vector<std::string> ids;
  std::vector<uint32_t> weights;
  for (const ServerSpec& s : servers) {
    if (region && s.region_index >= region->servers()) {
      *error = "server " + s.identity + ": regionIndex " + std::to_string(s.region_index) +
               " is outside the region (" + std::to_string(region->servers()) + " servers)";
      return false;
    }
    ids.push_back(s.identity);
    weights.push_back(s.weight);
  }
  if (!cfg->maglev.Build(ids, weights, {}, 0, error)) return false;
  // Stable ids: new identities get the next one; checked before any is taken.
  size_t fresh = 0;
  for (const ServerSpec& s : servers) fresh += ids_.count(s.identity) == 0;
  if (id_names_.size() + fresh > kMaxServerIds) {
    *error = "more than " + std::to_string(kMaxServerIds) + " distinct servers over the forwarder's life";
    return false;
  }
  for (const ServerSpec& s : servers) {
    auto it = ids_.find(s.identity);
    uint16_t id;
    if (it == ids_.end()) {
      id = static_cast<uint16_t>(id_names_.size());
      ids_.emplace(s.identity, id);
      id_names_.push_back(s.identity);
    } else {
      id = it->second;
    }
    Server server{s.ip, {}, id, s.region_index};
    std::memcpy(server.mac, s.mac, 6);
    cfg->servers.push_back(server);
  }
  cfg->by_id.assign(id_names_.size(), -1);
  for (size_t i = 0; i < cfg->servers.size(); ++i) cfg->by_id[cfg->servers[i].id] = static_cast<int32_t>(i);
  cfg->region = std::move(region);
  *out = std::move(cfg);
  return true;
}

std::unique_ptr<Forwarder> Forwarder::Open(const Options& options, const std::vector<ServerSpec>& servers,
                                           std::shared_ptr<ShmRegion> region, std::string* error) {
  std::unique_ptr<Forwarder> fw(new Forwarder());
  fw->options_ = options;
  for (uint16_t p : options.ports) fw->ports_[p >> 3] |= static_cast<uint8_t>(1u << (p & 7));
  fw->per_server_.reset(new PerServer[kMaxServerIds]);
  {
    std::lock_guard<std::mutex> lock(fw->mu_);
    if (!fw->BuildConfig(servers, std::move(region), &fw->config_, error)) return nullptr;
  }
  const std::string owner = OwnerOf(options.vip);
  if (!owner.empty()) {
    *error = "the VIP is an address of this host (on " + owner +
             "): its kernel would answer the clients' SYNs itself; remove it from the balancer";
    return nullptr;
  }
  fw->ifindex_ = static_cast<int>(if_nametoindex(options.interface.c_str()));
  if (fw->ifindex_ == 0) {
    *error = "no such interface: " + options.interface;
    return nullptr;
  }
  fw->stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fw->stop_fd_ < 0) {
    *error = Errno("eventfd");
    return nullptr;
  }
  // The fanout group: the kernel gives the first socket an id no other group in this namespace
  // has (PACKET_FANOUT_FLAG_UNIQUEID), the others join it by that id. A chosen id could meet
  // another forwarder's group and split its frames with it.
  int group = -1;
  for (uint32_t t = 0; t < options.threads; ++t) {
    // Protocol 0 until bound: an ETH_P_ALL socket would see every interface's frames meanwhile.
    const int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      *error = errno == EPERM || errno == EACCES
                   ? "not permitted to open an AF_PACKET socket (needs root or CAP_NET_RAW)"
                   : Errno("socket(AF_PACKET)");
      return nullptr;
    }
    fw->counters_.emplace_back(new ThreadCounters());
    fw->workers_.emplace_back(new Worker(fw.get(), fd, fw->counters_.back().get()));
    const int one = 1;
    const int rcvbuf = 8 << 20;
    if (t == 0) {
      ifreq ifr{};
      std::strncpy(ifr.ifr_name, options.interface.c_str(), IFNAMSIZ - 1);
      if (ioctl(fd, SIOCGIFHWADDR, &ifr) != 0) {
        *error = Errno(("SIOCGIFHWADDR " + options.interface).c_str());
        return nullptr;
      }
      if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER) {
        *error = "interface " + options.interface + " is not an Ethernet interface";
        return nullptr;
      }
      std::memcpy(fw->mac_, ifr.ifr_hwaddr.sa_data, 6);
    }
    if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) != 0) {
      *error = Errno("PACKET_VNET_HDR");
      return nullptr;
    }
    if (setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) != 0) {
      *error = Errno("PACKET_IGNORE_OUTGOING");
      return nullptr;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);  // best effort
    if (!AttachVipFilter(fd, options.vip, error)) return nullptr;  // before bind: no frame gets in unfiltered
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = fw->ifindex_;
    if (bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) {
      *error = Errno(("bind to " + options.interface).c_str());
      return nullptr;
    }
    if (options.threads > 1) {
      const int fanout = group < 0 ? (PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_UNIQUEID) << 16
                                   : group | (PACKET_FANOUT_HASH << 16);
      if (setsockopt(fd, SOL_PACKET, PACKET_FANOUT, &fanout, sizeof fanout) != 0) {
        *error = Errno("PACKET_FANOUT");
        return nullptr;
      }
      if (group < 0) {
        int joined = 0;
        socklen_t len = sizeof joined;
        if (getsockopt(fd, SOL_PACKET, PACKET_FANOUT, &joined, &len) != 0) {
          *error = Errno("getsockopt(PACKET_FANOUT)");
          return nullptr;
        }
        group = joined & 0xffff;
      }
    }
  }
  for (uint32_t i = 0; i < fw->workers_.size(); ++i) {
    fw->threads_.emplace_back([worker = fw->workers_[i].get()] { worker->Run(); });
    // Named before open returns, so benches and top find the packet threads (bench/dsr-forwarder.ts reads their CPU time).
    pthread_setname_np(fw->threads_.back().native_handle(), ("dsr-fwd-" + std::to_string(i)).c_str());
  }
  return fw;
}

bool Forwarder::SetServers(const std::vector<ServerSpec>& servers, std::shared_ptr<ShmRegion> region,
                           std::string* error) {
  std::lock_guard<std::mutex> lock(mu_);
  std::shared_ptr<const Config> cfg;
  if (!BuildConfig(servers, std::move(region), &cfg, error)) return false;
  config_ = std::move(cfg);
  generation_.fetch_add(1, std::memory_order_release);
  return true;
}

Counters Forwarder::Read() const {
  Counters out{};
  for (const auto& c : counters_) {
    out.rx_packets += c->rx.load(std::memory_order_relaxed);
    out.forwarded_packets += c->forwarded.load(std::memory_order_relaxed);
    out.forwarded_bytes += c->forwarded_bytes.load(std::memory_order_relaxed);
    out.arp_replies += c->arp.load(std::memory_order_relaxed);
    out.passed += c->passed.load(std::memory_order_relaxed);
    out.flows_created += c->created.load(std::memory_order_relaxed);
    out.flows_expired += c->expired.load(std::memory_order_relaxed);
    out.untracked += c->untracked.load(std::memory_order_relaxed);
    out.flows += c->live.load(std::memory_order_relaxed);
    for (uint32_t d = 0; d < kDropCount; ++d) out.drops[d] += c->drops[d].load(std::memory_order_relaxed);
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (const Server& s : config_->servers) {
    const PerServer& ps = per_server_[s.id];
    const int64_t conns = ps.connections.load(std::memory_order_relaxed);
    out.servers.push_back({id_names_[s.id], ps.packets.load(std::memory_order_relaxed),
                           ps.bytes.load(std::memory_order_relaxed), conns > 0 ? static_cast<uint64_t>(conns) : 0});
  }
  return out;
}

void Forwarder::Close() {
  if (closed_) return;
  closed_ = true;
  if (stop_fd_ >= 0) {
    const uint64_t one = 1;
    if (write(stop_fd_, &one, sizeof one) < 0) {
      // An eventfd write fails only on overflow, impossible with one write.
    }
  }
  for (auto& t : threads_) t.join();
  threads_.clear();
  workers_.clear();  // closes the sockets
  if (stop_fd_ >= 0) close(stop_fd_);
  stop_fd_ = -1;
}

Forwarder::~Forwarder() { Close(); }

}  // namespace dsr
}  // namespace switchyard
