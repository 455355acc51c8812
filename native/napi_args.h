// The argument checks and conversions every binding file shares (the way
// better-sqlite3 keeps its N-API glue in one helper header): errors thrown as
// pending JS exceptions (TypeError for a wrong type, RangeError for an index
// out of range, Error for a failed system call; never an abort, since the
// addon is built without C++ exceptions), strings read into stack buffers,
// numbers checked for range and integrality, and DefineFast for hot-path
// functions that skip napi_unwrap.
#ifndef SWITCHYARD_NAPI_ARGS_H_
#define SWITCHYARD_NAPI_ARGS_H_

#include <napi.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "hash.h"
#include "rate_limit.h"

namespace switchyard {

inline Napi::Value ThrowType(Napi::Env env, const std::string& msg) {
  Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
  return env.Undefined();
}
inline Napi::Value ThrowRange(Napi::Env env, const std::string& msg) {
  Napi::RangeError::New(env, msg).ThrowAsJavaScriptException();
  return env.Undefined();
}
inline Napi::Value ThrowError(Napi::Env env, const std::string& msg) {
  Napi::Error::New(env, msg).ThrowAsJavaScriptException();
  return env.Undefined();
}

// A JS string's UTF-8 bytes: in a stack buffer when short, else on the heap.
// napi writes whole characters only, so a string cut at the buffer's end can
// stop up to 3 bytes short of it: any length that close is read again in full
// (a key hashed as its prefix would share its bucket with every other key of
// that prefix).
class Utf8Arg {
 public:
  Utf8Arg(Napi::Env env, napi_value v) {
    size_t len = 0;
    if (napi_get_value_string_utf8(env, v, small_, sizeof small_, &len) != napi_ok) return;
    ok_ = true;
    if (len + 4 < sizeof small_) {
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

// A rate-limit key or route name as the exact bytes it is hashed by
// (rate_limit.h KeyBytes): latin1, one byte per character, when every
// character is below U+0100 (header values are latin1 strings of the bytes
// received, so a header key is hashed as exactly those bytes), else its
// UTF-16 code units, flagged wide. Read as UTF-16 because that is exact for
// every string: UTF-8 would turn each lone surrogate into U+FFFD, so JWT
// subjects "\uD800" and "\uFFFD" would share a bucket.
class KeyArg {
 public:
  KeyArg(Napi::Env env, napi_value v) {
    size_t len = 0;
    if (napi_get_value_string_utf16(env, v, units_, kSmall, &len) != napi_ok) return;
    ok_ = true;
    char16_t* u = units_;
    if (len + 1 >= kSmall) {  // may be cut at the buffer's end: read it all
      napi_get_value_string_utf16(env, v, nullptr, 0, &len);
      large_.resize(len + 1);
      napi_get_value_string_utf16(env, v, &large_[0], len + 1, &len);
      u = large_.data();
    }
    char16_t any = 0;
    for (size_t i = 0; i < len; ++i) any |= u[i];
    if (any > 0xff) {
      bytes_ = {u, len * sizeof(char16_t), true};
      return;
    }
    // Narrowed in place: byte i is written after unit i was read.
    auto* narrow = reinterpret_cast<uint8_t*>(u);
    for (size_t i = 0; i < len; ++i) narrow[i] = static_cast<uint8_t>(u[i]);
    bytes_ = {narrow, len, false};
  }
  bool ok() const { return ok_; }
  const KeyBytes& bytes() const { return bytes_; }

 private:
  static constexpr size_t kSmall = 128;
  char16_t units_[kSmall];
  std::u16string large_;
  KeyBytes bytes_{};
  bool ok_ = false;
};

// HashIpString reads up to a NUL: "10.0.0.1\0x" is no address, not 10.0.0.1.
inline bool IpArgHash(const Utf8Arg& ip, uint64_t* out) {
  return std::memchr(ip.data(), 0, ip.size()) == nullptr && HashIpString(ip.data(), out);
}

// Number arguments: one N-API call each (napi_get_value_double fails on a
// non-number), then range and integrality checks in C++.
inline bool GetU32(napi_env env, napi_value v, uint32_t* out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0 && d <= 4294967295.0)) return false;
  *out = static_cast<uint32_t>(d);
  return static_cast<double>(*out) == d;
}

inline bool GetSafeInt(napi_env env, napi_value v, int64_t* out) {
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
inline bool StringArray(Napi::Env env, const Napi::Value& v, const char* what,
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

}  // namespace switchyard

#endif  // SWITCHYARD_NAPI_ARGS_H_
