// N-API bindings of RateTable (rate_limit.h): shared token buckets.
#include "bindings.h"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "napi_args.h"
#include "rate_limit.h"
#include "shm_region.h"

namespace switchyard {
namespace {

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

// take(route, key, ratePerSec, burst, cost, nowMs?) → allowed; a negative
// cost gives tokens back (always allowed). nowMs (a
// CLOCK_MONOTONIC reading in ms, for tests) defaults to the clock.
Napi::Value RateTake(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RateRef& ref = FastState<RateRef>(info);
  RateTable* t = OpenRateTable(env, ref);
  if (!t) return env.Undefined();
  KeyArg route(env, info[0]);
  KeyArg key(env, info[1]);
  if (!route.ok() || !key.ok()) return ThrowType(env, "route and key must be strings");
  double rate, burst, cost;
  if (napi_get_value_double(env, info[2], &rate) != napi_ok ||
      napi_get_value_double(env, info[3], &burst) != napi_ok ||
      napi_get_value_double(env, info[4], &cost) != napi_ok || !(rate > 0 && std::isfinite(rate)) ||
      !(burst > 0 && burst <= 1e9) || !(cost >= -burst && cost <= burst)) {
    // burst <= 1e9: micro-tokens stay exact in a double (< 2^53)
    return ThrowType(env, "take needs a finite ratePerSec > 0, 0 < burst <= 1e9 and -burst <= cost <= burst");
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
      t->Take(RateTable::KeyHash(route.bytes(), key.bytes()), rate, burst, cost, now_us);
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

}  // namespace

void ExportRateTable(Napi::Env env, Napi::Object exports) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("create", Napi::Function::New<RateCreate>(env, "create"));
  o.Set("attach", Napi::Function::New<RateAttach>(env, "attach"));
  o.Set("unlink", Napi::Function::New<RateUnlink>(env, "unlink"));
  o.Set("sweepStale", Napi::Function::New<RateSweepStale>(env, "sweepStale"));
  exports.Set("RateTable", o);
}

}  // namespace switchyard
