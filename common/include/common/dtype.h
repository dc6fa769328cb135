// Element types and GGUF's quant block layouts, so quantized weights are used straight from a mapped file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace mm {

// q4_0r / q8_0r are q4_0 / q8_0 regrouped in memory for the AVX-512 and AVX2 matvec kernels (never in a
// file): see block_q4_0r.
enum class dtype : uint8_t { f32, f16, bf16, q8_0, q4_0, q4_0r, q8_0r };

constexpr int k_qk = 32;  // elements per q8_0 / q4_0 block

// q8_0: 32 weights = d * qs[i]. 34 bytes.
struct block_q8_0 {
    uint16_t d;        // f16 scale
    int8_t qs[k_qk];
};
static_assert(sizeof(block_q8_0) == 34);

// q4_0: 32 weights = d * (nibble - 8). Byte j holds element j (low nibble) and element j + 16 (high). 18 bytes.
struct block_q4_0 {
    uint16_t d;
    uint8_t qs[k_qk / 2];
};
static_assert(sizeof(block_q4_0) == 18);

// q4_0r: q4_0 regrouped so the kernel reads it with whole-register loads, in one sequential stream while it
// works on four rows at once. A block_q4_0r is sixteen blocks of one row: their quant bytes back to back,
// then their f16 scales in the order the kernel's sums come out (k_q4_0r_lane_block). Rows go in fours, and
// a four-row band holds, for each 512-element stretch in turn, the four rows' block_q4_0r side by side.
// Same 18 bytes per block, so the matrix keeps its size; rows are whole 512-element stretches and their
// count a multiple of 4. A row is not contiguous: only whole-matrix functions read the layout.
constexpr int k_q4_0r_blocks = 16;
constexpr int k_q4_0r_rows = 4;
struct block_q4_0r {
    uint8_t qs[k_q4_0r_blocks][k_qk / 2];
    uint16_t d[k_q4_0r_blocks];  // d[l] is the scale of block k_q4_0r_lane_block[l]
};
static_assert(sizeof(block_q4_0r) == k_q4_0r_blocks * sizeof(block_q4_0));
constexpr int k_q4_0r_lane_block[k_q4_0r_blocks] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};

// q8_0r: q8_0 in q4_0r's bands and stretches. A block_q8_0r's quants go in four-block groups (blocks 4j..4j+3),
// each group the four blocks' first 16 bytes, then their last 16, so a whole-register load holds one half of
// four blocks, as the activations are laid out (q8_act_index). They are stored offset-binary, q + 128, so
// VNNI's unsigned-by-signed dot takes them as they are (the kernels take 128 * sum(x) off per block, as q4_0
// kernels do 8 * sum(x)).
struct block_q8_0r {
    uint8_t qs[k_q4_0r_blocks / 4][2][4][k_qk / 2];  // [group][half][block in group][byte]: q + 128
    uint16_t d[k_q4_0r_blocks];                    // as block_q4_0r's
};
static_assert(sizeof(block_q8_0r) == k_q4_0r_blocks * sizeof(block_q8_0));

// q4_0r / q8_0r: rows interleaved in bands, so only whole-matrix functions read them.
inline bool dtype_is_regrouped(dtype t) { return t == dtype::q4_0r || t == dtype::q8_0r; }
// The type a regrouped one regroups; any other is its own.
inline dtype dtype_plain(dtype t) { return t == dtype::q4_0r ? dtype::q4_0 : t == dtype::q8_0r ? dtype::q8_0 : t; }

std::string_view dtype_name(dtype t);
std::optional<dtype> dtype_from_name(std::string_view name);
int dtype_block_size(dtype t);          // elements per block: 1 for plain types (regrouped: the plain blocks)
size_t dtype_block_bytes(dtype t);      // bytes per block
bool dtype_is_quantized(dtype t);

// Bytes for n elements of a row; n must be a multiple of the block size.
inline size_t dtype_row_bytes(dtype t, int64_t n) {
    return static_cast<size_t>(n / dtype_block_size(t)) * dtype_block_bytes(t);
}

}  // namespace mm
