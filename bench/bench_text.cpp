// The text stage's speed: prefill and decode tokens/s of llama_decode on the shared GGUFs and on a
// TinyLlama-1.1B-shaped random-weight GGUF (q4_0 and q8_0, written here at bench time, never committed),
// each beside the bandwidth limit measured in this run: a decode step reads every weight once, so
// tok/s <= streaming-read GB/s / weight bytes. With LLAMA_CPP_BIN pointing at a llama.cpp build's bin/
// folder, llama-bench runs on the same files in the same run for the ratio.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <thread>

#include "account_routes.h"
#include "bench_header.h"
#include "clock.h"
#include "key_hash.h"
#include "meter.h"
#include "services/model_registry.h"
#include "services/server.h"
#include "sqlite_ledger.h"
#include "text_routes.h"
#include "common/gguf.h"
#include "ref/random_llama.h"
#include "text/kv_cache.h"
#include "text/llama_decode.h"
#include "text/llama_model.h"
#include "text/text_engine.h"
#include "text/tokenizer.h"

using namespace mm;
namespace fs = std::filesystem;

namespace {

const fs::path k_shared = fs::path(MM_SHARED_DIR);

struct speed {
    double prefill_tps = 0, decode_tps = 0;
};

// Decode runs in chunks of k_chunk steps; after each, `between(chunk tok/s)` runs outside the timing.
constexpr int k_chunk = 8;

speed measure(thread_pool& pool, const text::llama_model& m, int n_prefill, int n_decode,
              const std::function<void(double)>& between, int prefill_reps) {
    text::kv_cache cache(m.hp, 1, n_prefill + n_decode + 1);
    std::vector<int32_t> prompt(static_cast<size_t>(n_prefill));
    for (int i = 0; i < n_prefill; ++i) prompt[static_cast<size_t>(i)] = 1 + (i * 37) % (m.hp.n_vocab - 1);
    tensor logits = tensor::zeros(dtype::f32, {1, m.hp.n_vocab});
    speed s;
    double best_prefill = 1e30;
    for (int rep = 0; rep < prefill_reps; ++rep) {
        const text::decode_seq seq{.slot = 0, .pos0 = 0, .tokens = prompt};
        const auto t0 = std::chrono::steady_clock::now();
        (void)text::llama_decode(pool, m, cache, {&seq, 1}, logits);
        best_prefill = std::min(best_prefill, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    s.prefill_tps = n_prefill / best_prefill;
    int32_t tok = 1;
    double decoding = 0;
    for (int i = 0; i < n_decode; i += k_chunk) {
        const int n = std::min(k_chunk, n_decode - i);
        const auto t0 = std::chrono::steady_clock::now();
        for (int j = i; j < i + n; ++j) {
            const text::decode_seq seq{.slot = 0, .pos0 = n_prefill + j, .tokens = {&tok, 1}};
            (void)text::llama_decode(pool, m, cache, {&seq, 1}, logits);
            tok = 1 + (tok * 31 + 7) % (m.hp.n_vocab - 1);
        }
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        decoding += secs;
        between(n / secs);
    }
    s.decode_tps = n_decode / decoding;
    return s;
}

// llama-bench's pp / tg tokens per second on a file (tg after a context of `depth` tokens; n_prefill 0 for
// none), or {0, 0} when LLAMA_CPP_BIN is unset or it fails.
speed llama_cpp(const fs::path& model, int n_prefill, int n_decode, int threads, int depth = 0) {
    const char* bin = std::getenv("LLAMA_CPP_BIN");
    if (!bin) return {};
    const std::string out = (fs::temp_directory_path() / ("mm_llama_bench_" + std::to_string(::getpid()) + ".csv")).string();
    const std::string cmd = std::string(bin) + "/llama-bench -m '" + model.string() + "' -p " +
                            std::to_string(n_prefill) + " -n " + std::to_string(n_decode) + " -d " +
                            std::to_string(depth) + " -t " + std::to_string(threads) + " -o csv > '" + out + "' 2>/dev/null";
    if (std::system(cmd.c_str()) != 0) return {};
    std::FILE* f = std::fopen(out.c_str(), "r");
    if (!f) return {};
    speed s;
    char line[4096];
    const std::string d = std::to_string(depth);
    while (std::fgets(line, sizeof line, f)) {
        const std::string l(line);
        // The csv ends each row with ...,"n_prompt","n_gen","n_depth",...,"avg_ts","stddev_ts"; pick avg_ts by
        // row kind.
        const size_t last = l.rfind(",\"");
        if (last == std::string::npos) continue;
        const size_t prev = l.rfind(",\"", last - 1);
        if (prev == std::string::npos) continue;
        const double ts = std::atof(l.substr(prev + 2).c_str());
        if (l.find(",\"" + std::to_string(n_prefill) + "\",\"0\",\"" + d + "\",") != std::string::npos) s.prefill_tps = ts;
        if (l.find(",\"0\",\"" + std::to_string(n_decode) + "\",\"" + d + "\",") != std::string::npos) s.decode_tps = ts;
    }
    std::fclose(f);
    fs::remove(out);
    return s;
}

// This VM's read bandwidth moves between about 45 and 90 GB/s, at times within seconds, so decode is
// measured in chunks with a streaming read of a 512 MiB working set (DRAM) right after each: every chunk
// meets the limit of its own moment, and the row reports the median of those ratios.
double stream_gbs(thread_pool& pool) { return bench::stream_read_gbs(pool, size_t{128} << 20, 4); }

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
}

// One measured decode with the read after each chunk (stream_gbs), against a limit of `gb` a step.
struct run {
    speed s;
    std::vector<double> reads, ratios;
};
run measured(thread_pool& pool, const text::llama_model& m, int n_prefill, int n_decode, double gb, int prefill_reps) {
    run r;
    r.s = measure(pool, m, n_prefill, n_decode, [&](double chunk_tps) {
        r.reads.push_back(stream_gbs(pool));
        r.ratios.push_back(chunk_tps / (r.reads.back() / gb));
    }, prefill_reps);
    return r;
}

// This VM has slow phases of about a minute, in which reads and decode fall several times over. With
// llama.cpp to compare against, its runs and ours alternate, two each, and each side reports its better one
// (prefill and decode apart), so a slow phase does not land on one side only.
std::pair<run, speed> compared(const std::function<run()>& ours, const std::function<speed()>& theirs) {
    speed ref = theirs();
    run best = ours();
    if (ref.decode_tps == 0) return {best, ref};
    const speed ref2 = theirs();
    run again = ours();
    ref = {std::max(ref.prefill_tps, ref2.prefill_tps), std::max(ref.decode_tps, ref2.decode_tps)};
    const double prefill = std::max(best.s.prefill_tps, again.s.prefill_tps);
    if (again.s.decode_tps > best.s.decode_tps) best = std::move(again);
    best.s.prefill_tps = prefill;
    return {best, ref};
}

void row(const char* name, thread_pool& pool, const text::llama_model& m, int n_prefill, int n_decode,
         const std::function<speed()>& theirs) {
    const double gb = static_cast<double>(m.weight_bytes()) / 1e9;
    const auto [r, ref] = compared([&] { return measured(pool, m, n_prefill, n_decode, gb, 3); }, theirs);
    const auto [lo, hi] = std::minmax_element(r.reads.begin(), r.reads.end());
    const double read = median(r.reads);
    std::printf("%-26s %8.3f %5.1f (%2.0f-%2.0f) %10.1f %10.1f %8.1f%% %10.1f", name, gb, read, *lo, *hi, r.s.decode_tps,
                read / gb, median(r.ratios) * 100, r.s.prefill_tps);
    if (ref.decode_tps > 0)
        std::printf("   llama.cpp tg %.1f pp %.1f -> %.2fx / %.2fx", ref.decode_tps, ref.prefill_tps,
                    r.s.decode_tps / ref.decode_tps, r.s.prefill_tps / ref.prefill_tps);
    std::printf("\n");
}

// Decode after a long context: a step reads the weights and every cached key and value (depth + i rows of
// kv_dim f32, K and V, each layer), so the limit counts both, at the mean depth over the steps.
void depth_row(thread_pool& pool, const text::llama_model& m, int depth, int n_decode, const std::function<speed()>& theirs) {
    const double kv_gb = static_cast<double>(text::kv_cache::bytes_for(m.hp, 1, depth + n_decode / 2)) / 1e9;
    const double gb = static_cast<double>(m.weight_bytes()) / 1e9 + kv_gb;
    const auto [r, ref] = compared([&] { return measured(pool, m, depth, n_decode, gb, 1); }, theirs);
    std::printf("  decode after a %d-token context: %.1f tok/s, %.1f%% of limit (%.3f GB a step: weights + %.3f GB of KV "
                "cache)", depth, r.s.decode_tps, median(r.ratios) * 100, gb, kv_gb);
    if (ref.decode_tps > 0)
        std::printf("   llama.cpp tg%d @ d%d %.1f -> %.2fx", n_decode, depth, ref.decode_tps, r.s.decode_tps / ref.decode_tps);
    std::printf("\n");
}

// A chat's next turn: time to its first token when a slot holds the earlier turn (the engine starts after
// the shared prefix) against a fresh engine computing the whole prompt, in the same run.
void next_turn(thread_pool& pool, std::shared_ptr<const text::llama_model> m, std::shared_ptr<const text::tokenizer> vocab,
               int history, int added) {
    auto first_token_ms = [&](text::text_engine& e, int n_prompt) {
        text::generate_request r;
        for (int i = 0; i < n_prompt; ++i) r.prompt.push_back(1 + (i * 37) % (m->hp.n_vocab - 1));
        r.sampling.temperature = 0.0f;
        r.max_tokens = 1;
        std::promise<void> done;
        const auto t0 = std::chrono::steady_clock::now();
        if (!e.submit(std::move(r), [](const text::generated_token&) {}, [&](result<text::generate_result>) { done.set_value(); }))
            return 0.0;
        done.get_future().wait();
        return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    };
    const text::engine_params p{.n_parallel = 1, .n_ctx = history + added + 8, .max_queue = 4};
    text::text_engine warm(m, vocab, pool, p);
    (void)first_token_ms(warm, history);
    const double reused = first_token_ms(warm, history + added);
    text::text_engine cold(m, vocab, pool, p);
    const double fresh = first_token_ms(cold, history + added);
    std::printf("  next chat turn (%d-token history + %d new): first token in %.0f ms reusing the slot's prefix, "
                "%.0f ms computing it all (%.1fx)\n", history, added, reused, fresh, fresh / reused);
}

// Aggregate generated tokens/s through the HTTP API: `streams` clients at once, each a streamed completion
// of `tokens` tokens, against a server with the real meter and the text routes.
double http_aggregate(const fs::path& model, int streams, int tokens) {
    namespace net = boost::asio;
    namespace beast = boost::beast;
    namespace http = beast::http;
    using namespace mm::services;
    const fs::path dir = fs::temp_directory_path() / ("mm_bench_text_http_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    auto secret = server_secret_load_or_create(dir);
    system_clock clk;
    auto book = sqlite_ledger::open({.path = dir / "ledger.sqlite3", .server_secret = *secret, .clk = &clk});
    server_config config;
    meter m({.config = config, .book = **book, .time = clk, .server_secret = *secret});
    auto key = (*book)->key_create({.user = "bench", .limits = {}});
    thread_pool pool;
    model_registry registry;
    text_models text;
    auto stage = text::text_stage::load({.id = "m", .path = model, .n_parallel = 16, .n_ctx = 256, .max_queue = 64}, pool);
    if (!stage) return 0;
    text.add(std::move(*stage));
    auto table = server_routes();
    for (auto& r : text_routes(m, text, registry)) table.push_back(std::move(r));
    server_params p;
    p.host = "127.0.0.1";
    p.port = 0;
    server srv(p, std::move(table));
    if (!srv.start()) return 0;
    const std::string body = nlohmann::json{{"model", "m"}, {"prompt", "Once upon a time"}, {"max_tokens", tokens},
                                            {"temperature", 0.8}, {"stream", true}, {"ignore_eos", true}}.dump();
    const std::string req = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key->secret +
                            "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                            "\r\n\r\n" + body;
    std::atomic<int64_t> generated{0};
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> clients;
    for (int c = 0; c < streams; ++c)
        clients.emplace_back([&] {
            net::io_context ioc;
            beast::tcp_stream s(ioc);
            s.connect(net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), srv.port()));
            net::write(s, net::buffer(req));
            beast::flat_buffer buf;
            http::response<http::string_body> res;
            http::read(s, buf, res);
            // Each token's event is one "data:" line carrying a choice; the usage-free stream ends with [DONE].
            int64_t n = 0;
            for (size_t at = 0; (at = res.body().find("\"text\":", at)) != std::string::npos; ++at) ++n;
            generated += n - 1;  // the last event is the finish chunk
        });
    for (auto& t : clients) t.join();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    srv.stop();
    book->reset();
    fs::remove_all(dir);
    return static_cast<double>(generated.load()) / secs;
}

}  // namespace

int main(int argc, char** argv) {
    bench::print_header("bench_text");
    thread_pool pool;
    const int n_prefill = 128, n_decode = 64;
    std::printf("read GB/s: streaming reads of a 512 MiB working set (DRAM), %d threads, one after each chunk of %d decode\n"
                "steps: their median (and range); limit = that median / weight GB; of limit = the median over chunks of\n"
                "chunk tok/s / (its own read GB/s / weight GB)\n",
                pool.size(), k_chunk);
    std::printf("\n%-26s %8s %15s %10s %10s %9s %10s\n", "model", "GB", "read GB/s", "decode t/s", "limit t/s", "of limit",
                "prefill t/s");

    for (const char* name : {"stories260K-f32.gguf", "stories260K-q8_0.gguf", "stories260K-q4_0.gguf"}) {
        auto f = gguf_open(k_shared / "models" / "text" / name);
        auto m = f ? text::llama_load_gguf(*f) : result<std::shared_ptr<const text::llama_model>>(f.error());
        if (!m) {
            std::fprintf(stderr, "%s: %s\n", name, m.error().to_string().c_str());
            return 1;
        }
        // 260K parameters live in cache: its row shows overheads, not bandwidth.
        const auto fast = text::llama_for_matvec(*m);
        row(name, pool, *fast, n_prefill, n_decode,
            [&] { return llama_cpp(k_shared / "models" / "text" / name, n_prefill, n_decode, pool.size()); });
    }

    // TinyLlama-1.1B shapes, random weights, the LLaMA SPM vocabulary (32000 tokens).
    const fs::path dir = argc > 1 ? fs::path(argv[1]) : fs::temp_directory_path();
    auto vocab = gguf_open(k_shared / "models" / "text" / "vocab" / "ggml-vocab-llama-spm.gguf");
    if (!vocab) return 1;
    for (dtype t : {dtype::q4_0, dtype::q8_0}) {
        const fs::path path = dir / ("mm_bench_llama_1b_" + std::string(dtype_name(t)) + "_" + std::to_string(::getpid()) + ".gguf");
        std::printf("(writing %s ...)\n", path.filename().c_str());
        std::fflush(stdout);
        if (auto s = test::write_random_llama(path, {.n_embd = 2048, .n_layer = 22, .n_head = 32, .n_head_kv = 4,
                                                     .n_ff = 5632, .n_ctx = 2048, .weights = t}, *vocab); !s) {
            std::fprintf(stderr, "%s\n", s.to_string().c_str());
            return 1;
        }
        {
            auto f = gguf_open(path);
            auto m = f ? text::llama_load_gguf(*f) : result<std::shared_ptr<const text::llama_model>>(f.error());
            if (!m) {
                std::fprintf(stderr, "%s\n", m.error().to_string().c_str());
                return 1;
            }
            const std::string label = "1.1B random " + std::string(dtype_name(t));
            const auto fast = text::llama_for_matvec(*m);  // as the text stage serves it
            row(label.c_str(), pool, *fast, n_prefill, n_decode, [&] { return llama_cpp(path, n_prefill, n_decode, pool.size()); });
            if (t == dtype::q4_0) {
                depth_row(pool, *fast, 1024, n_decode, [&] { return llama_cpp(path, 0, n_decode, pool.size(), 1024); });
                if (auto tok = text::tokenizer::from_gguf(*vocab))
                    next_turn(pool, fast, std::make_shared<const text::tokenizer>(std::move(*tok)), 480, 24);
            }
        }
        if (t == dtype::q4_0) {
            std::printf("  through HTTP (streamed completions of 32 tokens, meter on): ");
            for (int streams : {1, 4, 16}) std::printf("%d streams %.1f tok/s   ", streams, http_aggregate(path, streams, 32));
            std::printf("\n");
        }
        fs::remove(path);
    }
    std::printf("\n(decode: one sequence, 64 steps after a 128-token prompt, tok/s over all of them with the reads left out;\n"
                " prefill: 128 tokens in one batch, best of 3; with llama.cpp, its runs and ours alternate, two each, and\n"
                " each side shows its better decode and its better prefill)\n");
    return 0;
}
