// The byte relay of `mode: tcp` sessions, off V8: once a worker has connected
// a client to a server (and written any PROXY header), it hands both sockets
// here and the bytes move between them through epoll and a read/write loop in
// C++, the way nginx's stream module and HAProxy do. JavaScript keeps the
// decisions (balancing, connect retries, PROXY protocol, counters, drain);
// this keeps the per-byte work, which in the JS relay cost 2-4x nginx's CPU
// per byte (a Buffer, a 'data' event and a write request per read).
//
// Threading: none of its own. The relay's epoll descriptor is watched by the
// caller's event loop (the binding puts it in libuv as a uv_poll), and Poll()
// runs there when it is readable. A relay thread was tried first: every
// short connection then cost two cross-thread wake-ups (hand-over and the end
// report), about a quarter of a worker's CPU with a new connection per
// request, and a worker process has its core to itself anyway.
//
// Ownership: Add() dup()s both descriptors, so the relay's copies keep the
// sockets open until it ends the session, whatever the caller does with its
// own. At the end it reports once (the Ended callback) and closes its copies;
// on an abort it first sets SO_LINGER 0 so the last close of each socket
// sends a reset.
//
// Semantics kept from the JS relay: a FIN from one side is passed on as a
// shutdown(SHUT_WR) of the other once every byte before it was written
// (half-close); the session ends cleanly when both directions have ended; an
// error or reset on either side, an idle timeout (no byte either way) or
// Abort() resets both.
#ifndef SWITCHYARD_TCP_RELAY_H_
#define SWITCHYARD_TCP_RELAY_H_

#include <cstdint>
#include <functional>
#include <string>
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

  // `ended` runs inside Poll(), SweepIdle() and Abort(), once per session.
  explicit TcpRelay(EndedFn ended);
  // Closes every session still open (with a reset), without reports.
  ~TcpRelay();
  TcpRelay(const TcpRelay&) = delete;
  TcpRelay& operator=(const TcpRelay&) = delete;

  // The epoll descriptor to watch for readability (-1 if it could not be
  // created: `error` says why).
  int fd() const { return epoll_fd_; }
  const std::string& error() const { return error_; }

  // Takes over relaying between two connected sockets (the caller's
  // descriptors are duplicated, not taken). idle_ms 0: no idle timeout.
  // Returns the session id (> 0), or 0 with errno set when dup() or
  // epoll_ctl() failed.
  uint32_t Add(int client_fd, int server_fd, uint32_t idle_ms);
  // Resets both sides of a session at once and reports it. An unknown or
  // already ended id is ignored.
  void Abort(uint32_t id);
  // Handles whatever epoll has ready, without waiting.
  void Poll();
  // Ends the sessions idle for their timeout or longer.
  void SweepIdle();
  // How often SweepIdle should run (a tenth of the shortest idle timeout,
  // 5-250 ms), or 0 when no session has one.
  uint32_t SweepPeriodMs() const;
  size_t sessions() const { return sessions_.size(); }

 private:
  struct Session;

  void OnEvent(Session* s, int side, uint32_t events);
  // Moves bytes of direction `dir` (0: client -> server, 1: server -> client)
  // until the source would block, the destination is full, or it ended.
  // False when the session was ended.
  bool Pump(Session* s, int dir);
  // Asks epoll for EPOLLOUT on fd[side] (its writes would block). False when
  // that failed and the session was ended.
  bool WatchWritable(Session* s, int side);
  void End(Session* s, RelayEnd how);

  EndedFn ended_;
  std::string error_;
  int epoll_fd_ = -1;
  uint32_t next_id_ = 0;
  std::unordered_map<uint32_t, Session*> sessions_;
  // Ended during the current batch of events: freed after it, since a later
  // event of the batch may still name them.
  std::vector<Session*> dead_;
  uint32_t min_idle_ms_ = 0;  // the shortest idle timeout of the sessions added so far
  std::vector<char> scratch_;
};

}  // namespace switchyard

#endif  // SWITCHYARD_TCP_RELAY_H_
