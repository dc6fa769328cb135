// json_constraint: schema parsing, the byte-level recogniser (a stack of frames, one per open JSON
// construct) and the vocabulary trie walk.
#include "text/json_constraint.h"

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "common/json_nesting.h"

namespace mm::text {

struct json_schema {
    enum class kind { any, object, array, string, number, integer, boolean, null, literals, tool_call, one_of };
    kind k = kind::any;
    std::vector<json_schema_ptr> branches;  // one_of: values that differ in their first byte, so it picks one
    std::vector<std::pair<std::string, json_schema_ptr>> properties;  // object: declared order; tool_call: tools
    std::vector<bool> required;                                       // parallel to properties
    json_schema_ptr items;                                            // array
    size_t min_items = 0, max_items = SIZE_MAX;                       // array: minItems, maxItems
    std::vector<std::string> literals;                                // serialized JSON values (enum, const, boolean, null)
    json_schema_ptr names;                                            // tool_call: the tool names as literals
    std::string shortest;  // a shortest JSON text of this schema (closing() builds on it)
    size_t widest = 0;     // the longest `shortest` in this subtree
};

namespace {

using json = nlohmann::ordered_json;  // keeps properties in declared order
using kind = json_schema::kind;

constexpr int k_max_ws_run = 2;  // whitespace bytes in a row: enough for "\n " indentation steps, too few to loop on
constexpr size_t k_max_number = 32;    // characters in one number
constexpr size_t k_max_properties = 64;
constexpr size_t k_max_min_items = 16;
// The shortest document of any part of a schema: minItems repeats its item's, so nested arrays would grow
// it exponentially (and closing() rebuilds from it at every step).
constexpr size_t k_max_shortest = 4096;

// The shortest text and reach of a schema whose children are settled already.
std::string required_rest(const json_schema& s, size_t from);
std::string tool_rest(const json_schema& call, const std::string& typed);

void settle(json_schema& s) {
    switch (s.k) {
        case kind::any: case kind::number: case kind::integer: s.shortest = "0"; break;
        case kind::string: s.shortest = "\"\""; break;
        case kind::boolean: s.shortest = "true"; break;  // parse_node makes these literals; kept for the switch
        case kind::null: s.shortest = "null"; break;
        case kind::array:
            s.shortest = "[";
            for (size_t i = 0; i < s.min_items; ++i) s.shortest += (i ? "," : "") + s.items->shortest;
            s.shortest += "]";
            break;
        case kind::literals:
            if (s.literals.empty()) break;  // a tool call without tools: nothing completes it
            s.shortest = s.literals.front();
            for (const auto& l : s.literals)
                if (l.size() < s.shortest.size()) s.shortest = l;
            break;
        case kind::object: {
            const std::string rest = required_rest(s, 0);
            s.shortest = "{" + (rest.front() == ',' ? rest.substr(1) : rest);
            break;
        }
        case kind::tool_call: s.shortest = "{\"name\":" + tool_rest(s, ""); break;
        case kind::one_of:
            s.shortest = s.branches.front()->shortest;
            for (const auto& b : s.branches)
                if (b->shortest.size() < s.shortest.size()) s.shortest = b->shortest;
            break;
    }
    s.widest = s.shortest.size();
    for (const auto& b : s.branches) s.widest = std::max(s.widest, b->widest);
    for (const auto& [_, p] : s.properties) s.widest = std::max(s.widest, p->widest);
    if (s.items) s.widest = std::max(s.widest, s.items->widest);
}

json_schema_ptr settled(std::shared_ptr<json_schema> s) {
    settle(*s);
    return s;
}

json_schema_ptr any_value() {
    static const json_schema_ptr s = settled(std::make_shared<json_schema>());
    return s;
}

// The required properties from index `from` on, each after a comma, then the closing brace.
std::string required_rest(const json_schema& s, size_t from) {
    std::string out;
    for (size_t i = from; i < s.properties.size(); ++i)
        if (s.required[i]) out += ",\"" + s.properties[i].first + "\":" + s.properties[i].second->shortest;
    return out + "}";
}

// The shortest rest of a tool call from its name value on: `<name>,"arguments":<value>}` over the tools
// whose quoted name starts with `typed`, less `typed`.
std::string tool_rest(const json_schema& call, const std::string& typed) {
    std::string best;
    bool found = false;
    for (size_t i = 0; i < call.properties.size(); ++i) {
        const std::string& name = call.names->literals[i];
        if (name.size() < typed.size() || name.compare(0, typed.size(), typed) != 0) continue;
        std::string c = name.substr(typed.size()) + ",\"arguments\":" + call.properties[i].second->shortest + "}";
        if (!found || c.size() < best.size()) best = std::move(c), found = true;
    }
    return best;
}

const json_schema& tool_schema(const json_schema& call, const std::string& tool) {
    for (const auto& [n, sch] : call.properties)
        if (n == tool) return *sch;
    return *any_value();
}

// Whether a value of schema s may begin with byte c. A one_of's branches never share one.
bool may_start(const json_schema& s, unsigned char c) {
    switch (s.k) {
        case kind::object: case kind::tool_call: return c == '{';
        case kind::array: return c == '[';
        case kind::string: return c == '"';
        case kind::number: case kind::integer: return c == '-' || (c >= '0' && c <= '9');
        case kind::literals:
            for (const auto& l : s.literals)
                if (static_cast<unsigned char>(l.front()) == c) return true;
            return false;
        case kind::one_of:
            for (const auto& b : s.branches)
                if (may_start(*b, c)) return true;
            return false;
        case kind::any: case kind::boolean: case kind::null:
            return c == '{' || c == '[' || c == '"' || c == '-' || (c >= '0' && c <= '9') || c == 't' || c == 'f' || c == 'n';
    }
    return false;
}

// The schema document being parsed, for $ref, and how many nodes it may still expand to: references can
// repeat a definition, doubling per level, so the count (not only the depth) is bounded.
struct parse_ctx {
    const json& root;
    int nodes_left = 4096;
    int all_of_left = 256;  // allOf members visited, in all
};

result<json_schema_ptr> parse_node(const json& j, parse_ctx& cx, const std::string& at, int depth);

// anyOf / oneOf / a list of types: the alternatives, nested ones flattened. The recogniser picks a branch
// by a value's first byte, so the branches must begin differently: one object, one array, one string, one
// number, and literals (null, true, false, enums) that no other branch can begin with.
result<json_schema_ptr> one_of(const std::vector<json>& alternatives, parse_ctx& cx, const std::string& at, int depth) {
    auto s = std::make_shared<json_schema>();
    s->k = kind::one_of;
    for (size_t i = 0; i < alternatives.size(); ++i) {
        auto b = parse_node(alternatives[i], cx, at + "[" + std::to_string(i) + "]", depth + 1);
        if (!b) return b.error();
        if ((*b)->k == kind::one_of) {
            s->branches.insert(s->branches.end(), (*b)->branches.begin(), (*b)->branches.end());
        } else {
            s->branches.push_back(*b);
        }
    }
    if (s->branches.empty()) return status(errc::invalid_argument, at + ": expected at least one alternative");
    for (int c = 0; c < 256; ++c) {
        int n = 0;
        for (const auto& b : s->branches) n += may_start(*b, static_cast<unsigned char>(c)) ? 1 : 0;
        if (n > 1)
            return status(errc::invalid_argument, at + ": alternatives of the same JSON type (both may begin with '" +
                                                      std::string(1, static_cast<char>(c)) +
                                                      "') are not supported in constrained output");
    }
    if (s->branches.size() == 1) return s->branches.front();
    return settled(s);
}

// Keywords that describe a schema without constraining it (`skip` names one more to pass over).
bool annotation_only(const json& j, std::string_view skip = {}) {
    static const std::set<std::string, std::less<>> k_notes = {"title", "description", "default", "examples", "$comment",
                                                              "deprecated", "readOnly", "writeOnly", "$schema", "$id",
                                                              "$defs", "definitions"};
    for (auto it = j.begin(); it != j.end(); ++it)
        if (it.key() != skip && !k_notes.count(it.key())) return false;
    return true;
}

result<const json*> resolve_ref(const json& ref, const json& root, const std::string& at);

// allOf, where every member holding is one schema: one member that constrains (pydantic's wrapper around
// a $ref that carries a description or default), or objects whose properties and required lists merge.
// The node's own keywords count as a member. Anything else is refused rather than loosened. Members are
// read in place (references point into the document), and at most k_max_all_of of them are visited in all,
// so a schema cannot make the merge copy or compare its largest part over and over.
result<json> all_of(const json& j, parse_ctx& cx, const std::string& at, int depth) {
    if (depth > 32) return status(errc::invalid_argument, at + ": schema nested too deeply (or a $ref that recurses)");
    const json& members = j["allOf"];
    if (!members.is_array() || members.empty()) return status(errc::invalid_argument, at + ".allOf: expected a non-empty array");
    std::vector<const json*> parts;  // into the document, or into `inner`
    std::vector<std::unique_ptr<json>> inner;  // merged nested allOfs
    if (!annotation_only(j, "allOf")) parts.push_back(&j);
    for (size_t i = 0; i < members.size(); ++i) {
        const std::string mat = at + ".allOf[" + std::to_string(i) + "]";
        if (--cx.all_of_left < 0) return status(errc::invalid_argument, mat + ": too many allOf members in the schema");
        const json* m = &members[i];
        for (int hops = 0; m->is_object() && m->contains("$ref"); ++hops) {
            if (hops > 32) return status(errc::invalid_argument, mat + ".$ref: recurses");
            auto target = resolve_ref((*m)["$ref"], cx.root, mat);
            if (!target) return target.error();
            m = *target;
        }
        if (m->is_boolean() && m->get<bool>()) continue;  // true: no constraint
        if (!m->is_object()) return status(errc::invalid_argument, mat + ": expected a schema object");
        if (m->contains("allOf")) {
            auto merged = all_of(*m, cx, mat, depth + 1);
            if (!merged) return merged.error();
            inner.push_back(std::make_unique<json>(std::move(*merged)));
            m = inner.back().get();
        }
        if (!annotation_only(*m)) parts.push_back(m);
    }
    auto own = [&](const json& part) {  // the node itself is a part without its allOf
        if (&part != &j) return part;
        json copy = part;
        copy.erase("allOf");
        return copy;
    };
    if (parts.empty()) return json::object();
    if (parts.size() == 1) return own(*parts.front());
    json out = {{"type", "object"}, {"properties", json::object()}, {"required", json::array()}};
    for (const json* part : parts) {
        const json& p = *part;
        const bool object = p.value("type", json("object")) == "object" && !p.contains("anyOf") && !p.contains("oneOf") &&
                            !p.contains("enum") && !p.contains("const");
        if (!object)
            return status(errc::invalid_argument,
                          at + ".allOf: only one constraining schema, or objects to merge, are supported in constrained output");
        if (auto props = p.find("properties"); props != p.end()) {
            if (!props->is_object()) return status(errc::invalid_argument, at + ".allOf: properties must be an object");
            if (props->size() + out["properties"].size() > k_max_properties)
                return status(errc::invalid_argument, at + ".allOf: too many properties");
            for (auto it = props->begin(); it != props->end(); ++it) {
                auto have = out["properties"].find(it.key());
                if (have == out["properties"].end()) out["properties"][it.key()] = it.value();
                else if (*have != it.value())
                    return status(errc::invalid_argument, at + ".allOf: property '" + it.key() +
                                                              "' is given two different schemas (not supported)");
            }
        }
        if (auto req = p.find("required"); req != p.end()) {
            if (!req->is_array()) return status(errc::invalid_argument, at + ".allOf: required must be an array");
            if (req->size() > k_max_properties) return status(errc::invalid_argument, at + ".allOf: required lists too many");
            for (const auto& r : *req)
                if (std::find(out["required"].begin(), out["required"].end(), r) == out["required"].end()) out["required"].push_back(r);
        }
    }
    return out;
}

// A local reference, "#" or "#/$defs/Name" (a JSON pointer into the schema document itself).
result<const json*> resolve_ref(const json& ref, const json& root, const std::string& at) {
    if (!ref.is_string()) return status(errc::invalid_argument, at + ".$ref: expected a string");
    const std::string r = ref.get<std::string>();
    if (r.empty() || r[0] != '#')
        return status(errc::invalid_argument, at + ".$ref: only references inside the schema ('#/...') are supported");
    try {
        const json::json_pointer ptr(r.substr(1));
        if (!root.contains(ptr)) return status(errc::invalid_argument, at + ".$ref: '" + r + "' names nothing in the schema");
        return &root.at(ptr);
    } catch (const json::exception&) {
        return status(errc::invalid_argument, at + ".$ref: '" + r + "' is not a JSON pointer");
    }
}

result<json_schema_ptr> parse_node(const json& j, parse_ctx& cx, const std::string& at, int depth) {
    if (depth > 32) return status(errc::invalid_argument, at + ": schema nested too deeply (or a $ref that recurses)");
    if (--cx.nodes_left < 0) return status(errc::invalid_argument, at + ": schema expands to too many nodes");
    if (j.is_boolean() && j.get<bool>()) return any_value();
    if (!j.is_object()) return status(errc::invalid_argument, at + ": expected a schema object");
    if (j.contains("$ref")) {  // its siblings are ignored, as in draft 7
        auto target = resolve_ref(j["$ref"], cx.root, at);
        if (!target) return target.error();
        return parse_node(**target, cx, at + ".$ref", depth + 1);
    }
    if (j.contains("allOf")) {
        auto merged = all_of(j, cx, at, depth);
        if (!merged) return merged.error();
        return parse_node(*merged, cx, at + ".allOf", depth + 1);
    }
    for (const char* k : {"anyOf", "oneOf"}) {
        if (!j.contains(k)) continue;
        if (!j[k].is_array()) return status(errc::invalid_argument, at + "." + k + ": expected an array");
        return one_of(std::vector<json>(j[k].begin(), j[k].end()), cx, at + "." + k, depth);
    }
    if (j.contains("type") && j["type"].is_array()) {  // ["string", "null"]: each type with the other keywords
        std::vector<json> alternatives;
        bool has_null = false;
        for (const auto& t : j["type"]) {
            json one = j;
            one.erase("nullable");  // said once below, not per type
            one["type"] = t;
            has_null = has_null || t == "null";
            alternatives.push_back(std::move(one));
        }
        if (!has_null && j.contains("nullable") && j["nullable"] == true) alternatives.push_back(json{{"type", "null"}});
        return one_of(alternatives, cx, at + ".type", depth);
    }
    if (j.contains("nullable") && j["nullable"] == true) {  // OpenAPI's spelling of ["<type>", "null"]
        json one = j;
        one.erase("nullable");
        return one_of({one, json{{"type", "null"}}}, cx, at, depth);
    }
    auto s = std::make_shared<json_schema>();
    if (j.contains("enum") || j.contains("const")) {
        s->k = kind::literals;
        const json values = j.contains("const") ? json::array({j["const"]}) : j["enum"];
        if (!values.is_array() || values.empty()) return status(errc::invalid_argument, at + ".enum: expected a non-empty array");
        for (const auto& v : values) s->literals.push_back(v.dump());
        return settled(s);
    }
    if (!j.contains("type")) return any_value();
    if (!j["type"].is_string()) return status(errc::invalid_argument, at + ".type: expected a single type name");
    const std::string type = j["type"];
    if (type == "object") {
        s->k = kind::object;
        if (j.contains("properties")) {
            const json& props = j["properties"];
            if (!props.is_object()) return status(errc::invalid_argument, at + ".properties: expected an object");
            if (props.size() > k_max_properties) return status(errc::invalid_argument, at + ".properties: too many");
            std::vector<std::string> req;
            if (j.contains("required")) {
                if (!j["required"].is_array()) return status(errc::invalid_argument, at + ".required: expected an array");
                for (const auto& r : j["required"])
                    if (r.is_string()) req.push_back(r);
            }
            // Declared order (nlohmann::ordered_json keeps it).
            for (auto it = props.begin(); it != props.end(); ++it) {
                // Names are matched and completed as raw bytes inside quotes: what JSON would need escaped is refused.
                const std::string& name = it.key();
                if (name.find_first_of("\"\\") != std::string::npos ||
                    std::any_of(name.begin(), name.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; }))
                    return status(errc::invalid_argument,
                                  at + ".properties: names with quotes, backslashes or control characters are not supported");
                auto child = parse_node(it.value(), cx, at + ".properties." + it.key(), depth + 1);
                if (!child) return child.error();
                s->properties.emplace_back(it.key(), *child);
                s->required.push_back(std::find(req.begin(), req.end(), it.key()) != req.end());
            }
        }
    } else if (type == "array") {
        s->k = kind::array;
        if (j.contains("items")) {
            auto child = parse_node(j["items"], cx, at + ".items", depth + 1);
            if (!child) return child.error();
            s->items = *child;
        } else {
            s->items = any_value();
        }
        for (const char* k : {"minItems", "maxItems"}) {
            if (!j.contains(k)) continue;
            if (!j[k].is_number_unsigned())
                return status(errc::invalid_argument, at + "." + k + ": expected a non-negative integer");
            (std::string_view(k) == "minItems" ? s->min_items : s->max_items) = j[k].get<uint64_t>();
        }
        // Every item up to minItems is in the shortest completion, so it stays small.
        if (s->min_items > k_max_min_items)
            return status(errc::invalid_argument, at + ".minItems: at most " + std::to_string(k_max_min_items) + " is supported");
        if (s->min_items > s->max_items)
            return status(errc::invalid_argument, at + ": minItems is more than maxItems");
        if (s->min_items * (s->items->shortest.size() + 1) + 2 > k_max_shortest)
            return status(errc::invalid_argument, at + ": the smallest array minItems allows is too long (nested minItems)");
    } else if (type == "string") {
        s->k = kind::string;
    } else if (type == "number") {
        s->k = kind::number;
    } else if (type == "integer") {
        s->k = kind::integer;
    } else if (type == "boolean") {
        s->k = kind::literals;
        s->literals = {"true", "false"};
    } else if (type == "null") {
        s->k = kind::literals;
        s->literals = {"null"};
    } else {
        return status(errc::invalid_argument, at + ".type: unknown type '" + type + "'");
    }
    return settled(s);
}

}  // namespace

result<json_schema_ptr> json_schema_parse(std::string_view schema_json) {
    if (!json_nesting_within(schema_json))
        return status(errc::invalid_argument, "schema nests deeper than " + std::to_string(k_json_max_nesting) + " levels");
    const json j = json::parse(schema_json, nullptr, false);
    if (j.is_discarded()) return status(errc::invalid_argument, "schema: not valid JSON");
    parse_ctx cx{.root = j};
    return parse_node(j, cx, "schema", 0);
}

json_schema_ptr json_schema_any_object() {
    static const json_schema_ptr s = [] {
        auto o = std::make_shared<json_schema>();
        o->k = kind::object;
        return settled(o);
    }();
    return s;
}

json_schema_ptr json_schema_tool_call(std::vector<std::pair<std::string, json_schema_ptr>> tools) {
    auto s = std::make_shared<json_schema>();
    s->k = kind::tool_call;
    auto names = std::make_shared<json_schema>();
    names->k = kind::literals;
    for (const auto& [n, _] : tools) names->literals.push_back(json(n).dump());
    s->names = settled(names);
    s->properties = std::move(tools);
    return settled(s);
}

json_schema_ptr json_schema_tool_calls(std::vector<std::pair<std::string, json_schema_ptr>> tools) {
    const json_schema_ptr call = json_schema_tool_call(std::move(tools));
    auto list = std::make_shared<json_schema>();
    list->k = kind::array;
    list->items = call;
    list->min_items = 1;  // a required call cannot be []
    auto s = std::make_shared<json_schema>();
    s->k = kind::one_of;  // '{' or '['
    s->branches = {call, settled(list)};
    return settled(s);
}

// ---- the recogniser ----

struct json_recognizer::frame {
    enum class type { value, object, array, string, number, literal } t = type::value;
    const json_schema* s = nullptr;
    int state = 0;
    // object / tool call
    size_t next_prop = 0;
    const json_schema* value_schema = nullptr;
    std::string tool;  // the tool call's name, once read
    // string (key or value) / literal: what has been typed, and the allowed whole values
    std::string typed;
    std::vector<std::string> options;  // empty: any string
    bool key = false;
    int esc = 0;  // 1 after a backslash, 2..5: hex digits of \u still to come (5 - esc + 1)
    unsigned hex = 0;        // the \u digits read so far
    bool want_low = false;   // a high surrogate was escaped: its low half must follow
    int utf8_need = 0;                     // continuation bytes still owed by a multi-byte character
    unsigned char utf8_lo = 0x80, utf8_hi = 0xBF;  // the range the next continuation byte must fall in
    bool integer = false;
    size_t items = 0;  // array: values begun
};

namespace {

using frame = json_recognizer::frame;
using ftype = frame::type;

bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
unsigned hex_value(char c) { return is_digit(c) ? unsigned(c - '0') : unsigned((c | 0x20) - 'a' + 10); }
bool high_surrogate_byte(unsigned top) { return top >= 0xD8 && top <= 0xDB; }

bool any_starts_with(const std::vector<std::string>& opts, const std::string& prefix) {
    for (const auto& o : opts)
        if (o.compare(0, prefix.size(), prefix) == 0 && o.size() >= prefix.size()) return true;
    return false;
}
bool any_equals(const std::vector<std::string>& opts, const std::string& s) {
    return std::find(opts.begin(), opts.end(), s) != opts.end();
}

// The property names an object may write next: from next_prop up to the first required one.
std::vector<std::string> key_options(const frame& f) {
    std::vector<std::string> out;
    const json_schema& s = *f.s;
    if (s.k == kind::tool_call) {
        if (f.next_prop == 0) out.push_back("name");
        else if (f.next_prop == 1) out.push_back("arguments");
        return out;
    }
    for (size_t i = f.next_prop; i < s.properties.size(); ++i) {
        out.push_back(s.properties[i].first);
        if (s.required[i]) break;
    }
    return out;
}

bool may_close(const frame& f) {
    const json_schema& s = *f.s;
    if (s.k == kind::tool_call) return f.next_prop == 2;
    for (size_t i = f.next_prop; i < s.properties.size(); ++i)
        if (s.required[i]) return false;
    return true;
}

bool open_object(const frame& f) { return f.s->k == kind::object && f.s->properties.empty(); }

// Number grammar states.
enum num_state { n_sign = 0, n_zero, n_int, n_dot, n_frac, n_e, n_esign, n_exp };
bool number_done(int st) { return st == n_zero || st == n_int || st == n_frac || st == n_exp; }
bool number_step(frame& f, char c) {
    if (f.typed.size() >= k_max_number) return false;
    int st = f.state;  // committed only when c is taken
    switch (st) {
        case n_sign: if (c == '0') st = n_zero; else if (c >= '1' && c <= '9') st = n_int; else return false; break;
        case n_zero: if (c == '.' && !f.integer) st = n_dot; else if ((c == 'e' || c == 'E') && !f.integer) st = n_e; else return false; break;
        case n_int: if (is_digit(c)) break; if (c == '.' && !f.integer) st = n_dot; else if ((c == 'e' || c == 'E') && !f.integer) st = n_e; else return false; break;
        case n_dot: if (is_digit(c)) st = n_frac; else return false; break;
        case n_frac: if (is_digit(c)) break; if (c == 'e' || c == 'E') st = n_e; else return false; break;
        case n_e: if (c == '+' || c == '-') st = n_esign; else if (is_digit(c)) st = n_exp; else return false; break;
        case n_esign: if (is_digit(c)) st = n_exp; else return false; break;
        case n_exp:  // two exponent digits at most: every reader can hold 1e99 in a double
            if (!is_digit(c) || is_digit(f.typed[f.typed.size() - 2])) return false;
            break;
    }
    // Room for the digit an unfinished number still owes, so the length cap never strands it.
    if (!number_done(st) && f.typed.size() + 2 > k_max_number) return false;
    f.state = st;
    f.typed += c;
    return true;
}

// A literal ends as soon as it equals an option that nothing longer extends.
bool literal_closed(const frame& f) {
    if (!any_equals(f.options, f.typed)) return false;
    for (const auto& o : f.options)
        if (o.size() > f.typed.size() && o.compare(0, f.typed.size(), f.typed) == 0) return false;
    return true;
}

// ---- closing: the shortest way out from a frame ----
// Ties go to the first option in declared order, so a closing() stays the rest of its predecessor's.

// The rest of key `k` being typed in object `o` (`pending`: the bytes its last character still owes), the
// key's value and the object's end, for the key that ends soonest.
std::string key_rest(const frame& k, const frame& o, const std::string& pending) {
    if (open_object(o)) return pending + "\":0}";
    const json_schema& s = *o.s;
    std::string best;
    bool found = false;
    for (const auto& name : k.options) {
        if (name.size() < k.typed.size() || name.compare(0, k.typed.size(), k.typed) != 0) continue;
        std::string c = name.substr(k.typed.size()) + "\":";
        if (s.k == kind::tool_call) {
            c += name == "name" ? tool_rest(s, "") : tool_schema(s, o.tool).shortest + "}";
        } else {
            for (size_t i = o.next_prop; i < s.properties.size(); ++i)
                if (s.properties[i].first == name) {
                    c += s.properties[i].second->shortest + required_rest(s, i + 1);
                    break;
                }
        }
        if (!found || c.size() < best.size()) best = std::move(c), found = true;
    }
    return best;
}

// The rest of an object whose open child, if any, has been closed already.
std::string object_rest(const frame& f) {
    const json_schema& s = *f.s;
    const bool call = s.k == kind::tool_call;
    if (f.state == 0 || f.state == 4) {  // a key or the end comes next
        if (f.state == 0 && may_close(f)) return "}";
        if (open_object(f)) return "\"\":0}";
        frame key;
        key.t = ftype::string;
        key.key = true;
        key.options = key_options(f);
        return "\"" + key_rest(key, f, "");
    }
    if (f.state == 1) {  // a key was read: its colon and value come next
        if (call) return f.next_prop == 1 ? ":" + tool_rest(s, "") : ":" + tool_schema(s, f.tool).shortest + "}";
        return ":" + (f.value_schema ? f.value_schema->shortest : std::string("0")) + required_rest(s, f.next_prop);
    }
    // A value is being read or was read.
    if (call) return f.next_prop == 1 ? ",\"arguments\":" + tool_schema(s, f.tool).shortest + "}" : "}";
    return required_rest(s, f.next_prop);
}

// The shortest option that extends `typed`, less `typed` ("" when typed is an option).
std::string option_rest(const std::vector<std::string>& options, const std::string& typed) {
    const std::string* best = nullptr;
    for (const auto& o : options)
        if (o.size() >= typed.size() && o.compare(0, typed.size(), typed) == 0 && (!best || o.size() < best->size()))
            best = &o;
    return best ? best->substr(typed.size()) : std::string();
}

}  // namespace

json_recognizer::json_recognizer(json_schema_ptr root) : root_(std::move(root)) {
    reach_ = 32 + 2 * root_->widest;
    auto f = std::make_shared<frame>();
    f->t = ftype::value;
    f->s = root_.get();
    stack_.push_back(f);
}

bool json_recognizer::complete() const {
    if (done_) return true;
    // A bare number or literal at the top ends with the document.
    if (stack_.size() == 1) {
        const frame& f = *stack_.back();
        if (f.t == ftype::number) return number_done(f.state);
        if (f.t == ftype::literal) return any_equals(f.options, f.typed);
    }
    return false;
}

std::string json_recognizer::closing() const {
    if (complete()) return "";
    std::string out;
    for (size_t i = stack_.size(); i-- > 0;) {
        const frame& f = *stack_[i];
        const frame* parent = i > 0 ? stack_[i - 1].get() : nullptr;
        // A tool's name picks its arguments' schema, so the name and the call's rest are chosen together.
        const bool tool_name = parent && parent->t == ftype::object && parent->s->k == kind::tool_call &&
                               parent->state == 2 && parent->next_prop == 1;
        switch (f.t) {
            case ftype::value:
                if (tool_name) out += tool_rest(*parent->s, ""), --i;
                else out += f.s->shortest;
                break;
            case ftype::literal:
                if (tool_name) out += tool_rest(*parent->s, f.typed), --i;
                else out += option_rest(f.options, f.typed);
                break;
            case ftype::number:
                if (!number_done(f.state)) out += '0';
                break;
            case ftype::string: {
                std::string pending;  // an escape or a UTF-8 character in progress
                if (f.esc == 1) {
                    pending = f.want_low ? "udc00" : "n";
                } else if (f.esc >= 2) {
                    const int k = f.esc - 2;  // digits read
                    if (f.want_low) {
                        pending = std::string("dc00").substr(static_cast<size_t>(k));
                    } else {
                        pending.assign(static_cast<size_t>(4 - k), '0');
                        if (k >= 2 && high_surrogate_byte(f.hex >> (4 * (k - 2)))) pending += "\\udc00";
                    }
                } else if (f.want_low) {
                    pending = "\\udc00";
                } else if (f.utf8_need > 0) {
                    pending += static_cast<char>(f.utf8_lo);
                    pending.append(static_cast<size_t>(f.utf8_need - 1), static_cast<char>(0x80));
                }
                if (f.key) out += key_rest(f, *parent, pending), --i;  // a key picks its value's schema
                else out += pending + '"';
                break;
            }
            case ftype::object:
                out += object_rest(f);
                break;
            case ftype::array: {
                // Up to minItems: each missing item's shortest text (a value begun counts as one).
                size_t have = f.items;
                for (; have < f.s->min_items; ++have) out += (have ? "," : "") + f.s->items->shortest;
                out += ']';
                break;
            }
        }
    }
    return out;
}

bool json_recognizer::feed(std::string_view s) {
    for (char c : s)
        if (!feed(c)) return false;
    return true;
}

bool json_recognizer::feed(char c) {
    if (done_) return false;
    // Frames are shared between copies; the top one is copied before it changes.
    auto top = [&]() -> frame& {
        if (stack_.back().use_count() > 1) stack_.back() = std::make_shared<frame>(*stack_.back());
        return *stack_.back();
    };
    // A finished child: the parent moves on.
    auto child_done = [&](std::string child_text) {  // by value: it may name the frame being popped
        stack_.pop_back();
        if (stack_.empty()) {
            done_ = true;
            return;
        }
        frame& p = top();
        if (p.t == ftype::object) {
            if (p.state == 0 || p.state == 4) {  // a key was read
                p.state = 1;
            } else {  // a value was read
                if (p.s->k == kind::tool_call && p.next_prop == 1) p.tool = child_text.substr(1, child_text.size() - 2);
                p.state = 3;
            }
        } else if (p.t == ftype::array) {
            p.state = 1;
        }
    };
    // Start a value of schema s with its first character c (whitespace already skipped).
    auto start_value = [&](const json_schema* s, char ch) -> bool {
        if (s->k == kind::one_of) {  // the one branch this first byte can begin
            const json_schema* pick = nullptr;
            for (const auto& b : s->branches)
                if (may_start(*b, static_cast<unsigned char>(ch))) pick = b.get();
            if (!pick) return false;
            s = pick;
        }
        auto f = std::make_shared<frame>();
        f->s = s;
        const kind k = s->k;
        const bool any = k == kind::any;
        if (ch == '{' && (any || k == kind::object || k == kind::tool_call)) {
            f->t = ftype::object;
            f->s = any ? json_schema_any_object().get() : s;
        } else if (ch == '[' && (any || k == kind::array)) {
            f->t = ftype::array;
        } else if (ch == '"' && (any || k == kind::string)) {
            f->t = ftype::string;
        } else if ((ch == '-' || is_digit(ch)) && (any || k == kind::number || k == kind::integer)) {
            f->t = ftype::number;
            f->integer = k == kind::integer;
            f->state = n_sign;
            if (ch != '-' && !number_step(*f, ch)) return false;
            if (ch == '-') f->typed.assign(1, '-');  // (not = "-": gcc 12 reads that as an overlapping copy)
        } else if (any || k == kind::literals) {
            f->t = ftype::literal;
            f->options = any ? std::vector<std::string>{"true", "false", "null"} : s->literals;
            f->typed = std::string(1, ch);
            if (!any_starts_with(f->options, f->typed)) return false;
        } else {
            return false;
        }
        stack_.back() = f;  // replaces the value frame
        if (f->t == ftype::literal && literal_closed(*f)) child_done(f->typed);
        return true;
    };

    const frame& cur = *stack_.back();
    const bool ws = is_ws(c);
    // Whitespace goes where structure is expected, a few bytes at a time.
    const bool structural = cur.t == ftype::value || cur.t == ftype::object || cur.t == ftype::array;
    if (ws && structural) {
        if (cur.t == ftype::object && cur.state == 2) return false;  // unreachable: value frames hold this state
        if (++ws_run_ > k_max_ws_run) {
            --ws_run_;
            return false;
        }
        return true;
    }
    switch (cur.t) {
        case ftype::value: {
            if (!start_value(cur.s, c)) return false;
            break;
        }
        case ftype::object: {
            frame& f = top();
            if (f.state == 0 || f.state == 4) {
                if (c == '}' && f.state == 0 && may_close(f)) {
                    child_done("");
                    break;
                }
                if (c != '"') return false;
                if (!open_object(f) && key_options(f).empty()) return false;
                auto k = std::make_shared<frame>();
                k->t = ftype::string;
                k->key = true;
                if (!open_object(f)) k->options = key_options(f);
                stack_.push_back(k);
            } else if (f.state == 1) {
                if (c != ':') return false;
                f.state = 2;
                auto v = std::make_shared<frame>();
                v->t = ftype::value;
                v->s = f.value_schema ? f.value_schema : any_value().get();
                stack_.push_back(v);
            } else if (f.state == 3) {
                if (c == ',') {
                    if (!open_object(f) && key_options(f).empty()) return false;
                    f.state = 4;
                } else if (c == '}' && may_close(f)) {
                    child_done("");
                } else {
                    return false;
                }
            } else {
                return false;
            }
            break;
        }
        case ftype::array: {
            frame& f = top();
            if (c == ']' && (f.state == 0 || f.state == 1)) {
                if (f.items < f.s->min_items) return false;
                child_done("");
                break;
            }
            if (f.state == 1) {
                if (c != ',' || f.items >= f.s->max_items) return false;
                f.state = 2;
                ++f.items;
                auto v = std::make_shared<frame>();
                v->t = ftype::value;
                v->s = f.s->items ? f.s->items.get() : any_value().get();
                stack_.push_back(v);
                break;
            }
            // state 0: the first value starts here.
            if (f.s->max_items == 0) return false;
            f.state = 2;
            ++f.items;
            auto v = std::make_shared<frame>();
            v->t = ftype::value;
            v->s = f.s->items ? f.s->items.get() : any_value().get();
            stack_.push_back(v);
            if (!start_value(v->s, c)) {
                stack_.pop_back();
                return false;
            }
            break;
        }
        case ftype::string: {
            frame& f = top();
            if (f.esc == 1) {
                if (f.key || std::string_view("\"\\/bfnrtu").find(c) == std::string_view::npos) return false;
                if (f.want_low && c != 'u') return false;
                f.esc = c == 'u' ? 2 : 0;
                f.hex = 0;
            } else if (f.esc >= 2) {
                // \u escapes name no lone surrogate (readers refuse them): a high one (D800-DBFF) is followed
                // by a low one (DC00-DFFF), checked digit by digit so no prefix is a dead end.
                if (!is_hex(c)) return false;
                f.hex = f.hex * 16 + hex_value(c);
                if (f.esc == 2 && f.want_low && f.hex != 0xD) return false;
                if (f.esc == 3 && (f.hex >= 0xDC && f.hex <= 0xDF) != f.want_low) return false;
                if (f.esc == 5) f.want_low = !f.want_low && high_surrogate_byte(f.hex >> 8);
                f.esc = f.esc == 5 ? 0 : f.esc + 1;
            } else if (f.want_low && c != '\\') {
                return false;
            } else if (f.utf8_need > 0) {
                // Strings stay valid UTF-8: no stray, overlong or surrogate sequences.
                const auto b = static_cast<unsigned char>(c);
                if (b < f.utf8_lo || b > f.utf8_hi) return false;
                if (!f.options.empty() && !any_starts_with(f.options, f.typed + c)) return false;
                --f.utf8_need;
                f.utf8_lo = 0x80;
                f.utf8_hi = 0xBF;
            } else if (static_cast<unsigned char>(c) >= 0x80) {
                const auto b = static_cast<unsigned char>(c);
                if (b >= 0xC2 && b <= 0xDF) f.utf8_need = 1;
                else if (b >= 0xE0 && b <= 0xEF) f.utf8_need = 2;
                else if (b >= 0xF0 && b <= 0xF4) f.utf8_need = 3;
                else return false;
                if (b == 0xE0) f.utf8_lo = 0xA0;
                if (b == 0xED) f.utf8_hi = 0x9F;
                if (b == 0xF0) f.utf8_lo = 0x90;
                if (b == 0xF4) f.utf8_hi = 0x8F;
                if (!f.options.empty() && !any_starts_with(f.options, f.typed + c)) return false;
            } else if (c == '\\') {
                if (f.key) return false;
                f.esc = 1;
            } else if (c == '"') {
                if (!f.options.empty() && !any_equals(f.options, f.typed)) return false;
                const bool key = f.key;
                const std::string typed = f.typed;
                // A key picks the value's schema.
                if (key) {
                    stack_.pop_back();
                    frame& o = top();
                    if (o.s->k == kind::tool_call) {
                        o.value_schema = nullptr;
                        if (typed == "name") {
                            o.value_schema = o.s->names.get();
                        } else {
                            for (const auto& [n, sch] : o.s->properties)
                                if (n == o.tool) o.value_schema = sch.get();
                        }
                        o.next_prop = typed == "name" ? 1 : 2;
                    } else if (!o.s->properties.empty()) {
                        for (size_t i = o.next_prop; i < o.s->properties.size(); ++i)
                            if (o.s->properties[i].first == typed) {
                                o.value_schema = o.s->properties[i].second.get();
                                o.next_prop = i + 1;
                                break;
                            }
                    } else {
                        o.value_schema = nullptr;
                    }
                    o.state = 1;
                    break;
                }
                std::string quoted(1, '"');
                quoted += typed;
                quoted += '"';
                child_done(quoted);
                break;
            } else if (static_cast<unsigned char>(c) < 0x20) {
                return false;
            } else {
                if (!f.options.empty() && !any_starts_with(f.options, f.typed + c)) return false;
            }
            f.typed += c;
            break;
        }
        case ftype::number: {
            frame& f = top();
            if (number_step(f, c)) break;
            if (!number_done(f.state)) return false;
            // The number ended before c: the parent takes c.
            const std::string text = f.typed;
            child_done(text);
            if (done_) {
                done_ = true;
                return false;
            }
            ws_run_ = 0;
            return feed(c);
        }
        case ftype::literal: {
            frame& f = top();
            if (any_starts_with(f.options, f.typed + c)) {
                f.typed += c;
                if (literal_closed(f)) child_done(f.typed);
                break;
            }
            if (!any_equals(f.options, f.typed)) return false;
            child_done(f.typed);
            ws_run_ = 0;
            return feed(c);
        }
    }
    ws_run_ = 0;
    return true;
}

// ---- the trie ----

token_trie::token_trie(const std::vector<std::string>& pieces) {
    nodes_.emplace_back();
    for (size_t id = 0; id < pieces.size(); ++id) {
        if (pieces[id].empty()) continue;
        int32_t n = 0;
        for (unsigned char c : pieces[id]) {
            auto it = nodes_[static_cast<size_t>(n)].next.find(c);
            if (it == nodes_[static_cast<size_t>(n)].next.end()) {
                nodes_.emplace_back();
                it = nodes_[static_cast<size_t>(n)].next.emplace(c, static_cast<int32_t>(nodes_.size() - 1)).first;
            }
            n = it->second;
        }
        nodes_[static_cast<size_t>(n)].ids.push_back(static_cast<int32_t>(id));
    }
}

size_t token_trie::mask(const json_recognizer& state, std::vector<bool>& allowed, size_t close_budget) const {
    std::fill(allowed.begin(), allowed.end(), false);
    size_t refused = 0;
    walk(0, state, allowed, close_budget, refused);
    return refused;
}

void token_trie::walk(int32_t n, const json_recognizer& state, std::vector<bool>& allowed, size_t close_budget,
                      size_t& refused) const {
    for (const auto& [c, child] : nodes_[static_cast<size_t>(n)].next) {
        json_recognizer next = state;
        if (!next.feed(static_cast<char>(c))) continue;
        const auto& ids = nodes_[static_cast<size_t>(child)].ids;
        if (!ids.empty()) {
            if (close_budget == SIZE_MAX || next.closing().size() <= close_budget) {
                for (int32_t id : ids) allowed[static_cast<size_t>(id)] = true;
            } else {
                refused += ids.size();
            }
        }
        walk(child, next, allowed, close_budget, refused);
    }
}

}  // namespace mm::text
