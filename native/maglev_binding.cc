// N-API bindings of MaglevTable (maglev.h): the Maglev class, its lookups
// (fast functions) and bindHealth, which makes lookups skip servers a Region
// marks ineligible and, with a balance factor, bound loads.
#include "bindings.h"

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "hash.h"
#include "maglev.h"
#include "napi_args.h"
#include "shm_region.h"

namespace switchyard {
namespace {

// Maglev: an immutable table. bindHealth(region, base) makes lookups use
// strategy (b), reading eligibility of server i from region server base + i.

struct MaglevState {
  MaglevTable table;
  std::vector<uint32_t> weights;
  std::shared_ptr<ShmRegion> health;  // strategy (b) when set
  uint32_t health_base = 0;
  double balance_factor = 0;  // > 0: bounded loads (needs health)
  std::vector<double> loads;  // scratch of PickBounded, one per server

  // `exclude` (may be null): servers this request already tried (retries);
  // the key walks past them exactly as past an ineligible server.
  int32_t Pick(uint64_t hash, const uint8_t* exclude) {
    if (!health) {
      if (exclude == nullptr) return table.Lookup(hash);
      return table.LookupEligible(hash, [&](uint32_t s) { return !exclude[s]; });
    }
    if (balance_factor > 0) return PickBounded(hash, exclude);
    const ShmRegion& r = *health;
    const uint32_t base = health_base;
    return table.LookupEligible(
        hash, [&](uint32_t s) { return (exclude == nullptr || !exclude[s]) && r.Eligible(base + s); });
  }

  // Bounded loads (maglev.h LookupBounded) over every worker's counts, read
  // now: every worker sees the same loads, so they agree on the walk.
  int32_t PickBounded(uint64_t hash, const uint8_t* exclude) {
    const uint32_t n = static_cast<uint32_t>(table.servers());
    loads.resize(2 * static_cast<size_t>(n));  // ReadServers also writes the weight factors after the loads
    health->ReadServers(health_base, n, kActiveRequests, loads.data());
    return table.LookupBounded(hash, loads.data(), weights.data(), balance_factor, exclude);
  }
};

// The optional exclude mask of a lookup: undefined, or a Uint8Array with one
// byte per server (non-zero = skip). False with a TypeError pending if bad.
bool ExcludeArg(Napi::Env env, const Napi::Value& v, const MaglevState& m, const uint8_t** out) {
  *out = nullptr;
  if (v.IsUndefined()) return true;
  if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
    Napi::Uint8Array mask = v.As<Napi::Uint8Array>();
    if (mask.ElementLength() >= m.table.servers()) {
      *out = mask.Data();
      return true;
    }
  }
  ThrowType(env, "exclude must be a Uint8Array with one byte per server");
  return false;
}

// lookupIp(ip): a string that is not an IP address is hashed as a key, so
// the data path always gets an answer.
Napi::Value MaglevLookupIp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Utf8Arg ip(env, info[0]);
  if (!ip.ok()) return ThrowType(env, "ip must be a string");
  MaglevState& m = FastState<MaglevState>(info);
  const uint8_t* exclude;
  if (!ExcludeArg(env, info[1], m, &exclude)) return env.Undefined();
  uint64_t h;
  if (!IpArgHash(ip, &h)) h = HashBytes(ip.data(), ip.size());
  return Napi::Number::New(env, m.Pick(h, exclude));
}

// lookupIpv4(addr): a.b.c.d as the integer a<<24|b<<16|c<<8|d
Napi::Value MaglevLookupIpv4(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t addr;
  if (!GetU32(env, info[0], &addr)) return ThrowType(env, "addr must be an unsigned 32-bit integer");
  MaglevState& m = FastState<MaglevState>(info);
  const uint8_t* exclude;
  if (!ExcludeArg(env, info[1], m, &exclude)) return env.Undefined();
  return Napi::Number::New(env, m.Pick(HashIpv4(addr), exclude));
}

Napi::Value MaglevLookupKey(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Utf8Arg key(env, info[0]);
  if (!key.ok()) return ThrowType(env, "key must be a string");
  MaglevState& m = FastState<MaglevState>(info);
  const uint8_t* exclude;
  if (!ExcludeArg(env, info[1], m, &exclude)) return env.Undefined();
  return Napi::Number::New(env, m.Pick(HashBytes(key.data(), key.size()), exclude));
}

class Maglev : public Napi::ObjectWrap<Maglev> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Maglev",
                       {
                           InstanceMethod<&Maglev::Size>("size"),
                           InstanceMethod<&Maglev::Entries>("entries"),
                           InstanceMethod<&Maglev::BindHealth>("bindHealth"),
                       });
  }

  // new Maglev(identities, weights, size, eligible | undefined)
  explicit Maglev(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<Maglev>(info), state_(std::make_shared<MaglevState>()) {
    Napi::Env env = info.Env();
    std::vector<std::string> ids;
    if (!StringArray(env, info[0], "identities", &ids)) return;
    if (!info[1].IsArray()) {
      ThrowType(env, "weights must be an array of unsigned integers");
      return;
    }
    Napi::Array w = info[1].As<Napi::Array>();
    std::vector<uint32_t> weights(w.Length());
    for (uint32_t i = 0; i < w.Length(); ++i) {
      if (!GetU32(env, w.Get(i), &weights[i])) {
        ThrowType(env, "weights must be an array of unsigned integers");
        return;
      }
    }
    uint32_t size;
    if (!GetU32(env, info[2], &size)) {
      ThrowType(env, "size must be an unsigned integer (0 = automatic)");
      return;
    }
    std::vector<bool> eligible;
    if (!info[3].IsUndefined()) {
      if (!info[3].IsArray()) {
        ThrowType(env, "eligible must be an array of booleans");
        return;
      }
      Napi::Array e = info[3].As<Napi::Array>();
      for (uint32_t i = 0; i < e.Length(); ++i) eligible.push_back(e.Get(i).ToBoolean());
    }
    std::string error;
    if (!state_->table.Build(ids, weights, eligible, size, &error)) {
      ThrowType(env, error);
      return;
    }
    state_->weights = std::move(weights);
    Napi::Object self = info.This().As<Napi::Object>();
    DefineFast<MaglevLookupIp>(env, self, "lookupIp", state_);
    DefineFast<MaglevLookupIpv4>(env, self, "lookupIpv4", state_);
    DefineFast<MaglevLookupKey>(env, self, "lookupKey", state_);
  }

 private:
  Napi::Value Size(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), state_->table.size());
  }

  // A copy of the table, for tests against the TypeScript reference.
  Napi::Value Entries(const Napi::CallbackInfo& info) {
    const auto& e = state_->table.entries();
    Napi::Int32Array out = Napi::Int32Array::New(info.Env(), e.size());
    std::memcpy(out.Data(), e.data(), e.size() * sizeof(int32_t));
    return out;
  }

  // bindHealth(region, base, balanceFactor = 0) or bindHealth(null).
  // balanceFactor > 0 (at least 1) turns on bounded loads.
  Napi::Value BindHealth(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info[0].IsNull() || info[0].IsUndefined()) {
      state_->health.reset();
      state_->balance_factor = 0;
      return env.Undefined();
    }
    double factor = 0;
    if (!info[2].IsUndefined()) {
      if (!info[2].IsNumber()) return ThrowType(env, "balanceFactor must be a number");
      factor = info[2].As<Napi::Number>().DoubleValue();
      if (!(factor == 0 || (factor >= 1 && factor <= 1e6))) {
        return ThrowType(env, "balanceFactor must be 0 (off) or a number from 1 to 1e6");
      }
    }
    std::shared_ptr<ShmRegion> region = RegionFrom(info[0]);
    if (!region) return ThrowType(env, "bindHealth needs an open Region or null");
    uint32_t base;
    if (!GetU32(env, info[1], &base)) return ThrowType(env, "base must be an unsigned integer");
    if (static_cast<uint64_t>(base) + state_->table.servers() > region->servers()) {
      return ThrowRange(env, "base + servers exceeds the region's servers");
    }
    state_->health = std::move(region);
    state_->health_base = base;
    state_->balance_factor = factor;
    return env.Undefined();
  }

  std::shared_ptr<MaglevState> state_;
};

}  // namespace

void ExportMaglev(Napi::Env env, Napi::Object exports) { exports.Set("Maglev", Maglev::Define(env)); }

}  // namespace switchyard
