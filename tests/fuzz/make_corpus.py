#!/usr/bin/env python3
"""Writes the seed corpora for the fuzz targets: small, valid GGUF and safetensors files that between them use
every value type, dtype and layout feature the readers handle. Deterministic; stdlib only.

    python3 tests/fuzz/make_corpus.py [--shared ../shared]

With --shared, also writes the first 4 KiB of two real model files (a header prefix: it does not parse, but it
gives the fuzzer real key names and layouts to mutate). Files named crash-* are inputs that once crashed a
reader (kept as regression seeds); the ones found by hand are written here too.
"""
import argparse
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# ---- GGUF ----

T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 = range(13)
SCALAR = {T_U8: "B", T_I8: "b", T_U16: "H", T_I16: "h", T_U32: "I", T_I32: "i", T_F32: "f", T_BOOL: "B",
          T_U64: "Q", T_I64: "q", T_F64: "d"}
G_F32, G_F16, G_Q4_0, G_Q8_0, G_BF16 = 0, 1, 2, 8, 30
BLOCK = {G_F32: (1, 4), G_F16: (1, 2), G_Q4_0: (32, 18), G_Q8_0: (32, 34), G_BF16: (1, 2)}


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gvalue(t, v):
    if t in SCALAR:
        return struct.pack("<" + SCALAR[t], v)
    if t == T_STR:
        return gstr(v)
    elem, items = v
    return struct.pack("<IQ", elem, len(items)) + b"".join(gvalue(elem, x) for x in items)


def gguf(kvs, tensors, version=3, alignment=32):
    """kvs: [(key, type, value)]; tensors: [(name, ne (ggml order), ggml type)], laid out in order."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for key, t, v in kvs:
        out += gstr(key) + struct.pack("<I", t) + gvalue(t, v)
    offset, blobs = 0, []
    for name, ne, t in tensors:
        n = 1
        for d in ne:
            n *= d
        size = n // BLOCK[t][0] * BLOCK[t][1]
        out += gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        out += struct.pack("<IQ", t, offset)
        blobs.append((offset, bytes((offset + i * 7) & 0xFF for i in range(size))))
        offset = (offset + size + alignment - 1) // alignment * alignment
    out += b"\0" * (-len(out) % alignment)
    data = bytearray(offset)
    for at, blob in blobs:
        data[at:at + len(blob)] = blob
    return out + bytes(data)


def gguf_seeds():
    every_type = [
        ("general.architecture", T_STR, "test"),
        ("t.u8", T_U8, 200), ("t.i8", T_I8, -100), ("t.u16", T_U16, 60000), ("t.i16", T_I16, -30000),
        ("t.u32", T_U32, 4000000000), ("t.i32", T_I32, -2000000000), ("t.f32", T_F32, 0.5), ("t.bool", T_BOOL, 1),
        ("t.u64", T_U64, 1 << 60), ("t.i64", T_I64, -(1 << 60)), ("t.f64", T_F64, -0.125),
        ("t.strings", T_ARR, (T_STR, ["", "a", "\u2581hello", "<0x0A>"])),
        ("t.f32s", T_ARR, (T_F32, [1.0, -2.5, 1e-5])), ("t.i32s", T_ARR, (T_I32, [1, -1, 7])),
        ("t.bools", T_ARR, (T_BOOL, [0, 1])), ("t.empty", T_ARR, (T_U8, [])),
        ("t.nested", T_ARR, (T_ARR, [(T_U32, [1, 2]), (T_STR, ["x"])])),
    ]
    every_dtype = [("w.f32", [3, 2], G_F32), ("w.f16", [4], G_F16), ("w.bf16", [2, 1, 1, 2], G_BF16),
                   ("w.q8_0", [32, 2], G_Q8_0), ("w.q4_0", [64], G_Q4_0)]
    yield "v3_every_type.gguf", gguf(every_type, every_dtype)
    yield "v2_one_tensor.gguf", gguf([("general.name", T_STR, "v2")], [("x", [8], G_F32)], version=2)
    yield "alignment_64.gguf", gguf([("general.alignment", T_U32, 64)], [("a", [5], G_F32), ("b", [32, 1], G_Q8_0)],
                                    alignment=64)
    yield "alignment_2.gguf", gguf([("general.alignment", T_U32, 2)], [("a", [3], G_F16), ("b", [32], G_Q8_0)],
                                   alignment=2)
    tokens = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % i for i in range(16)] + ["\u2581the", "\u2581a", "ing", "er"]
    yield "vocab_only.gguf", gguf([
        ("general.architecture", T_STR, "llama"),
        ("tokenizer.ggml.model", T_STR, "llama"),
        ("tokenizer.ggml.tokens", T_ARR, (T_STR, tokens)),
        ("tokenizer.ggml.scores", T_ARR, (T_F32, [float(-i) for i in range(len(tokens))])),
        ("tokenizer.ggml.token_type", T_ARR, (T_I32, [2, 3, 3] + [6] * 16 + [1] * 4)),
        ("tokenizer.ggml.merges", T_ARR, (T_STR, ["\u2581 t", "h e", "i n"])),
        ("tokenizer.ggml.bos_token_id", T_U32, 1), ("tokenizer.ggml.add_bos_token", T_BOOL, 1),
    ], [])
    llama_kvs = [("general.architecture", T_STR, "llama"), ("llama.context_length", T_U32, 128),
                 ("llama.embedding_length", T_U32, 64), ("llama.feed_forward_length", T_U32, 96),
                 ("llama.block_count", T_U32, 1), ("llama.attention.head_count", T_U32, 8),
                 ("llama.attention.head_count_kv", T_U32, 4),
                 ("llama.attention.layer_norm_rms_epsilon", T_F32, 1e-5),
                 ("general.file_type", T_U32, 7)]
    llama_tensors = [("token_embd.weight", [64, 16], G_Q8_0), ("output_norm.weight", [64], G_F32),
                     ("blk.0.attn_norm.weight", [64], G_F32), ("blk.0.attn_q.weight", [64, 64], G_Q8_0),
                     ("blk.0.attn_k.weight", [64, 32], G_Q4_0), ("blk.0.ffn_down.weight", [96, 64], G_F16)]
    yield "llama_like.gguf", gguf(llama_kvs, llama_tensors)
    # A zero dim made a view whose row count divided by zero (SIGFPE); zero dims are now refused.
    yield "crash-zero-dim.gguf", gguf([], [("w.empty", [0, 3], G_F32), ("w.f32", [3, 2], G_F32)])


# ---- safetensors ----

ST_SIZE = {"BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4,
           "F64": 8, "I64": 8, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1}


def safetensors(tensors, metadata=None, pad=True):
    """tensors: [(name, dtype, shape)], laid out in order."""
    header, offset = {}, 0
    for name, dt, shape in tensors:
        n = 1
        for d in shape:
            n *= d
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [offset, offset + n * ST_SIZE[dt]]}
        offset += n * ST_SIZE[dt]
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + bytes((i * 13 + 1) & 0xFF for i in range(offset))


def safetensors_seeds():
    yield "every_dtype.safetensors", safetensors([(f"t.{dt.lower()}", dt, [2, 3]) for dt in ST_SIZE],
                                                 {"format": "pt", "note": "every dtype"})
    yield "views.safetensors", safetensors([("matrix", "F32", [4, 8]), ("half", "F16", [2, 2, 2, 2]),
                                            ("brain", "BF16", [3]), ("scalar", "F32", []), ("empty", "F32", [0, 4]),
                                            ("no_cols", "F32", [4, 0]), ("five_dims", "F32", [1, 1, 1, 1, 2])])
    yield "ddpm_like.safetensors", safetensors(
        [("network.time_embed.weight", "F32", [10, 4]), ("network.b1.0.ln.weight", "F32", [1, 4, 4]),
         ("network.b1.0.conv1.weight", "F32", [2, 1, 3, 3]), ("network.b1.0.conv1.bias", "F32", [2]),
         ("network.conv_out.bias", "F32", [1])],
        {"source": "synthetic", "license": "MIT", "format": "pt"})
    yield "unpadded_header.safetensors", safetensors([("a", "F32", [3]), ("b", "I64", [1])], pad=False)
    yield "no_tensors.safetensors", safetensors([], {"format": "pt"})
    # Viewing a tensor whose last dim is 0 divided by zero (SIGFPE); such views are now refused.
    yield "crash-zero-last-dim.safetensors", safetensors([("no_cols", "F32", [4, 0]), ("a", "F32", [2])])


# ---- the text stage: JSON schemas with documents, and GGUF vocabularies ----

def json_schema_seeds():
    person = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
              "tags": {"type": "array", "items": {"type": "string"}}, "role": {"enum": ["a", "b", 3, None]}},
              "required": ["name"]}
    cases = [
        ("person", person, '{"name":"x\\u00e9","age":-3,"tags":["a"],"role":3}'),
        ("any", {}, '{"a":[1,2.5e-3,{"b":null}],"c":true}'),
        ("number", {"type": "number"}, "-0.5E+2"),
        ("const", {"const": {"k": [1]}}, '{"k":[1]}'),
        ("bad_type", {"type": "quaternion"}, "{}"),
        ("nested", {"type": "array", "items": {"type": "array", "items": {"type": "boolean"}}}, "[[true],[false,true]]"),
        # A high surrogate escape with no low half: a document readers refuse, so the recogniser must too.
        ("lone_surrogate", {}, '"a\\ud83d\\u0041"'),
        ("open_surrogate", {"type": "object", "properties": {"s": {"type": "string"}}, "required": ["s"]}, '{"s":"\\uD83D'),
        ("array_item_counts", {"type": "object", "properties": {
            "pair": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 3},
            "none": {"type": "array", "maxItems": 0}}, "required": ["pair"]}, '{"pair":[1,2,3],"none":[]}'),
        ("all_of", {"$defs": {"Base": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]},
                              "S": {"enum": ["a", "b"]}},
                    "allOf": [{"$ref": "#/$defs/Base"},
                              {"properties": {"s": {"allOf": [{"$ref": "#/$defs/S"}], "default": "a"}}, "required": ["s"]}]},
         '{"id":3,"s":"b"}'),
    ]
    for name, schema, doc in cases:
        yield name + ".bin", json.dumps(schema).encode() + b"\0" + doc.encode()


def tool_calls_seeds():
    yield "object.bin", b'{"name":"get_weather","arguments":{"city":"Paris"}}'
    yield "array.bin", b'[{"name":"a","parameters":{}},{"name":"get_weather","arguments":"{\\"x\\":1}"}]'
    yield "hermes_blocks.bin", (b'<tool_call>\n{"name": "a", "arguments": {}}\n</tool_call>\n'
                                b'<tool_call>{"name":"get_weather","arguments":{"b":[1,2]}}')
    yield "mistral.bin", b'[TOOL_CALLS] [{"name": "a", "arguments": {"q": "x"}, "id": "a1b2c3d4e"}]'
    yield "text.bin", b"The weather is <b>fine</b>."


def tokenizer_seeds():
    tokens = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)] + \
             ["\u2581", "\u2581a", "ab", "\u2581ab", "<|im_end|>", "\u2581\u2581"]
    types = [2, 3, 3] + [6] * 256 + [1, 1, 1, 1, 3, 1]
    scores = [0.0] * len(tokens)
    for i in range(len(tokens)):
        scores[i] = -float(i)
    kvs = [("general.architecture", T_STR, "llama"), ("tokenizer.ggml.model", T_STR, "llama"),
           ("tokenizer.ggml.tokens", T_ARR, (T_STR, tokens)), ("tokenizer.ggml.scores", T_ARR, (T_F32, scores)),
           ("tokenizer.ggml.token_type", T_ARR, (T_I32, types)), ("tokenizer.ggml.bos_token_id", T_U32, 1),
           ("tokenizer.ggml.eos_token_id", T_U32, 2)]
    yield "spm.gguf", gguf(kvs, [])
    yield "no_types.gguf", gguf(kvs[:4], [])
    yield "bad_type.gguf", gguf(kvs[:4] + [("tokenizer.ggml.token_type", T_ARR, (T_I32, [9] * len(tokens)))], [])
    # Byte-level BPE: the printable bytes, a space (U+0120), and a few merges.
    bpe_tokens = [chr(b) for b in range(0x21, 0x7F)] + ["\u0120", "ab", "\u0120ab", "<|endoftext|>"]
    bpe_kvs = [("tokenizer.ggml.model", T_STR, "gpt2"), ("tokenizer.ggml.pre", T_STR, "gpt-2"),
               ("tokenizer.ggml.tokens", T_ARR, (T_STR, bpe_tokens)),
               ("tokenizer.ggml.token_type", T_ARR, (T_I32, [1] * (len(bpe_tokens) - 1) + [3])),
               ("tokenizer.ggml.merges", T_ARR, (T_STR, ["a b", "\u0120 ab"]))]
    yield "gpt2.gguf", gguf(bpe_kvs, [])


def multipart_seeds():
    ct = b"multipart/form-data; boundary=XyZ\n"
    file_part = (b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
                 b"Content-Type: audio/wav\r\n\r\nRIFF\x00\n--XyZ-x\r\n")
    field = b"--XyZ\r\nContent-Disposition: form-data; name=model\r\n\r\nwhisper-1\r\n"
    yield "upload.txt", ct + file_part + field + b"--XyZ--\r\n"
    yield "preamble.txt", ct + b"pre\r\n" + field + b"--XyZ--"
    yield "quoted.txt", b"multipart/form-data; boundary=\"a b\"\n--a b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--a b--"
    yield "cut.txt", ct + file_part[:40]


def http_request_seeds():
    yield "get.txt", b"\x07GET /v1/models/stories%20x?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"
    yield "post.txt", b"\x30POST /v1/audio/transcriptions HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
    yield "chunked.txt", (b"\x11POST /v1/models HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"3\r\nabc\r\n0\r\n\r\n")
    yield "delete.txt", b"\x00DELETE /v1/admin/keys/%2F..%2F HTTP/1.1\r\nHost: a\r\n\r\n"
    yield "unknown.txt", b"\x05PATCH /nope/ HTTP/1.0\r\n\r\n"


def ws_frame(opcode, payload, fin=True, mask=b"\x11\x22\x33\x44", length=None):
    """A client frame (clients must mask); length overrides the encoded payload length."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ws_frames_seeds():
    # The first byte sets the read size; the rest is what the client sends after the handshake.
    yield "text.bin", b"\x05" + ws_frame(1, b"hello") + ws_frame(8, struct.pack(">H", 1000) + b"bye")
    yield "binary.bin", b"\x00" + ws_frame(2, bytes(range(256)) * 2)
    yield "fragments.bin", b"\x02" + ws_frame(1, b"hel", fin=False) + ws_frame(9, b"p") + ws_frame(0, b"lo")
    yield "over_limit.bin", b"\x3f" + ws_frame(2, b"x" * 200, length=5000)
    yield "bad_utf8.bin", b"\x01" + ws_frame(1, b"\xc3\x28") + ws_frame(1, b"ok")
    yield "unmasked.bin", b"\x07" + b"\x81\x02hi"
    yield "bad_opcode.bin", b"\x03" + ws_frame(3, b"??") + ws_frame(10, b"") + ws_frame(8, b"\x03")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", help="the shared/ folder, for real header prefixes")
    args = ap.parse_args()
    for sub, seeds in (("gguf", gguf_seeds()), ("safetensors", safetensors_seeds()),
                       ("json_schema", json_schema_seeds()), ("tokenizer", tokenizer_seeds()),
                       ("multipart", multipart_seeds()), ("http_request", http_request_seeds()),
                       ("ws_frames", ws_frames_seeds()), ("tool_calls", tool_calls_seeds())):
        folder = os.path.join(HERE, "corpus", sub)
        os.makedirs(folder, exist_ok=True)
        for name, data in seeds:
            assert len(data) < 64 * 1024, name
            with open(os.path.join(folder, name), "wb") as f:
                f.write(data)
    if args.shared:
        for sub, rel in (("gguf", "models/text/stories260K-q8_0.gguf"),
                         ("safetensors", "models/image/ddpm_mnist.safetensors")):
            with open(os.path.join(args.shared, rel), "rb") as f:
                head = f.read(4096)
            with open(os.path.join(HERE, "corpus", sub, os.path.basename(rel) + ".head4k"), "wb") as f:
                f.write(head)


if __name__ == "__main__":
    main()
