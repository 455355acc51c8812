#include "tcp_relay.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <memory>

namespace switchyard {
namespace {

// One read's worth: 64 KiB (nginx's stream module reads 16 KiB; more per
// call is fewer calls for large transfers, and it is one buffer per process).
constexpr size_t kChunk = 64 * 1024;
constexpr int kMaxEvents = 256;
constexpr uint32_t kReadEvents = EPOLLIN | EPOLLRDHUP | EPOLLET;

uint64_t NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

bool WouldBlock(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

void SetResetOnClose(int fd) {
  struct linger lg = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

}  // namespace

// Side 0 is the client, side 1 the server; direction d reads side d and
// writes side 1 - d, so direction 0 is client -> server.
struct TcpRelay::Session {
  struct Direction {
    bool eof = false;   // the source sent FIN (read returned 0)
    bool shut = false;  // ... and it was passed on: shutdown(destination, SHUT_WR)
    // Bytes read but not yet accepted by the destination (it was full); while
    // any are held, the source is not read: backpressure, at most kChunk.
    std::unique_ptr<char[]> held;
    size_t held_off = 0;
    size_t held_len = 0;
    uint64_t bytes = 0;
    // epoll reported the source's FIN or a hang-up: read on until the read
    // says so, instead of taking a short read as "nothing more queued".
    bool fin_seen = false;
  };
  uint32_t id = 0;
  int fd[2] = {-1, -1};
  uint32_t idle_ms = 0;
  uint64_t last_ms = 0;
  bool ended = false;
  bool watch_out[2] = {false, false};  // EPOLLOUT asked for on fd[side]
  Direction dir[2];
};

TcpRelay::TcpRelay(EndedFn ended) : ended_(std::move(ended)), scratch_(kChunk) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) error_ = std::string("tcp relay: epoll_create1: ") + strerror(errno);
}

TcpRelay::~TcpRelay() {
  for (auto& [id, s] : sessions_) {
    for (int fd : s->fd) {
      SetResetOnClose(fd);
      close(fd);
    }
    delete s;
  }
  for (Session* s : dead_) delete s;
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

uint32_t TcpRelay::Add(int client_fd, int server_fd, uint32_t idle_ms) {
  auto s = std::make_unique<Session>();
  for (int side = 0; side < 2; side++) {
    s->fd[side] = fcntl(side == 0 ? client_fd : server_fd, F_DUPFD_CLOEXEC, 0);
    if (s->fd[side] < 0) break;
    // Edge-triggered: each source is read until it would block (or a short
    // read says it is empty), so an edge is never lost; adding reports
    // whatever is already readable.
    // EPOLLOUT only once a write would block (WatchWritable): a fresh socket
    // is writable, and asking for it would wake the loop once per connection for nothing.
    struct epoll_event ev = {};
    ev.events = kReadEvents;
    ev.data.u64 = reinterpret_cast<uintptr_t>(s.get()) | static_cast<uintptr_t>(side);
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, s->fd[side], &ev) != 0) {
      close(s->fd[side]);
      s->fd[side] = -1;
      break;
    }
  }
  if (s->fd[0] < 0 || s->fd[1] < 0) {
    int err = errno;
    for (int fd : s->fd) {
      if (fd < 0) continue;
      epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
      close(fd);
    }
    errno = err;
    return 0;
  }
  do {
    if (++next_id_ == 0) next_id_ = 1;
  } while (sessions_.count(next_id_) != 0);
  s->id = next_id_;
  s->idle_ms = idle_ms;
  s->last_ms = NowMs();
  if (idle_ms > 0 && (min_idle_ms_ == 0 || idle_ms < min_idle_ms_)) min_idle_ms_ = idle_ms;
  Session* raw = s.release();
  sessions_[raw->id] = raw;
  return raw->id;
}

void TcpRelay::Abort(uint32_t id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  End(it->second, RelayEnd::kAborted);
  for (Session* s : dead_) delete s;
  dead_.clear();
}

void TcpRelay::Poll() {
  struct epoll_event events[kMaxEvents];
  int n;
  do {
    n = epoll_wait(epoll_fd_, events, kMaxEvents, 0);
    for (int i = 0; i < n; i++) {
      uint64_t tag = events[i].data.u64;
      Session* s = reinterpret_cast<Session*>(tag & ~static_cast<uint64_t>(1));
      // A session ended earlier in this batch is still allocated (freed below).
      if (!s->ended) OnEvent(s, static_cast<int>(tag & 1), events[i].events);
    }
    for (Session* s : dead_) delete s;
    dead_.clear();
  } while (n == kMaxEvents);
}

uint32_t TcpRelay::SweepPeriodMs() const {
  if (min_idle_ms_ == 0 || sessions_.empty()) return 0;
  uint32_t period = min_idle_ms_ / 10;
  return period < 5 ? 5 : period > 250 ? 250 : period;
}

void TcpRelay::OnEvent(Session* s, int side, uint32_t events) {
  if (events & EPOLLERR) {
    End(s, side == 0 ? RelayEnd::kClientError : RelayEnd::kServerError);
    return;
  }
  if (events & (EPOLLRDHUP | EPOLLHUP)) s->dir[side].fin_seen = true;
  // Readable (or FIN/HUP, which a read reports as 0 or an error): pump what this side sends.
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) && !Pump(s, side)) return;
  // Writable again: the direction towards this side may be holding bytes.
  if ((events & EPOLLOUT) && s->dir[1 - side].held_len > 0) Pump(s, 1 - side);
}

bool TcpRelay::Pump(Session* s, int d) {
  Session::Direction& dir = s->dir[d];
  const int from = s->fd[d];
  const int to = s->fd[1 - d];
  const RelayEnd from_error = d == 0 ? RelayEnd::kClientError : RelayEnd::kServerError;
  const RelayEnd to_error = d == 0 ? RelayEnd::kServerError : RelayEnd::kClientError;
  char* buf = scratch_.data();
  for (;;) {
    if (dir.held_len > 0) {
      ssize_t w = send(to, dir.held.get() + dir.held_off, dir.held_len, MSG_NOSIGNAL);
      if (w < 0) {
        if (WouldBlock(errno)) return WatchWritable(s, 1 - d);  // EPOLLOUT on `to` resumes
        if (errno == EINTR) continue;
        End(s, to_error);
        return false;
      }
      dir.held_off += static_cast<size_t>(w);
      dir.held_len -= static_cast<size_t>(w);
      s->last_ms = NowMs();
      continue;
    }
    if (dir.eof) {
      if (!dir.shut) {
        dir.shut = true;
        shutdown(to, SHUT_WR);
        if (s->dir[1 - d].shut) {
          End(s, RelayEnd::kClosed);
          return false;
        }
      }
      return true;
    }
    ssize_t r = recv(from, buf, kChunk, 0);
    if (r == 0) {
      dir.eof = true;
      continue;
    }
    if (r < 0) {
      if (WouldBlock(errno)) return true;
      if (errno == EINTR) continue;
      End(s, from_error);
      return false;
    }
    dir.bytes += static_cast<uint64_t>(r);
    s->last_ms = NowMs();
    ssize_t w = send(to, buf, static_cast<size_t>(r), MSG_NOSIGNAL);
    if (w < 0) {
      if (!WouldBlock(errno) && errno != EINTR) {
        End(s, to_error);
        return false;
      }
      w = 0;
    }
    if (w < r) {
      if (!dir.held) dir.held.reset(new char[kChunk]);
      dir.held_off = 0;
      dir.held_len = static_cast<size_t>(r - w);
      memcpy(dir.held.get(), buf + w, dir.held_len);
      // Loop: the next send most likely says "would block", and the EPOLLOUT edge then resumes.
      continue;
    }
    // A short read emptied the receive queue (TCP reads all that is queued,
    // up to the buffer): data arriving after it raises a new edge, so the
    // read that would only say "would block" is saved, as nginx does. Not
    // after a FIN was reported: that edge was already taken.
    if (static_cast<size_t>(r) < kChunk && !dir.fin_seen) return true;
  }
}

bool TcpRelay::WatchWritable(Session* s, int side) {
  if (s->watch_out[side]) return true;
  // Kept from then on: with edge triggering it costs no extra wake-ups, and
  // the next full buffer needs no second call. Re-arming reports the socket
  // at once if it became writable meanwhile.
  s->watch_out[side] = true;
  struct epoll_event ev = {};
  ev.events = kReadEvents | EPOLLOUT;
  ev.data.u64 = reinterpret_cast<uintptr_t>(s) | static_cast<uintptr_t>(side);
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, s->fd[side], &ev) == 0) return true;
  End(s, side == 0 ? RelayEnd::kClientError : RelayEnd::kServerError);
  return false;
}

void TcpRelay::End(Session* s, RelayEnd how) {
  if (s->ended) return;
  s->ended = true;
  for (int fd : s->fd) {
    // Explicitly: the caller's descriptor keeps the socket (and so the epoll registration) alive.
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    if (how != RelayEnd::kClosed) SetResetOnClose(fd);
    close(fd);
  }
  sessions_.erase(s->id);
  dead_.push_back(s);
  ended_(RelayEnded{s->id, how, s->dir[0].bytes, s->dir[1].bytes});
}

void TcpRelay::SweepIdle() {
  const uint64_t now = NowMs();
  std::vector<Session*> idle;
  for (auto& [id, s] : sessions_) {
    if (s->idle_ms > 0 && now - s->last_ms >= s->idle_ms) idle.push_back(s);
  }
  for (Session* s : idle) End(s, RelayEnd::kIdle);
  for (Session* s : dead_) delete s;
  dead_.clear();
}

}  // namespace switchyard
