// libFuzzer target: the server's JSON config reader (server_config_parse) on arbitrary bytes. Every input
// either parses into a config whose values respect the documented ranges, or fails with a message.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "services/server_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto c = mm::services::server_config_parse(text, "/base");
    if (!c) {
        if (c.error().message().empty()) __builtin_trap();  // an error always says why
        return 0;
    }
    if (c->host.empty() || c->limits.body_bytes == 0 || c->limits.max_connections < 1 || c->cache_price < 0)
        __builtin_trap();
    for (const auto& [endpoint, price] : c->prices)
        if (price < 0 || c->price(endpoint) != price) __builtin_trap();
    for (const auto& m : c->models)
        if (m.id.empty() || m.path.empty()) __builtin_trap();
    return 0;
}
