#include "tcp_relay.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <memory>

namespace switchyard {
namespace {

// One read's worth: 64 KiB (nginx's stream module reads 16 KiB; more per
// call is fewer calls for large transfers, and it is one buffer per thread).
constexpr size_t kChunk = 64 * 1024;
constexpr int kMaxEvents = 256;
// The wake-up eventfd's tag in epoll data (sessions are tagged by address).
constexpr uint64_t kWakeTag = 0;

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
  Direction dir[2];
};

TcpRelay::TcpRelay(EndedFn ended) : ended_(std::move(ended)), scratch_(kChunk) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || wake_fd_ < 0) {
    error_ = std::string("tcp relay: ") + (epoll_fd_ < 0 ? "epoll_create1" : "eventfd") + ": " + strerror(errno);
    return;
  }
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeTag;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
    error_ = std::string("tcp relay: epoll_ctl: ") + strerror(errno);
    return;
  }
  thread_ = std::thread([this] { Run(); });
  ok_ = true;
}

TcpRelay::~TcpRelay() {
  if (thread_.joinable()) {
    stop_ = true;
    Wake();
    thread_.join();
  }
  // Nobody is told any more: the process or its environment is going away.
  for (auto& c : commands_) {
    if (c.add != nullptr) sessions_[c.add->id] = c.add;
  }
  for (auto& [id, s] : sessions_) {
    for (int fd : s->fd) {
      SetResetOnClose(fd);
      close(fd);
    }
    delete s;
  }
  if (wake_fd_ >= 0) close(wake_fd_);
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

uint32_t TcpRelay::Add(int client_fd, int server_fd, uint32_t idle_ms) {
  int c = fcntl(client_fd, F_DUPFD_CLOEXEC, 0);
  if (c < 0) return 0;
  int s = fcntl(server_fd, F_DUPFD_CLOEXEC, 0);
  if (s < 0) {
    int err = errno;
    close(c);
    errno = err;
    return 0;
  }
  auto* session = new Session();
  session->fd[0] = c;
  session->fd[1] = s;
  session->idle_ms = idle_ms;
  session->last_ms = NowMs();
  uint32_t id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (++next_id_ == 0) next_id_ = 1;
    id = session->id = next_id_;
    commands_.push_back({session, 0});
  }
  // `session` belongs to the relay thread from here: it may already be ended and freed.
  Wake();
  return id;
}

void TcpRelay::Abort(uint32_t id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    commands_.push_back({nullptr, id});
  }
  Wake();
}

void TcpRelay::Wake() {
  uint64_t one = 1;
  // A full counter (never, at 2^64 - 1) still leaves the eventfd readable.
  (void)!write(wake_fd_, &one, sizeof one);
}

void TcpRelay::TakeCommands() {
  uint64_t n;
  (void)!read(wake_fd_, &n, sizeof n);
  std::vector<Command> batch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch.swap(commands_);
  }
  for (const Command& c : batch) {
    if (c.add == nullptr) {
      auto it = sessions_.find(c.abort_id);
      if (it != sessions_.end()) End(it->second, RelayEnd::kAborted);
      continue;
    }
    Session* s = c.add;
    sessions_[s->id] = s;
    if (s->idle_ms > 0 && (min_idle_ms_ == 0 || s->idle_ms < min_idle_ms_)) min_idle_ms_ = s->idle_ms;
    for (int side = 0; side < 2; side++) {
      // Edge-triggered: each source is read until it would block, so an edge
      // is never lost; adding reports whatever is already readable.
      struct epoll_event ev = {};
      ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
      ev.data.u64 = reinterpret_cast<uintptr_t>(s) | static_cast<uintptr_t>(side);
      if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, s->fd[side], &ev) != 0) {
        End(s, side == 0 ? RelayEnd::kClientError : RelayEnd::kServerError);
        break;
      }
    }
  }
}

void TcpRelay::Run() {
  struct epoll_event events[kMaxEvents];
  while (!stop_) {
    // Idle sessions are looked for every tenth of the shortest idle timeout
    // (within 5-250 ms): a timeout fires at most 10% late.
    int wait_ms = -1;
    if (min_idle_ms_ > 0 && !sessions_.empty()) {
      uint32_t period = min_idle_ms_ / 10;
      wait_ms = static_cast<int>(period < 5 ? 5 : period > 250 ? 250 : period);
    }
    int n = epoll_wait(epoll_fd_, events, kMaxEvents, wait_ms);
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < n; i++) {
      uint64_t tag = events[i].data.u64;
      if (tag == kWakeTag) {
        TakeCommands();
        continue;
      }
      Session* s = reinterpret_cast<Session*>(tag & ~static_cast<uint64_t>(1));
      // A session ended earlier in this batch is still allocated (freed below).
      if (!s->ended) OnEvent(s, static_cast<int>(tag & 1), events[i].events);
    }
    if (wait_ms >= 0) {
      uint64_t now = NowMs();
      if (now - last_sweep_ms_ >= static_cast<uint64_t>(wait_ms)) {
        last_sweep_ms_ = now;
        SweepIdle(now);
      }
    }
    for (Session* s : dead_) delete s;
    dead_.clear();
  }
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
        if (WouldBlock(errno)) return true;  // EPOLLOUT on `to` resumes
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

void TcpRelay::SweepIdle(uint64_t now) {
  std::vector<Session*> idle;
  for (auto& [id, s] : sessions_) {
    if (s->idle_ms > 0 && now - s->last_ms >= s->idle_ms) idle.push_back(s);
  }
  for (Session* s : idle) End(s, RelayEnd::kIdle);
}

}  // namespace switchyard
