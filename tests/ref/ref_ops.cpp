#include "ref/ref_ops.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

namespace mm::ref {
namespace {

size_t sz(int64_t n) { return static_cast<size_t>(n); }

double param(std::span<const float> p, int64_t i, double none) { return p.empty() ? none : p[sz(i)]; }

// Row-major multi-index of flat index i within dims.
std::vector<int64_t> unravel(int64_t i, std::span<const int64_t> dims) {
    std::vector<int64_t> idx(dims.size());
    for (size_t d = dims.size(); d-- > 0;) {
        idx[d] = i % dims[d];
        i /= dims[d];
    }
    return idx;
}

int64_t ravel(std::span<const int64_t> idx, std::span<const int64_t> dims) {
    int64_t i = 0;
    for (size_t d = 0; d < dims.size(); ++d) i = i * dims[d] + idx[d];
    return i;
}

int64_t product(std::span<const int64_t> dims) {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    return n;
}

template <class Fn>
std::vector<float> map(std::span<const float> x, Fn fn) {
    std::vector<float> y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = static_cast<float>(fn(static_cast<double>(x[i])));
    return y;
}

}  // namespace

std::vector<float> softmax(std::span<const float> x, int64_t rows, int64_t cols) {
    std::vector<float> y(sz(rows * cols));
    for (int64_t r = 0; r < rows; ++r) {
        double mx = -INFINITY;
        for (int64_t i = 0; i < cols; ++i) mx = std::max(mx, static_cast<double>(x[sz(r * cols + i)]));
        double sum = 0.0;
        for (int64_t i = 0; i < cols; ++i) sum += std::exp(x[sz(r * cols + i)] - mx);
        for (int64_t i = 0; i < cols; ++i)
            y[sz(r * cols + i)] = static_cast<float>(std::exp(x[sz(r * cols + i)] - mx) / sum);
    }
    return y;
}

std::vector<float> layer_norm(std::span<const float> x, int64_t rows, int64_t cols, std::span<const float> weight,
                              std::span<const float> bias, float eps) {
    std::vector<float> y(sz(rows * cols));
    for (int64_t r = 0; r < rows; ++r) {
        double mean = 0.0;
        for (int64_t i = 0; i < cols; ++i) mean += x[sz(r * cols + i)];
        mean /= static_cast<double>(cols);
        double var = 0.0;
        for (int64_t i = 0; i < cols; ++i) var += (x[sz(r * cols + i)] - mean) * (x[sz(r * cols + i)] - mean);
        var /= static_cast<double>(cols);
        for (int64_t i = 0; i < cols; ++i) {
            const double xhat = (x[sz(r * cols + i)] - mean) / std::sqrt(var + eps);
            y[sz(r * cols + i)] = static_cast<float>(xhat * param(weight, i, 1.0) + param(bias, i, 0.0));
        }
    }
    return y;
}

std::vector<float> rms_norm(std::span<const float> x, int64_t rows, int64_t cols, std::span<const float> weight,
                            float eps) {
    std::vector<float> y(sz(rows * cols));
    for (int64_t r = 0; r < rows; ++r) {
        double mean_sq = 0.0;
        for (int64_t i = 0; i < cols; ++i) mean_sq += static_cast<double>(x[sz(r * cols + i)]) * x[sz(r * cols + i)];
        mean_sq /= static_cast<double>(cols);
        for (int64_t i = 0; i < cols; ++i)
            y[sz(r * cols + i)] =
                static_cast<float>(x[sz(r * cols + i)] / std::sqrt(mean_sq + eps) * param(weight, i, 1.0));
    }
    return y;
}

std::vector<float> group_norm(std::span<const float> x, group_norm_dims d, std::span<const float> weight,
                              std::span<const float> bias, float eps) {
    std::vector<float> y(x.size());
    const int64_t c_group = d.c / d.n_groups;
    for (int64_t b = 0; b < d.n; ++b)
        for (int64_t g = 0; g < d.n_groups; ++g) {
            // Elements of image b, channels g * c_group .. (g + 1) * c_group - 1, every pixel.
            auto at = [&](int64_t ch, int64_t p) { return sz((b * d.c + g * c_group + ch) * d.hw + p); };
            const double count = static_cast<double>(c_group * d.hw);
            double mean = 0.0;
            for (int64_t ch = 0; ch < c_group; ++ch)
                for (int64_t p = 0; p < d.hw; ++p) mean += x[at(ch, p)];
            mean /= count;
            double var = 0.0;
            for (int64_t ch = 0; ch < c_group; ++ch)
                for (int64_t p = 0; p < d.hw; ++p) var += (x[at(ch, p)] - mean) * (x[at(ch, p)] - mean);
            var /= count;
            for (int64_t ch = 0; ch < c_group; ++ch)
                for (int64_t p = 0; p < d.hw; ++p) {
                    const int64_t channel = g * c_group + ch;
                    const double xhat = (x[at(ch, p)] - mean) / std::sqrt(var + eps);
                    y[at(ch, p)] = static_cast<float>(xhat * param(weight, channel, 1.0) + param(bias, channel, 0.0));
                }
        }
    return y;
}

std::vector<float> gelu_tanh(std::span<const float> x) {
    return map(x, [](double v) {
        return 0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / std::numbers::pi) * (v + 0.044715 * v * v * v)));
    });
}

std::vector<float> gelu_erf(std::span<const float> x) {
    return map(x, [](double v) { return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))); });
}

std::vector<float> silu(std::span<const float> x) {
    return map(x, [](double v) { return v / (1.0 + std::exp(-v)); });
}

std::vector<float> add(std::span<const float> a, std::span<const float> b, int64_t rows, int64_t cols) {
    const bool broadcast = b.size() != a.size();  // then b is one row
    std::vector<float> y(sz(rows * cols));
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < cols; ++i)
            y[sz(r * cols + i)] = static_cast<float>(static_cast<double>(a[sz(r * cols + i)]) +
                                                     b[sz(broadcast ? i : r * cols + i)]);
    return y;
}

std::vector<float> mul(std::span<const float> a, std::span<const float> b, int64_t rows, int64_t cols) {
    const bool broadcast = b.size() != a.size();  // then b is one row
    std::vector<float> y(sz(rows * cols));
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < cols; ++i)
            y[sz(r * cols + i)] = static_cast<float>(static_cast<double>(a[sz(r * cols + i)]) *
                                                     b[sz(broadcast ? i : r * cols + i)]);
    return y;
}

std::vector<float> scale(std::span<const float> x, float s) {
    return map(x, [s](double v) { return v * s; });
}

std::vector<float> rope(std::span<const float> x, std::span<const int32_t> positions, rope_dims d) {
    std::vector<float> y(x.begin(), x.end());
    for (int64_t t = 0; t < d.n_tokens; ++t)
        for (int64_t h = 0; h < d.n_head; ++h) {
            const int64_t base = (t * d.n_head + h) * d.d_head;
            for (int64_t i = 0; i < d.n_rot / 2; ++i) {
                const double exponent = -2.0 * static_cast<double>(i) / static_cast<double>(d.n_rot);
                const double theta = positions[sz(t)] * d.freq_scale * std::pow(d.freq_base, exponent);
                const int64_t a = d.neox ? i : 2 * i;
                const int64_t b = d.neox ? i + d.n_rot / 2 : 2 * i + 1;
                const double x0 = x[sz(base + a)], x1 = x[sz(base + b)];
                y[sz(base + a)] = static_cast<float>(x0 * std::cos(theta) - x1 * std::sin(theta));
                y[sz(base + b)] = static_cast<float>(x0 * std::sin(theta) + x1 * std::cos(theta));
            }
        }
    return y;
}

std::vector<float> attention(std::span<const float> q, std::span<const float> k, std::span<const float> v,
                             attention_dims d) {
    std::vector<float> y(sz(d.n_tokens * d.n_head * d.d_head));
    const int64_t group = d.n_head / d.n_head_kv;
    for (int64_t t = 0; t < d.n_tokens; ++t)
        for (int64_t h = 0; h < d.n_head; ++h) {
            const int64_t g = h / group;
            const int64_t last = std::min(d.pos0 + t, d.n_kv - 1);  // last visible key
            std::vector<double> p(sz(last + 1));
            for (int64_t j = 0; j <= last; ++j) {
                double s = 0.0;
                for (int64_t e = 0; e < d.d_head; ++e)
                    s += static_cast<double>(q[sz((t * d.n_head + h) * d.d_head + e)]) *
                         k[sz((g * d.n_rows + j) * d.d_head + e)];
                p[sz(j)] = s * d.scale;
            }
            const double mx = *std::max_element(p.begin(), p.end());
            double sum = 0.0;
            for (double& s : p) sum += (s = std::exp(s - mx));
            for (int64_t e = 0; e < d.d_head; ++e) {
                double acc = 0.0;
                for (int64_t j = 0; j <= last; ++j) acc += p[sz(j)] / sum * v[sz((g * d.n_rows + j) * d.d_head + e)];
                y[sz((t * d.n_head + h) * d.d_head + e)] = static_cast<float>(acc);
            }
        }
    return y;
}

std::vector<float> conv2d(std::span<const float> x, std::span<const float> w, std::span<const float> bias,
                          conv2d_dims d) {
    const int64_t oh = d.oh(), ow = d.ow();
    std::vector<float> y(sz(d.n * d.c_out * oh * ow));
    for (int64_t b = 0; b < d.n; ++b)
        for (int64_t co = 0; co < d.c_out; ++co)
            for (int64_t oy = 0; oy < oh; ++oy)
                for (int64_t ox = 0; ox < ow; ++ox) {
                    double acc = param(bias, co, 0.0);
                    for (int64_t ci = 0; ci < d.c_in; ++ci)
                        for (int64_t ky = 0; ky < d.kh; ++ky)
                            for (int64_t kx = 0; kx < d.kw; ++kx) {
                                const int64_t iy = oy * d.stride + ky - d.pad, ix = ox * d.stride + kx - d.pad;
                                if (iy < 0 || iy >= d.h || ix < 0 || ix >= d.w) continue;  // zero padding
                                acc += static_cast<double>(x[sz(((b * d.c_in + ci) * d.h + iy) * d.w + ix)]) *
                                       w[sz(((co * d.c_in + ci) * d.kh + ky) * d.kw + kx)];
                            }
                    y[sz(((b * d.c_out + co) * oh + oy) * ow + ox)] = static_cast<float>(acc);
                }
    return y;
}

std::vector<float> permute(std::span<const float> x, std::span<const int64_t> dims, std::span<const int> perm) {
    std::vector<int64_t> y_dims(dims.size());
    for (size_t i = 0; i < dims.size(); ++i) y_dims[i] = dims[sz(perm[i])];
    std::vector<float> y(x.size());
    for (int64_t i = 0; i < product(y_dims); ++i) {
        const auto yi = unravel(i, y_dims);
        std::vector<int64_t> xi(dims.size());
        for (size_t d = 0; d < dims.size(); ++d) xi[sz(perm[d])] = yi[d];
        y[sz(i)] = x[sz(ravel(xi, dims))];
    }
    return y;
}

std::vector<float> concat(std::span<const float> a, std::span<const int64_t> a_dims, std::span<const float> b,
                          std::span<const int64_t> b_dims, int axis) {
    std::vector<int64_t> y_dims(a_dims.begin(), a_dims.end());
    y_dims[sz(axis)] += b_dims[sz(axis)];
    std::vector<float> y(sz(product(y_dims)));
    for (int64_t i = 0; i < product(y_dims); ++i) {
        auto idx = unravel(i, y_dims);
        if (idx[sz(axis)] < a_dims[sz(axis)]) {
            y[sz(i)] = a[sz(ravel(idx, a_dims))];
        } else {
            idx[sz(axis)] -= a_dims[sz(axis)];
            y[sz(i)] = b[sz(ravel(idx, b_dims))];
        }
    }
    return y;
}

std::vector<float> upsample_nearest(std::span<const float> x, int64_t planes, int64_t h, int64_t w, int64_t factor) {
    std::vector<float> y(sz(planes * h * factor * w * factor));
    for (int64_t p = 0; p < planes; ++p)
        for (int64_t oy = 0; oy < h * factor; ++oy)
            for (int64_t ox = 0; ox < w * factor; ++ox)
                y[sz((p * h * factor + oy) * w * factor + ox)] = x[sz((p * h + oy / factor) * w + ox / factor)];
    return y;
}

}  // namespace mm::ref
