// How the fused kernels share work between threads: sequences (batch rows) never interact, so each
// thread takes one block of rows and runs the whole time loop for it, with no barrier per step.
#pragma once

#include <omp.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "blas.h"

namespace lstmkit {

struct Block {
  int64_t r0, r1;  // rows [r0, r1) of the batch
};

// Threads for N rows: torch's intra-op setting, at most one per row.
inline int threads_for(int64_t N) {
  return int(std::max<int64_t>(1, std::min<int64_t>(num_threads(), N)));
}

inline Block block_of(int tid, int nth, int64_t N) {
  const int64_t base = N / nth, rem = N % nth;
  const int64_t r0 = tid * base + std::min<int64_t>(tid, rem);
  return {r0, r0 + base + (tid < rem ? 1 : 0)};
}

// body(tid, block) on nth threads (inline when nth == 1).
template <typename F>
void for_each_block(int nth, int64_t N, F&& body) {
  if (nth == 1) {
    body(0, Block{0, N});
    return;
  }
#pragma omp parallel num_threads(nth)
  {
    const int tid = omp_get_thread_num();
    body(tid, block_of(tid, nth, N));
  }
}

// Row n is real at step t (sequences are left-aligned; no lengths means all real).
inline bool valid(const int64_t* lengths, int64_t t, int64_t n) {
  return lengths == nullptr || t < lengths[n];
}

template <typename S> inline void zero(S* p, int64_t n) { std::memset(p, 0, sizeof(S) * n); }

// dst = src with non-temporal stores where the build has AVX-512 (dst is a large buffer only read
// again much later, by backward: no read-for-ownership of its lines, no eviction of warm data).
// Callers issue stream_fence() before the data is read by another thread.
template <typename S> inline void stream_copy(S* dst, const S* src, int64_t n) {
#ifdef __AVX512F__
  if constexpr (sizeof(S) == 4) {
    int64_t j = 0;
    for (; j < n && (reinterpret_cast<uintptr_t>(dst + j) & 63) != 0; ++j) dst[j] = src[j];
    for (; j + 16 <= n; j += 16) _mm512_stream_ps(dst + j, _mm512_loadu_ps(src + j));
    for (; j < n; ++j) dst[j] = src[j];
    return;
  }
#endif
  std::memcpy(dst, src, sizeof(S) * n);
}
inline void stream_fence() {
#ifdef __AVX512F__
  _mm_sfence();
#endif
}

// C (M x n) = A (M x k) . op(B) for the rows of all time steps at once (the input projections),
// with op(B) packed once and the rows split over the threads.
template <typename S>
void project_rows(bool transB, int64_t M, int64_t k, int64_t n, const S* A, const S* B, S* C) {
  const int nth = int(std::max<int64_t>(1, std::min<int64_t>(num_threads(), M / 64)));
  const PackedB<S> pb(transB, k, n, B, transB ? k : n, (M + nth - 1) / nth);
  for_each_block(nth, M, [&](int, Block blk) {
    pb.mul(blk.r1 - blk.r0, A + blk.r0 * k, k, C + blk.r0 * n, n, false);
  });
}

}  // namespace lstmkit
