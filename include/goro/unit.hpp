// goro::Unit: Go's struct{}, the value type of signal-only channels.
#pragma once

namespace goro {

struct Unit {
  friend constexpr bool operator==(Unit, Unit) noexcept { return true; }
};

}  // namespace goro
