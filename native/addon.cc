// N-API bindings only: argument checks (TypeError / RangeError, never an
// abort), conversions, errors. The logic lives in shm_region.cc, maglev.cc,
// rate_limit.cc and hash.h. Built without C++ exceptions (NAPI_DISABLE_CPP_EXCEPTIONS, see
// binding.gyp): every failure is thrown as a pending JS exception and the
// function returns at once. Hot-path methods take and return plain numbers
// and strings, and read strings into a stack buffer (no allocation).
#include <napi.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "hash.h"
#include "maglev.h"
#include "rate_limit.h"
#include "shm_region.h"
#include "socket_peer.h"

namespace switchyard {
namespace {

Napi::Value ThrowType(Napi::Env env, const std::string& msg) {
  Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
  return env.Undefined();
}
Napi::Value ThrowRange(Napi::Env env, const std::string& msg) {
  Napi::RangeError::New(env, msg).ThrowAsJavaScriptException();
  return env.Undefined();
}
Napi::Value ThrowError(Napi::Env env, const std::string& msg) {
  Napi::Error::New(env, msg).ThrowAsJavaScriptException();
  return env.Undefined();
}

// A JS string's UTF-8 bytes: in a stack buffer when short, else on the heap.
class Utf8Arg {
 public:
  Utf8Arg(Napi::Env env, napi_value v) {
    size_t len = 0;
    if (napi_get_value_string_utf8(env, v, small_, sizeof small_, &len) != napi_ok) return;
    ok_ = true;
    if (len < sizeof small_ - 1) {
      data_ = small_;
      len_ = len;
      return;
    }
    napi_get_value_string_utf8(env, v, nullptr, 0, &len);  // the full length
    large_.resize(len + 1);
    napi_get_value_string_utf8(env, v, &large_[0], len + 1, &len);
    data_ = large_.data();
    len_ = len;
  }
  bool ok() const { return ok_; }
  const char* data() const { return data_; }  // NUL-terminated
  size_t size() const { return len_; }

 private:
  char small_[256];
  std::string large_;
  const char* data_ = small_;
  size_t len_ = 0;
  bool ok_ = false;
};

// Number arguments: one N-API call each (napi_get_value_double fails on a
// non-number), then range and integrality checks in C++.
bool GetU32(napi_env env, napi_value v, uint32_t* out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0 && d <= 4294967295.0)) return false;
  *out = static_cast<uint32_t>(d);
  return static_cast<double>(*out) == d;
}

bool GetSafeInt(napi_env env, napi_value v, int64_t* out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok ||
      !(d >= -9007199254740991.0 && d <= 9007199254740991.0)) {
    return false;
  }
  *out = static_cast<int64_t>(d);
  return static_cast<double>(*out) == d;
}

// Hot-path methods are per-instance functions whose N-API `data` is a heap
// std::shared_ptr to the instance state (freed by the function's finalizer):
// a call then costs napi_get_cb_info, not napi_unwrap, which sets up a
// v8::TryCatch on every call. Measured in bench/native-lookup.ts.
template <Napi::Value (*cb)(const Napi::CallbackInfo&), class State>
void DefineFast(Napi::Env env, Napi::Object self, const char* name,
                const std::shared_ptr<State>& state) {
  auto* data = new std::shared_ptr<State>(state);
  Napi::Function fn = Napi::Function::New<cb>(env, name, data);
  fn.AddFinalizer([](Napi::Env, std::shared_ptr<State>* p) { delete p; }, data);
  self.Set(name, fn);
}

template <class State>
State& FastState(const Napi::CallbackInfo& info) {
  return **static_cast<std::shared_ptr<State>*>(info.Data());
}

// Reads an array of strings; false (with a TypeError pending) if it is not one.
bool StringArray(Napi::Env env, const Napi::Value& v, const char* what,
                 std::vector<std::string>* out) {
  if (!v.IsArray()) {
    ThrowType(env, std::string(what) + " must be an array of strings");
    return false;
  }
  Napi::Array arr = v.As<Napi::Array>();
  out->reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value e = arr.Get(i);
    if (!e.IsString()) {
      ThrowType(env, std::string(what) + " must be an array of strings");
      return false;
    }
    out->push_back(e.As<Napi::String>().Utf8Value());
  }
  return true;
}

// ---------------------------------------------------------------------------
// Region: a handle on a ShmRegion. close() drops this handle's reference; the
// mapping lives on while views or bound Maglev tables still hold it.

// Shared by the Region object and its fast functions, so close() reaches both.
struct RegionRef {
  std::shared_ptr<ShmRegion> region;
};

// Checks shared by the region methods; on failure a JS exception is pending.
ShmRegion* OpenRegion(Napi::Env env, const RegionRef& ref) {
  if (!ref.region) ThrowError(env, "region is closed");
  return ref.region.get();
}
bool ServerArg(Napi::Env env, const ShmRegion& r, napi_value v, uint32_t* out) {
  if (!GetU32(env, v, out)) return ThrowType(env, "server must be an unsigned integer"), false;
  if (*out >= r.servers()) return ThrowRange(env, "server index out of range"), false;
  return true;
}
bool SlotArg(Napi::Env env, const ShmRegion& r, napi_value v, uint32_t* out) {
  if (!GetU32(env, v, out)) return ThrowType(env, "slot must be an unsigned integer"), false;
  if (*out >= r.slots()) return ThrowRange(env, "slot out of range"), false;
  return true;
}
bool CounterArg(Napi::Env env, napi_value v, Counter* out) {
  uint32_t c;
  if (!GetU32(env, v, &c) || c >= kCounterCount) return ThrowType(env, "counter must be 0..4"), false;
  *out = static_cast<Counter>(c);
  return true;
}

// add(counter, server, slot, delta)
Napi::Value RegionAdd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ShmRegion* r = OpenRegion(env, FastState<RegionRef>(info));
  Counter c;
  uint32_t server, slot;
  int64_t delta;
  if (!r || !CounterArg(env, info[0], &c) || !ServerArg(env, *r, info[1], &server) ||
      !SlotArg(env, *r, info[2], &slot)) {
    return env.Undefined();
  }
  if (!GetSafeInt(env, info[3], &delta)) return ThrowType(env, "delta must be an integer");
  r->Add(c, server, slot, delta);
  return env.Undefined();
}

// read(counter, server, slot): one slot
Napi::Value RegionRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ShmRegion* r = OpenRegion(env, FastState<RegionRef>(info));
  Counter c;
  uint32_t server, slot;
  if (!r || !CounterArg(env, info[0], &c) || !ServerArg(env, *r, info[1], &server) ||
      !SlotArg(env, *r, info[2], &slot)) {
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(r->Read(c, server, slot)));
}

// sum(counter, server): over all slots
Napi::Value RegionSum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ShmRegion* r = OpenRegion(env, FastState<RegionRef>(info));
  Counter c;
  uint32_t server;
  if (!r || !CounterArg(env, info[0], &c) || !ServerArg(env, *r, info[1], &server)) {
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(r->Sum(c, server)));
}

// eligible(server): healthy, not drained, not ejected
Napi::Value RegionEligible(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ShmRegion* r = OpenRegion(env, FastState<RegionRef>(info));
  uint32_t server;
  if (!r || !ServerArg(env, *r, info[0], &server)) return env.Undefined();
  return Napi::Boolean::New(env, r->Eligible(server));
}

// A view on the servers of one upstream (region servers first..first+count-1):
// one call fills `out` (a Float64Array in JS, over this memory) with -1 per
// ineligible server and, for readLoads, the active requests of the others,
// so a balancer's pick crosses into C++ once whatever the number of servers.
struct ViewState {
  std::shared_ptr<ShmRegion> region;
  uint32_t first = 0;
  uint32_t count = 0;
  std::vector<double> out;
};

// readHealth() → eligible servers; out[i] = -1 (not eligible) or 0
Napi::Value ViewReadHealth(const Napi::CallbackInfo& info) {
  ViewState& v = FastState<ViewState>(info);
  return Napi::Number::New(info.Env(), v.region->ReadServers(v.first, v.count, kCounterCount, v.out.data()));
}

// readLoads() → eligible servers; out[i] = -1 or active requests over all slots
Napi::Value ViewReadLoads(const Napi::CallbackInfo& info) {
  ViewState& v = FastState<ViewState>(info);
  return Napi::Number::New(info.Env(), v.region->ReadServers(v.first, v.count, kActiveRequests, v.out.data()));
}

class Region : public Napi::ObjectWrap<Region> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(
        env, "Region",
        {
            StaticMethod<&Region::Create>("create"),
            StaticMethod<&Region::Attach>("attach"),
            StaticMethod<&Region::UnlinkName>("unlink"),
            StaticMethod<&Region::SweepStale>("sweepStale"),
            InstanceMethod<&Region::Close>("close"),
            InstanceMethod<&Region::Info>("info"),
            InstanceMethod<&Region::Identities>("identities"),
            InstanceMethod<&Region::ZeroSlot>("zeroSlot"),
            InstanceMethod<&Region::State>("state"),
            InstanceMethod<&Region::SetState>("setState"),
            InstanceMethod<&Region::EjectUntil>("ejectUntil"),
            InstanceMethod<&Region::SetEjectUntil>("setEjectUntil"),
            InstanceMethod<&Region::RecordFailure>("recordFailure"),
            InstanceMethod<&Region::RecordSuccess>("recordSuccess"),
            InstanceMethod<&Region::Ejections>("ejections"),
            InstanceMethod<&Region::TryEject>("tryEject"),
            InstanceMethod<&Region::SetRampPermille>("setRampPermille"),
            InstanceMethod<&Region::CopyFrom>("copyFrom"),
            InstanceMethod<&Region::CountersBuffer>("countersBuffer"),
            InstanceMethod<&Region::View>("view"),
        });
  }

  explicit Region(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<Region>(info), ref_(std::make_shared<RegionRef>()) {
    Napi::Env env = info.Env();
    // Instances are made only by create()/attach(), which pass an External.
    if (info.Length() != 1 || !info[0].IsExternal()) {
      ThrowType(env, "use Region.create() or Region.attach()");
      return;
    }
    ref_->region = *info[0].As<Napi::External<std::shared_ptr<ShmRegion>>>().Data();
    Napi::Object self = info.This().As<Napi::Object>();
    DefineFast<RegionAdd>(env, self, "add", ref_);
    DefineFast<RegionRead>(env, self, "read", ref_);
    DefineFast<RegionSum>(env, self, "sum", ref_);
    DefineFast<RegionEligible>(env, self, "eligible", ref_);
  }

  // The region behind a JS value, or nullptr if it is not an open Region.
  static std::shared_ptr<ShmRegion> From(const Napi::Value& v) {
    Napi::FunctionReference* ctor = v.Env().GetInstanceData<Napi::FunctionReference>();
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(ctor->Value())) return nullptr;
    return Unwrap(v.As<Napi::Object>())->ref_->region;
  }

 private:
  static Napi::Value Wrap(Napi::Env env, std::shared_ptr<ShmRegion> r) {
    Napi::External<std::shared_ptr<ShmRegion>> ext =
        Napi::External<std::shared_ptr<ShmRegion>>::New(env, &r);
    // The constructor copies the shared_ptr out of the External.
    return env.GetInstanceData<Napi::FunctionReference>()->New({ext});
  }

  // create(name, identities, slots, generation)
  static Napi::Value Create(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<std::string> ids;
    uint32_t slots, generation;
    if (!info[0].IsString()) return ThrowType(env, "name must be a string");
    if (!StringArray(env, info[1], "identities", &ids)) return env.Undefined();
    if (!GetU32(env, info[2], &slots) || !GetU32(env, info[3], &generation)) {
      return ThrowType(env, "slots and generation must be unsigned integers");
    }
    std::string error;
    auto r = ShmRegion::Create(info[0].As<Napi::String>().Utf8Value(), ids, slots, generation, &error);
    return r ? Wrap(env, std::move(r)) : ThrowError(env, error);
  }

  static Napi::Value Attach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) return ThrowType(env, "name must be a string");
    std::string error;
    auto r = ShmRegion::Attach(info[0].As<Napi::String>().Utf8Value(), &error);
    return r ? Wrap(env, std::move(r)) : ThrowError(env, error);
  }

  // unlink(name): true if removed, false if it did not exist.
  static Napi::Value UnlinkName(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) return ThrowType(env, "name must be a string");
    std::string error;
    bool existed = false;
    if (!ShmRegion::Unlink(info[0].As<Napi::String>().Utf8Value(), &existed, &error)) {
      return ThrowError(env, error);
    }
    return Napi::Boolean::New(env, existed);
  }

  static Napi::Value SweepStale(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<std::string> removed = ShmRegion::SweepStale();
    Napi::Array out = Napi::Array::New(env, removed.size());
    for (uint32_t i = 0; i < removed.size(); ++i) out.Set(i, removed[i]);
    return out;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    ref_->region.reset();
    return info.Env().Undefined();
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ShmRegion* r = OpenRegion(env, *ref_);
    if (!r) return env.Undefined();
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", r->name());
    o.Set("servers", r->servers());
    o.Set("slots", r->slots());
    o.Set("generation", r->generation());
    o.Set("lineBytes", kLineBytes);
    return o;
  }

  Napi::Value Identities(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ShmRegion* r = OpenRegion(env, *ref_);
    if (!r) return env.Undefined();
    Napi::Array out = Napi::Array::New(env, r->servers());
    for (uint32_t i = 0; i < r->servers(); ++i) out.Set(i, r->Identity(i));
    return out;
  }

  Napi::Value ZeroSlot(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ShmRegion* r = OpenRegion(env, *ref_);
    uint32_t slot;
    if (!r || !SlotArg(env, *r, info[0], &slot)) return env.Undefined();
    r->ZeroSlot(slot);
    return env.Undefined();
  }

  Napi::Value State(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ShmRegion* r = OpenRegion(env, *ref_);
    uint32_t server;
    if (!r || !ServerArg(env, *r, info[0], &server)) return env.Undefined();
    return Napi::Number::New(env, static_cast<double>(r->State(server)));
  }

  // setState(server, bits)
  Napi::Value SetState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ShmRegion* r = OpenRegion(env, *ref_);
    uint32_t server, bits;
    if (!r || !ServerArg(env, *r, info[0], &server)) return env.Undefined();
    if (!GetU32(env, info[1], &bits)) return ThrowType(env, "state must be an unsigned integer");
    r->SetState(server, bits);
    return env.Undefined();
  }

  Napi::Value EjectUntil(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ShmRegion* r = OpenRegion(env, *ref_);
    uint32_t server;
    if (!r || !ServerArg(env, *r, info[0], &server)) return env.Undefined();
    return Napi::Number::New(env, static_cast<double>(r->EjectUntil(server)));
  }

  // setEjectUntil(server, unixMs): 0 clears the ejection
  Napi::Value SetEjectUntil(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ShmRegion* r = OpenRegion(env, *ref_);
    uint32_t server;
    int64_t ms;
    if (!r || !ServerArg(env, *r, info[0], &server)) return env.Undefined();
    if (!GetSafeInt(env, info[1], &ms) || ms < 0) {
      return ThrowType(env, "unixMs must be a non-negative integer");
    }
    r->SetEjectUntil(server, static_cast<uint64_t>(ms));
    return env.Undefined();
  }

  // recordFailure(server) -> the failure streak including this one
  Napi::Value RecordFailure(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ShmRegion* r = OpenRegion(env, *ref_);
    uint32_t server;
    if (!r || !ServerArg(env, *r, info[0], &server)) return env.Undefined();
    return Napi::Number::New(env, static_cast<double>(r->RecordFailure(server)));
  }

  Napi::Value RecordSuccess(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ShmRegion* r = OpenRegion(env, *ref_);
    uint32_t server;
    if (!r || !ServerArg(env, *r, info[0], &server)) return env.Undefined();
    r->RecordSuccess(server);
    return env.Undefined();
  }

  Napi::Value Ejections(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ShmRegion* r = OpenRegion(env, *ref_);
    uint32_t server;
    if (!r || !ServerArg(env, *r, info[0], &server)) return env.Undefined();
    return Napi::Number::New(env, static_cast<double>(r->Ejections(server)));
  }

  // setRampPermille(server, permille): slow start; 1000 (or more) = full weight
  Napi::Value SetRampPermille(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ShmRegion* r = OpenRegion(env, *ref_);
    uint32_t server, permille;
    if (!r || !ServerArg(env, *r, info[0], &server)) return env.Undefined();
    if (!GetU32(env, info[1], &permille)) return ThrowType(env, "permille must be an unsigned integer");
    r->SetRampPermille(server, permille);
    return env.Undefined();
  }

  // tryEject(server, streakSeen, untilUnixMs) -> true if this call ejected it
  Napi::Value TryEject(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ShmRegion* r = OpenRegion(env, *ref_);
    uint32_t server;
    int64_t streak, until;
    if (!r || !ServerArg(env, *r, info[0], &server)) return env.Undefined();
    if (!GetSafeInt(env, info[1], &streak) || streak < 0 || !GetSafeInt(env, info[2], &until) || until < 0) {
      return ThrowType(env, "streakSeen and untilUnixMs must be non-negative integers");
    }
    return Napi::Boolean::New(env, r->TryEject(server, static_cast<uint64_t>(streak), static_cast<uint64_t>(until)));
  }

  // copyFrom(other, slot): slot -1 = all slots and health words
  Napi::Value CopyFrom(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ShmRegion* r = OpenRegion(env, *ref_);
    if (!r) return env.Undefined();
    std::shared_ptr<ShmRegion> from = From(info[0]);
    if (!from) return ThrowType(env, "copyFrom needs an open Region");
    int64_t slot;
    if (!GetSafeInt(env, info[1], &slot)) return ThrowType(env, "slot must be an integer (-1 = all)");
    if (slot >= static_cast<int64_t>(r->slots())) return ThrowRange(env, "slot out of range");
    return Napi::Number::New(env, r->CopyFrom(*from, slot));
  }

  // The counter section as an ArrayBuffer over the mapping (zero copy). The
  // buffer holds its own reference, so the mapping outlives close() until the
  // buffer is garbage-collected.
  Napi::Value CountersBuffer(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ShmRegion* r = OpenRegion(env, *ref_);
    if (!r) return env.Undefined();
    auto* keep = new std::shared_ptr<ShmRegion>(ref_->region);
    return Napi::ArrayBuffer::New(
        env, r->counters_base(), r->counters_bytes(),
        [](Napi::Env, void*, std::shared_ptr<ShmRegion>* hint) { delete hint; }, keep);
  }

  // view(first, count) → { readHealth, readLoads, buffer }. The view holds
  // the mapping (like a bound Maglev table) until it is garbage-collected.
  Napi::Value View(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ShmRegion* r = OpenRegion(env, *ref_);
    uint32_t first, count;
    if (!r) return env.Undefined();
    if (!GetU32(env, info[0], &first) || !GetU32(env, info[1], &count)) {
      return ThrowType(env, "view(first, count) needs unsigned integers");
    }
    if (static_cast<uint64_t>(first) + count > r->servers()) {
      return ThrowRange(env, "first + count exceeds the region's servers");
    }
    auto state = std::make_shared<ViewState>();
    state->region = ref_->region;
    state->first = first;
    state->count = count;
    // [state per server][weight factor per server]; never empty: the buffer needs a data pointer.
    state->out.assign(2 * static_cast<size_t>(count) + 1, 0.0);
    Napi::Object view = Napi::Object::New(env);
    DefineFast<ViewReadHealth>(env, view, "readHealth", state);
    DefineFast<ViewReadLoads>(env, view, "readLoads", state);
    auto* keep = new std::shared_ptr<ViewState>(state);
    view.Set("buffer", Napi::ArrayBuffer::New(
                           env, state->out.data(), 2 * static_cast<size_t>(count) * sizeof(double),
                           [](Napi::Env, void*, std::shared_ptr<ViewState>* hint) { delete hint; }, keep));
    return view;
  }

  std::shared_ptr<RegionRef> ref_;
};

// ---------------------------------------------------------------------------
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
  if (!HashIpString(ip.data(), &h)) h = HashBytes(ip.data(), ip.size());
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
    std::shared_ptr<ShmRegion> region = Region::From(info[0]);
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

// ---------------------------------------------------------------------------
// RateTable: shared token buckets (rate_limit.h). A handle is a plain object
// of functions over one RateRef: take() is a fast function that writes its
// decision into `out`, which JS reads through `buffer` (a Float64Array), so
// a request crosses into C++ once and nothing is allocated.

struct RateRef {
  std::shared_ptr<RateTable> table;
  double out[4] = {0, 0, 0, 0};  // allowed (0/1), remaining, retryAfterMs, resetMs
};

RateTable* OpenRateTable(Napi::Env env, const RateRef& ref) {
  if (!ref.table) ThrowError(env, "rate table is closed");
  return ref.table.get();
}

// take(route, key, ratePerSec, burst, cost, nowMs?) → allowed. nowMs (a
// CLOCK_MONOTONIC reading in ms, for tests) defaults to the clock.
Napi::Value RateTake(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RateRef& ref = FastState<RateRef>(info);
  RateTable* t = OpenRateTable(env, ref);
  if (!t) return env.Undefined();
  Utf8Arg route(env, info[0]);
  Utf8Arg key(env, info[1]);
  if (!route.ok() || !key.ok()) return ThrowType(env, "route and key must be strings");
  double rate, burst, cost;
  if (napi_get_value_double(env, info[2], &rate) != napi_ok ||
      napi_get_value_double(env, info[3], &burst) != napi_ok ||
      napi_get_value_double(env, info[4], &cost) != napi_ok || !(rate > 0 && std::isfinite(rate)) ||
      !(burst > 0 && burst <= 1e9) || !(cost >= 0 && cost <= burst)) {
    // burst <= 1e9: micro-tokens stay exact in a double (< 2^53)
    return ThrowType(env, "take needs a finite ratePerSec > 0, 0 < burst <= 1e9 and 0 <= cost <= burst");
  }
  uint64_t now_us;
  if (info[5].IsUndefined()) {
    now_us = RateTable::NowUs();
  } else {
    double ms;
    if (napi_get_value_double(env, info[5], &ms) != napi_ok || !(ms >= 0 && ms <= 9e12)) {
      return ThrowType(env, "nowMs must be a non-negative number");
    }
    now_us = static_cast<uint64_t>(ms * 1000.0);
  }
  const RateDecision d =
      t->Take(RateTable::KeyHash(route.data(), route.size(), key.data(), key.size()), rate, burst, cost, now_us);
  ref.out[0] = d.allowed ? 1 : 0;
  ref.out[1] = d.remaining;
  ref.out[2] = d.retry_after_ms;
  ref.out[3] = d.reset_ms;
  return Napi::Boolean::New(env, d.allowed);
}

Napi::Value RateInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RateTable* t = OpenRateTable(env, FastState<RateRef>(info));
  if (!t) return env.Undefined();
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", t->name());
  o.Set("slots", t->slots());
  o.Set("bytes", static_cast<double>(t->bytes()));
  return o;
}

Napi::Value RateStatsOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RateTable* t = OpenRateTable(env, FastState<RateRef>(info));
  if (!t) return env.Undefined();
  const RateStats s = t->Stats();
  Napi::Object o = Napi::Object::New(env);
  o.Set("used", static_cast<double>(s.used));
  o.Set("evictions", static_cast<double>(s.evictions));
  o.Set("lockSteals", static_cast<double>(s.lock_steals));
  o.Set("lockTimeouts", static_cast<double>(s.lock_timeouts));
  return o;
}

// close(): drops this handle; the buffer keeps only the 4 output numbers.
Napi::Value RateClose(const Napi::CallbackInfo& info) {
  FastState<RateRef>(info).table.reset();
  return info.Env().Undefined();
}

Napi::Value WrapRateTable(Napi::Env env, std::shared_ptr<RateTable> table) {
  auto ref = std::make_shared<RateRef>();
  ref->table = std::move(table);
  Napi::Object o = Napi::Object::New(env);
  DefineFast<RateTake>(env, o, "take", ref);
  DefineFast<RateInfo>(env, o, "info", ref);
  DefineFast<RateStatsOf>(env, o, "stats", ref);
  DefineFast<RateClose>(env, o, "close", ref);
  auto* keep = new std::shared_ptr<RateRef>(ref);
  o.Set("buffer", Napi::ArrayBuffer::New(
                      env, ref->out, sizeof ref->out,
                      [](Napi::Env, void*, std::shared_ptr<RateRef>* hint) { delete hint; }, keep));
  return o;
}

// RateTable.create(name, slots)
Napi::Value RateCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t slots;
  if (!info[0].IsString()) return ThrowType(env, "name must be a string");
  if (!GetU32(env, info[1], &slots)) return ThrowType(env, "slots must be an unsigned integer");
  std::string error;
  auto t = RateTable::Create(info[0].As<Napi::String>().Utf8Value(), slots, &error);
  return t ? WrapRateTable(env, std::move(t)) : ThrowError(env, error);
}

Napi::Value RateAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) return ThrowType(env, "name must be a string");
  std::string error;
  auto t = RateTable::Attach(info[0].As<Napi::String>().Utf8Value(), &error);
  return t ? WrapRateTable(env, std::move(t)) : ThrowError(env, error);
}

// unlink(name): true if removed, false if it did not exist.
Napi::Value RateUnlink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) return ThrowType(env, "name must be a string");
  std::string error;
  bool existed = false;
  if (!ShmRegion::Unlink(info[0].As<Napi::String>().Utf8Value(), &existed, &error)) return ThrowError(env, error);
  return Napi::Boolean::New(env, existed);
}

Napi::Value RateSweepStale(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<std::string> removed = RateTable::SweepStale();
  Napi::Array out = Napi::Array::New(env, removed.size());
  for (uint32_t i = 0; i < removed.size(); ++i) out.Set(i, removed[i]);
  return out;
}

// hashKey(string) → bigint
Napi::Value HashKey(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Utf8Arg key(env, info[0]);
  if (!key.ok()) return ThrowType(env, "key must be a string");
  return Napi::BigInt::New(env, HashBytes(key.data(), key.size()));
}

// hashIp(string) → bigint, or null if not an IP address
Napi::Value HashIp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Utf8Arg ip(env, info[0]);
  if (!ip.ok()) return ThrowType(env, "ip must be a string");
  uint64_t h;
  return HashIpString(ip.data(), &h) ? Napi::BigInt::New(env, h) : env.Null();
}

// chooseSize(servers) → the default Maglev table size
Napi::Value ChooseSize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t servers;
  if (!GetU32(env, info[0], &servers) || servers > 20000000) {
    return ThrowType(env, "servers must be an unsigned integer <= 2e7");
  }
  return Napi::Number::New(env, MaglevTable::ChooseSize(servers));
}

// peerClosed(fd) → whether the peer of a connected socket has sent FIN or RST
Napi::Value PeerClosed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t fd;
  if (!GetU32(env, info[0], &fd) || fd > 0x7fffffff) return ThrowType(env, "fd must be a file descriptor");
  return Napi::Boolean::New(env, SocketPeerClosed(static_cast<int>(fd)));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Napi::Function region = Region::Define(env);
  // Per-environment (worker threads each load their own copy); freed by N-API.
  env.SetInstanceData(new Napi::FunctionReference(Napi::Persistent(region)));
  exports.Set("Region", region);
  exports.Set("Maglev", Maglev::Define(env));
  exports.Set("hashKey", Napi::Function::New<HashKey>(env, "hashKey"));
  exports.Set("hashIp", Napi::Function::New<HashIp>(env, "hashIp"));
  exports.Set("chooseSize", Napi::Function::New<ChooseSize>(env, "chooseSize"));
  exports.Set("peerClosed", Napi::Function::New<PeerClosed>(env, "peerClosed"));
  exports.Set("RateTable", [&] {
    Napi::Object o = Napi::Object::New(env);
    o.Set("create", Napi::Function::New<RateCreate>(env, "create"));
    o.Set("attach", Napi::Function::New<RateAttach>(env, "attach"));
    o.Set("unlink", Napi::Function::New<RateUnlink>(env, "unlink"));
    o.Set("sweepStale", Napi::Function::New<RateSweepStale>(env, "sweepStale"));
    return o;
  }());
  exports.Set("layout", [&] {
    Napi::Object o = Napi::Object::New(env);
    o.Set("lineBytes", kLineBytes);
    o.Set("counters", static_cast<uint32_t>(kCounterCount));
    o.Set("healthy", static_cast<double>(kStateHealthy));
    o.Set("drained", static_cast<double>(kStateDrained));
    return o;
  }());
  return exports;
}

}  // namespace
}  // namespace switchyard

// NODE_API_MODULE needs an unqualified function name.
static Napi::Object InitSwitchyard(Napi::Env env, Napi::Object exports) {
  return switchyard::Init(env, exports);
}
NODE_API_MODULE(switchyard, InitSwitchyard)
