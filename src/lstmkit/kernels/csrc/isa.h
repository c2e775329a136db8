// The instruction set this build targets, and the GEMM register block sized for it.
//
// The library is compiled for ONE instruction set, chosen at load time by kernels/build.py from the
// CPU's features (override: LSTMKIT_ISA=avx512|avx2|portable) and passed as compiler flags; the
// macros the compiler then defines pick the block here. Each ISA gets the register block that fills
// its vector registers without spilling (C = A . B, A broadcast one scalar at a time, B a panel of
// kPanelVecs vectors per k, C in kBlockRows x kPanelVecs accumulators):
//
//   ISA        registers     block (rows x floats)   accumulators + panel + broadcast
//   avx512     32 x 64 B     6 x 64                  24 + 4 + 1 = 29
//   avx2       16 x 32 B     6 x 16                  12 + 2 + 1 = 15
//   portable   16 x 16 B     4 x 8                    8 + 2 + 1 = 11   (SSE2 or NEON, GCC/Clang
//                                                                      vector extensions)
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__AVX512F__)
#define LSTMKIT_ISA_AVX512 1
#include <immintrin.h>
#elif defined(__AVX2__) && defined(__FMA__)
#define LSTMKIT_ISA_AVX2 1
#include <immintrin.h>
#else
#define LSTMKIT_ISA_PORTABLE 1
#endif

namespace lstmkit {

#if defined(LSTMKIT_ISA_AVX512)
inline constexpr const char* kIsaName = "avx512";
inline constexpr int kVecBytes = 64, kPanelVecs = 4, kBlockRows = 6;
// k-split accumulator sets for blocks of few rows (more FMA chains in flight than rows x vectors)
constexpr int ksplit(int rows) { return rows <= 2 ? 2 : 1; }
#elif defined(LSTMKIT_ISA_AVX2)
inline constexpr const char* kIsaName = "avx2";
inline constexpr int kVecBytes = 32, kPanelVecs = 2, kBlockRows = 6;
// FMA latency 4 on two ports: about 8 chains keep them busy; at most 12 accumulators (16 registers)
constexpr int ksplit(int rows) { return rows == 1 ? 4 : rows <= 3 ? 2 : 1; }
#else
inline constexpr const char* kIsaName = "portable";
inline constexpr int kVecBytes = 16, kPanelVecs = 2, kBlockRows = 4;
constexpr int ksplit(int rows) { return rows == 1 ? 4 : rows == 2 ? 2 : 1; }
#endif

// One vector register of S.
template <typename S> struct Vec {
  typedef S v __attribute__((vector_size(kVecBytes)));
  static constexpr int L = kVecBytes / int(sizeof(S));
};

// One vector of S loaded from / stored to any address (no alignment needed; an unaligned vector
// move in the ISA's width).
template <typename S> inline typename Vec<S>::v load_vec(const S* p) {
  typename Vec<S>::v v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename S> inline void store_vec(S* p, typename Vec<S>::v v) { std::memcpy(p, &v, sizeof v); }

// Columns of one packed B panel.
template <typename S> constexpr int panel_width() { return kPanelVecs * Vec<S>::L; }

// dst = src with non-temporal stores where the ISA has them (dst is a large buffer only read again
// much later, by backward: no read-for-ownership of its lines, no eviction of warm data). Callers
// issue stream_fence() before the data is read by another thread.
template <typename S> inline void stream_copy(S* dst, const S* src, int64_t n) {
#if defined(LSTMKIT_ISA_AVX512) || defined(LSTMKIT_ISA_AVX2)
  if constexpr (sizeof(S) == 4) {
    int64_t j = 0;
#if defined(LSTMKIT_ISA_AVX512)
    for (; j < n && (reinterpret_cast<uintptr_t>(dst + j) & 63) != 0; ++j) dst[j] = src[j];
    for (; j + 16 <= n; j += 16) _mm512_stream_ps(dst + j, _mm512_loadu_ps(src + j));
#else
    for (; j < n && (reinterpret_cast<uintptr_t>(dst + j) & 31) != 0; ++j) dst[j] = src[j];
    for (; j + 8 <= n; j += 8) _mm256_stream_ps(dst + j, _mm256_loadu_ps(src + j));
#endif
    for (; j < n; ++j) dst[j] = src[j];
    return;
  }
#endif
  std::memcpy(dst, src, sizeof(S) * n);
}

inline void stream_fence() {
#if defined(LSTMKIT_ISA_AVX512) || defined(LSTMKIT_ISA_AVX2)
  _mm_sfence();
#endif
}

}  // namespace lstmkit
