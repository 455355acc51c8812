// N-API bindings of the key and address hashes (hash.h) and the default
// Maglev size: what tests compare with their TypeScript reference.
#include "bindings.h"

#include "hash.h"
#include "maglev.h"
#include "napi_args.h"

namespace switchyard {
namespace {

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
  return IpArgHash(ip, &h) ? Napi::BigInt::New(env, h) : env.Null();
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

}  // namespace

void ExportHashes(Napi::Env env, Napi::Object exports) {
  exports.Set("hashKey", Napi::Function::New<HashKey>(env, "hashKey"));
  exports.Set("hashIp", Napi::Function::New<HashIp>(env, "hashIp"));
  exports.Set("chooseSize", Napi::Function::New<ChooseSize>(env, "chooseSize"));
}

}  // namespace switchyard
