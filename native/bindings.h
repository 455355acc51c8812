// One Export function per binding file: each adds its class or functions to
// the module's exports (addon.cc calls them in turn).
#ifndef SWITCHYARD_BINDINGS_H_
#define SWITCHYARD_BINDINGS_H_

#include <napi.h>

#include <memory>

namespace switchyard {

class ShmRegion;

void ExportRegion(Napi::Env env, Napi::Object exports);
void ExportMaglev(Napi::Env env, Napi::Object exports);
void ExportRateTable(Napi::Env env, Napi::Object exports);
void ExportHashes(Napi::Env env, Napi::Object exports);
void ExportSocketPeer(Napi::Env env, Napi::Object exports);
void ExportListenSocket(Napi::Env env, Napi::Object exports);
void ExportDsr(Napi::Env env, Napi::Object exports);
void ExportTcpRelay(Napi::Env env, Napi::Object exports);
void ExportStartupPages(Napi::Env env, Napi::Object exports);

// The region behind a JS value, or nullptr if it is not an open Region
// (region_binding.cc; Maglev's bindHealth takes one).
std::shared_ptr<ShmRegion> RegionFrom(const Napi::Value& v);

}  // namespace switchyard

#endif  // SWITCHYARD_BINDINGS_H_
