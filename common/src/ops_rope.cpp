// Rotary position embedding, as GGML defines its "norm" and "neox" modes (llama.cpp goldens check the
// LLM stage). Pair i of a head turns by theta_i = pos * freq_scale * base^(-2i / n_rot):
//   normal: (x[2i], x[2i + 1]);   neox: (x[i], x[i + n_rot / 2]);   dims n_rot..d_head-1 pass through.
// theta is formed the way GGML forms it: base^(-2 / n_rot) once in f32, then one f32 multiply per pair.
// Exact powers would differ from llama.cpp by a few f32 ulps of theta, which at position 4096 is ~1e-4
// radians: worth matching when the goldens come from there.
#include <cmath>
#include <vector>

#include "common/ops.h"
#include "common/status.h"

namespace mm::ops {

void rope(thread_pool& pool, const tensor& x, std::span<const int32_t> positions, rope_params p, tensor& y) {
    MM_ASSERT(x.type() == dtype::f32 && y.type() == dtype::f32);
    MM_ASSERT(x.n_dims() == 3 && y.shape() == x.shape());
    const int64_t n_tokens = x.dim(0), n_head = x.dim(1), d_head = x.dim(2);
    MM_ASSERT(static_cast<int64_t>(positions.size()) == n_tokens);
    const int64_t n_rot = p.n_rot == 0 ? d_head : p.n_rot;
    MM_ASSERT(n_rot > 0 && n_rot % 2 == 0 && n_rot <= d_head);
    const int64_t half = n_rot / 2;
    const float theta_scale = std::pow(p.freq_base, -2.0f / static_cast<float>(n_rot));
    const bool neox = p.mode == rope_mode::neox;

    // One token per work item: its cos/sin table is built once and used by every head.
    pool.parallel_for(
        n_tokens,
        [&](int64_t t0, int64_t t1) {
            thread_local std::vector<float> cos_sin;  // [half, 2]
            cos_sin.resize(static_cast<size_t>(n_rot));
            for (int64_t t = t0; t < t1; ++t) {
                float theta = static_cast<float>(positions[t]);
                for (int64_t i = 0; i < half; ++i) {
                    const float angle = theta * p.freq_scale;
                    cos_sin[2 * i] = std::cos(angle);
                    cos_sin[2 * i + 1] = std::sin(angle);
                    theta *= theta_scale;
                }
                for (int64_t h = 0; h < n_head; ++h) {
                    const float* xr = x.data<float>() + (t * n_head + h) * d_head;
                    float* yr = y.data<float>() + (t * n_head + h) * d_head;
                    // Index of each pair's second element, relative to its first.
                    const int64_t step = neox ? half : 1;
                    for (int64_t i = 0; i < half; ++i) {
                        const int64_t a = neox ? i : 2 * i;
                        const float c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
                        const float x0 = xr[a], x1 = xr[a + step];
                        yr[a] = x0 * c - x1 * s;
                        yr[a + step] = x0 * s + x1 * c;
                    }
                    if (yr != xr)
                        for (int64_t i = n_rot; i < d_head; ++i) yr[i] = xr[i];
                }
            }
        },
        /*min_chunk=*/1);
}

}  // namespace mm::ops
