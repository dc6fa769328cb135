// json_constraint: constrained decoding for structured output. A JSON schema (a practical subset) becomes a
// byte-level pushdown recogniser; token_mask() walks a trie of the vocabulary's pieces with copies of the
// recogniser and allows exactly the tokens whose bytes keep the output a valid prefix of a document the
// schema accepts. Generation ends when the document is complete, so the output always parses.
//
// Schema subset: type object (properties in declared order, required, additionalProperties false implied
// once properties are given), array (items, minItems up to 16, maxItems), string, number, integer, boolean, null; enum and const of any
// JSON values; anyOf / oneOf, type lists and nullable whose alternatives are of different JSON types (the
// recogniser picks one by a value's first byte); $ref into the schema's own document, not recursive; allOf
// of one constraining schema, or of objects whose properties merge; a schema without a type accepts any
// JSON value. The text stage's tool calls use a
// tool-call schema: {"name": <one of the tools>, "arguments": <that tool's parameters>}.
// Thread safety: a schema is immutable and shared; a recogniser belongs to one sequence.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace mm::text {

struct json_schema;
using json_schema_ptr = std::shared_ptr<const json_schema>;

// Parses a JSON Schema document (text). invalid_argument names what is not understood.
result<json_schema_ptr> json_schema_parse(std::string_view schema_json);
// Any JSON object (response_format json_object).
json_schema_ptr json_schema_any_object();
// {"name": one of names, "arguments": the schema of that name}, as an object with those two keys in order.
json_schema_ptr json_schema_tool_call(std::vector<std::pair<std::string, json_schema_ptr>> tools);
// One such call, or several at once: an array of at least one (parallel tool calls).
json_schema_ptr json_schema_tool_calls(std::vector<std::pair<std::string, json_schema_ptr>> tools);

class json_recognizer {
public:
    explicit json_recognizer(json_schema_ptr root);

    // false if the byte(s) cannot continue a valid document; the recogniser is then spent (keep a copy to
    // try alternatives, as token_trie does).
    bool feed(char c);
    bool feed(std::string_view s);
    bool complete() const;  // a whole document has been read
    // A shortest byte string that completes the document from here ("" once complete). Feeding its first
    // byte leaves a recogniser whose closing() is the rest, so a generation can always finish within
    // closing().size() single-byte tokens.
    std::string closing() const;
    // How far one token can lengthen closing() (its bytes, each possibly opening the largest value of the
    // schema): the engine starts budgeting when the tokens left come within closing().size() + this.
    size_t closing_reach() const { return reach_; }

    struct frame;  // the parse stack; public only for the implementation's helpers

private:
    json_schema_ptr root_;                       // keeps the schema alive
    std::vector<std::shared_ptr<frame>> stack_;  // copy-on-write frames: copying a recogniser is cheap
    bool done_ = false;
    size_t reach_ = 0;
    int ws_run_ = 0;  // whitespace in a row, capped so a model cannot pad forever
};

// The vocabulary as a byte trie, built once per tokenizer, for token_mask().
class token_trie {
public:
    explicit token_trie(const std::vector<std::string>& pieces);  // pieces[id]; empty pieces are skipped
    // allowed[id] = the token's bytes can follow the recogniser's state and leave a closing() of at most
    // close_budget bytes. Returns how many tokens the budget alone refused.
    size_t mask(const json_recognizer& state, std::vector<bool>& allowed, size_t close_budget = SIZE_MAX) const;

private:
    struct node {
        std::map<unsigned char, int32_t> next;
        std::vector<int32_t> ids;  // tokens ending here
    };
    void walk(int32_t n, const json_recognizer& state, std::vector<bool>& allowed, size_t close_budget,
              size_t& refused) const;
    std::vector<node> nodes_;
};

}  // namespace mm::text
