// Comparing a kernel's output with its reference, and the seeded inputs they both run on.
// Works on any two indexable, sized ranges of numbers: std::vector<float>, std::span<const float> (what
// tensor::f32() gives), std::vector<double>.
#pragma once

#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>
#include <ostream>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace mm::test {

// The worst element of a comparison: how far off, where, and the two values there.
// Prints as "2.4e-06 at 17 (got 0.51, want 0.5100024)", or "sizes differ (got 6, want 7)".
struct max_err {
    double value = 0.0;   // 0 when everything matches; +inf on a NaN or a size mismatch
    int64_t index = -1;   // flat index of the worst element; -1 when nothing differs
    double got = 0.0, want = 0.0;
    int64_t n_got = 0, n_want = 0;

    // The worst element's multi-index within row-major dims (outermost first): "[1, 0, 4]".
    std::string where(std::span<const int64_t> dims) const {
        if (index < 0) return "[]";
        std::vector<int64_t> idx(dims.size());
        int64_t i = index;
        for (size_t d = dims.size(); d-- > 0;) {
            idx[d] = dims[d] ? i % dims[d] : 0;
            i = dims[d] ? i / dims[d] : 0;
        }
        std::string s = "[";
        for (size_t d = 0; d < idx.size(); ++d) s += (d ? ", " : "") + std::to_string(idx[d]);
        return s + "]";
    }
};

inline std::ostream& operator<<(std::ostream& os, const max_err& e) {
    if (e.n_got != e.n_want) return os << "sizes differ (got " << e.n_got << ", want " << e.n_want << ")";
    if (e.index < 0) return os << "no difference";
    const auto precision = os.precision(9);
    os << e.value << " at " << e.index << " (got " << e.got << ", want " << e.want << ")";
    os.precision(precision);
    return os;
}

// max over i of err(got[i], want[i], i), where err returns a non-negative error (NaN counts as +inf).
template <class G, class W, class Err>
max_err max_err_by(const G& got, const W& want, Err err) {
    max_err worst;
    worst.n_got = static_cast<int64_t>(std::size(got));
    worst.n_want = static_cast<int64_t>(std::size(want));
    if (worst.n_got != worst.n_want) {
        worst.value = std::numeric_limits<double>::infinity();
        return worst;
    }
    for (int64_t i = 0; i < worst.n_got; ++i) {
        const double g = static_cast<double>(got[i]), w = static_cast<double>(want[i]);
        double e = err(g, w, i);
        if (std::isnan(e)) e = std::numeric_limits<double>::infinity();
        if (e > worst.value || (worst.index < 0 && e > 0)) worst = {e, i, g, w, worst.n_got, worst.n_want};
    }
    return worst;
}

// max |got - want|.
template <class G, class W>
max_err max_abs_err(const G& got, const W& want) {
    return max_err_by(got, want, [](double g, double w, int64_t) { return g == w ? 0.0 : std::fabs(g - w); });
}

// max |got - want| / max(|want|, floor). The floor keeps elements near zero, where any absolute error
// is a huge relative one, from deciding the result; 0 makes it purely relative.
template <class G, class W>
max_err max_rel_err(const G& got, const W& want, double floor = 0.0) {
    return max_err_by(got, want, [floor](double g, double w, int64_t) {
        if (g == w) return 0.0;
        const double denom = std::fmax(std::fabs(w), floor);
        return denom > 0 ? std::fabs(g - w) / denom : std::numeric_limits<double>::infinity();
    });
}

// max |got - want| / bound[i]: at most 1 when every element is within its own bound (per-element
// tolerances, such as an accumulation bound n * eps * sum |terms| worked out for each output).
template <class G, class W, class B>
max_err max_err_over_bound(const G& got, const W& want, const B& bound) {
    return max_err_by(got, want, [&bound](double g, double w, int64_t i) {
        if (g == w) return 0.0;
        const double b = static_cast<double>(bound[i]);
        return b > 0 ? std::fabs(g - w) / b : std::numeric_limits<double>::infinity();
    });
}

// n values uniform in [lo, hi), the same for the same seed on every run.
inline std::vector<float> random_floats(int64_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = dist(rng);
    return v;
}

// n values from a normal distribution (weights and activations look like this), reproducible per seed.
inline std::vector<float> random_gaussian(int64_t n, uint32_t seed, float sigma = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, sigma);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = dist(rng);
    return v;
}

}  // namespace mm::test
