// N-API binding of SocketPeerClosed (socket_peer.h).
#include "bindings.h"

#include "napi_args.h"
#include "socket_peer.h"

namespace switchyard {
namespace {

// peerClosed(fd) → whether the peer of a connected socket has sent FIN or RST
Napi::Value PeerClosed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t fd;
  if (!GetU32(env, info[0], &fd) || fd > 0x7fffffff) return ThrowType(env, "fd must be a file descriptor");
  return Napi::Boolean::New(env, SocketPeerClosed(static_cast<int>(fd)));
}

}  // namespace

void ExportSocketPeer(Napi::Env env, Napi::Object exports) {
  exports.Set("peerClosed", Napi::Function::New<PeerClosed>(env, "peerClosed"));
}

}  // namespace switchyard
