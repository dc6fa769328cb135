// text_engine: generation through the scheduler matches the goldens token for token and text for text,
// alone and with other requests in the same steps; limits, cancellation and stop strings.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <future>
#include <mutex>

#include <nlohmann/json.hpp>

#include "common/gguf.h"
#include "text/llama_model.h"
#include "text/text_engine.h"
#include "text/tokenizer.h"
#include "ref/shared_files.h"

namespace mm::text {
namespace {

using json = nlohmann::json;
const std::filesystem::path k_models = std::filesystem::path(MM_SHARED_DIR) / "models" / "text";

struct fixture {
    std::optional<gguf_file> file;
    std::shared_ptr<const llama_model> model;
    std::shared_ptr<const tokenizer> vocab;
    thread_pool pool{2};

    fixture() {
        auto f = gguf_open(k_models / "stories260K-f32.gguf");
        EXPECT_TRUE(f);
        file.emplace(std::move(*f));
        auto m = llama_load_gguf(*file);
        EXPECT_TRUE(m);
        model = *m;
        auto t = tokenizer::from_gguf(*file);
        EXPECT_TRUE(t);
        vocab = std::make_shared<const tokenizer>(std::move(*t));
    }
};

// What one request produced, gathered from its callbacks.
struct outcome {
    std::vector<int32_t> ids;
    std::string streamed;
    std::optional<result<generate_result>> done;
    std::mutex mu;
    std::condition_variable cv;

    on_token_fn token_fn() {
        return [this](const generated_token& t) {
            std::lock_guard lock(mu);
            ids.push_back(t.id);
            streamed += t.text;
        };
    }
    on_done_fn done_fn() {
        return [this](result<generate_result> r) {
            std::lock_guard lock(mu);
            done.emplace(std::move(r));
            cv.notify_all();
        };
    }
    const result<generate_result>& wait() {
        std::unique_lock lock(mu);
        EXPECT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return done.has_value(); })) << "no on_done";
        return *done;
    }
};

generate_request greedy_request(std::vector<int32_t> prompt, int max_tokens) {
    generate_request r;
    r.prompt = std::move(prompt);
    r.sampling.temperature = 0.0f;
    r.max_tokens = max_tokens;
    r.ignore_eos = true;  // llama-server's goldens run to n_predict
    return r;
}

// llama-server's ids and text for every case, through the engine, with all four requests in flight at once
// on two slots (so requests queue, join mid-way and decode beside each other).
TEST(text_engine, greedy_runs_match_llama_server_ids_and_text_alone_and_together) {
    fixture f;
    const json server = test::text_golden("server_greedy_f32.json");
    for (int n_parallel : {1, 2, 4}) {
        text_engine e(f.model, f.vocab, f.pool, {.n_parallel = n_parallel, .n_ctx = 256, .max_queue = 8});
        std::vector<std::unique_ptr<outcome>> outs;
        for (const json& c : server["cases"]) {
            outs.push_back(std::make_unique<outcome>());
            ASSERT_TRUE(e.submit(greedy_request(c["prompt_ids"].get<std::vector<int32_t>>(), c["n_predict"].get<int>()),
                                 outs.back()->token_fn(), outs.back()->done_fn()));
        }
        size_t i = 0;
        for (const json& c : server["cases"]) {
            outcome& o = *outs[i++];
            const auto& r = o.wait();
            ASSERT_TRUE(r) << r.error().to_string();
            EXPECT_EQ(o.ids, c["generated_ids"].get<std::vector<int32_t>>()) << c["id"] << " n_parallel " << n_parallel;
            EXPECT_EQ(r->text, c["content"].get<std::string>()) << c["id"] << " n_parallel " << n_parallel;
            EXPECT_EQ(o.streamed, r->text) << "the streamed pieces add up to the whole";
            EXPECT_EQ(r->reason, finish_reason::length);
            EXPECT_EQ(r->prompt_tokens, static_cast<int>(c["prompt_ids"].size()));
            EXPECT_EQ(r->completion_tokens, c["n_predict"].get<int>());
        }
    }
}

// A prompt that extends what a free slot holds (a chat's next turn) or repeats it starts after the shared
// prefix, in that slot, and still answers llama-server's ids: the reused keys and values are the ones
// recomputing gives. The halves of all prompts are in flight together first, so each slot holds another
// prompt's start and the right one must be picked.
TEST(text_engine, a_prompt_that_extends_or_repeats_an_earlier_one_reuses_the_cache_and_answers_the_same) {
    fixture f;
    const json server = test::text_golden("server_greedy_f32.json");
    std::vector<json> cases;
    for (const json& c : server["cases"])
        if (c["prompt_ids"].size() >= 4) cases.push_back(c);  // not the "empty" one: BOS alone
    ASSERT_GE(cases.size(), 2u);
    text_engine e(f.model, f.vocab, f.pool, {.n_parallel = static_cast<int>(cases.size()), .n_ctx = 256, .max_queue = 8});
    auto submit = [&](std::vector<int32_t> prompt, int n) {
        auto o = std::make_unique<outcome>();
        EXPECT_TRUE(e.submit(greedy_request(std::move(prompt), n), o->token_fn(), o->done_fn()));
        return o;
    };
    auto half_of = [](const json& c) { return c["prompt_ids"].size() / 2; };
    std::vector<std::unique_ptr<outcome>> halves;
    for (const json& c : cases) {
        const auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
        halves.push_back(submit(std::vector<int32_t>(prompt.begin(), prompt.begin() + static_cast<long>(half_of(c))), 3));
    }
    for (auto& h : halves) ASSERT_TRUE(h->wait());
    for (size_t i = cases.size(); i-- > 0;) {  // the last slot's prompt first: not the first free slot
        const json& c = cases[i];
        const auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
        const auto want = c["generated_ids"].get<std::vector<int32_t>>();
        const int n = c["n_predict"].get<int>();
        auto longer = submit(prompt, n);
        ASSERT_TRUE(longer->wait());
        EXPECT_EQ(longer->ids, want) << c["id"] << ": extending an earlier prompt";
        EXPECT_GE((*longer->done)->cached_tokens, static_cast<int>(half_of(c))) << c["id"];
        EXPECT_LT((*longer->done)->cached_tokens, static_cast<int>(prompt.size())) << "the last prompt token is always fed";
        auto again = submit(prompt, n);
        ASSERT_TRUE(again->wait());
        EXPECT_EQ(again->ids, want) << c["id"] << ": the same prompt again";
        EXPECT_EQ((*again->done)->cached_tokens, static_cast<int>(prompt.size()) - 1) << c["id"];
        // The next turn: prompt, answer and more. Every fed token is reused, and the last answer token (sampled,
        // never fed) is computed now; a fresh engine computing it all answers the same.
        std::vector<int32_t> next = prompt;
        next.insert(next.end(), want.begin(), want.end());
        next.push_back(13);
        auto turn = submit(next, 8);
        ASSERT_TRUE(turn->wait());
        EXPECT_EQ((*turn->done)->cached_tokens, static_cast<int>(prompt.size() + want.size()) - 1) << c["id"];
        text_engine fresh(f.model, f.vocab, f.pool, {.n_parallel = 1, .n_ctx = 256, .max_queue = 1});
        outcome cold;
        ASSERT_TRUE(fresh.submit(greedy_request(next, 8), cold.token_fn(), cold.done_fn()));
        ASSERT_TRUE(cold.wait());
        EXPECT_EQ((*cold.done)->cached_tokens, 0);
        EXPECT_EQ(turn->ids, cold.ids) << c["id"] << ": the next turn";
    }
}

// n choices of one prompt prefill it once: the first computes it (a few tokens a step here), the others
// wait for that and copy its rows, and every choice still answers llama-server's ids. A prompt sharing only
// the first one's start copies that start and answers as a fresh engine does.
TEST(text_engine, requests_that_share_a_prompt_prefill_it_once) {
    fixture f;
    const json server = test::text_golden("server_greedy_f32.json");
    const json* c = nullptr;
    for (const json& k : server["cases"])
        if (!c || k["prompt_ids"].size() > (*c)["prompt_ids"].size()) c = &k;
    const auto prompt = (*c)["prompt_ids"].get<std::vector<int32_t>>();
    ASSERT_GE(prompt.size(), 20u);
    const auto want = (*c)["generated_ids"].get<std::vector<int32_t>>();
    const int n = (*c)["n_predict"].get<int>();
    text_engine e(f.model, f.vocab, f.pool, {.n_parallel = 4, .n_ctx = 256, .max_queue = 8, .prefill_chunk = 4});
    std::vector<outcome> choices(3);
    std::vector<generate_job> jobs;
    for (auto& o : choices) jobs.push_back({greedy_request(prompt, n), o.token_fn(), o.done_fn()});
    ASSERT_TRUE(e.submit_all(std::move(jobs)));
    // Same start, another end: only the start is shared.
    std::vector<int32_t> other(prompt.begin(), prompt.begin() + 14);
    for (int32_t t : {13, 450, 338}) other.push_back(t);
    outcome branch;
    ASSERT_TRUE(e.submit(greedy_request(other, 16), branch.token_fn(), branch.done_fn()));
    int computed = 0;
    for (auto& o : choices) {
        ASSERT_TRUE(o.wait());
        EXPECT_EQ(o.ids, want) << "every choice answers as llama-server";
        const int cached = (*o.done)->cached_tokens;
        if (cached == 0) ++computed;
        else EXPECT_EQ(cached, static_cast<int>(prompt.size()) - 1) << "a copy holds all but the last prompt token";
    }
    EXPECT_EQ(computed, 1) << "one choice computes the prompt";
    ASSERT_TRUE(branch.wait());
    EXPECT_EQ((*branch.done)->cached_tokens, 14);
    text_engine fresh(f.model, f.vocab, f.pool, {.n_parallel = 1, .n_ctx = 256, .max_queue = 1});
    outcome cold;
    ASSERT_TRUE(fresh.submit(greedy_request(other, 16), cold.token_fn(), cold.done_fn()));
    ASSERT_TRUE(cold.wait());
    EXPECT_EQ(branch.ids, cold.ids);
}

TEST(text_engine, a_seeded_request_samples_the_same_alone_and_beside_others) {
    fixture f;
    auto sampled = [&](int neighbours) {
        text_engine e(f.model, f.vocab, f.pool, {.n_parallel = 4, .n_ctx = 128, .max_queue = 8});
        std::vector<std::unique_ptr<outcome>> others;
        for (int i = 0; i < neighbours; ++i) {
            others.push_back(std::make_unique<outcome>());
            generate_request r = greedy_request(f.vocab->encode("The cat", true, false), 40);
            r.sampling = {.temperature = 1.0f, .seed = static_cast<uint64_t>(100 + i)};
            EXPECT_TRUE(e.submit(std::move(r), others.back()->token_fn(), others.back()->done_fn()));
        }
        outcome o;
        generate_request r = greedy_request(f.vocab->encode("Once upon a time", true, false), 40);
        r.sampling = {.temperature = 0.8f, .top_p = 0.95f, .seed = 1234};
        EXPECT_TRUE(e.submit(std::move(r), o.token_fn(), o.done_fn()));
        EXPECT_TRUE(o.wait());
        for (auto& x : others) x->wait();
        return o.ids;
    };
    const auto alone = sampled(0);
    EXPECT_EQ(sampled(3), alone);
    EXPECT_EQ(alone.size(), 40u);
}

TEST(text_engine, stop_strings_end_the_text_and_are_not_returned) {
    fixture f;
    text_engine e(f.model, f.vocab, f.pool, {.n_parallel = 1, .n_ctx = 256});
    // Greedy "Once upon a time" continues ", there was a little girl named Lily." (llama-server's content).
    outcome o;
    generate_request r = greedy_request(f.vocab->encode("Once upon a time", true, false), 100);
    r.stop = {"little gi", "zebra"};
    ASSERT_TRUE(e.submit(std::move(r), o.token_fn(), o.done_fn()));
    const auto& done = o.wait();
    ASSERT_TRUE(done);
    EXPECT_EQ(done->text, ", there was a ");
    EXPECT_EQ(o.streamed, done->text);
    EXPECT_EQ(done->reason, finish_reason::stop);
}

// Constrained decoding through the engine: a story model, asked for JSON, still writes a document that parses
// and fits the schema, and stops when it is complete.
TEST(text_engine, constrained_output_always_parses_and_fits_the_schema) {
    fixture f;
    text_engine e(f.model, f.vocab, f.pool, {.n_parallel = 2, .n_ctx = 512});
    auto person = json_schema_parse(R"({"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},"required":["name","age"]})");
    ASSERT_TRUE(person);
    int complete = 0;
    for (uint64_t seed = 0; seed < 6; ++seed) {
        for (const json_schema_ptr& schema : {json_schema_any_object(), *person}) {
            outcome o;
            generate_request r = greedy_request(f.vocab->encode("Once upon a time", true, false), 400);
            r.ignore_eos = false;
            r.sampling = {.temperature = 1.0f, .seed = seed};
            r.constraint = schema;
            ASSERT_TRUE(e.submit(std::move(r), o.token_fn(), o.done_fn()));
            const auto& done = o.wait();
            ASSERT_TRUE(done);
            // A free-form object sampled at temperature 1 may still be open after 400 tokens; the person
            // schema's documents are short and must all finish.
            if (done->reason == finish_reason::length && schema != *person) continue;
            EXPECT_EQ(done->reason, finish_reason::stop);
            ++complete;
            const json doc = json::parse(done->text, nullptr, false);
            ASSERT_TRUE(doc.is_object()) << done->text;
            if (schema == *person) {
                EXPECT_TRUE(doc["name"].is_string()) << done->text;
                EXPECT_TRUE(doc["age"].is_number_integer()) << done->text;
            }
        }
    }
    EXPECT_GE(complete, 6) << "every person document finished";
}

TEST(text_engine, a_cancelled_request_stops_and_frees_its_slot) {
    fixture f;
    text_engine e(f.model, f.vocab, f.pool, {.n_parallel = 1, .n_ctx = 512, .max_queue = 4});
    outcome first;
    generate_request r = greedy_request({1}, 0);  // until the context is full
    cancel_token token = r.cancel;
    std::promise<void> started;
    bool once = false;
    ASSERT_TRUE(e.submit(std::move(r),
                         [&](const generated_token& t) {
                             first.token_fn()(t);
                             if (!once) once = true, started.set_value();
                         },
                         first.done_fn()));
    started.get_future().wait();
    token.cancel();
    const auto& done = first.wait();
    ASSERT_TRUE(done);
    EXPECT_EQ(done->reason, finish_reason::cancelled);
    EXPECT_LT(first.ids.size(), 500u);
    // The one slot is free again.
    outcome second;
    ASSERT_TRUE(e.submit(greedy_request({1}, 5), second.token_fn(), second.done_fn()));
    ASSERT_TRUE(second.wait());
    EXPECT_EQ(second.ids.size(), 5u);
}

// A request cancelled while it waits for the one slot ends at once (cancelled, no tokens), not when the
// request in the slot finishes, and its queue place frees.
TEST(text_engine, a_request_cancelled_in_the_queue_ends_without_waiting_for_a_slot) {
    fixture f;
    text_engine e(f.model, f.vocab, f.pool, {.n_parallel = 1, .n_ctx = 512, .max_queue = 1});
    outcome running, waiting;
    generate_request long_one = greedy_request({1}, 0);  // until the context is full, unless cancelled
    cancel_token stop_long = long_one.cancel;
    std::promise<void> started;
    bool once = false;
    ASSERT_TRUE(e.submit(std::move(long_one),
                         [&](const generated_token& t) {
                             running.token_fn()(t);
                             if (!once) once = true, started.set_value();
                         },
                         running.done_fn()));
    started.get_future().wait();
    generate_request queued = greedy_request({1}, 5);
    cancel_token stop_queued = queued.cancel;
    ASSERT_TRUE(e.submit(std::move(queued), waiting.token_fn(), waiting.done_fn()));
    stop_queued.cancel();
    const auto& done = waiting.wait();
    {
        std::lock_guard lock(running.mu);
        EXPECT_FALSE(running.done.has_value()) << "the queued request waited for the running one to end";
    }
    ASSERT_TRUE(done);
    EXPECT_EQ(done->reason, finish_reason::cancelled);
    EXPECT_TRUE(waiting.ids.empty());
    EXPECT_EQ(e.queued(), 0) << "its place in the queue is free";
    stop_long.cancel();
    ASSERT_TRUE(running.wait());
}

TEST(text_engine, limits_are_refused_at_once) {
    fixture f;
    text_engine e(f.model, f.vocab, f.pool, {.n_parallel = 1, .n_ctx = 32, .max_queue = 2});
    auto nop = [](const generated_token&) {};
    auto nodone = [](result<generate_result>) {};
    EXPECT_EQ(e.submit(greedy_request(std::vector<int32_t>(32, 1), 0), nop, nodone).code(), errc::context_length_exceeded);
    EXPECT_EQ(e.submit(greedy_request(std::vector<int32_t>(20, 1), 13), nop, nodone).code(), errc::context_length_exceeded);
    EXPECT_EQ(e.submit(greedy_request({}, 1), nop, nodone).code(), errc::invalid_argument);
    EXPECT_EQ(e.submit(greedy_request({512}, 1), nop, nodone).code(), errc::invalid_argument);
    generate_request hot = greedy_request({1}, 1);
    hot.sampling.temperature = 9.0f;
    EXPECT_EQ(e.submit(std::move(hot), nop, nodone).code(), errc::invalid_argument);
    auto group = [&](int n) {
        std::vector<generate_job> jobs;
        for (int i = 0; i < n; ++i) jobs.push_back({greedy_request({1}, 3), nop, nodone});
        return jobs;
    };
    EXPECT_EQ(e.submit_all(group(3)).code(), errc::invalid_argument) << "a group larger than the queue never fits";
    {
        auto jobs = group(2);
        jobs[1].req.prompt = {512};
        EXPECT_EQ(e.submit_all(std::move(jobs)).code(), errc::invalid_argument) << "one bad member refuses the group";
    }
    EXPECT_EQ(e.queued() + e.running(), 0) << "and queues none of it";

    // One running (held inside its first token's callback), one queued: a group of two is refused whole
    // (queue_full, nothing queued), one more single fits, and the one after is refused.
    std::promise<void> holding, release;
    auto released = release.get_future().share();
    bool first_token = true;
    outcome running, queued, last;
    ASSERT_TRUE(e.submit(greedy_request({1}, 3),
                         [&](const generated_token& t) {
                             if (first_token) {
                                 first_token = false;
                                 holding.set_value();
                                 released.wait();
                             }
                             running.token_fn()(t);
                         },
                         running.done_fn()));
    holding.get_future().wait();
    ASSERT_TRUE(e.submit(greedy_request({1}, 3), queued.token_fn(), queued.done_fn()));
    EXPECT_EQ(e.submit_all(group(2)).code(), errc::queue_full);
    EXPECT_EQ(e.queued(), 1);
    ASSERT_TRUE(e.submit(greedy_request({1}, 3), last.token_fn(), last.done_fn()));
    EXPECT_EQ(e.submit(greedy_request({1}, 3), nop, nodone).code(), errc::queue_full);
    release.set_value();
    EXPECT_TRUE(running.wait());
    EXPECT_TRUE(queued.wait());
    EXPECT_TRUE(last.wait());
    EXPECT_EQ(queued.ids.size(), 3u);
}

}  // namespace
}  // namespace mm::text
