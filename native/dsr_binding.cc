// N-API binding of the DSR forwarder (dsr_forwarder.h): the DsrForwarder
// class. Checks and conversions only; src/native/dsr.ts validates first and
// gives the friendlier messages, these checks keep the addon safe from any
// caller.
#include <arpa/inet.h>

#include <memory>
#include <string>
#include <vector>

#include "bindings.h"
#include "dsr_forwarder.h"
#include "napi_args.h"
#include "shm_region.h"

namespace switchyard {
namespace {

bool ParseMac(const std::string& s, uint8_t out[6]) {
  if (s.size() != 17) return false;
  for (int i = 0; i < 6; ++i) {
    if (i > 0 && s[i * 3 - 1] != ':') return false;
    unsigned v = 0;
    for (int k = 0; k < 2; ++k) {
      const char c = s[i * 3 + k];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= c - '0';
      else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
      else return false;
    }
    out[i] = static_cast<uint8_t>(v);
  }
  return true;
}

bool Ipv4Arg(const Napi::Value& v, uint32_t* out) {
  if (!v.IsString()) return false;
  const std::string s = v.As<Napi::String>().Utf8Value();
  in_addr a;
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) return false;
  *out = a.s_addr;
  return true;
}

bool U32Field(Napi::Env env, const Napi::Object& o, const char* key, uint32_t lo, uint32_t hi, uint32_t* out) {
  if (!GetU32(env, o.Get(key), out) || *out < lo || *out > hi) {
    ThrowRange(env, std::string(key) + " must be an integer " + std::to_string(lo) + ".." + std::to_string(hi));
    return false;
  }
  return true;
}

// servers: [{ identity, ip, mac, weight, regionIndex }]. Every server needs a
// MAC: l2 sends to it, l3 sends to it as the next hop on the segment.
bool ServersArg(Napi::Env env, const Napi::Value& v, std::vector<dsr::ServerSpec>* out) {
  if (!v.IsArray()) return ThrowType(env, "servers must be an array"), false;
  Napi::Array arr = v.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value e = arr.Get(i);
    if (!e.IsObject()) return ThrowType(env, "servers[" + std::to_string(i) + "] must be an object"), false;
    Napi::Object o = e.As<Napi::Object>();
    dsr::ServerSpec s{};
    Napi::Value id = o.Get("identity");
    if (!id.IsString()) return ThrowType(env, "servers[" + std::to_string(i) + "].identity must be a string"), false;
    s.identity = id.As<Napi::String>().Utf8Value();
    if (!Ipv4Arg(o.Get("ip"), &s.ip)) {
      return ThrowType(env, "server " + s.identity + ": ip must be an IPv4 address"), false;
    }
    Napi::Value mac = o.Get("mac");
    if (!mac.IsString() || !ParseMac(mac.As<Napi::String>().Utf8Value(), s.mac)) {
      return ThrowType(env, "server " + s.identity + ": mac must be a MAC address like 02:00:00:00:00:01"), false;
    }
    if (!U32Field(env, o, "weight", 0, 1000000, &s.weight)) return false;
    if (!U32Field(env, o, "regionIndex", 0, 0x7fffffff, &s.region_index)) return false;
    out->push_back(std::move(s));
  }
  return true;
}

// region: a shared-memory region name, or null.
bool RegionArg(Napi::Env env, const Napi::Value& v, std::shared_ptr<ShmRegion>* out) {
  if (v.IsNull() || v.IsUndefined()) return true;
  if (!v.IsString()) return ThrowType(env, "region must be a region name or null"), false;
  std::string error;
  *out = ShmRegion::Attach(v.As<Napi::String>().Utf8Value(), &error);
  if (!*out) return ThrowError(env, "cannot attach region: " + error), false;
  return true;
}

class DsrForwarder : public Napi::ObjectWrap<DsrForwarder> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "DsrForwarder",
                       {
                           InstanceMethod<&DsrForwarder::SetServers>("setServers"),
                           InstanceMethod<&DsrForwarder::Counters>("counters"),
                           InstanceMethod<&DsrForwarder::Close>("close"),
                       });
  }

  // new DsrForwarder(options, servers)
  explicit DsrForwarder(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DsrForwarder>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) {
      ThrowType(env, "options must be an object");
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    dsr::Options opt{};
    Napi::Value ifname = o.Get("interface");
    if (!ifname.IsString()) {
      ThrowType(env, "interface must be a string");
      return;
    }
    opt.interface = ifname.As<Napi::String>().Utf8Value();
    if (!Ipv4Arg(o.Get("vip"), &opt.vip)) {
      ThrowType(env, "vip must be an IPv4 address");
      return;
    }
    Napi::Value ports = o.Get("ports");
    if (!ports.IsArray() || ports.As<Napi::Array>().Length() == 0) {
      ThrowType(env, "ports must be a non-empty array of TCP ports");
      return;
    }
    for (uint32_t i = 0; i < ports.As<Napi::Array>().Length(); ++i) {
      uint32_t p;
      if (!GetU32(env, ports.As<Napi::Array>().Get(i), &p) || p == 0 || p > 65535) {
        ThrowRange(env, "ports must be integers 1..65535");
        return;
      }
      opt.ports.push_back(static_cast<uint16_t>(p));
    }
    Napi::Value method = o.Get("method");
    const std::string m = method.IsString() ? method.As<Napi::String>().Utf8Value() : "";
    if (m != "l2" && m != "l3") {
      ThrowType(env, "method must be 'l2' or 'l3'");
      return;
    }
    opt.l3 = m == "l3";
    uint32_t dscp = 0, threads, size, idle;
    if (opt.l3 && !U32Field(env, o, "dscp", 0, 63, &dscp)) return;
    opt.dscp = static_cast<uint8_t>(dscp);
    if (!U32Field(env, o, "threads", 1, 64, &threads) ||
        !U32Field(env, o, "flowTableSize", 1, 1u << 26, &size) ||
        !U32Field(env, o, "flowIdleMs", 1, 86400000, &idle)) {
      return;
    }
    opt.threads = threads;
    opt.flow_table_size = size;
    opt.flow_idle_ms = idle;
    std::vector<dsr::ServerSpec> servers;
    std::shared_ptr<ShmRegion> region;
    if (!ServersArg(env, info[1], &servers) || !RegionArg(env, o.Get("region"), &region)) return;
    std::string error;
    fw_ = dsr::Forwarder::Open(opt, servers, std::move(region), &error);
    if (!fw_) ThrowError(env, error);
  }

 private:
  Napi::Value SetServers(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!fw_) return ThrowError(env, "forwarder is closed");
    std::vector<dsr::ServerSpec> servers;
    std::shared_ptr<ShmRegion> region;
    if (!ServersArg(env, info[0], &servers) || !RegionArg(env, info[1], &region)) return env.Undefined();
    std::string error;
    if (!fw_->SetServers(servers, std::move(region), &error)) return ThrowError(env, error);
    return env.Undefined();
  }

  Napi::Value Counters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!fw_) return ThrowError(env, "forwarder is closed");
    const dsr::Counters c = fw_->Read();
    auto num = [&](uint64_t v) { return Napi::Number::New(env, static_cast<double>(v)); };
    Napi::Object out = Napi::Object::New(env);
    out.Set("rxPackets", num(c.rx_packets));
    out.Set("forwardedPackets", num(c.forwarded_packets));
    out.Set("forwardedBytes", num(c.forwarded_bytes));
    out.Set("arpReplies", num(c.arp_replies));
    out.Set("flows", num(c.flows));
    out.Set("flowsCreated", num(c.flows_created));
    out.Set("flowsExpired", num(c.flows_expired));
    out.Set("untracked", num(c.untracked));
    out.Set("passed", num(c.passed));
    Napi::Object drops = Napi::Object::New(env);
    for (uint32_t d = 0; d < dsr::kDropCount; ++d) drops.Set(dsr::DropReasonName(d), num(c.drops[d]));
    out.Set("drops", drops);
    Napi::Array servers = Napi::Array::New(env, c.servers.size());
    for (size_t i = 0; i < c.servers.size(); ++i) {
      Napi::Object s = Napi::Object::New(env);
      s.Set("identity", c.servers[i].identity);
      s.Set("packets", num(c.servers[i].packets));
      s.Set("bytes", num(c.servers[i].bytes));
      s.Set("connections", num(c.servers[i].connections));
      servers.Set(static_cast<uint32_t>(i), s);
    }
    out.Set("servers", servers);
    return out;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    fw_.reset();  // joins the threads, closes the sockets
    return info.Env().Undefined();
  }

  std::unique_ptr<dsr::Forwarder> fw_;
};

}  // namespace

void ExportDsr(Napi::Env env, Napi::Object exports) {
  exports.Set("DsrForwarder", DsrForwarder::Define(env));
}

}  // namespace switchyard
