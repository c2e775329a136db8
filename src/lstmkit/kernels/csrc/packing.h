// Packing B once for many products: lstmkit's panel layout (microkernel.h) and aligned arrays.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "isa.h"

namespace lstmkit {

// B (k x n, row-major, ldb; op(B) = B^T when transB) into panels of W = panel_width<S>() columns:
// dst (ceil(n / W), k, W), zero padded.
template <typename S>
void pack_panels(bool transB, int64_t k, int64_t n, const S* B, int64_t ldb, S* dst) {
  constexpr int W = panel_width<S>();
  for (int64_t p = 0; p * W < n; ++p) {
    S* d = dst + p * k * W;
    const int64_t cols = std::min<int64_t>(W, n - p * W);
    for (int64_t kk = 0; kk < k; ++kk) {
      S* row = d + kk * W;
      if (transB) {
        for (int64_t j = 0; j < cols; ++j) row[j] = B[(p * W + j) * ldb + kk];
      } else {
        std::memcpy(row, B + kk * ldb + p * W, sizeof(S) * cols);
      }
      for (int64_t j = cols; j < W; ++j) row[j] = S(0);
    }
  }
}

// count elements of S, 64-byte aligned (free with std::free).
template <typename S>
S* aligned_array(int64_t count) {
  const size_t bytes = ((sizeof(S) * std::max<int64_t>(count, 1) + 63) / 64) * 64;
  void* p = std::aligned_alloc(64, bytes);
  if (p == nullptr) throw std::bad_alloc();
  return static_cast<S*>(p);
}

}  // namespace lstmkit
