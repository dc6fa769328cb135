// Money in mmserve: integer millionths of the configured currency unit, never floating point.
#pragma once

#include <cstdint>

namespace mm::services {

using micros = int64_t;

}  // namespace mm::services
