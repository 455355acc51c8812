// N-API binding of TcpRelay (tcp_relay.h): new TcpRelay(onEnded) creates the
// relay and watches its epoll descriptor from this thread's libuv loop (a
// uv_poll, plus a uv_timer for idle timeouts); add(clientFd, serverFd,
// idleMs) → id; abort(id). onEnded(id, how, bytesIn, bytesOut) is called
// once per session: from the loop, or from within abort(). The poll handle
// keeps the loop alive only while sessions are relayed, so an idle worker can
// still exit.
#include "bindings.h"

#include <uv.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "napi_args.h"
#include "tcp_relay.h"

namespace switchyard {
namespace {

class TcpRelayWrap : public Napi::ObjectWrap<TcpRelayWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "TcpRelay", {InstanceMethod<&TcpRelayWrap::Add>("add"), InstanceMethod<&TcpRelayWrap::Abort>("abort")});
  }

  explicit TcpRelayWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TcpRelayWrap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsFunction()) {
      ThrowType(env, "TcpRelay(onEnded): onEnded must be a function");
      return;
    }
    on_ended_ = Napi::Persistent(info[0].As<Napi::Function>());
    relay_ = std::make_unique<TcpRelay>([this](const RelayEnded& e) { reports_.push_back(e); });
    if (relay_->fd() < 0) {
      ThrowError(env, relay_->error());
      return;
    }
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      ThrowError(env, "tcp relay: no event loop");
      return;
    }
    poll_ = new uv_poll_t;
    timer_ = new uv_timer_t;
    poll_->data = timer_->data = this;
    int err = uv_poll_init(loop, poll_, relay_->fd());
    if (err == 0) err = uv_poll_start(poll_, UV_READABLE, OnReadable);
    uv_timer_init(loop, timer_);
    uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    uv_unref(reinterpret_cast<uv_handle_t*>(timer_));
    if (err != 0) ThrowError(env, std::string("tcp relay: uv_poll: ") + uv_strerror(err));
  }

  ~TcpRelayWrap() override {
    // The handles outlive this object until libuv has closed them.
    if (poll_ != nullptr) uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    if (timer_ != nullptr) uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  }

 private:
  static void OnReadable(uv_poll_t* handle, int status, int) {
    auto* self = static_cast<TcpRelayWrap*>(handle->data);
    if (status < 0) return;
    self->relay_->Poll();
    self->Deliver();
  }

  static void OnSweep(uv_timer_t* handle) {
    auto* self = static_cast<TcpRelayWrap*>(handle->data);
    // libuv runs timers before polling: after a stall, bytes already waiting
    // must count as activity before anyone is judged idle.
    self->relay_->Poll();
    self->relay_->SweepIdle();
    self->Deliver();
  }

  Napi::Value Add(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t client, server, idle;
    if (!GetU32(env, info[0], &client) || client > 0x7fffffff) return ThrowType(env, "clientFd must be a file descriptor");
    if (!GetU32(env, info[1], &server) || server > 0x7fffffff) return ThrowType(env, "serverFd must be a file descriptor");
    if (!GetU32(env, info[2], &idle)) return ThrowType(env, "idleMs must be a whole number of milliseconds");
    uint32_t id = relay_->Add(static_cast<int>(client), static_cast<int>(server), idle);
    if (id == 0) return ThrowError(env, std::string("tcp relay: ") + strerror(errno));
    if (relay_->sessions() == 1) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
    uint32_t period = relay_->SweepPeriodMs();
    if (period != 0 && period != sweep_ms_) {
      sweep_ms_ = period;
      uv_timer_start(timer_, OnSweep, period, period);
    }
    return Napi::Number::New(env, id);
  }

  Napi::Value Abort(const Napi::CallbackInfo& info) {
    uint32_t id;
    if (!GetU32(info.Env(), info[0], &id)) return ThrowType(info.Env(), "id must be a session id");
    relay_->Abort(id);
    Deliver();
    return info.Env().Undefined();
  }

  // Calls onEnded for each session that ended, after the relay is done with
  // its batch (so onEnded may call add or abort).
  void Deliver() {
    if (relay_->sessions() == 0) {
      uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
      if (sweep_ms_ != 0) uv_timer_stop(timer_);
      sweep_ms_ = 0;
    }
    if (reports_.empty()) return;
    std::vector<RelayEnded> reports;
    reports.swap(reports_);
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    Napi::Object recv = Value();
    for (const RelayEnded& e : reports) {
      // MakeCallback: the microtasks and nextTicks the callback queues run before returning to libuv.
      on_ended_.MakeCallback(recv, {Napi::Number::New(env, e.id), Napi::Number::New(env, static_cast<uint32_t>(e.how)),
                                    Napi::Number::New(env, static_cast<double>(e.bytes_in)), Napi::Number::New(env, static_cast<double>(e.bytes_out))});
      if (env.IsExceptionPending()) {
        // Thrown from a uv callback: the process's uncaughtException handling decides, as for any event.
        napi_value err;
        napi_get_and_clear_last_exception(env, &err);
        napi_fatal_exception(env, err);
      }
    }
  }

  Napi::FunctionReference on_ended_;
  std::unique_ptr<TcpRelay> relay_;
  std::vector<RelayEnded> reports_;
  uv_poll_t* poll_ = nullptr;
  uv_timer_t* timer_ = nullptr;
  uint32_t sweep_ms_ = 0;
};

}  // namespace

void ExportTcpRelay(Napi::Env env, Napi::Object exports) { exports.Set("TcpRelay", TcpRelayWrap::Define(env)); }

}  // namespace switchyard
