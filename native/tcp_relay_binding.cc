// N-API binding of TcpRelay (tcp_relay.h): new TcpRelay(onEnded) starts the
// relay thread; add(clientFd, serverFd, idleMs) → id; abort(id); ref() and
// unref() decide whether pending reports keep the event loop alive (the
// caller refs while it has sessions, so an idle worker can still exit).
// onEnded(id, how, bytesIn, bytesOut) runs on the JS thread, once per session.
#include "bindings.h"

#include <memory>

#include "napi_args.h"
#include "tcp_relay.h"

namespace switchyard {
namespace {

class TcpRelayWrap : public Napi::ObjectWrap<TcpRelayWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "TcpRelay",
                       {InstanceMethod<&TcpRelayWrap::Add>("add"), InstanceMethod<&TcpRelayWrap::Abort>("abort"),
                        InstanceMethod<&TcpRelayWrap::Ref>("ref"), InstanceMethod<&TcpRelayWrap::Unref>("unref")});
  }

  explicit TcpRelayWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TcpRelayWrap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsFunction()) {
      ThrowType(env, "TcpRelay(onEnded): onEnded must be a function");
      return;
    }
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[0].As<Napi::Function>(), "switchyard-tcp-relay", 0, 1);
    tsfn_.Unref(env);
    Napi::ThreadSafeFunction tsfn = tsfn_;
    relay_ = std::make_unique<TcpRelay>([tsfn](const RelayEnded& e) mutable {
      tsfn.NonBlockingCall(new RelayEnded(e), [](Napi::Env env, Napi::Function fn, RelayEnded* ended) {
        std::unique_ptr<RelayEnded> own(ended);
        // The environment is going away (fn empty): nobody to tell.
        if (env == nullptr || fn.IsEmpty()) return;
        fn.Call({Napi::Number::New(env, own->id), Napi::Number::New(env, static_cast<uint32_t>(own->how)),
                 Napi::Number::New(env, static_cast<double>(own->bytes_in)),
                 Napi::Number::New(env, static_cast<double>(own->bytes_out))});
      });
    });
    if (!relay_->ok()) ThrowError(env, relay_->error());
  }

  ~TcpRelayWrap() override {
    relay_.reset();  // joins the thread: no report is queued after this
    if (tsfn_) tsfn_.Release();
  }

 private:
  Napi::Value Add(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t client, server, idle;
    if (!GetU32(env, info[0], &client) || client > 0x7fffffff) return ThrowType(env, "clientFd must be a file descriptor");
    if (!GetU32(env, info[1], &server) || server > 0x7fffffff) return ThrowType(env, "serverFd must be a file descriptor");
    if (!GetU32(env, info[2], &idle)) return ThrowType(env, "idleMs must be a whole number of milliseconds");
    uint32_t id = relay_->Add(static_cast<int>(client), static_cast<int>(server), idle);
    if (id == 0) return ThrowError(env, std::string("tcp relay: dup: ") + strerror(errno));
    return Napi::Number::New(env, id);
  }

  Napi::Value Abort(const Napi::CallbackInfo& info) {
    uint32_t id;
    if (!GetU32(info.Env(), info[0], &id)) return ThrowType(info.Env(), "id must be a session id");
    relay_->Abort(id);
    return info.Env().Undefined();
  }

  Napi::Value Ref(const Napi::CallbackInfo& info) {
    tsfn_.Ref(info.Env());
    return info.Env().Undefined();
  }

  Napi::Value Unref(const Napi::CallbackInfo& info) {
    tsfn_.Unref(info.Env());
    return info.Env().Undefined();
  }

  Napi::ThreadSafeFunction tsfn_;
  std::unique_ptr<TcpRelay> relay_;
};

}  // namespace

void ExportTcpRelay(Napi::Env env, Napi::Object exports) { exports.Set("TcpRelay", TcpRelayWrap::Define(env)); }

}  // namespace switchyard
