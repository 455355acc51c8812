// N-API binding of ReleaseStartupPages (startup_pages.h).
#include "bindings.h"

#include "napi_args.h"
#include "startup_pages.h"

namespace switchyard {
namespace {

// releaseStartupPages() → { mappings, residentBytes }
Napi::Value ReleaseStartupPagesJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ReleasedPages r = ReleaseStartupPages();
  Napi::Object out = Napi::Object::New(env);
  out.Set("mappings", Napi::Number::New(env, static_cast<double>(r.mappings)));
  out.Set("residentBytes", Napi::Number::New(env, static_cast<double>(r.residentBytes)));
  return out;
}

}  // namespace

void ExportStartupPages(Napi::Env env, Napi::Object exports) {
  exports.Set("releaseStartupPages", Napi::Function::New<ReleaseStartupPagesJs>(env, "releaseStartupPages"));
}

}  // namespace switchyard
