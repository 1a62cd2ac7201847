// FiberUnwind is how goro ends fibers that are still blocked when the runtime
// stops: their blocking call throws it, destructors run on the way up, and the
// fiber's entry point swallows it. User code must not swallow it: a
// `catch (...)` has to rethrow.
#pragma once

namespace goro::detail {

struct FiberUnwind {
  const char* what() const noexcept { return "goro: fiber unwound because the runtime is stopping"; }
};

}  // namespace goro::detail
