// conv2d as im2col + sgemm, per tile of output pixels:
//   cols[c_in * kh * kw, tile] gathered from x (zeros where the kernel overhangs the padding), then
//   y[c_out, tile] = w[c_out, c_in * kh * kw] · cols.
// Work items are (image, pixel tile) pairs, so a thread gathers only its own tile into its own scratch
// (bounded, cache-sized) and even a single image with few output channels spreads over the pool.
// A 1x1 kernel with stride 1 and no padding needs no gather: x's [c_in, h * w] already is the column matrix.
#include <cblas.h>

#include <algorithm>
#include <vector>

#include "common/ops.h"
#include "common/status.h"

namespace mm::ops {
namespace {

// A tile's column buffer of about 1 MiB stays in L2 while sgemm passes over it for every output channel.
constexpr int64_t k_tile_floats = int64_t{1} << 18;
constexpr int64_t k_min_tile_pixels = 16;

struct conv_geometry {
    int64_t c_in, h, w;       // input image
    int64_t kh, kw;           // kernel
    int64_t oh, ow;           // output image
    int64_t stride, pad;
};

// cols[(ci * kh + ky) * kw + kx, j] = x[ci, oy * stride - pad + ky, ox * stride - pad + kx] for the
// output pixels j0 .. j0 + n_pix - 1, pixel j sitting at (oy, ox) = (j / ow, j % ow).
void im2col_tile(const conv_geometry& g, const float* x, int64_t j0, int64_t n_pix, float* cols) {
    for (int64_t ci = 0; ci < g.c_in; ++ci)
        for (int64_t ky = 0; ky < g.kh; ++ky)
            for (int64_t kx = 0; kx < g.kw; ++kx) {
                float* out = cols + ((ci * g.kh + ky) * g.kw + kx) * n_pix;
                const float* plane = x + ci * g.h * g.w;
                int64_t oy = j0 / g.ow, ox = j0 % g.ow;
                for (int64_t j = 0; j < n_pix; ++j) {
                    const int64_t iy = oy * g.stride - g.pad + ky;
                    const int64_t ix = ox * g.stride - g.pad + kx;
                    out[j] = (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w) ? plane[iy * g.w + ix] : 0.0f;
                    if (++ox == g.ow) {
                        ox = 0;
                        ++oy;
                    }
                }
            }
}

}  // namespace

void conv2d(thread_pool& pool, const tensor& x, const tensor& w, const tensor* bias, tensor& y, conv2d_params p) {
    MM_ASSERT(x.type() == dtype::f32 && w.type() == dtype::f32 && y.type() == dtype::f32);
    MM_ASSERT(x.n_dims() == 4 && w.n_dims() == 4 && y.n_dims() == 4);
    MM_ASSERT(p.stride >= 1 && p.pad >= 0);
    const int64_t n = x.dim(0), c_out = w.dim(0);
    const conv_geometry g{.c_in = x.dim(1), .h = x.dim(2), .w = x.dim(3), .kh = w.dim(2), .kw = w.dim(3),
                          .oh = (x.dim(2) + 2 * p.pad - w.dim(2)) / p.stride + 1,
                          .ow = (x.dim(3) + 2 * p.pad - w.dim(3)) / p.stride + 1, .stride = p.stride, .pad = p.pad};
    MM_ASSERT(w.dim(1) == g.c_in);
    MM_ASSERT(g.h + 2 * g.pad >= g.kh && g.w + 2 * g.pad >= g.kw);
    MM_ASSERT(y.dim(0) == n && y.dim(1) == c_out && y.dim(2) == g.oh && y.dim(3) == g.ow);
    const float* b = nullptr;
    if (bias) {
        MM_ASSERT(bias->type() == dtype::f32 && bias->elements() == c_out);
        b = bias->data<float>();
    }

    const int64_t k = g.c_in * g.kh * g.kw;  // one output pixel's dot-product length
    const int64_t n_out = g.oh * g.ow;       // output pixels per image
    const bool direct = g.kh == 1 && g.kw == 1 && p.stride == 1 && p.pad == 0;
    // Tile: cache-sized, but small enough that every thread gets at least one.
    const int64_t n_threads = pool.size();
    int64_t tile = std::max(k_min_tile_pixels, k_tile_floats / k);
    tile = std::min(tile, (n * n_out + n_threads - 1) / n_threads);
    tile = std::clamp<int64_t>(tile, 1, n_out);
    const int64_t n_tiles = (n_out + tile - 1) / tile;

    pool.parallel_for(
        n * n_tiles,
        [&](int64_t i0, int64_t i1) {
            thread_local std::vector<float> scratch;  // [k, tile]
            if (!direct) scratch.resize(static_cast<size_t>(k * tile));
            for (int64_t item = i0; item < i1; ++item) {
                const int64_t img = item / n_tiles;
                const int64_t j0 = item % n_tiles * tile;
                const int64_t n_pix = std::min(tile, n_out - j0);
                const float* xi = x.data<float>() + img * g.c_in * g.h * g.w;  // [c_in, h, w]
                float* yi = y.data<float>() + img * c_out * n_out;               // [c_out, oh * ow]
                const float* cols = xi + j0;
                int64_t ld_cols = n_out;
                if (!direct) {
                    im2col_tile(g, xi, j0, n_pix, scratch.data());
                    cols = scratch.data();
                    ld_cols = n_pix;
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(c_out),
                            static_cast<int>(n_pix), static_cast<int>(k), 1.0f, w.data<float>(), static_cast<int>(k),
                            cols, static_cast<int>(ld_cols), 0.0f, yi + j0, static_cast<int>(n_out));
                if (b)
                    for (int64_t co = 0; co < c_out; ++co)
                        for (int64_t j = j0; j < j0 + n_pix; ++j) yi[co * n_out + j] += b[co];
            }
        },
        /*min_chunk=*/1);
}

}  // namespace mm::ops
