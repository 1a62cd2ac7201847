// channel_fuzz: a libFuzzer target that decodes its input into a program of
// channel, select, close and timer operations on up to four channels, runs
// it on a one-worker goro runtime, and checks every observable result
// against a sequential reference model of Go's channels.
//
// The program runs in the main fiber plus "helper" fibers, each of which
// performs one blocking operation (a send, a receive, or a select over two
// channels) and records what happened. With one worker the interleaving is
// fixed: main spawns a helper and yields until the helper has run, so the
// helper has either completed at once or is parked in the channels' wait
// queues -- which the model tracks too (FIFO queues of waiters per channel; a
// select waiter sits in several queues and leaves all of them when it fires).
// Where goro may choose (a select with several ready cases), the model
// accepts any ready case and follows the choice goro made.
//
// Checked: try_send/try_recv results and values; select picks a ready case
// if there is one (default or timeout otherwise), moves exactly one value,
// and throws channel_closed for a chosen send on a closed channel; close
// wakes receivers with nothing and senders with channel_closed; values come
// out in FIFO order through buffers and direct handoffs; size()/closed()/
// capacity(); Timer stop/reset return values; after(0) and Timer(0) deliver.
// At the end every channel is closed, every helper must have finished with
// exactly the outcome the model predicted, and each buffer drains to the
// model's contents.
//
// Build: fuzz/run.sh (clang, -fsanitize=fuzzer,address,undefined). Built
// with -DGORO_FUZZ_REPLAY_MAIN it is a plain program that replays files or
// directories of inputs (tests/CMakeLists.txt runs the seed corpus in CTest).
#include <goro/goro.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;

bool g_verbose = false;

[[noreturn]] void fail(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  std::fprintf(stderr, "channel_fuzz: MISMATCH: ");
  std::vfprintf(stderr, fmt, args);
  std::fprintf(stderr, "\n");
  va_end(args);
  std::fflush(stderr);
  std::abort();
}

void trace(const char* fmt, ...) {
  if (!g_verbose) return;
  va_list args;
  va_start(args, fmt);
  std::vfprintf(stderr, fmt, args);
  std::fprintf(stderr, "\n");
  va_end(args);
}

// Reads the input a byte at a time; zeros once exhausted.
class Bytes {
 public:
  Bytes(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  std::uint8_t next() { return pos_ < size_ ? data_[pos_++] : 0; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

constexpr std::size_t kMaxChannels = 4;
constexpr std::size_t kSlots = 3;  // select cases: a receive and a send per slot
constexpr int kMaxOps = 200;
constexpr int kMaxHelpers = 64;

// ---------------------------------------------------------------------------
// The model

struct Outcome {  // what a helper's operation did
  bool done = false;
  std::size_t index = 0;       // the case that fired
  bool threw_closed = false;   // send on a closed channel
  std::optional<int> value;    // received value (nullopt: closed)
};

struct Waiter;

struct MCase {
  std::size_t ch;
  bool send;
  int value;          // for sends
  std::size_t index;  // case index in the select
};

struct Waiter {
  int id;
  std::vector<MCase> cases;
  bool fired = false;
  Outcome expected;
};

struct MChan {
  bool nil = false;
  std::size_t cap = 0;
  bool closed = false;
  std::deque<int> buf;
  std::deque<Waiter*> sendq, recvq;  // waiters that have not fired
};

class Model {
 public:
  std::vector<MChan> ch;

  bool recv_ready(std::size_t c) const {
    const MChan& m = ch[c];
    return !m.nil && (!m.buf.empty() || !m.sendq.empty() || m.closed);
  }
  bool send_ready(std::size_t c) const {  // includes "throws because closed"
    const MChan& m = ch[c];
    return !m.nil && (m.closed || !m.recvq.empty() || m.buf.size() < m.cap);
  }

  // recv() takes the next value (nullopt: closed and drained); recv_ready must hold.
  std::optional<int> recv(std::size_t c) {
    MChan& m = ch[c];
    if (!m.buf.empty()) {
      int v = m.buf.front();
      m.buf.pop_front();
      if (!m.sendq.empty()) {  // a parked sender refills the buffer's tail
        Waiter* w = m.sendq.front();
        const MCase& k = case_of(*w, c, true);
        m.buf.push_back(k.value);
        fire(w, k.index, false, std::nullopt);
      }
      return v;
    }
    if (!m.sendq.empty()) {  // unbuffered: straight from the parked sender
      Waiter* w = m.sendq.front();
      const MCase& k = case_of(*w, c, true);
      int v = k.value;
      fire(w, k.index, false, std::nullopt);
      return v;
    }
    return std::nullopt;  // closed
  }

  // send() delivers v; send_ready must hold and the channel must be open.
  void send(std::size_t c, int v) {
    MChan& m = ch[c];
    if (!m.recvq.empty()) {
      Waiter* w = m.recvq.front();
      fire(w, case_of(*w, c, false).index, false, v);
      return;
    }
    m.buf.push_back(v);
  }

  void close(std::size_t c) {
    MChan& m = ch[c];
    m.closed = true;
    while (!m.recvq.empty()) {
      Waiter* w = m.recvq.front();
      fire(w, case_of(*w, c, false).index, false, std::nullopt);
    }
    while (!m.sendq.empty()) {
      Waiter* w = m.sendq.front();
      fire(w, case_of(*w, c, true).index, true, std::nullopt);
    }
  }

  void enqueue(Waiter* w) {
    for (const MCase& k : w->cases) (k.send ? ch[k.ch].sendq : ch[k.ch].recvq).push_back(w);
  }

 private:
  static const MCase& case_of(const Waiter& w, std::size_t c, bool send) {
    for (const MCase& k : w.cases)
      if (k.ch == c && k.send == send) return k;
    fail("model: waiter %d has no %s case on channel %zu", w.id, send ? "send" : "recv", c);
  }
  void fire(Waiter* w, std::size_t index, bool threw, std::optional<int> value) {
    w->fired = true;
    w->expected = Outcome{true, index, threw, value};
    for (const MCase& k : w->cases) {
      auto& q = k.send ? ch[k.ch].sendq : ch[k.ch].recvq;
      q.erase(std::remove(q.begin(), q.end(), w), q.end());
    }
    trace("  model: helper %d fires case %zu%s", w->id, index, threw ? " (closed)" : "");
  }
};

// ---------------------------------------------------------------------------
// The program

class Program {
 public:
  explicit Program(Bytes& in) : in_(in) {}

  void run() {
    const std::size_t n = 1 + in_.next() % kMaxChannels;
    static constexpr int kCaps[] = {0, 1, 2, 3, 5, 8, 64, -1};  // -1: nil
    model_.ch.resize(n);
    for (std::size_t c = 0; c < n; ++c) {
      int cap = kCaps[in_.next() % 8];
      if (cap < 0) {
        model_.ch[c].nil = true;
        chans_.push_back(goro::Channel<int>(nullptr));
      } else {
        model_.ch[c].cap = static_cast<std::size_t>(cap);
        chans_.push_back(goro::Channel<int>(cap));
      }
      trace("channel %zu: %s cap %d", c, cap < 0 ? "nil" : "", cap);
    }
    for (int op = 0; op < kMaxOps && !in_.empty(); ++op) step();
    finish();
  }

 private:
  std::size_t pick() { return in_.next() % chans_.size(); }
  int fresh() { return ++value_counter_; }

  void step() {
    const int op = in_.next() % 12;
    switch (op) {
      case 0: op_try_send(); break;
      case 1: op_try_recv(); break;
      case 2: op_close(); break;
      case 3: op_select(Tail::with_default); break;
      case 4: op_blocking_send(); break;
      case 5: op_blocking_recv(); break;
      case 6: op_helper(); break;
      case 7: op_query(); break;
      case 8: op_select(Tail::none); break;
      case 9: op_select(Tail::with_timeout); break;
      case 10: op_timer(); break;
      default: goro::this_fiber::yield(); break;
    }
  }

  void op_try_send() {
    const std::size_t c = pick();
    const int v = fresh();
    const MChan& m = model_.ch[c];
    trace("try_send(ch%zu, %d)", c, v);
    int value = v;
    bool threw = false, ok = false;
    try {
      ok = chans_[c].try_send(std::move(value));
    } catch (const goro::channel_closed&) {
      threw = true;
    }
    if (m.nil) {
      if (ok || threw) fail("try_send on nil: ok=%d threw=%d", ok, threw);
      return;
    }
    if (m.closed) {
      if (!threw) fail("try_send on closed ch%zu did not throw", c);
      return;
    }
    if (threw) fail("try_send on open ch%zu threw", c);
    if (ok != model_.send_ready(c)) fail("try_send(ch%zu) returned %d, model %d", c, ok, !ok);
    if (ok) model_.send(c, v);
  }

  void op_try_recv() {
    const std::size_t c = pick();
    trace("try_recv(ch%zu)", c);
    std::optional<int> got = chans_[c].try_recv();
    std::optional<int> want;
    if (model_.recv_ready(c)) want = model_.recv(c);
    if (got != want) fail("try_recv(ch%zu) got %d/%d, model %d/%d", c, got.has_value(), got.value_or(0),
                          want.has_value(), want.value_or(0));
  }

  void op_close() {
    const std::size_t c = pick();
    MChan& m = model_.ch[c];
    trace("close(ch%zu)", c);
    bool threw = false;
    try {
      chans_[c].close();
    } catch (const goro::channel_closed&) {
      threw = true;
    }
    if (threw != (m.nil || m.closed)) fail("close(ch%zu): threw=%d, model closed=%d nil=%d", c, threw, m.closed, m.nil);
    if (!threw) model_.close(c);
  }

  void op_blocking_send() {
    const std::size_t c = pick();
    if (!model_.send_ready(c)) return;  // would block: main never does that
    const int v = fresh();
    trace("send(ch%zu, %d)", c, v);
    bool threw = false;
    try {
      chans_[c].send(v);
    } catch (const goro::channel_closed&) {
      threw = true;
    }
    if (threw != model_.ch[c].closed) fail("send(ch%zu): threw=%d, model closed=%d", c, threw, model_.ch[c].closed);
    if (!threw) model_.send(c, v);
  }

  void op_blocking_recv() {
    const std::size_t c = pick();
    if (!model_.recv_ready(c)) return;
    trace("recv(ch%zu)", c);
    std::optional<int> got = chans_[c].recv();
    std::optional<int> want = model_.recv(c);
    if (got != want) fail("recv(ch%zu) got %d/%d, model %d/%d", c, got.has_value(), got.value_or(0),
                          want.has_value(), want.value_or(0));
  }

  void op_query() {
    const std::size_t c = pick();
    const MChan& m = model_.ch[c];
    trace("query(ch%zu)", c);
    if (chans_[c].size() != m.buf.size()) fail("ch%zu size %zu, model %zu", c, chans_[c].size(), m.buf.size());
    if (chans_[c].closed() != m.closed) fail("ch%zu closed() %d, model %d", c, chans_[c].closed(), m.closed);
    if (chans_[c].capacity() != m.cap) fail("ch%zu capacity %zu, model %zu", c, chans_[c].capacity(), m.cap);
    if (chans_[c].is_nil() != m.nil) fail("ch%zu is_nil mismatch", c);
  }

  // --- select in main -----------------------------------------------------------
  enum class Tail { none, with_default, with_timeout };

  struct SelectShape {
    std::size_t ch[kSlots];
    bool send[kSlots];
    bool used[kSlots];
    int value[kSlots];
  };

  SelectShape decode_shape() {
    SelectShape s{};
    const std::size_t k = 1 + in_.next() % kSlots;
    for (std::size_t i = 0; i < kSlots; ++i) {
      s.used[i] = i < k;
      const std::uint8_t b = in_.next();
      s.ch[i] = b % chans_.size();
      s.send[i] = (b >> 4) & 1;
      s.value[i] = fresh();
    }
    return s;
  }

  // ready_cases(): case indices (recv 2i, send 2i+1) the model says are ready.
  std::vector<std::size_t> ready_cases(const SelectShape& s) const {
    std::vector<std::size_t> r;
    for (std::size_t i = 0; i < kSlots; ++i) {
      if (!s.used[i]) continue;
      if (s.send[i] ? model_.send_ready(s.ch[i]) : model_.recv_ready(s.ch[i])) r.push_back(2 * i + (s.send[i] ? 1 : 0));
    }
    return r;
  }

  void op_select(Tail tail) {
    SelectShape s = decode_shape();
    const std::vector<std::size_t> ready = ready_cases(s);
    if (tail == Tail::none && ready.empty()) return;  // would block forever
    trace("select(%s) over %zu ready", tail == Tail::none ? "blocking" : tail == Tail::with_default ? "default" : "timeout",
          ready.size());
    const goro::Channel<int> nil = nullptr;
    goro::Channel<int> r[kSlots], w[kSlots];
    for (std::size_t i = 0; i < kSlots; ++i) {
      r[i] = s.used[i] && !s.send[i] ? chans_[s.ch[i]] : nil;
      w[i] = s.used[i] && s.send[i] ? chans_[s.ch[i]] : nil;
    }
    std::optional<int> got;
    int handlers = 0;
    auto on_recv = [&](std::optional<int> v) {
      got = v;
      ++handlers;
    };
    auto on_other = [&] { ++handlers; };
    int v0 = s.value[0], v1 = s.value[1], v2 = s.value[2];
    std::size_t k = 99;
    bool threw = false;
    try {
      switch (tail) {
        case Tail::none:
          k = goro::select(goro::recv(r[0], on_recv), goro::send(w[0], v0, on_other), goro::recv(r[1], on_recv),
                           goro::send(w[1], v1, on_other), goro::recv(r[2], on_recv), goro::send(w[2], v2, on_other));
          break;
        case Tail::with_default:
          k = goro::select(goro::recv(r[0], on_recv), goro::send(w[0], v0, on_other), goro::recv(r[1], on_recv),
                           goro::send(w[1], v1, on_other), goro::recv(r[2], on_recv), goro::send(w[2], v2, on_other),
                           goro::default_case(on_other));
          break;
        case Tail::with_timeout:
          k = goro::select(goro::recv(r[0], on_recv), goro::send(w[0], v0, on_other), goro::recv(r[1], on_recv),
                           goro::send(w[1], v1, on_other), goro::recv(r[2], on_recv), goro::send(w[2], v2, on_other),
                           goro::timeout(0ms, on_other));
          break;
      }
    } catch (const goro::channel_closed&) {
      threw = true;
    }
    if (threw) {
      // Only a chosen send case on a closed channel throws; nothing moved.
      bool possible = false;
      for (std::size_t i : ready) possible = possible || (i % 2 == 1 && model_.ch[s.ch[i / 2]].closed);
      if (!possible) fail("select threw channel_closed with no closed send case ready");
      if (handlers != 0) fail("select threw but ran a handler");
      return;
    }
    if (handlers != 1) fail("select ran %d handlers", handlers);
    if (k == 2 * kSlots) {
      if (!ready.empty()) fail("select took %s with %zu ready cases", tail == Tail::with_default ? "default" : "timeout",
                               ready.size());
      return;
    }
    if (std::find(ready.begin(), ready.end(), k) == ready.end()) fail("select chose case %zu, which was not ready", k);
    const std::size_t c = s.ch[k / 2];
    if (k % 2 == 1) {
      if (model_.ch[c].closed) fail("select completed a send on closed ch%zu", c);
      model_.send(c, s.value[k / 2]);
    } else {
      std::optional<int> want = model_.recv(c);
      if (got != want) fail("select recv(ch%zu) got %d/%d, model %d/%d", c, got.has_value(), got.value_or(0),
                            want.has_value(), want.value_or(0));
    }
  }

  // --- helpers ----------------------------------------------------------------------
  // A helper performs one blocking operation: a plain send/recv on one
  // channel, or a select over two distinct channels.
  void op_helper() {
    if (static_cast<int>(waiters_.size()) >= kMaxHelpers) return;
    std::vector<std::size_t> live;
    for (std::size_t c = 0; c < chans_.size(); ++c)
      if (!model_.ch[c].nil) live.push_back(c);
    if (live.empty()) return;
    const std::uint8_t shape = in_.next();
    const bool two = (shape & 1) && live.size() >= 2;
    Waiter& w = waiters_.emplace_back();
    w.id = static_cast<int>(waiters_.size()) - 1;
    const std::size_t first = live[in_.next() % live.size()];
    w.cases.push_back(MCase{first, bool((shape >> 1) & 1), fresh(), 0});
    if (two) {
      std::size_t second = live[in_.next() % live.size()];
      if (second == first) second = live[(std::find(live.begin(), live.end(), first) - live.begin() + 1) % live.size()];
      w.cases.push_back(MCase{second, bool((shape >> 2) & 1), fresh(), 1});
    }
    Outcome& actual = outcomes_.emplace_back();
    std::atomic<bool>& started = started_.emplace_back(false);
    trace("helper %d: %s", w.id, two ? "select" : w.cases[0].send ? "send" : "recv");

    // Which cases the model says are ready right now (before it runs).
    std::vector<std::size_t> ready;
    for (const MCase& k : w.cases)
      if (k.send ? model_.send_ready(k.ch) : model_.recv_ready(k.ch)) ready.push_back(k.index);

    std::vector<MCase> cases = w.cases;
    helpers_.go([this, cases, &actual, &started] { helper_body(cases, actual, started); });
    while (!started.load()) goro::this_fiber::yield();
    // One worker: the helper ran until it parked or finished.
    if (ready.empty()) {
      if (actual.done) fail("helper %d completed although nothing was ready", w.id);
      model_.enqueue(&w);
      return;
    }
    if (!actual.done) fail("helper %d parked although a case was ready", w.id);
    if (std::find(ready.begin(), ready.end(), actual.index) == ready.end())
      fail("helper %d chose case %zu, which was not ready", w.id, actual.index);
    const MCase& k = w.cases[actual.index];
    w.fired = true;
    w.expected = actual;
    if (k.send) {
      if (actual.threw_closed != model_.ch[k.ch].closed) fail("helper %d send: threw=%d", w.id, actual.threw_closed);
      if (!actual.threw_closed) model_.send(k.ch, k.value);
    } else {
      std::optional<int> want = model_.recv(k.ch);
      if (actual.value != want) fail("helper %d recv got %d/%d, model %d/%d", w.id, actual.value.has_value(),
                                     actual.value.value_or(0), want.has_value(), want.value_or(0));
    }
  }

  void helper_body(const std::vector<MCase>& cases, Outcome& out, std::atomic<bool>& started) {
    started.store(true);
    Outcome o;
    try {
      if (cases.size() == 1) {
        const MCase& k = cases[0];
        if (k.send) {
          chans_[k.ch].send(k.value);
        } else {
          o.value = chans_[k.ch].recv();
        }
        o.index = 0;
      } else {
        const goro::Channel<int> nil = nullptr;
        const MCase& a = cases[0];
        const MCase& b = cases[1];
        int va = a.value, vb = b.value;
        auto on_recv = [&](std::optional<int> v) { o.value = v; };
        std::size_t k = goro::select(goro::recv(a.send ? nil : chans_[a.ch], on_recv),
                                     goro::send(a.send ? chans_[a.ch] : nil, va),
                                     goro::recv(b.send ? nil : chans_[b.ch], on_recv),
                                     goro::send(b.send ? chans_[b.ch] : nil, vb));
        o.index = k / 2;
      }
    } catch (const goro::channel_closed&) {
      o.threw_closed = true;
      // Which case threw: the (only) send case on a closed channel.
      o.index = cases.size() == 1 ? 0 : (cases[0].send && chans_[cases[0].ch].closed() ? 0 : 1);
    }
    o.done = true;
    out = o;
  }

  // --- timers -------------------------------------------------------------------------
  void op_timer() {
    const int sub = in_.next() % 4;
    switch (sub) {
      case 0: {
        trace("after(0).recv()");
        if (!goro::after(0ms).recv()) fail("after(0) delivered nothing");
        break;
      }
      case 1: {  // a long timer: reset() returns whether it was active
        trace("timer.reset(1h)");
        const bool was = timer_.reset(1h);
        if (was != timer_active_) fail("Timer::reset returned %d, model %d", was, timer_active_);
        timer_active_ = true;
        break;
      }
      case 2: {
        trace("timer.stop()");
        const bool was = timer_.stop();
        if (was != timer_active_) fail("Timer::stop returned %d, model %d", was, timer_active_);
        timer_active_ = false;
        bool fired = false;
        goro::select(goro::recv(timer_.channel(), [&] { fired = true; }), goro::default_case());
        if (fired) fail("a 1h timer delivered");
        break;
      }
      default: {
        trace("Timer(0).recv()");
        goro::Timer t(0ms);
        if (!t.channel().recv()) fail("Timer(0) delivered nothing");
        if (t.stop()) fail("stop() of a fired Timer returned true");
        break;
      }
    }
  }

  // --- the end ------------------------------------------------------------------------
  void finish() {
    trace("finish: close everything");
    for (std::size_t c = 0; c < chans_.size(); ++c) {
      if (model_.ch[c].nil || model_.ch[c].closed) continue;
      chans_[c].close();
      model_.close(c);
    }
    helpers_.wait();
    for (const Waiter& w : waiters_) {
      const Outcome& a = outcomes_[static_cast<std::size_t>(w.id)];
      if (!w.fired) fail("model: helper %d never fired", w.id);
      const Outcome& e = w.expected;
      // (A select over two send cases that threw does not say which case
      // threw; any is right then.)
      const bool index_ok = a.index == e.index || (a.threw_closed && e.threw_closed);
      if (!a.done || !index_ok || a.threw_closed != e.threw_closed || a.value != e.value) {
        fail("helper %d: got case %zu threw=%d value=%d/%d; model case %zu threw=%d value=%d/%d", w.id, a.index,
             a.threw_closed, a.value.has_value(), a.value.value_or(0), e.index, e.threw_closed, e.value.has_value(),
             e.value.value_or(0));
      }
    }
    for (std::size_t c = 0; c < chans_.size(); ++c) {
      if (model_.ch[c].nil) continue;
      std::deque<int> drained;
      for (int v : chans_[c]) drained.push_back(v);
      if (drained != model_.ch[c].buf) fail("ch%zu drained %zu values, model %zu (or other order)", c, drained.size(),
                                            model_.ch[c].buf.size());
    }
  }

  Bytes& in_;
  Model model_;
  std::vector<goro::Channel<int>> chans_;
  int value_counter_ = 0;
  std::deque<Waiter> waiters_;              // stable addresses (the model points at them)
  std::deque<Outcome> outcomes_;            // written by the helpers
  std::deque<std::atomic<bool>> started_;
  goro::WaitGroup helpers_;
  goro::Timer timer_{1h};
  bool timer_active_ = true;
};

// Deadlock detection is off by default: a timer fired by the TimerService
// thread can be reported as a deadlock (tests/regression_test.cpp, open).
// A real hang is still caught, by libFuzzer's -timeout. Set
// GORO_FUZZ_DETECT_DEADLOCK=1 to turn detection on.
bool detect_deadlock() {
  static const bool on = [] {
    const char* env = std::getenv("GORO_FUZZ_DETECT_DEADLOCK");
    return env && *env && *env != '0';
  }();
  return on;
}

void run_one(const std::uint8_t* data, std::size_t size) {
  try {
    goro::run(
        [&] {
          Bytes in(data, size);
          Program program(in);
          program.run();
        },
        goro::Options{.workers = 1, .detect_deadlock = detect_deadlock()});
  } catch (const std::exception& e) {
    fail("run() threw: %s", e.what());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool verbose = [] {
    g_verbose = std::getenv("FUZZ_VERBOSE") != nullptr;
    return g_verbose;
  }();
  (void)verbose;
  run_one(data, size);
  return 0;
}

#ifdef GORO_FUZZ_REPLAY_MAIN
// Replays inputs without libFuzzer: each argument is a file or a directory
// of files. Prints how many inputs ran.
#include <filesystem>
#include <fstream>
#include <iterator>

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    if (fs::is_directory(argv[i])) {
      for (const auto& e : fs::directory_iterator(argv[i]))
        if (e.is_regular_file()) files.push_back(e.path());
    } else {
      files.emplace_back(argv[i]);
    }
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
  }
  std::printf("channel_fuzz replay: %zu inputs, 0 mismatches\n", files.size());
  return files.empty() ? 1 : 0;
}
#endif
