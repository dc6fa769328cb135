// text_routes: OpenAI chat and completions over the text stages. Parsing names the offending field in every
// error; answers and stream chunks carry OpenAI's fields in OpenAI's order.
#include "text_routes.h"

#include <ctime>
#include <map>
#include <mutex>
#include <random>

#include <nlohmann/json.hpp>

#include "chat_messages.h"
#include "common/json_nesting.h"
#include "services/http_errors.h"
#include "text/stop_filter.h"
#include "text/tool_calls.h"

namespace mm::services {
namespace {

using json = nlohmann::ordered_json;
using text::text_stage;
namespace http = boost::beast::http;

enum class api { chat, completions };

status bad(const std::string& param, const std::string& message) {
    return status(errc::invalid_argument, "'" + param + "': " + message, param);
}

constexpr int64_t k_max_choices = 16;  // n: each choice holds a sequence slot (or a queue place) of its own

// How a chat request uses its tools: none; auto (the model may answer with a call); forced (it must).
enum class tool_mode { none, automatic, forced };

struct parsed {
    text_stage* stage = nullptr;
    std::string model;
    text::generate_request gen;
    tool_mode tools = tool_mode::none;
    std::vector<std::string> tool_names;
    bool parallel_calls = true;  // parallel_tool_calls: the answer may be an array of calls
    int n = 1;                   // choices
    bool stream = false;
    bool include_usage = false;
    bool logprobs = false;  // chat: logprobs true; completions: logprobs given
};

// Typed optional fields; absent or null leaves out untouched.
template <class T>
status read(const json& body, const char* key, T& out) {
    auto it = body.find(key);
    if (it == body.end() || it->is_null()) return ok_status();
    if constexpr (std::is_same_v<T, bool>) {
        if (!it->is_boolean()) return bad(key, "expected a boolean");
    } else if constexpr (std::is_integral_v<T>) {
        if (!it->is_number_integer()) return bad(key, "expected an integer");
    } else if constexpr (std::is_floating_point_v<T>) {
        if (!it->is_number()) return bad(key, "expected a number");
    } else {
        if (!it->is_string()) return bad(key, "expected a string");
    }
    try {
        out = it->get<T>();
    } catch (const std::exception&) {
        return bad(key, "out of range");
    }
    return ok_status();
}

// tools, tool_choice and parallel_tool_calls (chat): the tools go to the chat template (described to the
// model in its family's syntax); a call is {"name", "arguments"} with that tool's parameters, several at once
// an array of them. A required choice constrains the answer to calls, a named one to one call of that tool.
status read_tools(const json& body, parsed& p, text::chat_tools& described) {
    auto tools = body.find("tools");
    if (tools == body.end() || tools->is_null()) return ok_status();
    if (!tools->is_array()) return bad("tools", "expected an array of {\"type\": \"function\", \"function\": {...}}");
    if (tools->empty()) return ok_status();
    std::vector<std::pair<std::string, text::json_schema_ptr>> schemas;
    for (size_t i = 0; i < tools->size(); ++i) {
        const auto& t = (*tools)[i];
        const std::string at = "tools[" + std::to_string(i) + "]";
        if (!t.is_object() || t.value("type", "") != "function" || !t.contains("function") || !t["function"].is_object())
            return bad(at, "expected {\"type\": \"function\", \"function\": {\"name\", \"parameters\"}}");
        const auto& fn = t["function"];
        if (!fn.contains("name") || !fn["name"].is_string() || fn["name"].get<std::string>().empty())
            return bad(at + ".function.name", "required");
        const std::string name = fn["name"];
        text::json_schema_ptr params = text::json_schema_any_object();
        if (fn.contains("parameters") && !fn["parameters"].is_null()) {
            auto s = text::json_schema_parse(fn["parameters"].dump());
            if (!s) return bad(at + ".function.parameters", s.error().message());
            params = *s;
        }
        schemas.emplace_back(name, params);
        p.tool_names.push_back(name);
        const auto desc = fn.find("description");
        described.list.push_back({name, desc != fn.end() && desc->is_string() ? desc->get<std::string>() : "",
                                  fn.contains("parameters") && !fn["parameters"].is_null() ? fn["parameters"].dump() : "{}"});
    }
    p.tools = tool_mode::automatic;
    if (auto par = body.find("parallel_tool_calls"); par != body.end() && !par->is_null()) {
        if (!par->is_boolean()) return bad("parallel_tool_calls", "expected a boolean");
        p.parallel_calls = par->get<bool>();
    }
    if (auto choice = body.find("tool_choice"); choice != body.end() && !choice->is_null()) {
        if (choice->is_string()) {
            const std::string c = *choice;
            if (c == "none") p.tools = tool_mode::none;
            else if (c == "required") p.tools = tool_mode::forced;
            else if (c != "auto") return bad("tool_choice", "expected \"none\", \"auto\", \"required\" or a named function");
        } else if (choice->is_object() && choice->contains("function") && (*choice)["function"].is_object() &&
                   (*choice)["function"].contains("name") && (*choice)["function"]["name"].is_string()) {
            const std::string name = (*choice)["function"]["name"];
            std::erase_if(schemas, [&](const auto& s) { return s.first != name; });
            if (schemas.empty()) return bad("tool_choice.function.name", "names no tool in 'tools'");
            p.tool_names = {name};
            p.tools = tool_mode::forced;
            p.parallel_calls = false;
        } else {
            return bad("tool_choice", "expected \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\"}}");
        }
    }
    if (p.tools == tool_mode::none) {
        described.list.clear();
        return ok_status();
    }
    if (p.gen.constraint && p.tools == tool_mode::forced)
        return bad("tool_choice", "a forced tool call cannot be combined with response_format");
    described.parallel = p.parallel_calls;
    if (p.tools == tool_mode::forced) {
        std::erase_if(described.list, [&](const text::chat_tool& t) {  // the model sees only what it may call
            return std::find(p.tool_names.begin(), p.tool_names.end(), t.name) == p.tool_names.end();
        });
        p.gen.constraint = p.parallel_calls ? text::json_schema_tool_calls(std::move(schemas))
                                            : text::json_schema_tool_call(std::move(schemas));
    }
    return ok_status();
}

// OpenAI's id spellings, over the request id's random part.
std::string completion_id(api kind) { return (kind == api::chat ? "chatcmpl-" : "cmpl-") + request_id_generate().substr(4); }
std::string call_id() { return "call_" + request_id_generate().substr(4); }

// The OpenAI tool_calls an answer makes (text::parse_tool_calls), each with an id of its own; null when the
// answer is text.
json tool_calls_of(const std::string& text, const std::vector<std::string>& names, bool parallel) {
    const auto calls = text::parse_tool_calls(text, names, parallel);
    if (!calls) return nullptr;
    json out = json::array();
    for (const auto& c : *calls)
        out.push_back({{"id", call_id()},
                       {"type", "function"},
                       {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
    return out;
}

uint64_t fresh_seed() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    return rng();
}

result<parsed> parse(api kind, const std::string& body_text, const text_models& stages, const model_registry& registry) {
    if (!json_nesting_within(body_text))
        return status(errc::invalid_argument, "The JSON body of your request nests deeper than " +
                                                  std::to_string(k_json_max_nesting) + " levels.");
    const json body = json::parse(body_text, nullptr, false);
    if (body.is_discarded() || !body.is_object())
        return status(errc::invalid_argument, "We could not parse the JSON body of your request: expected a JSON object.");
    parsed p;
    MM_TRY(read(body, "model", p.model));
    if (p.model.empty()) return bad("model", "required: the id of a model from GET /v1/models");
    p.stage = stages.find(p.model);
    if (!p.stage) {
        if (auto e = registry.find(p.model); e && e->kind == model_kind::llm && e->state == model_state::loading)
            return status(errc::overloaded, "The model '" + p.model + "' is still loading (" + std::to_string(e->done) +
                                                " of " + std::to_string(e->total) + " bytes); see GET /ready.");
        const std::vector<std::string> loaded = stages.ids();
        if (loaded.empty())
            return status(errc::model_not_found,
                          "The model '" + p.model + "' does not exist: this server has no text model. Add one to the "
                          "config's \"models\" list, e.g. {\"id\": \"stories\", \"kind\": \"llm\", \"path\": \"model.gguf\"}.");
        std::string ids;
        for (const auto& id : loaded) ids += (ids.empty() ? "" : ", ") + id;
        return status(errc::model_not_found, "The model '" + p.model + "' does not exist. Text models here: " + ids + ".");
    }
    text::generate_request& g = p.gen;
    text::sampling_params& sp = g.sampling;

    // Sampling, as OpenAI names it, plus llama.cpp's common extras (top_k, min_p, repetition_penalty).
    MM_TRY(read(body, "temperature", sp.temperature));
    MM_TRY(read(body, "top_p", sp.top_p));
    MM_TRY(read(body, "top_k", sp.top_k));
    MM_TRY(read(body, "min_p", sp.min_p));
    MM_TRY(read(body, "frequency_penalty", sp.frequency_penalty));
    MM_TRY(read(body, "presence_penalty", sp.presence_penalty));
    MM_TRY(read(body, "repetition_penalty", sp.repetition_penalty));
    MM_TRY(read(body, "ignore_eos", g.ignore_eos));
    // Without a seed every request samples afresh (OpenAI's behaviour); with one, its output is repeatable.
    int64_t seed = 0;
    MM_TRY(read(body, "seed", seed));
    const bool seeded = body.contains("seed") && !body["seed"].is_null();
    sp.seed = seeded ? static_cast<uint64_t>(seed) : fresh_seed();
    if (auto lb = body.find("logit_bias"); lb != body.end() && !lb->is_null()) {
        if (!lb->is_object()) return bad("logit_bias", "expected an object of token id -> bias");
        for (auto it = lb->begin(); it != lb->end(); ++it) {
            int32_t id = -1;
            try {
                size_t used = 0;
                id = std::stoi(it.key(), &used);
                if (used != it.key().size()) id = -1;
            } catch (const std::exception&) {
            }
            if (id < 0 || !it->is_number()) return bad("logit_bias", "keys are token ids, values numbers");
            sp.logit_bias[id] = it->get<float>();
        }
    }
    // n choices of one prompt, each its own sequence in the batch; one charge for the request.
    int64_t n = 1;
    MM_TRY(read(body, "n", n));
    if (n < 1 || n > k_max_choices) return bad("n", "must be between 1 and " + std::to_string(k_max_choices));
    if (n > p.stage->max_queue())
        return bad("n", std::to_string(n) + " choices are more than this model's queue holds (" +
                            std::to_string(p.stage->max_queue()) + ", limits.queue_depth)");
    p.n = static_cast<int>(n);
    if (kind == api::completions) {  // legacy options this server does not do: refused, never ignored
        bool echo = false;
        MM_TRY(read(body, "echo", echo));
        if (echo) return status(errc::unsupported, "'echo': true is not supported", "echo");
        std::string suffix;
        MM_TRY(read(body, "suffix", suffix));
        if (!suffix.empty()) return status(errc::unsupported, "'suffix' (insertion) is not supported", "suffix");
        int64_t best_of = 1;
        MM_TRY(read(body, "best_of", best_of));
        if (best_of != 1) return status(errc::unsupported, "'best_of': only 1 is supported", "best_of");
    }
    MM_TRY(read(body, "stream", p.stream));
    if (auto so = body.find("stream_options"); so != body.end() && !so->is_null()) {
        if (!so->is_object()) return bad("stream_options", "expected an object");
        MM_TRY(read(*so, "include_usage", p.include_usage));
    }
    if (auto st = body.find("stop"); st != body.end() && !st->is_null()) {
        if (st->is_string()) {
            g.stop.push_back(st->get<std::string>());
        } else if (st->is_array()) {
            for (const auto& s : *st) {
                if (!s.is_string()) return bad("stop", "expected a string or an array of strings");
                g.stop.push_back(s.get<std::string>());
            }
        } else {
            return bad("stop", "expected a string or an array of strings");
        }
        if (g.stop.size() > 4) return bad("stop", "at most 4 stop sequences");
    }
    // OpenAI's defaults: 16 / until the context ends (0 to the engine). max_completion_tokens, the newer
    // name, wins over max_tokens; either, when given, asks for at least one token.
    int64_t max_tokens = kind == api::completions ? 16 : 0;
    for (const char* key : {"max_tokens", "max_completion_tokens"}) {
        int64_t given = -1;
        MM_TRY(read(body, key, given));
        if (!body.contains(key) || body[key].is_null()) continue;
        if (given < 1 || given > (1 << 24)) return bad(key, "must be between 1 and 16777216");
        max_tokens = given;
    }
    g.max_tokens = static_cast<int>(max_tokens);
    // Structured output: the answer is constrained to a JSON document of the schema.
    if (auto rf = body.find("response_format"); rf != body.end() && !rf->is_null()) {
        if (!rf->is_object() || !rf->contains("type") || !(*rf)["type"].is_string())
            return bad("response_format", "expected {\"type\": \"text\" | \"json_object\" | \"json_schema\"}");
        const std::string type = (*rf)["type"];
        if (type == "json_object") {
            g.constraint = text::json_schema_any_object();
        } else if (type == "json_schema") {
            const auto js = rf->find("json_schema");
            if (js == rf->end() || !js->is_object() || !js->contains("schema") || !(*js)["schema"].is_object())
                return bad("response_format.json_schema", "expected {\"name\", \"schema\": {...}}");
            auto schema = text::json_schema_parse((*js)["schema"].dump());
            if (!schema) return bad("response_format.json_schema.schema", schema.error().message());
            g.constraint = *schema;
        } else if (type != "text") {
            return bad("response_format.type", "expected \"text\", \"json_object\" or \"json_schema\"");
        }
    }

    if (kind == api::chat) {
        MM_TRY(read(body, "logprobs", p.logprobs));
        int64_t top = 0;
        MM_TRY(read(body, "top_logprobs", top));
        if (top < 0 || top > 20) return bad("top_logprobs", "must be between 0 and 20");
        if (top > 0 && !p.logprobs) return bad("top_logprobs", "requires logprobs: true");
        if (p.logprobs) g.top_logprobs = static_cast<int>(top);
        MM_ASSIGN(auto messages, chat_messages_read(body));
        text::chat_tools tools;
        MM_TRY(read_tools(body, p, tools));
        MM_ASSIGN(g.prompt, p.stage->chat_prompt(messages, &tools));
    } else {
        int64_t lp = -1;
        if (body.contains("logprobs") && !body["logprobs"].is_null()) {
            MM_TRY(read(body, "logprobs", lp));
            if (lp < 0 || lp > 20) return bad("logprobs", "must be between 0 and 20");
            p.logprobs = true;
            g.top_logprobs = static_cast<int>(lp);
        }
        auto pr = body.find("prompt");
        if (pr == body.end() || pr->is_null()) return bad("prompt", "required");
        auto ints = [](const json& a) {
            for (const auto& v : a)
                if (!v.is_number_integer()) return false;
            return true;
        };
        if (pr->is_string()) {
            g.prompt = p.stage->tokenize(pr->get<std::string>(), true, true);
        } else if (pr->is_array() && pr->size() == 1 && (*pr)[0].is_string()) {
            g.prompt = p.stage->tokenize((*pr)[0].get<std::string>(), true, true);
        } else if (pr->is_array() && !pr->empty() && ints(*pr)) {
            for (const auto& v : *pr) g.prompt.push_back(v.get<int32_t>());
        } else if (pr->is_array() && pr->size() == 1 && (*pr)[0].is_array() && ints((*pr)[0])) {
            for (const auto& v : (*pr)[0]) g.prompt.push_back(v.get<int32_t>());
        } else {
            return bad("prompt", "expected a string, or one prompt as an array (of one string or of token ids)");
        }
    }
    return p;
}


json token_bytes(const std::string& piece) {
    json b = json::array();
    for (unsigned char c : piece) b.push_back(c);
    return b;
}

// Logprobs in the shape of each API, built as tokens arrive.
struct logprob_log {
    json chat_content = json::array();                // chat: [{token, logprob, bytes, top_logprobs}]
    json tokens = json::array(), token_logprobs = json::array(), top = json::array(), offsets = json::array();
    size_t text_offset = 0;

    json chat_entry(const text_stage& s, const text::generated_token& t) {
        const std::string piece = s.piece(t.id);
        json top_list = json::array();
        for (const auto& a : t.top) {
            const std::string ap = s.piece(a.id);
            top_list.push_back({{"token", text::utf8_sanitize(ap)}, {"logprob", a.logprob}, {"bytes", token_bytes(ap)}});
        }
        return {{"token", text::utf8_sanitize(piece)}, {"logprob", t.logprob ? t.logprob->logprob : 0.0f},
                {"bytes", token_bytes(piece)}, {"top_logprobs", top_list}};
    }
    json completion_entry(const text_stage& s, const text::generated_token& t, size_t offset) {
        json top_map = json::object();
        for (const auto& a : t.top) top_map[text::utf8_sanitize(s.piece(a.id))] = a.logprob;
        return {{"tokens", json::array({text::utf8_sanitize(s.piece(t.id))})},
                {"token_logprobs", json::array({t.logprob ? t.logprob->logprob : 0.0f})},
                {"top_logprobs", json::array({top_map})},
                {"text_offset", json::array({offset})}};
    }
    void add(api kind, const text_stage& s, const text::generated_token& t) {
        if (kind == api::chat) {
            chat_content.push_back(chat_entry(s, t));
            return;
        }
        json e = completion_entry(s, t, text_offset);
        tokens.push_back(e["tokens"][0]);
        token_logprobs.push_back(e["token_logprobs"][0]);
        top.push_back(e["top_logprobs"][0]);
        offsets.push_back(text_offset);
        text_offset += t.text.size();
    }
    json done(api kind) const {
        if (kind == api::chat) return {{"content", chat_content}};
        return {{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top}, {"text_offset", offsets}};
    }
};

// cached_tokens: prompt tokens a slot already held from an earlier request (a chat's earlier turns), not
// computed again; the price is flat either way.
json usage_of(int prompt_tokens, int cached_tokens, int completion_tokens) {
    return {{"prompt_tokens", prompt_tokens},
            {"completion_tokens", completion_tokens},
            {"total_tokens", prompt_tokens + completion_tokens},
            {"prompt_tokens_details", {{"cached_tokens", cached_tokens}}}};
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }
std::string sse(const json& j) { return "data: " + dump(j) + "\n\n"; }

std::vector<std::pair<std::string, std::string>> retry_headers(const status& s) {
    // A full queue drains, a loading model comes up: both are worth a retry soon.
    if (s.code() == errc::queue_full || s.code() == errc::overloaded) return {{"Retry-After", "1"}};
    return {};
}

// One request: parse, queue its n choices together, and answer whole or as a stream once every choice ends.
void run(api kind, const text_models& stages, const model_registry& registry, std::shared_ptr<const http_request> req,
         std::shared_ptr<responder> out) {
    auto p = parse(kind, req->body(), stages, registry);
    if (!p) return out->reply(error_reply(p.error(), retry_headers(p.error())));
    // The choices stop together: when the client goes (the responder's token), or when one of them fails.
    p->gen.cancel = out->cancel().child();

    // What one choice has made so far. A streamed answer that may be calls waits in `held` until its start
    // tells (text::classify_answer_start: '{', '[{', <tool_call> or [TOOL_CALLS]); then a text answer streams as it comes
    // and calls go out whole.
    struct choice_state {
        enum class shape { undecided, text, call } answer = shape::undecided;
        std::vector<text::generated_token> held;
        logprob_log lp;
        json whole;  // the finished choice, for an answer sent whole
    };
    // Shared by the choices. Their callbacks all run on the engine's one thread; only the head is also sent
    // from the submitting thread, hence `mu`.
    struct state {
        api kind = api::chat;
        text_stage* stage = nullptr;
        std::shared_ptr<responder> out;
        std::string id, model;
        int64_t created = 0;
        bool stream = false, include_usage = false, logprobs = false;
        tool_mode tools = tool_mode::none;
        std::vector<std::string> tool_names;
        bool parallel_calls = true;
        std::vector<choice_state> choices;
        size_t left = 0;  // choices still generating
        int prompt_tokens = 0, cached_tokens = 0, completion_tokens = 0;
        bool failed = false;  // a choice failed or was cancelled: the answer is that error, sent once
        cancel_token choices_stop;  // every choice's token (a child of the responder's)
        std::mutex mu;           // orders the head before the engine's first write
        bool head_sent = false;  // guarded by mu
    };
    auto st = std::make_shared<state>();
    st->kind = kind;
    st->stage = p->stage;
    st->out = out;
    st->id = completion_id(kind);
    st->model = p->model;
    st->created = static_cast<int64_t>(std::time(nullptr));
    st->stream = p->stream;
    st->include_usage = p->include_usage;
    st->logprobs = p->logprobs;
    st->tools = p->tools;
    st->tool_names = p->tool_names;
    st->parallel_calls = p->parallel_calls;
    st->choices.resize(static_cast<size_t>(p->n));
    st->choices_stop = p->gen.cancel;
    st->left = st->choices.size();
    const char* object = kind == api::chat ? (st->stream ? "chat.completion.chunk" : "chat.completion")
                                           : "text_completion";
    auto chunk = [st, object](json choices) {
        return json{{"id", st->id}, {"object", object}, {"created", st->created}, {"model", st->model},
                    {"system_fingerprint", nullptr}, {"choices", std::move(choices)}};
    };
    auto event = [st, chunk](json choice) { st->out->stream_write(sse(chunk(json::array({std::move(choice)})))); };

    // The stream's head goes out once the engine has accepted the request (a refusal is a plain 429/400),
    // and before the engine's first write, whichever thread gets there first.
    auto head = [st, event] {
        std::lock_guard lock(st->mu);
        if (st->head_sent) return;
        st->head_sent = true;
        st->out->stream_begin({.content_type = "text/event-stream", .headers = {{"Cache-Control", "no-cache"}}});
        if (st->kind == api::chat)
            for (size_t i = 0; i < st->choices.size(); ++i)
                event({{"index", i}, {"delta", {{"role", "assistant"}, {"content", ""}}}, {"logprobs", nullptr},
                       {"finish_reason", nullptr}});
    };
    auto emit = [st, event](size_t i, const text::generated_token& t) {
        if (t.text.empty() && !st->logprobs) return;
        logprob_log& lp = st->choices[i].lp;
        json lpj = nullptr;
        if (st->logprobs)
            lpj = st->kind == api::chat ? json{{"content", json::array({lp.chat_entry(*st->stage, t)})}}
                                        : lp.completion_entry(*st->stage, t, lp.text_offset);
        lp.text_offset += t.text.size();
        if (st->kind == api::chat)
            event({{"index", i}, {"delta", {{"content", t.text}}}, {"logprobs", lpj}, {"finish_reason", nullptr}});
        else
            event({{"text", t.text}, {"index", i}, {"logprobs", lpj}, {"finish_reason", nullptr}});
    };
    auto on_token = [st, head, emit](size_t i, const text::generated_token& t) {
        if (st->failed) return;
        choice_state& c = st->choices[i];
        using shape = choice_state::shape;
        if (!st->stream) {
            if (st->logprobs) c.lp.add(st->kind, *st->stage, t);
            return;
        }
        head();
        if (st->tools == tool_mode::forced) c.answer = shape::call;
        if (st->tools == tool_mode::none || c.answer == shape::text) return emit(i, t);
        if (c.answer == shape::call) return;  // whole, at the end
        c.held.push_back(t);
        std::string visible;
        for (const auto& h : c.held) visible += h.text;
        visible.erase(0, std::min(visible.size(), visible.find_first_not_of(" \n\t\r")));
        switch (text::classify_answer_start(visible)) {
            case text::answer_start::undecided: return;
            case text::answer_start::calls: c.answer = shape::call; break;
            case text::answer_start::text:
                c.answer = shape::text;
                for (const auto& e : c.held) emit(i, e);
                break;
        }
        c.held.clear();
    };

    auto on_done = [st, chunk, event, head](size_t i, result<text::generate_result> r) {
        if (st->failed) return;
        if (st->stream) head();
        if (!r || r->reason == text::finish_reason::cancelled) {
            st->failed = true;
            st->choices_stop.cancel();  // the other choices' work is no longer wanted
            const status why = r ? status(errc::cancelled, "the request was cancelled") : r.error();
            if (!st->stream) return st->out->reply(error_reply(why));
            // The head is out: the error travels as an event, and the meter voids (cancel or failure).
            st->out->stream_write(sse(json::parse(http_error_body(why))));
            return st->out->stream_fail(why);
        }
        choice_state& c = st->choices[i];
        st->prompt_tokens = r->prompt_tokens;  // the same prompt for every choice, counted once
        st->cached_tokens = std::max(st->cached_tokens, r->cached_tokens);
        st->completion_tokens += r->completion_tokens;
        const char* finish = text::finish_reason_name(r->reason);
        // Tool calls: the whole answer is one call or an array of them.
        json call = nullptr;
        if (st->tools != tool_mode::none) {
            call = tool_calls_of(r->text, st->tool_names, st->parallel_calls);
            if (!call.is_null() && r->reason != text::finish_reason::length) finish = "tool_calls";  // a call cut short says so
        }
        if (st->stream) {
            if (!call.is_null()) {
                for (size_t k = 0; k < call.size(); ++k) {  // one delta per call, as OpenAI streams them
                    json one = call[k];
                    one["index"] = k;
                    event({{"index", i}, {"delta", {{"tool_calls", json::array({one})}}}, {"logprobs", nullptr},
                           {"finish_reason", nullptr}});
                }
            } else if (st->tools != tool_mode::none && c.answer != choice_state::shape::text && !r->text.empty()) {
                // Held as a possible call (or only blank so far) and not one after all: the text, whole.
                event({{"index", i}, {"delta", {{"content", r->text}}}, {"logprobs", nullptr}, {"finish_reason", nullptr}});
            }
            if (st->kind == api::chat)
                event({{"index", i}, {"delta", json::object()}, {"logprobs", nullptr}, {"finish_reason", finish}});
            else
                event({{"text", ""}, {"index", i}, {"logprobs", nullptr}, {"finish_reason", finish}});
        } else {
            const json lp = st->logprobs ? c.lp.done(st->kind) : json(nullptr);
            if (st->kind == api::chat && !call.is_null())
                c.whole = {{"index", i}, {"message", {{"role", "assistant"}, {"content", nullptr}, {"refusal", nullptr}, {"tool_calls", call}}},
                           {"logprobs", lp}, {"finish_reason", finish}};
            else if (st->kind == api::chat)
                c.whole = {{"index", i}, {"message", {{"role", "assistant"}, {"content", r->text}, {"refusal", nullptr}}},
                           {"logprobs", lp}, {"finish_reason", finish}};
            else
                c.whole = {{"text", r->text}, {"index", i}, {"logprobs", lp}, {"finish_reason", finish}};
        }
        if (--st->left > 0) return;
        const json usage = usage_of(st->prompt_tokens, st->cached_tokens, st->completion_tokens);
        if (st->stream) {
            if (st->include_usage) {
                json u = chunk(json::array());
                u["usage"] = usage;
                st->out->stream_write(sse(u));
            }
            return st->out->stream_end("data: [DONE]\n\n");  // after the commit
        }
        json choices = json::array();
        for (auto& ch : st->choices) choices.push_back(std::move(ch.whole));
        json body = chunk(std::move(choices));
        body["usage"] = usage;
        st->out->reply(route_reply{.body = dump(body)});
    };

    // Choice i samples from seed + i, so a seeded request's n answers differ from each other and repeat.
    std::vector<text::generate_job> jobs;
    for (size_t i = 0; i < st->choices.size(); ++i) {
        text::generate_request g = p->gen;
        g.sampling.seed += i;
        jobs.push_back({std::move(g), [on_token, i](const text::generated_token& t) { on_token(i, t); },
                        [on_done, i](result<text::generate_result> r) { on_done(i, std::move(r)); }});
    }
    if (status s = st->stage->submit_all(std::move(jobs)); !s) {
        if (s.code() == errc::context_length_exceeded)  // the field OpenAI names for it
            s = status(s.code(), s.message(), kind == api::chat ? "messages" : "prompt");
        return st->out->reply(error_reply(s, retry_headers(s)));
    }
    if (st->stream) head();
}

// A request is deterministic (and its answer cacheable) when it samples greedily or fixes its seed.
std::optional<std::string> deterministic(const http_request& req) {
    if (!json_nesting_within(req.body())) return std::nullopt;
    const nlohmann::json body = nlohmann::json::parse(req.body(), nullptr, false);
    if (!body.is_object()) return std::nullopt;
    const auto t = body.find("temperature");
    const bool greedy = t != body.end() && t->is_number() && t->get<double>() == 0.0;
    const bool seeded = body.contains("seed") && body["seed"].is_number_integer();
    if (!greedy && !seeded) return std::nullopt;
    return body.dump();  // keys sorted: the same request in any key order is one entry
}

// A cached answer answers a new request: a new id and created, the rest as first answered (a stream's
// events all get the one new id, as a stream has).
std::string fresh_identity(api kind, std::string body) {
    const std::string id = completion_id(kind);
    const int64_t created = static_cast<int64_t>(std::time(nullptr));
    std::map<std::string, std::string> call_ids;  // old -> new, the same across a stream's events
    auto refresh = [&](json& j) {
        if (!j.is_object()) return;
        if (j.contains("id")) j["id"] = id;
        if (j.contains("created")) j["created"] = created;
        // Tool calls get ids of their own too: a client ties each tool result to its call by id. The answer
        // is our own, so its shape is known: choices[].message or .delta, tool_calls[].id.
        if (!j.contains("choices")) return;
        for (auto& c : j["choices"])
            for (const char* part : {"message", "delta"}) {
                if (!c.contains(part) || !c[part].contains("tool_calls")) continue;
                for (auto& call : c[part]["tool_calls"]) {
                    auto [it, fresh] = call_ids.try_emplace(call["id"].get<std::string>());
                    if (fresh) it->second = call_id();
                    call["id"] = it->second;
                }
            }
    };
    constexpr std::string_view data = "data: ";
    if (body.rfind(data, 0) != 0) {  // one JSON document
        json j = json::parse(body, nullptr, false);
        if (!j.is_object()) return body;
        refresh(j);
        return dump(j);
    }
    std::string out;
    out.reserve(body.size());
    size_t at = 0;
    while (at < body.size()) {
        size_t end = body.find("\n\n", at);
        end = end == std::string::npos ? body.size() : end + 2;
        const std::string_view event(body.data() + at, end - at);
        json j = event.rfind(data, 0) == 0 ? json::parse(event.substr(data.size()), nullptr, false) : json();
        if (j.is_object()) {
            refresh(j);
            out += sse(j);
        } else {
            out += event;  // [DONE], a comment
        }
        at = end;
    }
    return out;
}

}  // namespace

void text_models::add(std::unique_ptr<text::text_stage> s) {
    std::lock_guard lock(mu_);
    stages_.push_back(std::move(s));
}

text::text_stage* text_models::find(std::string_view id) const {
    std::lock_guard lock(mu_);
    for (const auto& s : stages_)
        if (s->id() == id) return s.get();
    return nullptr;
}

std::vector<std::string> text_models::ids() const {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (const auto& s : stages_) out.push_back(s->id());
    return out;
}

std::vector<route> text_routes(meter& m, const text_models& stages, const model_registry& registry) {
    auto handler = [&stages, &registry](api kind) {
        return [&stages, &registry, kind](std::shared_ptr<const http_request> req, std::shared_ptr<responder> out) {
            run(kind, stages, registry, std::move(req), std::move(out));
        };
    };
    auto refresh = [](api kind) {
        return [kind](std::string body) { return fresh_identity(kind, std::move(body)); };
    };
    return {
        {http::verb::post, "/v1/chat/completions", nullptr,
         m.metered("chat.completions", handler(api::chat), deterministic, meter::route_work::heavy, refresh(api::chat))},
        {http::verb::post, "/v1/completions", nullptr,
         m.metered("completions", handler(api::completions), deterministic, meter::route_work::heavy,
                   refresh(api::completions))},
    };
}

}  // namespace mm::services
