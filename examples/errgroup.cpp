// ErrGroup: fetch three URLs in parallel; the first failure cancels the
// group's context, so the slow fetch stops early, and wait() reports that
// failure. Fetches are simulated with sleeps.
//
//   g, ctx := errgroup.WithContext(context.Background())
//   for _, url := range urls {
//       g.Go(func() error { return fetch(ctx, url) })
//   }
//   if err := g.Wait(); err != nil {
//       fmt.Println("Error:", err)
//   } else {
//       fmt.Println("Successfully fetched all URLs.")
//   }
#include <goro/goro.hpp>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>

using namespace std::chrono_literals;

struct Site {
  std::string url;
  std::chrono::milliseconds latency;
  bool exists;
};

// fetch() pretends to download `site`: it takes `latency`, unless the
// context is cancelled first, and throws for a host that does not exist.
// (It could also return a std::error_code: ErrGroup accepts both.)
void fetch(const goro::Context& ctx, const Site& site) {
  if (!site.exists) {
    goro::this_fiber::sleep_for(site.latency);
    throw std::runtime_error("Get \"" + site.url + "\": no such host");
  }
  goro::select(goro::recv(ctx.done(), [&] { std::printf("cancelled %s (%s)\n", site.url.c_str(),
                                                        ctx.err().message().c_str()); }),
               goro::timeout(site.latency, [&] { std::printf("fetched %s\n", site.url.c_str()); }));
}

int main() {
  goro::run([] {
    const Site sites[] = {
        {"http://www.golang.org/", 20ms, true},
        {"http://www.google.com/", 300ms, true},
        {"http://www.somestupidname.com/", 50ms, false},
    };
    auto [group, ctx] = goro::ErrGroup::with_context(goro::background());
    for (const Site& site : sites) {
      // Capture copies: the fibers outlive this loop iteration. (`ctx = ctx`:
      // clang before 16 cannot capture a structured binding by name.)
      group.go([ctx = ctx, site] { fetch(ctx, site); });
    }
    try {
      group.wait();  // rethrows the first exception (or returns the first error_code)
      std::printf("Successfully fetched all URLs.\n");
    } catch (const std::exception& e) {
      std::printf("Error: %s\n", e.what());
    }
  });
}
