// Pointwise math of the fused kernels: activations by code, their derivatives, row reductions.
//
// Activation codes are those of lstmkit/cells/activations.py:
//   0 sigmoid   1 tanh   2 identity   3 relu   4 hard_sigmoid (relu6(x + 3) / 6)   5 softsign
//
// Every derivative is written in terms of the activation's OUTPUT y, so the backward pass needs only
// the saved activations (y' for sigmoid is y(1 - y), for tanh 1 - y^2, ...).
//
// float uses branch-free approximations that the compiler vectorises (exp: Cephes polynomial, ~1 ulp;
// tanh: Eigen's rational approximation, a few ulp); double uses libm, so float64 results (and
// gradcheck) see the exact functions.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "isa.h"

namespace lstmkit {

enum Act : int { kSigmoid = 0, kTanh = 1, kIdentity = 2, kRelu = 3, kHardSigmoid = 4, kSoftsign = 5 };

// ---- scalar building blocks ---------------------------------------------------------------------
// Always inlined: inside `omp simd` loops a call would stop the loop from being vectorised.
#define LSTMKIT_INLINE inline __attribute__((always_inline))

LSTMKIT_INLINE float exp_approx(float x) {
  x = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;  // x - n ln2, in two parts (Cephes)
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

LSTMKIT_INLINE float tanh_approx(float a) {
  // Eigen's generic_fast_tanh_float: odd 13/6 rational fit on [-7.905, 7.905], identity near 0.
  const float x = a < -7.90531110763549805f ? -7.90531110763549805f
                                            : (a > 7.90531110763549805f ? 7.90531110763549805f : a);
  const float x2 = x * x;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  p = p * x;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  const float t = p / q;
  return std::fabs(a) < 0.0004f ? a : t;
}

template <typename S> inline S sigm(S x);
template <> LSTMKIT_INLINE float sigm<float>(float x) { return 1.0f / (1.0f + exp_approx(-x)); }
template <> LSTMKIT_INLINE double sigm<double>(double x) { return 1.0 / (1.0 + std::exp(-x)); }

template <typename S> inline S tanhx(S x);
template <> LSTMKIT_INLINE float tanhx<float>(float x) { return tanh_approx(x); }
template <> LSTMKIT_INLINE double tanhx<double>(double x) { return std::tanh(x); }

template <typename S> LSTMKIT_INLINE S hard_sigm(S x) {
  S y = x + S(3);
  y = y < S(0) ? S(0) : (y > S(6) ? S(6) : y);
  return y * S(1.0 / 6.0);
}

template <typename S> LSTMKIT_INLINE S softsign(S x) { return x / (S(1) + std::fabs(x)); }

// ---- whole arrays ---------------------------------------------------------------------------------
// y[j] = act(x[j]) for j < n (in place allowed). The switch is outside the loops so each loop vectorises.
template <typename S>
__attribute__((noinline)) void act_apply(int code, const S* x, S* y, int64_t n) {
  switch (code) {
    case kSigmoid:
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) y[j] = sigm<S>(x[j]);
      break;
    case kTanh:
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) y[j] = tanhx<S>(x[j]);
      break;
    case kIdentity:
      if (x != y) std::memcpy(y, x, sizeof(S) * n);
      break;
    case kRelu:
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) y[j] = x[j] > S(0) ? x[j] : S(0);
      break;
    case kHardSigmoid:
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) y[j] = hard_sigm<S>(x[j]);
      break;
    default:  // kSoftsign
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) y[j] = softsign<S>(x[j]);
      break;
  }
}

// d[j] *= act'(x_j), written with y[j] = act(x_j) (the saved output).
template <typename S>
__attribute__((noinline)) void act_grad_mul(int code, const S* y, S* d, int64_t n) {
  switch (code) {
    case kSigmoid:
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) d[j] *= y[j] * (S(1) - y[j]);
      break;
    case kTanh:
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) d[j] *= S(1) - y[j] * y[j];
      break;
    case kIdentity:
      break;
    case kRelu:
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) d[j] = y[j] > S(0) ? d[j] : S(0);
      break;
    case kHardSigmoid:  // 1/6 strictly inside (-3, 3), as torch: there 0 < y < 1
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) d[j] = (y[j] > S(0) && y[j] < S(1)) ? d[j] * S(1.0 / 6.0) : S(0);
      break;
    default: {  // softsign: 1 / (1 + |x|)^2 = (1 - |y|)^2
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) {
        const S u = S(1) - std::fabs(y[j]);
        d[j] *= u * u;
      }
    }
  }
}

template <typename S> inline void fill(S* p, S v, int64_t n) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) p[j] = v;
}

// Sums of a row, vectorised (the reduction runs in lanes, then the lanes are added).
template <typename S> inline S row_sum(const S* x, int64_t n) {
  S s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < n; ++j) s += x[j];
  return s;
}

// LayerNorm statistics of one row (biased variance): returns rstd, sets mean. Two passes: the mean,
// then the sum of squared deviations from it, so that no shift can leave the variance to
// cancellation (a one-pass sum shifted by x[0] lost up to a factor of H of it where x[0] was an
// outlier of the row: float32, H = 4096, 8.5e-5 relative error in the outputs, found by a newcomer).
// The second pass in the build's vectors (isa.h), four independent accumulators.
template <typename S> inline S layer_norm_stats(const S* x, int64_t n, double eps, S* mean_out) {
  using V = typename Vec<S>::v;
  constexpr int L = Vec<S>::L;
  const S mean = row_sum<S>(x, n) / S(n);
  V q0{}, q1{}, q2{}, q3{};
  int64_t j = 0;
  for (; j + 4 * L <= n; j += 4 * L) {
    const V a = load_vec<S>(x + j) - mean, b = load_vec<S>(x + j + L) - mean;
    const V c = load_vec<S>(x + j + 2 * L) - mean, d = load_vec<S>(x + j + 3 * L) - mean;
    q0 += a * a;
    q1 += b * b;
    q2 += c * c;
    q3 += d * d;
  }
  for (; j + L <= n; j += L) {
    const V a = load_vec<S>(x + j) - mean;
    q0 += a * a;
  }
  S q = hsum<S>(q0 + q1 + (q2 + q3));
  for (; j < n; ++j) q += (x[j] - mean) * (x[j] - mean);
  *mean_out = mean;
  return S(1) / std::sqrt(q / S(n) + S(eps));
}

// st = [0, rstd_x, 0, rstd_y] of two rows of n, of mean 0, from their sums of squares qx, qy.
template <typename S> inline void projection_st(S qx, S qy, int64_t n, double eps, S* st) {
  st[0] = S(0);
  st[1] = S(1) / std::sqrt(qx / S(n) + S(eps));
  st[2] = S(0);
  st[3] = S(1) / std::sqrt(qy / S(n) + S(eps));
}

// Layer norm's statistics of the step's two projections x W_ih^T and h W_hh^T (both still in L1),
// rows of n: st = [0, rstd_x, 0, rstd_y]. The fused kernels form both products with centred weights
// (centre_rows), so each row has mean 0 (up to the rounding of the centred weights' entries) and its
// variance is its mean square: rstd = 1 / sqrt(mean(x^2) + eps). Two accumulators per sum.
template <typename S> inline void projection_rstd2(const S* x, const S* y, int64_t n, double eps, S* st) {
  using V = typename Vec<S>::v;
  V vqx[2] = {}, vqy[2] = {};
  S qx = 0, qy = 0;
  for_vec<S, 2>(n, [&](auto tag, int64_t j, auto u) __attribute__((always_inline)) {
    using T = decltype(tag);
    const T a = load_as<T>(x + j), b = load_as<T>(y + j);
    if constexpr (std::is_same_v<T, S>) {
      qx += a * a;
      qy += b * b;
    } else {
      vqx[u] += a * a;
      vqy[u] += b * b;
    }
  });
  projection_st<S>(qx + hsum<S>(vqx[0] + vqx[1]), qy + hsum<S>(vqy[0] + vqy[1]), n, eps, st);
}

// projection_rstd2 from the lane-wise sums of squares of the two rows, sq = [x's (L) | y's (L)]
// (PackedB::mul_split takes them while the products are in registers).
template <typename S> inline void projection_rstd_sq(const S* sq, int64_t n, double eps, S* st) {
  projection_st<S>(hsum<S>(load_vec<S>(sq)), hsum<S>(load_vec<S>(sq + Vec<S>::L)), n, eps, st);
}

// Layer norm's projections through centred weights. LayerNorm is invariant to a shift of its row,
// and the mean of a row of h W^T over its R = 4H outputs is h . w_bar (w_bar the mean of W's rows),
// so LN(h W^T) = LN(h Wc^T) with Wc = W - 1 w_bar^T: every row of h Wc^T has mean 0, the forward
// needs only its mean square (projection_rstd2), and the backward drops the terms that the mean
// contributes (the gradient at the product differs by a multiple of 1 per row, which Wc maps to 0).
// The parameter is W; its gradient is the centred one, dW = dWc - 1 mean_rows(dWc)^T (the chain rule
// through Wc = (I - 1 1^T / R) W), which is this same function applied to dWc.
// centred_copy writes Wc = W - 1 w_bar^T for W (rows, cols) into dst (row stride ldd), in one pass
// from W (the forward writes it straight into its [W_ih | W_hh] operand); dst may be W itself with
// ldd = cols (centre_rows). The means are summed in double and each entry is centred in double, then
// rounded once: with a large common component c in W's rows (the weights are any the user sets), a
// float sum's error, about ulp(rows * c), would stay behind as a common component of every centred
// row, and the forward, which takes the products' means as 0, would normalise it as signal (found by
// a newcomer's test: every entry 5.7, H = 64, the outputs off by 0.17). Centred in double, each row's
// mean is 0 up to the rounding of its own entries.
template <typename S>
inline void centred_copy(const S* W, int64_t rows, int64_t cols, S* dst, int64_t ldd) {
  std::vector<double> mean(size_t(cols), 0.0);
  double* mu = mean.data();
  for (int64_t r = 0; r < rows; ++r) {
    const S* w = W + r * cols;
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) mu[c] += double(w[c]);
  }
  const double inv = 1.0 / double(rows);
#pragma omp simd
  for (int64_t c = 0; c < cols; ++c) mu[c] *= inv;
  for (int64_t r = 0; r < rows; ++r) {
    const S* w = W + r * cols;
    S* d = dst + r * ldd;
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) d[c] = S(double(w[c]) - mu[c]);
  }
}

// Centres the columns of W (rows, cols) over its rows, in place.
template <typename S> inline void centre_rows(S* W, int64_t rows, int64_t cols) {
  centred_copy<S>(W, rows, cols, W, cols);
}

// LayerNorm of one row without gain, in place: x <- (x - mean) * rstd; returns rstd.
template <typename S> inline S layer_norm_row(S* x, int64_t n, double eps) {
  S mean;
  const S rstd = layer_norm_stats<S>(x, n, eps, &mean);
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) x[j] = (x[j] - mean) * rstd;
  return rstd;
}

// Backward of xhat = LN(x) (any gain already folded into g): given g = dL/dxhat and xhat,
// dL/dx = rstd * (g - mean(g) - xhat * mean(g * xhat)). Writes dx (may alias g).
template <typename S>
inline void layer_norm_row_backward(const S* g, const S* xhat, S rstd, S* dx, int64_t n) {
  S s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
  for (int64_t j = 0; j < n; ++j) {
    s1 += g[j];
    s2 += g[j] * xhat[j];
  }
  const S m1 = s1 / S(n), m2 = s2 / S(n);
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) dx[j] = rstd * (g[j] - m1 - xhat[j] * m2);
}

}  // namespace lstmkit
