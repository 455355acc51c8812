// The module's entry point: every binding file exports its part. The
// bindings (one file per class: region_binding.cc, maglev_binding.cc,
// rate_table_binding.cc, hash_binding.cc, socket_peer_binding.cc,
// listen_socket_binding.cc, dsr_binding.cc, tcp_relay_binding.cc,
// startup_pages_binding.cc) hold only argument checks, conversions and
// errors, with the shared helpers in napi_args.h; the logic lives in
// shm_region.cc, maglev.cc, rate_limit.cc, listen_socket.cc, dsr_*.cc,
// tcp_relay.cc, startup_pages.cc and hash.h. Built without C++ exceptions
// (NAPI_DISABLE_CPP_EXCEPTIONS, see binding.gyp): every failure is thrown as
// a pending JS exception and the function returns at once.
#include <napi.h>

#include "bindings.h"

static Napi::Object InitSwitchyard(Napi::Env env, Napi::Object exports) {
  switchyard::ExportRegion(env, exports);
  switchyard::ExportMaglev(env, exports);
  switchyard::ExportRateTable(env, exports);
  switchyard::ExportHashes(env, exports);
  switchyard::ExportSocketPeer(env, exports);
  switchyard::ExportListenSocket(env, exports);
  switchyard::ExportDsr(env, exports);
  switchyard::ExportTcpRelay(env, exports);
  switchyard::ExportStartupPages(env, exports);
  return exports;
}
NODE_API_MODULE(switchyard, InitSwitchyard)
