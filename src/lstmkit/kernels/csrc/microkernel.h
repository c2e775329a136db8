// lstmkit's own GEMM for a few rows against a packed B: C (m x n) (+)= A (m x k) . B (k x n).
//
// B is packed once (packing.h) into panels of panel_width<S>() columns; each register block of
// kBlockRows rows x one panel is computed by micro() with its accumulators in vector registers
// (isa.h gives the block per instruction set). GCC/Clang vector extensions: the same source is
// AVX-512, AVX2+FMA, SSE or NEON code depending on the build's flags.
#pragma once

#include <algorithm>
#include <cstdint>

#include "isa.h"

namespace lstmkit {

// C (MR x ncols of one panel) (+)= A (MR x K) . panel (K x W). With few rows, the products of
// successive k go to ksplit(MR) separate accumulator sets so that enough FMA chains are in flight.
// A second operand segment (A2, lda2, K2 columns) may follow the first: the panel then holds K + K2
// rows, and C = [A | A2] . panel (the fused input and recurrent products of a time step). With Cx,
// the two products are kept apart: Cx = A . panel[:K], C = A2 . panel[K:] (layer norm needs both).
// With sq (layer norm's statistics, taken while the products are in registers), row m's squares are
// added up lane-wise: Cx's to sq[m * 2L, + L), C's to sq[m * 2L + L, + 2L) (L = Vec<S>::L; the
// panel's padding columns are zero, so whole vectors are summed).
template <typename S, int MR>
inline void micro(int64_t K, const S* A, int64_t lda, const S* Bp, S* C, int64_t ldc, int64_t ncols,
                  bool acc, int64_t K2 = 0, const S* A2 = nullptr, int64_t lda2 = 0, S* Cx = nullptr,
                  S* sq = nullptr) {
  using V = typename Vec<S>::v;
  constexpr int L = Vec<S>::L, NV = kPanelVecs, W = NV * L;
  constexpr int KS = ksplit(MR);
  V c[KS][MR][NV];
  auto clear = [&]() __attribute__((always_inline)) {
    for (int s = 0; s < KS; ++s)
      for (int m = 0; m < MR; ++m)
        for (int v = 0; v < NV; ++v) c[s][m][v] = V{};
  };
  clear();
  // unaligned vector loads and stores that never take the accumulators' address (which would keep
  // them in memory instead of registers)
  typedef V VU __attribute__((aligned(alignof(S))));
  auto store = [&](S* Cd, bool accd, S* sqd) __attribute__((always_inline)) {
    for (int s = 1; s < KS; ++s)
      for (int m = 0; m < MR; ++m)
        for (int v = 0; v < NV; ++v) c[0][m][v] += c[s][m][v];
    if (sqd != nullptr) {
      for (int m = 0; m < MR; ++m) {
        V q = c[0][m][0] * c[0][m][0];
        for (int v = 1; v < NV; ++v) q += c[0][m][v] * c[0][m][v];
        VU* o = reinterpret_cast<VU*>(sqd + m * 2 * L);
        *o = *o + q;
      }
    }
    for (int m = 0; m < MR; ++m) {
      S* out = Cd + m * ldc;
      if (ncols == W) {
        for (int v = 0; v < NV; ++v) {
          VU* o = reinterpret_cast<VU*>(out + v * L);
          *o = accd ? *o + c[0][m][v] : c[0][m][v];
        }
      } else {
        alignas(64) S tmp[W];
        for (int v = 0; v < NV; ++v) *reinterpret_cast<V*>(tmp + v * L) = c[0][m][v];
        for (int64_t j = 0; j < ncols; ++j) out[j] = accd ? out[j] + tmp[j] : tmp[j];
      }
    }
  };
  const V* b = reinterpret_cast<const V*>(Bp);
  for (int seg = 0; seg < 2; ++seg) {
    if (seg == 1 && Cx != nullptr) {  // the first product apart
      store(Cx, false, sq);
      clear();
    }
    const S* As = seg == 0 ? A : A2;
    const int64_t Ks = seg == 0 ? K : K2, ld = seg == 0 ? lda : lda2;
    int64_t kk = 0;
    for (; kk + KS <= Ks; kk += KS) {
      for (int s = 0; s < KS; ++s, b += NV) {
        V bv[NV];
        for (int v = 0; v < NV; ++v) bv[v] = b[v];
        for (int m = 0; m < MR; ++m) {
          const S a = As[m * ld + kk + s];
          for (int v = 0; v < NV; ++v) c[s][m][v] += a * bv[v];
        }
      }
    }
    for (; kk < Ks; ++kk, b += NV) {
      V bv[NV];
      for (int v = 0; v < NV; ++v) bv[v] = b[v];
      for (int m = 0; m < MR; ++m) {
        const S a = As[m * ld + kk];
        for (int v = 0; v < NV; ++v) c[0][m][v] += a * bv[v];
      }
    }
  }
  store(C, acc, sq != nullptr ? sq + L : nullptr);
}

// micro<S, mr> for a run-time mr <= MR.
template <typename S, int MR, typename... Args>
inline void micro_rows(int64_t mr, Args... args) {
  if constexpr (MR > 1) {
    if (mr < MR) return micro_rows<S, MR - 1>(mr, args...);
  }
  micro<S, MR>(args...);
}

// C (m x n) (+)= A (m x k) . panels (k x n).
// With k2 > 0: C (m x n) (+)= [A (m x k) | A2 (m x k2)] . panels (k + k2 x n); Cx and sq as micro's
// (sq (m, 2L), added to).
template <typename S>
void own_mul(int64_t m, int64_t k, int64_t n, const S* A, int64_t lda, const S* panels, S* C,
             int64_t ldc, bool acc, int64_t k2 = 0, const S* A2 = nullptr, int64_t lda2 = 0,
             S* Cx = nullptr, S* sq = nullptr) {
  constexpr int W = panel_width<S>();
  // row blocks of at most kBlockRows, as even as possible (32 rows in blocks of 6: 6 6 5 5 5 5, not
  // 6 6 6 6 6 2); each panel is read once and serves every row block
  const int64_t nb = (m + kBlockRows - 1) / kBlockRows;
  for (int64_t p = 0; p * W < n; ++p) {
    const S* Bp = panels + p * (k + k2) * W;
    const int64_t ncols = std::min<int64_t>(W, n - p * W);
    for (int64_t q = 0, r = 0; q < nb; ++q) {
      const int64_t mr = m / nb + (q < m % nb ? 1 : 0);
      const S* a = A + r * lda;
      const S* a2 = A2 == nullptr ? nullptr : A2 + r * lda2;
      S* c = C + r * ldc + p * W;
      S* cx = Cx == nullptr ? nullptr : Cx + r * ldc + p * W;
      S* sqr = sq == nullptr ? nullptr : sq + r * 2 * Vec<S>::L;
      micro_rows<S, kBlockRows>(mr, k, a, lda, Bp, c, ldc, ncols, acc, k2, a2, lda2, cx, sqr);
      r += mr;
    }
  }
}

}  // namespace lstmkit
