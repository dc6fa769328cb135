// json_constraint: the recogniser accepts exactly the documents a schema allows, and generation through the
// token mask (random choices among allowed tokens of a real vocabulary) always ends in a document that
// parses and fits the schema.
#include <gtest/gtest.h>

#include <random>

#include <nlohmann/json.hpp>

#include "common/gguf.h"
#include "text/json_constraint.h"
#include "text/tokenizer.h"

namespace mm::text {
namespace {

using json = nlohmann::json;

json_schema_ptr schema(const char* text) {
    auto s = json_schema_parse(text);
    EXPECT_TRUE(s) << s.error().to_string();
    return *s;
}

bool accepts(const json_schema_ptr& s, std::string_view doc) {
    json_recognizer r(s);
    return r.feed(doc) && r.complete();
}

const char* k_person = R"({"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},
    "tags":{"type":"array","items":{"type":"string"}},"role":{"enum":["admin","user"]},"score":{"type":"number"}},
    "required":["name","age"]})";

TEST(json_constraint, the_recogniser_accepts_exactly_what_the_schema_allows) {
    const auto person = schema(k_person);
    struct row { const char* doc; bool ok; };
    const row rows[] = {
        {R"({"name":"Al","age":3})", true},
        {R"({ "name" : "A\"l\u00e9" , "age" : -12, "tags": ["x", ""], "role": "user", "score": 1.5e-3 })", true},
        {R"({"name":"Al","age":3,"score":0})", true},
        {R"({"name":"\ud83d\uDE00","age":3})", true},   // a surrogate pair
        {R"({"name":"\ud83d","age":3})", false},         // a lone high surrogate (readers refuse it)
        {R"({"name":"\ude00x","age":3})", false},        // a lone low one
        {R"({"name":"\ud83d\u0041","age":3})", false},  // a high one followed by no low one
        {R"({"age":3,"name":"Al"})", false},             // declared order
        {R"({"name":"Al"})", false},                     // age is required
        {R"({"name":"Al","age":3.5})", false},           // integer
        {R"({"name":"Al","age":03})", false},            // JSON numbers have no leading zeros
        {R"({"name":"Al","age":3,"role":"root"})", false},
        {R"({"name":"Al","age":3,"extra":1})", false},   // no undeclared properties
        {R"({"name":"Al","age":3} x)", false},
        {R"({"name":"Al","age":3)", false},              // not complete
        {R"(["name"])", false},
    };
    for (const auto& r : rows) EXPECT_EQ(accepts(person, r.doc), r.ok) << r.doc;

    const auto any = json_schema_any_object();
    EXPECT_TRUE(accepts(any, R"({"a":[1,2,{"b":null}],"c":true,"d":"x","e":-0.5E+2})"));
    EXPECT_FALSE(accepts(any, R"({"a":tru})"));
    EXPECT_FALSE(accepts(any, R"([1])")) << "json_object mode is an object";
    EXPECT_FALSE(accepts(any, "{\"a\":\"\x01\"}")) << "control characters must be escaped";
}

TEST(json_constraint, tool_calls_take_the_named_tools_arguments) {
    const auto call = json_schema_tool_call({{"get_weather", schema(R"({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]})")},
                                             {"add", schema(R"({"type":"object","properties":{"a":{"type":"number"},"b":{"type":"number"}},"required":["a","b"]})")}});
    EXPECT_TRUE(accepts(call, R"({"name":"get_weather","arguments":{"city":"Paris"}})"));
    EXPECT_TRUE(accepts(call, R"({"name": "add", "arguments": {"a": 1, "b": 2.5}})"));
    EXPECT_FALSE(accepts(call, R"({"name":"add","arguments":{"city":"Paris"}})"));
    EXPECT_FALSE(accepts(call, R"({"name":"delete_all","arguments":{}})"));
    EXPECT_FALSE(accepts(call, R"({"arguments":{},"name":"add"})"));
}

// minItems / maxItems, and several tool calls at once as an array of at least one.
const char* k_pair = R"({"type":"array","items":{"type":"integer"},"minItems":2,"maxItems":3})";

TEST(json_constraint, arrays_keep_their_item_counts_and_calls_may_come_several_at_once) {
    const auto pair = schema(k_pair);
    struct row { const char* doc; bool ok; };
    const row rows[] = {{"[1,2]", true}, {"[1, 2, 3]", true}, {"[]", false}, {"[1]", false}, {"[1,2,3,4]", false}};
    for (const auto& r : rows) EXPECT_EQ(accepts(pair, r.doc), r.ok) << r.doc;
    EXPECT_TRUE(accepts(schema(R"({"type":"array","maxItems":0})"), "[]"));
    EXPECT_TRUE(accepts(schema(R"({"type":"array","maxItems":18446744073709551615})"), "[1]")) << "any size, spelled out";
    EXPECT_FALSE(accepts(schema(R"({"type":"array","maxItems":0})"), "[1]"));
    EXPECT_EQ(json_recognizer(pair).closing(), "[0,0]");
    struct prefix { const char* text; const char* rest; };
    for (const prefix k : {prefix{"[", "0,0]"}, prefix{"[5", ",0]"}, prefix{"[5,", "0]"}, prefix{"[5,6", "]"}, prefix{"[5,6,7", "]"}}) {
        json_recognizer r(pair);
        ASSERT_TRUE(r.feed(k.text)) << k.text;
        EXPECT_EQ(r.closing(), k.rest) << k.text;
    }

    const auto calls = json_schema_tool_calls({{"add", schema(R"({"type":"object","properties":{"a":{"type":"number"}},"required":["a"]})")},
                                               {"noop", json_schema_any_object()}});
    EXPECT_TRUE(accepts(calls, R"({"name":"add","arguments":{"a":1}})")) << "one call, as before";
    EXPECT_TRUE(accepts(calls, R"([{"name":"add","arguments":{"a":1}}, {"name":"noop","arguments":{}}])"));
    EXPECT_FALSE(accepts(calls, "[]")) << "a required call is at least one";
    EXPECT_FALSE(accepts(calls, R"([{"name":"add","arguments":{}}])"));
    EXPECT_FALSE(accepts(calls, R"([{"name":"rm","arguments":{}}])"));
    EXPECT_EQ(json_recognizer(calls).closing(), R"({"name":"noop","arguments":{}})");
    json_recognizer r(calls);
    ASSERT_TRUE(r.feed("["));
    EXPECT_EQ(r.closing(), R"({"name":"noop","arguments":{}}])");
}

// What pydantic and zod write for optional and shared types: anyOf with null, type lists, $defs and $ref.
const char* k_order = R"({"$defs":{"Item":{"type":"object","properties":{"sku":{"type":"string"},
    "qty":{"type":"integer"}},"required":["sku","qty"]}},
    "type":"object","properties":{
      "note":{"anyOf":[{"type":"string"},{"type":"null"}]},
      "items":{"type":"array","items":{"$ref":"#/$defs/Item"}},
      "discount":{"type":["number","null"]},
      "gift":{"type":"boolean","nullable":true},
      "status":{"oneOf":[{"enum":["open","closed"]},{"type":"integer"},{"type":"object","properties":{"code":{"type":"integer"}}}]}},
    "required":["note","items","discount"]})";

TEST(json_constraint, unions_type_lists_and_refs_take_one_branch_by_the_first_byte) {
    const auto order = schema(k_order);
    struct row { const char* doc; bool ok; };
    const row rows[] = {
        {R"({"note":null,"items":[],"discount":null})", true},
        {R"({"note":"ring twice","items":[{"sku":"a1","qty":2}],"discount":0.5,"gift":true,"status":"open"})", true},
        {R"({"note":null,"items":[],"discount":1,"gift":null,"status":3})", true},
        {R"({"note":null,"items":[],"discount":1,"status":{"code":7}})", true},
        {R"({"note":3,"items":[],"discount":null})", false},               // neither string nor null
        {R"({"note":null,"items":[{"sku":"a1"}],"discount":null})", false},  // the $ref's required qty
        {R"({"note":null,"items":[{"sku":1,"qty":1}],"discount":null})", false},
        {R"({"note":null,"items":[],"discount":"0"})", false},
        {R"({"note":null,"items":[],"discount":null,"gift":"yes"})", false},
        {R"({"note":null,"items":[],"discount":null,"status":"pending"})", false},  // not in the enum
        {R"({"note":null,"items":[],"discount":null,"status":1.5})", false},        // integer branch
        {R"({"items":[],"discount":null})", false},                                 // note is required
    };
    for (const auto& r : rows) EXPECT_EQ(accepts(order, r.doc), r.ok) << r.doc;
    EXPECT_TRUE(accepts(schema(R"({"$ref":"#/$defs/A","$defs":{"A":{"type":"integer"}}})"), "42"));
    EXPECT_TRUE(accepts(schema(R"({"anyOf":[{"anyOf":[{"type":"null"}]},{"type":"string"}]})"), R"("x")"))
        << "nested alternatives are flattened";
    EXPECT_TRUE(accepts(schema(R"({"type":["string","null"],"nullable":true})"), "null")) << "null said twice is one branch";
    EXPECT_TRUE(accepts(schema(R"({"type":["integer"],"nullable":true})"), "null"));
}

// allOf as pydantic writes it (one $ref wrapped to carry a default or description) and as objects that
// extend each other (their properties and required lists merge); the node's own keywords count too.
TEST(json_constraint, all_of_is_one_schema_or_merged_objects) {
    const auto wrapped = schema(R"({"$defs":{"Status":{"enum":["open","closed"]}},"type":"object",
        "properties":{"status":{"allOf":[{"$ref":"#/$defs/Status"}],"default":"open","description":"state"}},"required":["status"]})");
    EXPECT_TRUE(accepts(wrapped, R"({"status":"closed"})"));
    EXPECT_FALSE(accepts(wrapped, R"({"status":"gone"})"));
    const auto merged = schema(R"({"$defs":{"Base":{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"]}},
        "allOf":[{"$ref":"#/$defs/Base"},{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}]})");
    EXPECT_TRUE(accepts(merged, R"({"id":1,"name":"x"})"));
    EXPECT_FALSE(accepts(merged, R"({"id":1})")) << "both members' required fields";
    EXPECT_FALSE(accepts(merged, R"({"name":"x"})"));
    EXPECT_EQ(json_recognizer(merged).closing(), R"({"id":0,"name":""})");
    const auto own = schema(R"({"type":"object","properties":{"a":{"type":"integer"}},"required":["a"],
        "allOf":[{"properties":{"b":{"type":"boolean"}},"required":["b"]}]})");
    EXPECT_TRUE(accepts(own, R"({"a":1,"b":true})"));
    EXPECT_FALSE(accepts(own, R"({"b":true})")) << "the node's own required field still holds";
    EXPECT_TRUE(accepts(schema(R"({"allOf":[true,{"type":"integer"}]})"), "7"));
}

TEST(json_constraint, unsupported_schemas_are_named) {
    struct row { const char* schema; const char* says; };
    const row rows[] = {
        {"{nope", "JSON"},
        {R"({"type":"quaternion"})", "quaternion"},
        {R"({"anyOf":[{"type":"string"},{"enum":["a","b"]}]})", "same JSON type"},  // both begin with '"'
        {R"({"type":["integer","number"]})", "same JSON type"},
        {R"({"anyOf":[{},{"type":"null"}]})", "same JSON type"},  // anything begins like null
        {R"({"anyOf":[]})", "at least one"},
        {R"({"anyOf":{"type":"string"}})", "expected an array"},
        {R"({"allOf":[{"type":"string"},{"type":"string","enum":["a"]}]})", "only one constraining schema"},
        {R"({"allOf":[{"properties":{"a":{"type":"string"}}},{"properties":{"a":{"type":"integer"}}}]})", "two different schemas"},
        {R"({"allOf":[]})", "non-empty array"},
        {R"({"allOf":[{"properties":{"a":{}}},{"required":["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q",
            "r","s","t","u","v","w","x","y","z","A","B","C","D","E","F","G","H","I","J","K","L","M","N","O","P","Q","R",
            "S","T","U","V","W","X","Y","Z","0","1","2","3","4","5","6","7","8","9","_","-","+"]}]})", "too many"},
        {R"({"$defs":{"L":{"allOf":[{"$ref":"#/$defs/L"}]}},"$ref":"#/$defs/L"})", "recurses"},
        {R"({"type":"array","minItems":17})", "at most 16"},
        {R"({"type":"array","minItems":-1})", "non-negative"},
        {R"({"type":"array","maxItems":"3"})", "non-negative"},
        {R"({"type":"array","minItems":3,"maxItems":2})", "more than maxItems"},
        // 16 copies of 16 copies of ...: a few hundred bytes whose smallest document would be gigabytes.
        {R"({"type":"array","minItems":16,"items":{"type":"array","minItems":16,"items":{"type":"array","minItems":16,
            "items":{"type":"array","minItems":16,"items":{"type":"array","minItems":16,"items":{"type":"integer"}}}}}})",
         "too long"},
        {R"({"type":"object","properties":{"a\fb":{"type":"string"}}})", "control characters"},  // found by the fuzzer
        {R"({"$ref":"#/$defs/Missing"})", "names nothing"},
        {R"({"$ref":"https://example.com/s.json"})", "inside the schema"},
        {R"({"$defs":{"N":{"type":"object","properties":{"next":{"$ref":"#/$defs/N"}}}},"$ref":"#/$defs/N"})",
         "recurses"},
    };
    for (const auto& r : rows) {
        auto s = json_schema_parse(r.schema);
        ASSERT_FALSE(s) << r.schema;
        EXPECT_NE(s.error().message().find(r.says), std::string::npos) << r.schema << ": " << s.error().message();
    }
    // Appended, not "d" + to_string(i): gcc 12 warns (-Wrestrict) on that operator+ inlined here.
    auto def = [](int i) { return std::string("d").append(std::to_string(i)); };
    // Definitions that each use the next twice: 2^13 nodes from a schema of under a kilobyte.
    json doubling = {{"$ref", "#/$defs/d0"}};
    for (int i = 0; i < 12; ++i) {
        const json next = {{"$ref", "#/$defs/" + def(i + 1)}};
        doubling["$defs"][def(i)] = {{"type", "object"}, {"properties", {{"a", next}, {"b", next}}}};
    }
    doubling["$defs"]["d12"] = {{"type", "string"}};
    auto s = json_schema_parse(doubling.dump());
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().message().find("too many nodes"), std::string::npos) << s.error().message();
    // The same through allOf, whose members are merged before parsing: 2^30 visits unless bounded.
    json merging = {{"$ref", "#/$defs/d0"}};
    for (int i = 0; i < 30; ++i) {
        const json next = {{"$ref", "#/$defs/" + def(i + 1)}};
        merging["$defs"][def(i)] = {{"allOf", {next, next}}};
    }
    merging["$defs"]["d30"] = {{"type", "object"}};
    auto m = json_schema_parse(merging.dump());
    ASSERT_FALSE(m);
    EXPECT_NE(m.error().message().find("too many allOf members"), std::string::npos) << m.error().message();
}

// Byte-level random walks: at every step some byte continues the document (no dead ends), the recogniser
// never throws, and every finished document parses with an independent JSON reader.
TEST(json_constraint, byte_walks_never_dead_end_and_finish_valid) {
    const auto call = json_schema_tool_calls({{"get_weather", schema(k_person)}, {"noop", json_schema_any_object()}});
    std::mt19937 rng(3);
    int finished = 0;
    for (int run = 0; run < 300; ++run) {
        const json_schema_ptr pick[] = {call, schema(k_person), schema(k_order), json_schema_any_object(), schema(k_pair)};
        json_recognizer r(pick[run % 5]);
        std::string out;
        for (int i = 0; i < 300 && !r.complete(); ++i) {
            std::vector<char> ok;
            for (int c = 1; c < 256; ++c) {
                json_recognizer x = r;
                if (x.feed(static_cast<char>(c))) ok.push_back(static_cast<char>(c));
            }
            ASSERT_FALSE(ok.empty()) << "dead end after: " << out;
            // Lean towards closing characters so walks finish.
            char c = ok[rng() % ok.size()];
            for (char k : ok)
                if ((k == '}' || k == '"' || k == ']') && rng() % 2 == 0) c = k;
            ASSERT_TRUE(r.feed(c));
            out += c;
        }
        if (!r.complete()) continue;
        ++finished;
        EXPECT_FALSE(json::parse(out, nullptr, false).is_discarded()) << out;
    }
    EXPECT_GE(finished, 100);
}

// closing(): from the start, the shortest document of the schema; from every prefix of random byte walks, a
// way out that each of its bytes shortens by exactly one and that ends in a document an independent reader
// parses.
TEST(json_constraint, closing_is_a_way_out_from_every_prefix) {
    const auto person = schema(k_person);
    const auto call = json_schema_tool_call({{"get_weather", person}, {"noop", json_schema_any_object()}});
    const auto odd = schema(R"({"type":"object","properties":{"n":{"enum":[1,10,"x"]},"zürich":{"type":"array",
        "items":{"type":"number"}},"b":{"type":"boolean"},"deep":{"type":"object","properties":{"s":{"type":"string"}},
        "required":["s"]}},"required":["zürich","deep"]})");
    EXPECT_EQ(json_recognizer(person).closing(), R"({"name":"","age":0})");
    EXPECT_EQ(json_recognizer(json_schema_any_object()).closing(), "{}");
    EXPECT_EQ(json_recognizer(call).closing(), R"({"name":"noop","arguments":{}})");
    EXPECT_EQ(json_recognizer(odd).closing(), "{\"z\u00fcrich\":[],\"deep\":{\"s\":\"\"}}");
    const auto order = schema(k_order);
    EXPECT_EQ(json_recognizer(order).closing(), R"({"note":"","items":[],"discount":0})") << "each union's shortest branch";
    struct prefix { json_schema_ptr s; const char* text; const char* rest; };
    const prefix known[] = {
        {person, R"({"name":"Al","age":-)", "0}"},
        {person, R"({"name":"A\u00)", R"(00","age":0})"},
        {person, R"({"name":"A\uD8)", R"(00\udc00","age":0})"},
        {person, R"({"name":"A\uD83D\)", R"(udc00","age":0})"},
        {person, R"({"name":"A\uD83D\uD)", R"(c00","age":0})"},
        {person, R"({"name":"Al","age":3,"tags":["x",)", R"(""]})"},
        {person, R"({"name":"Al","age":3,"ro)", R"(le":"user"})"},  // the shorter option
        {person, R"({"name":"Al","age":3,"score":1.)", "0}"},
        {call, R"({"name":"get)", R"(_weather","arguments":{"name":"","age":0}})"},
        {call, R"({"name":"get_weather","arguments":{"name":"x")", R"(,"age":0}})"},
        {odd, R"({"n":1)", ",\"z\u00fcrich\":[],\"deep\":{\"s\":\"\"}}"},
        {odd, "{\"z\xc3", "\xbcrich\":[],\"deep\":{\"s\":\"\"}}"},
    };
    for (const auto& k : known) {
        json_recognizer r(k.s);
        ASSERT_TRUE(r.feed(k.text)) << k.text;
        EXPECT_EQ(r.closing(), k.rest) << k.text;
    }
    std::mt19937 rng(11);
    const auto calls = json_schema_tool_calls({{"get_weather", person}, {"noop", json_schema_any_object()}});
    const json_schema_ptr schemas[] = {person, call, odd, json_schema_any_object(), order, calls, schema(k_pair)};
    int prefixes = 0;
    for (int run = 0; run < 210; ++run) {
        json_recognizer r(schemas[run % 7]);
        std::string out;
        for (int i = 0; i < 80 && !r.complete(); ++i) {
            // Walk out from here along closing(), checking each step.
            json_recognizer w = r;
            std::string rest = w.closing();
            std::string doc = out;
            while (!rest.empty()) {
                ASSERT_TRUE(w.feed(rest[0])) << out << " | " << rest;
                doc += rest[0];
                rest.erase(0, 1);
                ASSERT_EQ(w.closing(), rest) << doc;
            }
            ASSERT_TRUE(w.complete()) << doc;
            EXPECT_FALSE(json::parse(doc, nullptr, false).is_discarded()) << doc;
            ++prefixes;
            std::vector<char> ok;
            for (int c = 1; c < 256; ++c) {
                json_recognizer x = r;
                if (x.feed(static_cast<char>(c))) ok.push_back(static_cast<char>(c));
            }
            ASSERT_FALSE(ok.empty()) << out;
            const char c = ok[rng() % ok.size()];
            ASSERT_TRUE(r.feed(c));
            out += c;
        }
    }
    EXPECT_GE(prefixes, 5000);
}

// With a token budget the mask keeps the document closable: random walks over stories260K's vocabulary
// (no bias towards closing) given exactly N tokens, N at least the schema's shortest document, always end
// in a complete document within N tokens.
TEST(json_constraint, a_token_budget_always_ends_in_a_complete_document) {
    auto f = gguf_open(std::filesystem::path(MM_SHARED_DIR) / "models" / "text" / "stories260K-f32.gguf");
    ASSERT_TRUE(f);
    auto tok = tokenizer::from_gguf(*f);
    ASSERT_TRUE(tok);
    std::vector<std::string> pieces;
    for (int32_t i = 0; i < tok->n_vocab(); ++i) pieces.push_back(tok->piece(i));
    const token_trie trie(pieces);
    const auto person = schema(k_person);
    const auto call = json_schema_tool_call({{"get_weather", person}, {"noop", json_schema_any_object()}});
    std::mt19937 rng(5);
    std::vector<bool> allowed(pieces.size());
    for (int run = 0; run < 60; ++run) {
        const json_schema_ptr s = run % 3 == 0 ? person : run % 3 == 1 ? call : json_schema_any_object();
        json_recognizer r(s);
        const size_t n = r.closing().size() + rng() % 60;
        std::string out;
        size_t used = 0;
        for (; used < n && !r.complete(); ++used) {
            const size_t left = n - used;
            const size_t need = r.closing().size();
            if (left <= need + r.closing_reach()) trie.mask(r, allowed, std::max(left, need) - 1);
            else trie.mask(r, allowed);
            std::vector<int32_t> ids;
            for (size_t i = 0; i < allowed.size(); ++i)
                if (allowed[i]) ids.push_back(static_cast<int32_t>(i));
            ASSERT_FALSE(ids.empty()) << out;
            const int32_t pick = ids[std::uniform_int_distribution<size_t>(0, ids.size() - 1)(rng)];
            ASSERT_TRUE(r.feed(pieces[static_cast<size_t>(pick)]));
            out += pieces[static_cast<size_t>(pick)];
        }
        ASSERT_TRUE(r.complete()) << n << " tokens: " << out;
        EXPECT_FALSE(json::parse(out, nullptr, false).is_discarded()) << out;
    }
}

// Random walks through the mask over stories260K's vocabulary: every finished output parses and fits.
TEST(json_constraint, masked_generation_always_ends_in_a_valid_document) {
    auto f = gguf_open(std::filesystem::path(MM_SHARED_DIR) / "models" / "text" / "stories260K-f32.gguf");
    ASSERT_TRUE(f);
    auto tok = tokenizer::from_gguf(*f);
    ASSERT_TRUE(tok);
    std::vector<std::string> pieces;
    for (int32_t i = 0; i < tok->n_vocab(); ++i) pieces.push_back(tok->piece(i));
    const token_trie trie(pieces);
    const auto person = schema(k_person);
    const auto order = schema(k_order);
    std::mt19937 rng(7);
    std::vector<bool> allowed(pieces.size());
    int finished = 0;
    for (int run = 0; run < 240; ++run) {
        json_recognizer r(run % 3 == 1 ? person : run % 3 == 2 ? order : json_schema_any_object());
        std::string out;
        for (int step = 0; step < 400 && !r.complete(); ++step) {
            trie.mask(r, allowed);
            std::vector<int32_t> ids;
            for (size_t i = 0; i < allowed.size(); ++i)
                if (allowed[i]) ids.push_back(static_cast<int32_t>(i));
            ASSERT_FALSE(ids.empty()) << "a dead end after: " << out;
            // Prefer closing tokens sometimes so walks finish.
            int32_t pick = ids[std::uniform_int_distribution<size_t>(0, ids.size() - 1)(rng)];
            for (int32_t id : ids)
                if ((pieces[static_cast<size_t>(id)] == "}" || pieces[static_cast<size_t>(id)] == "\"") && rng() % 3 == 0) pick = id;
            ASSERT_TRUE(r.feed(pieces[static_cast<size_t>(pick)])) << out << " + " << pieces[static_cast<size_t>(pick)];
            out += pieces[static_cast<size_t>(pick)];
        }
        if (!r.complete()) continue;
        ++finished;
        const json doc = json::parse(out, nullptr, false);
        ASSERT_FALSE(doc.is_discarded()) << out;
        ASSERT_TRUE(doc.is_object()) << out;
        if (run % 3 == 1) {
            EXPECT_TRUE(doc["name"].is_string()) << out;
            EXPECT_TRUE(doc["age"].is_number_integer()) << out;
        }
        if (run % 3 == 2) {  // k_order, checked by hand
            EXPECT_TRUE(doc["note"].is_string() || doc["note"].is_null()) << out;
            ASSERT_TRUE(doc["items"].is_array()) << out;
            for (const auto& it : doc["items"]) {
                EXPECT_TRUE(it["sku"].is_string()) << out;
                EXPECT_TRUE(it["qty"].is_number_integer()) << out;
            }
            EXPECT_TRUE(doc["discount"].is_number() || doc["discount"].is_null()) << out;
            if (doc.contains("gift")) {
                EXPECT_TRUE(doc["gift"].is_boolean() || doc["gift"].is_null()) << out;
            }
            if (doc.contains("status")) {
                const json& st = doc["status"];
                EXPECT_TRUE(st == "open" || st == "closed" || st.is_number_integer() ||
                            (st.is_object() && (!st.contains("code") || st["code"].is_number_integer())))
                    << out;
            }
        }
    }
    EXPECT_GE(finished, 50) << "enough walks finished to mean something";
}

}  // namespace
}  // namespace mm::text
