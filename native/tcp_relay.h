// The byte relay of `mode: tcp` sessions, off V8: once a worker has connected
// a client to a server (and written any PROXY header), it hands both sockets
// here and one native thread moves the bytes between them with epoll and a
// read/write loop, the way nginx's stream module and HAProxy do. JavaScript
// keeps the decisions (balancing, connect retries, PROXY protocol, counters,
// drain); the thread keeps the per-byte work, which in the JS relay cost 2-4x
// nginx's CPU per byte (a Buffer, a 'data' event and a write request per read).
//
// Ownership: Add() dup()s both descriptors, so the relay's copies keep the
// sockets open until it ends the session, whatever the caller does with its
// own. At the end it reports once (the Ended callback, on the relay thread)
// and closes its copies; on an abort it first sets SO_LINGER 0 so the last
// close of each socket sends a reset.
//
// Semantics kept from the JS relay: a FIN from one side is passed on as a
// shutdown(SHUT_WR) of the other once every byte before it was written
// (half-close); the session ends cleanly when both directions have ended; an
// error or reset on either side, an idle timeout (no byte either way) or
// Abort() resets both.
#ifndef SWITCHYARD_TCP_RELAY_H_
#define SWITCHYARD_TCP_RELAY_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace switchyard {

enum class RelayEnd : uint32_t {
  kClosed = 0,       // both sides sent FIN and every byte was delivered
  kClientError = 1,  // the client reset or errored: both reset
  kServerError = 2,  // the server reset or errored: both reset
  kIdle = 3,         // no byte either way for the idle timeout: both reset
  kAborted = 4,      // Abort() (drain deadline, shutdown): both reset
};

struct RelayEnded {
  uint32_t id;
  RelayEnd how;
  uint64_t bytes_in;   // client -> server
  uint64_t bytes_out;  // server -> client
};

class TcpRelay {
 public:
  using EndedFn = std::function<void(const RelayEnded&)>;

  // Starts the relay thread. `ended` runs on that thread.
  explicit TcpRelay(EndedFn ended);
  // Stops the thread and closes every session still open (with a reset).
  ~TcpRelay();
  TcpRelay(const TcpRelay&) = delete;
  TcpRelay& operator=(const TcpRelay&) = delete;

  // Whether the thread and its epoll/eventfd started; `error` says why not.
  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }

  // Takes over relaying between two connected sockets (the caller's
  // descriptors are duplicated, not taken). idle_ms 0: no idle timeout.
  // Returns the session id (> 0), or 0 with errno set when dup() failed.
  uint32_t Add(int client_fd, int server_fd, uint32_t idle_ms);
  // Resets both sides of a session; its Ended report follows (once). An
  // unknown or already ended id is ignored.
  void Abort(uint32_t id);

 private:
  struct Session;
  struct Command {
    Session* add;  // non-null: a new session
    uint32_t abort_id;
  };

  void Run();
  void Wake();
  void TakeCommands();
  void OnEvent(Session* s, int side, uint32_t events);
  // Moves bytes of direction `dir` (0: client -> server, 1: server -> client)
  // until the source would block, the destination is full, or it ended.
  // False when the session was ended (and freed).
  bool Pump(Session* s, int dir);
  void End(Session* s, RelayEnd how);
  void SweepIdle(uint64_t now_ms);

  EndedFn ended_;
  bool ok_ = false;
  std::string error_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::mutex mu_;  // guards commands_ and next_id_
  std::vector<Command> commands_;
  uint32_t next_id_ = 0;
  // Relay thread only.
  std::unordered_map<uint32_t, Session*> sessions_;
  // Ended during the current batch of events: freed after it, since a later
  // event of the batch may still name them.
  std::vector<Session*> dead_;
  uint32_t min_idle_ms_ = 0;  // the shortest idle timeout seen: how often idle sessions are looked for
  uint64_t last_sweep_ms_ = 0;
  std::vector<char> scratch_;
  std::thread thread_;
};

}  // namespace switchyard

#endif  // SWITCHYARD_TCP_RELAY_H_
