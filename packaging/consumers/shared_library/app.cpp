// Calls a goro-using shared library (linked, or dlopen()ed when
// GORO_PLUGIN_PATH is defined) from fibers of this program's runtime.
// Built with hidden visibility too, so it wraps goro's includes as the
// library does.
#pragma GCC visibility push(default)
#include <goro/goro.hpp>
#include <goro/version.hpp>
#pragma GCC visibility pop

#include <cstdio>
#include <exception>

#ifdef GORO_PLUGIN_PATH
#include <dlfcn.h>
#else
extern "C" int worker_answer();
#endif

int main() {
  int (*answer)() = nullptr;
#ifdef GORO_PLUGIN_PATH
  void* plugin = dlopen(GORO_PLUGIN_PATH, RTLD_NOW | RTLD_LOCAL);
  if (!plugin) {
    std::printf("dlopen: %s\n", dlerror());
    return 1;
  }
  answer = reinterpret_cast<int (*)()>(dlsym(plugin, "worker_answer"));
#else
  answer = &worker_answer;
#endif
  try {
    goro::Options options;
    options.workers = 2;
    const int sum = goro::run([answer] {
      goro::WaitGroup wg;
      int results[4] = {};
      for (int& r : results) wg.go([&r, answer] { r = answer(); });
      wg.wait();
      return results[0] + results[1] + results[2] + results[3];
    }, options);
    std::printf("goro %s: the library's fibers answered %d, want 168: %s\n", GORO_VERSION_STRING,
                sum, sum == 168 ? "ok" : "WRONG");
    return sum == 168 ? 0 : 1;
  } catch (const std::exception& e) {
    std::printf("goro %s: the library failed: %s\n", GORO_VERSION_STRING, e.what());
    return 1;
  }
}
