// <goro/sync.hpp> alone, in user code: it must compile without any other goro
// header and without warnings (tests/CMakeLists.txt, goro_header_check).
#include <goro/sync.hpp>

#include <mutex>
#include <shared_mutex>

int main() {
  return goro::run([] {
    goro::Mutex mu;
    goro::RWMutex rw;
    goro::Once once;
    goro::Cond cond(mu);
    goro::Semaphore sem(1);
    goro::SyncMap<int, int> map;
    goro::AtomicValue<int> value;
    goro::WaitGroup wg;
    int n = 0;
    for (int i = 0; i < 4; ++i) {
      wg.go([&] {
        once.call([&] { value.store(1); });
        sem.acquire();
        {
          std::lock_guard g(mu);
          ++n;
          cond.broadcast();
        }
        {
          std::shared_lock r(rw);
          map.store(1, 2);
        }
        sem.release();
      });
    }
    wg.wait();
    goro::ErrGroup g;
    g.go([] {});
    g.wait();
    return (n == 4 && map.load(1) == 2 && *value.load() == 1) ? 0 : 1;
  });
}
