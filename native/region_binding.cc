// N-API bindings of ShmRegion (shm_region.h): the Region class (create,
// attach, counters, health words, passive ejection, slow start) and the
// per-upstream views balancers read in one call. Checks and conversions only.
#include "bindings.h"

#include <memory>
#include <string>
#include <vector>

#include "napi_args.h"
#include "shm_region.h"

namespace switchyard {
namespace {

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

}  // namespace

std::shared_ptr<ShmRegion> RegionFrom(const Napi::Value& v) { return Region::From(v); }

void ExportRegion(Napi::Env env, Napi::Object exports) {
  Napi::Function region = Region::Define(env);
  // Per-environment (worker threads each load their own copy); freed by N-API.
  env.SetInstanceData(new Napi::FunctionReference(Napi::Persistent(region)));
  exports.Set("Region", region);
  exports.Set("layout", [&] {
    Napi::Object o = Napi::Object::New(env);
    o.Set("counters", static_cast<uint32_t>(kCounterCount));
    o.Set("healthy", static_cast<double>(kStateHealthy));
    o.Set("drained", static_cast<double>(kStateDrained));
    return o;
  }());
}

}  // namespace switchyard
