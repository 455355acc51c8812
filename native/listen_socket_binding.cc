// N-API binding of AcceptQueued (listen_socket.h).
#include <string.h>

#include <vector>

#include "bindings.h"
#include "listen_socket.h"
#include "napi_args.h"

namespace switchyard {
namespace {

// acceptQueued(listenFd, max, sharers) → the descriptors of up to max connections waiting in the listen queue (this process's share)
Napi::Value AcceptQueuedJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t fd;
  uint32_t max;
  if (!GetU32(env, info[0], &fd) || fd > 0x7fffffff) return ThrowType(env, "listenFd must be a file descriptor");
  if (!GetU32(env, info[1], &max) || max < 1 || max > 4096) return ThrowRange(env, "max must be an integer from 1 to 4096");
  uint32_t sharers;
  if (!GetU32(env, info[2], &sharers) || sharers < 1 || sharers > 4096) return ThrowRange(env, "sharers must be an integer from 1 to 4096");
  std::vector<int> accepted;
  accepted.reserve(max);
  int err = AcceptQueued(static_cast<int>(fd), static_cast<int>(max), static_cast<int>(sharers), &accepted);
  if (err == -EINVAL) return ThrowError(env, "acceptQueued: the listening socket is blocking");
  if (err < 0) return ThrowError(env, std::string("acceptQueued: ") + strerror(-err));
  Napi::Array out = Napi::Array::New(env, accepted.size());
  for (size_t i = 0; i < accepted.size(); i++) out.Set(static_cast<uint32_t>(i), Napi::Number::New(env, accepted[i]));
  return out;
}

}  // namespace

void ExportListenSocket(Napi::Env env, Napi::Object exports) {
  exports.Set("acceptQueued", Napi::Function::New<AcceptQueuedJs>(env, "acceptQueued"));
}

}  // namespace switchyard
