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
#include <type_traits>
#include <utility>

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

// load_vec and store_vec for T = Vec<S>::v, a plain load and store for T = S (for_vec's tail).
template <typename T, typename S> inline T load_as(const S* p) {
  if constexpr (std::is_same_v<T, S>) return *p;
  else return load_vec<S>(p);
}
template <typename T, typename S> inline void store_as(S* p, T v) {
  if constexpr (std::is_same_v<T, S>) *p = v;
  else store_vec<S>(p, v);
}

// Sum of a vector's lanes, as a tree: the upper half added to the lower until one lane is left
// (log2(L) shuffles and adds; a lane-by-lane sum is one chain of L dependent adds).
template <typename S, int B> struct VecBytes {
  typedef S v __attribute__((vector_size(B)));
};
template <typename S, int B> inline S hsum_bytes(typename VecBytes<S, B>::v v) {
  if constexpr (B == int(sizeof(S))) {
    return v[0];
  } else {
    typename VecBytes<S, B / 2>::v lo, hi;
    std::memcpy(&lo, &v, B / 2);
    std::memcpy(&hi, reinterpret_cast<const char*>(&v) + B / 2, B / 2);
    return hsum_bytes<S, B / 2>(lo + hi);
  }
}
template <typename S> inline S hsum(typename Vec<S>::v v) { return hsum_bytes<S, kVecBytes>(v); }

// A row loop written once as a generic lambda body(tag, j, u), run on whole vectors and then on the
// scalar tail: tag is a Vec<S>::v at j = 0, L, 2L, ... while a whole vector fits, then an S for each
// remaining element. u (a std::integral_constant) is j / L mod unroll on the vectors and 0 on the
// tail, so that a reduction can keep `unroll` independent accumulators (more adds in flight than one
// chain of dependent adds allows); the index is a constant, the accumulators stay in registers.
template <typename S, int unroll = 1, typename F>
inline void for_vec(int64_t n, F&& body) {
  using V = typename Vec<S>::v;
  constexpr int L = Vec<S>::L;
  int64_t j = 0;
  for (; j + unroll * L <= n; j += unroll * L)
    [&]<int... u>(std::integer_sequence<int, u...>) {
      (body(V{}, j + u * L, std::integral_constant<int, u>{}), ...);
    }(std::make_integer_sequence<int, unroll>{});
  for (; j + L <= n; j += L) body(V{}, j, std::integral_constant<int, 0>{});
  for (; j < n; ++j) body(S{}, j, std::integral_constant<int, 0>{});
}

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

// Ask for p[0, n) to be brought into the caches ahead of its use (one request per 64-byte line; a
// hint, never a fault): into L2 (prefetcht1), or with l1 into L1 as well (prefetcht0). For data that
// comes from memory, not from a recent write.
template <typename S> inline void prefetch(const S* p, int64_t n, bool l1 = false) {
  const char* c = reinterpret_cast<const char*>(p);
  for (int64_t b = 0; b < int64_t(sizeof(S)) * n; b += 64)
    l1 ? __builtin_prefetch(c + b, 0, 3) : __builtin_prefetch(c + b, 0, 2);  // locality: a constant
}

inline void stream_fence() {
#if defined(LSTMKIT_ISA_AVX512) || defined(LSTMKIT_ISA_AVX2)
  _mm_sfence();
#endif
}

}  // namespace lstmkit
