// The matrix products of the fused kernels (row-major throughout, as torch tensors are).
//
// Which BLAS: the one torch itself links (MKL in the official x86 wheels, reached through dlsym on
// libtorch_cpu, so nothing extra is linked and torch's thread settings apply). If its Fortran
// sgemm_/dgemm_ cannot be found, a plain loop nest is used (correct, slow; no torch build we know of
// lacks them).
//
// The recurrent weights are multiplied once per time step, so PackedB packs them once per call, either
// into lstmkit's own panel layout for its register-blocked kernel (microkernel.h; the block is sized
// per instruction set, isa.h), or into MKL's format (cblas_sgemm_pack / cblas_sgemm_compute) where
// that exists (float32), else it calls plain GEMM. Which of the two runs a product of m rows is
// decided by measurement, not by a constant: at the first load of a build, kernels/build.py times
// both (gemm_seconds) over a ladder of row counts and hands the crossover to set_own_rows; the
// result is cached beside the library. LSTMKIT_OWN_GEMM_ROWS=<rows> overrides it (0: never own).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace lstmkit {

// C (m x n) = alpha * op(A) (m x k) . op(B) (k x n) + beta * C; op(X) = X^T when its flag is set.
// Row-major with leading dimensions lda, ldb, ldc. Threads: the BLAS's own (torch's setting); a call
// made inside one of lstmkit's parallel regions runs on the calling thread only.
template <typename S>
void gemm(bool transA, bool transB, int64_t m, int64_t n, int64_t k, S alpha, const S* A, int64_t lda,
          const S* B, int64_t ldb, S beta, S* C, int64_t ldc);

// op(B) (k x n), packed once, for many products C (m x n) (+)= A (m x k) . op(B) with m <= max_m.
template <typename S>
class PackedB {
 public:
  // force: -1 choose by the measured crossover, 0 the BLAS, 1 lstmkit's kernel
  PackedB(bool transB, int64_t k, int64_t n, const S* B, int64_t ldb, int64_t max_m, int force = -1);
  ~PackedB();
  PackedB(const PackedB&) = delete;
  PackedB& operator=(const PackedB&) = delete;
  // accumulate: C += A . op(B), else C = A . op(B). Safe to call from several threads at once.
  void mul(int64_t m, const S* A, int64_t lda, S* C, int64_t ldc, bool accumulate) const;
  // Rows per product that keep the product's output in L1 for the caller's next pass: one register
  // block with lstmkit's kernel; with the BLAS, as many as possible.
  // C = [A1 (m x k1) | A2 (m x (k - k1))] . op(B): one product over two operands side by side (the
  // step's x_t and h_{t-1} against [W_ih | W_hh]), without copying them together. With Cx, the two
  // products are kept apart: Cx = A1 . op(B)[:k1], C = A2 . op(B)[k1:] (both ldc). With Cx and sq
  // (m, 2 L), L the floats of the build's vector (isa.h), where own(m) (lstmkit's kernel): each
  // row's sums of squares of Cx and of C, lane-wise, are added to sq[r, :L] and sq[r, L:] (layer
  // norm's statistics, taken while the products are in registers); the BLAS path leaves sq alone.
  void mul_split(int64_t m, int64_t k1, const S* A1, int64_t lda1, const S* A2, int64_t lda2, S* C,
                 int64_t ldc, S* Cx = nullptr, S* sq = nullptr) const;
  // Whether products of m rows run on lstmkit's own kernel.
  bool own(int64_t m) const { return panels_ != nullptr && m <= own_max_m_; }
  int64_t chunk_rows() const;

 private:
  bool transB_;
  int64_t k_, n_, ldb_;
  const S* B_;
  S* panels_ = nullptr;  // lstmkit layout: (ceil(n / W), k, W), W = panel_width<S>() (isa.h)
  void* mkl_ = nullptr;  // MKL packed buffer (float32 only)
  int64_t own_max_m_ = 0;  // rows up to which lstmkit's own kernel is used
};

// What the GEMM layer uses, e.g. "avx2: lstmkit 6x16 kernel up to 8 rows, else MKL packed GEMM"; the
// BLAS being "MKL packed GEMM", "BLAS" (plain GEMM, no packed API) or "loops" (no BLAS symbols).
const char* blas_backend();
// The instruction set of this build: "avx512", "avx2" or "portable" (isa.h).
const char* isa_name();

// Seconds per product C (m x n) = A (m x k) . B^T (B (n x k)), float32, best of reps timed batches,
// on lstmkit's kernel (own) or the BLAS's packed GEMM; the calibration of kernels/build.py.
double gemm_seconds(int64_t m, int64_t k, int64_t n, bool own, int reps);
// The measured crossover: products with n output columns use lstmkit's kernel up to rows[i] rows,
// i the entry of cols nearest to n (log scale). Empty: only single rows.
void set_own_rows(const std::vector<int64_t>& cols, const std::vector<int64_t>& rows);

// Threads for lstmkit's own parallel loops: torch's intra-op setting (parallel.cpp).
int num_threads();
void set_num_threads_getter(int (*getter)());
// Whether the caller runs inside one of torch's (and so lstmkit's) parallel regions.
bool in_parallel_region();
// Whether this process is a child of fork() (parallel.cpp: no OpenMP regions, serial BLAS there).
bool forked_child();
// Called by kernels/build.py when the library is first loaded in a child of fork() (whose parent
// had not loaded it, so the pthread_atfork handler of parallel.cpp was not there to see the fork).
void mark_forked();
// Where the threads come from, e.g. "torch's intra-op pool (at::parallel_for, OpenMP)".
const char* threads_backend();

// Big work arrays and pooled tensors: big_size(bytes) is the size of the block big_alloc(bytes)
// returns, 64-byte aligned; from 2 MiB up it is 2 MiB aligned and advised as transparent huge pages
// (fewer TLB misses on the (T, N, 4H) buffers; LSTMKIT_THP=0: plain pages). Free with std::free.
size_t big_size(size_t bytes);
void* big_alloc(size_t bytes);

// The per-core L2 cache in bytes, as the C library reports it (sysconf), else 256 KiB.
size_t l2_cache_bytes();

// A scratch buffer that survives between calls so that big work arrays are not re-faulted on every
// call (one per thread that calls into the kernels). Contents are undefined on return.
template <typename S>
S* scratch(int slot, int64_t count);

}  // namespace lstmkit
