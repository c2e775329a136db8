// How the fused kernels share work between threads: sequences (batch rows) never interact, so each
// thread takes one block of rows and runs the whole time loop for it, with no barrier per step.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "blas.h"
#include "isa.h"

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

// fn(ctx, tid) for tid in [0, nth): the calling thread and torch's inter-op pool (parallel.cpp).
void parallel_run(int nth, void (*fn)(void*, int), void* ctx);

// body(tid, block) on nth threads (inline when nth == 1).
template <typename F>
void for_each_block(int nth, int64_t N, F&& body) {
  if (nth == 1) {
    body(0, Block{0, N});
    return;
  }
  struct Ctx {
    std::remove_reference_t<F>* body;
    int nth;
    int64_t N;
  } ctx{&body, nth, N};
  parallel_run(
      nth,
      [](void* p, int tid) {
        Ctx* c = static_cast<Ctx*>(p);
        (*c->body)(tid, block_of(tid, c->nth, c->N));
      },
      &ctx);
}

// Row n is real at step t (sequences are left-aligned; no lengths means all real).
inline bool valid(const int64_t* lengths, int64_t t, int64_t n) {
  return lengths == nullptr || t < lengths[n];
}

template <typename S> inline void zero(S* p, int64_t n) { std::memset(p, 0, sizeof(S) * n); }

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

// One pass over the rows of D (R, G) for two products that would each read all of it (D is large and
// was streamed out to memory; dW_ih and dx, or layer norm's A and V): in blocks of rows that stay in L2,
// Y = D B (B (G, n); Y (R, n), optional) and Acc = D^T X (X (R, m); Acc (G, m)), the latter summed
// over per-thread partial sums. Without Y this is just the second product.
template <typename S>
void rows_pass(int64_t R, int64_t G, const S* D, const S* B, int64_t n, S* Y, const S* X, int64_t m,
               S* Acc) {
  const int nth = int(std::max<int64_t>(1, std::min<int64_t>(num_threads(), R / 64)));
  // about 256 KiB of D per block, and at least 4m rows so that the accumulating product is not
  // dominated by reading and writing Acc
  const int64_t blk = std::max<int64_t>({16, (int64_t(64) << 10) / G, 4 * m});
  std::vector<S> part(size_t(nth > 1 ? (nth - 1) * G * m : 0), S(0));
  for_each_block(nth, R, [&](int tid, Block b) {
    S* acc = tid == 0 ? Acc : part.data() + (tid - 1) * G * m;
    for (int64_t r = b.r0; r < b.r1; r += blk) {
      const int64_t rows = std::min(blk, b.r1 - r);
      if (Y != nullptr) gemm<S>(false, false, rows, n, G, S(1), D + r * G, G, B, n, S(0), Y + r * n, n);
      gemm<S>(true, false, G, m, rows, S(1), D + r * G, G, X + r * m, m, r == b.r0 ? S(0) : S(1), acc, m);
    }
  });
  for (int t = 1; t < nth; ++t) {
    const S* p = part.data() + (t - 1) * G * m;
    for (int64_t j = 0; j < G * m; ++j) Acc[j] += p[j];
  }
}

}  // namespace lstmkit
