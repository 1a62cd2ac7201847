// Dynamic fan-in: one goroutine merges a number of sensor channels known
// only at run time, with one select over a runtime-sized case list (Go's
// reflect.Select), and stops early if a deadline passes.
//
//   cases := make([]reflect.SelectCase, len(sensors))
//   for i, ch := range sensors {
//       cases[i] = reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)}
//   }
//   for remaining := len(cases); remaining > 0; {
//       i, v, ok := reflect.Select(cases)
//       if !ok { cases[i].Chan = reflect.ValueOf(nil); remaining--; continue }
//       total[i] += v.Int()
//   }
#include <goro/goro.hpp>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <vector>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
  const int sensors = argc > 1 ? std::atoi(argv[1]) : 12;  // decided at run time
  goro::run([sensors] {
    std::vector<goro::Channel<int>> in;
    for (int s = 0; s < sensors; ++s) {
      in.emplace_back(s % 3);  // mixed capacities
      goro::go([ch = in.back(), s] {
        for (int reading = 1; reading <= s + 1; ++reading) ch.send(reading * 10);
        ch.close();
      });
    }

    std::vector<long> total(static_cast<std::size_t>(sensors), 0);
    std::vector<int> count(static_cast<std::size_t>(sensors), 0);
    bool closed = false;
    // One case per sensor, built once and reused by every select below.
    std::vector<goro::SelectCase> cases;
    for (int s = 0; s < sensors; ++s) {
      cases.emplace_back(goro::recv(in[s], [&, s](std::optional<int> v) {
        if (!v) {
          closed = true;
          return;
        }
        total[s] += *v;
        ++count[s];
      }));
    }
    // One deadline for the whole merge (a timeout case keeps its deadline).
    bool late = false;
    cases.emplace_back(goro::timeout(5s, [&] { late = true; }));

    const goro::Channel<int> nil = nullptr;
    int open = sensors, selects = 0;
    while (open > 0 && !late) {
      closed = false;
      std::size_t i = goro::select(cases);
      ++selects;
      if (closed) {
        cases[i] = goro::recv(nil);  // like setting the channel to nil in Go
        --open;
      }
    }

    long all = 0;
    for (int s = 0; s < sensors; ++s) {
      std::printf("sensor %2d: %2d readings, total %4ld\n", s, count[s], total[s]);
      all += total[s];
    }
    std::printf("%d sensors merged with %d selects over one %zu-case list%s; grand total %ld\n",
                sensors, selects, cases.size(), late ? " (deadline hit)" : "", all);
  });
}
