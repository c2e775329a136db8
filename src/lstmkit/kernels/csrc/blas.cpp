// See blas.h. No torch headers here: this file only needs the BLAS symbols torch already loaded.
#include "blas.h"
#include "pointwise.h"

#include <dlfcn.h>
#include <sys/mman.h>

#include <cstring>
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace lstmkit {
namespace {

// ---- the BLAS torch links, found at run time ------------------------------------------------------
using fgemm_s = void (*)(const char*, const char*, const int*, const int*, const int*, const float*,
                         const float*, const int*, const float*, const int*, const float*, float*,
                         const int*);
using fgemm_d = void (*)(const char*, const char*, const int*, const int*, const int*, const double*,
                         const double*, const int*, const double*, const int*, const double*, double*,
                         const int*);
using pack_size_t = size_t (*)(int, int, int, int);
using pack_t = void (*)(int, int, int, int, int, int, float, const float*, int, float*);
using compute_t = void (*)(int, int, int, int, int, int, const float*, int, const float*, int, float,
                           float*, int);
using set_local_threads_t = int (*)(int);

// CBLAS enum values (mkl_cblas.h)
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112, kPacked = 151, kBMatrix = 162;

struct Blas {
  fgemm_s sgemm = nullptr;
  fgemm_d dgemm = nullptr;
  pack_size_t pack_size = nullptr;
  pack_t pack = nullptr;
  compute_t compute = nullptr;
  set_local_threads_t set_local_threads = nullptr;

  Blas() {
    if (std::getenv("LSTMKIT_NO_BLAS") != nullptr) return;  // test switch: exercise the loop path
    void* handles[2] = {dlopen("libtorch_cpu.so", RTLD_LAZY | RTLD_NOLOAD), RTLD_DEFAULT};
    for (void* h : handles) {
      if (h == nullptr) continue;
      if (!sgemm) sgemm = reinterpret_cast<fgemm_s>(dlsym(h, "sgemm_"));
      if (!dgemm) dgemm = reinterpret_cast<fgemm_d>(dlsym(h, "dgemm_"));
      if (!pack_size) pack_size = reinterpret_cast<pack_size_t>(dlsym(h, "cblas_sgemm_pack_get_size"));
      if (!pack) pack = reinterpret_cast<pack_t>(dlsym(h, "cblas_sgemm_pack"));
      if (!compute) compute = reinterpret_cast<compute_t>(dlsym(h, "cblas_sgemm_compute"));
      if (!set_local_threads)
        set_local_threads = reinterpret_cast<set_local_threads_t>(dlsym(h, "MKL_Set_Num_Threads_Local"));
    }
    if (!(pack_size && pack && compute && sgemm)) pack_size = nullptr, pack = nullptr, compute = nullptr;
  }
  bool packed() const { return compute != nullptr; }
};

Blas& blas() {
  static Blas b;
  return b;
}

int (*g_threads)() = nullptr;

// Inside one of our parallel regions, MKL must run on the calling thread only.
struct SerialBlas {
  int old = -1;
  SerialBlas() {
    if (omp_in_parallel() && blas().set_local_threads) old = blas().set_local_threads(1);
  }
  ~SerialBlas() {
    if (old >= 0) blas().set_local_threads(old);
  }
};

// ---- lstmkit's own kernel for a few rows ------------------------------------------------------------
constexpr int kPanelVecs = 4;  // a panel is 4 vectors wide (64 floats, 32 doubles)

// C (MR x ncols of one panel) (+)= A (MR x K) . panel (K x W). With one or two rows, the products of
// even and odd k go to separate accumulators so that enough FMA chains are in flight.
// A second operand segment (A2, lda2, K2 columns) may follow the first: the panel then holds K + K2
// rows, and C = [A | A2] . panel (the fused input and recurrent products of a time step). With Cx,
// the two products are kept apart: Cx = A . panel[:K], C = A2 . panel[K:] (layer norm needs both).
template <typename S, int MR>
inline void micro(int64_t K, const S* A, int64_t lda, const S* Bp, S* C, int64_t ldc, int64_t ncols,
                  bool acc, int64_t K2 = 0, const S* A2 = nullptr, int64_t lda2 = 0, S* Cx = nullptr) {
  using V = typename V64<S>::v;
  constexpr int L = V64<S>::L, W = kPanelVecs * L;
  constexpr int KS = MR <= 2 ? 2 : 1;  // k-split sets of accumulators
  V c[KS][MR][kPanelVecs];
  for (int s = 0; s < KS; ++s)
    for (int m = 0; m < MR; ++m)
      for (int v = 0; v < kPanelVecs; ++v) c[s][m][v] = V{};
  // unaligned vector loads and stores that never take the accumulators' address (which would keep
  // them in memory instead of registers)
  typedef V VU __attribute__((aligned(alignof(S))));
  auto store = [&](S* Cd, bool accd) __attribute__((always_inline)) {
    for (int s = 1; s < KS; ++s)
      for (int m = 0; m < MR; ++m)
        for (int v = 0; v < kPanelVecs; ++v) c[0][m][v] += c[s][m][v];
    for (int m = 0; m < MR; ++m) {
      S* out = Cd + m * ldc;
      if (ncols == W) {
        for (int v = 0; v < kPanelVecs; ++v) {
          VU* o = reinterpret_cast<VU*>(out + v * L);
          *o = accd ? *o + c[0][m][v] : c[0][m][v];
        }
      } else {
        alignas(64) S tmp[W];
        for (int v = 0; v < kPanelVecs; ++v) *reinterpret_cast<V*>(tmp + v * L) = c[0][m][v];
        for (int64_t j = 0; j < ncols; ++j) out[j] = accd ? out[j] + tmp[j] : tmp[j];
      }
    }
  };
  const V* b = reinterpret_cast<const V*>(Bp);
  for (int seg = 0; seg < 2; ++seg) {
    if (seg == 1 && Cx != nullptr) {  // the first product apart
      store(Cx, false);
      for (int s = 0; s < KS; ++s)
        for (int m = 0; m < MR; ++m)
          for (int v = 0; v < kPanelVecs; ++v) c[s][m][v] = V{};
    }
    const S* As = seg == 0 ? A : A2;
    const int64_t Ks = seg == 0 ? K : K2, ld = seg == 0 ? lda : lda2;
    int64_t kk = 0;
    for (; kk + KS <= Ks; kk += KS) {
      for (int s = 0; s < KS; ++s, b += kPanelVecs) {
        const V b0 = b[0], b1 = b[1], b2 = b[2], b3 = b[3];
        for (int m = 0; m < MR; ++m) {
          const S a = As[m * ld + kk + s];
          c[s][m][0] += a * b0;
          c[s][m][1] += a * b1;
          c[s][m][2] += a * b2;
          c[s][m][3] += a * b3;
        }
      }
    }
    for (; kk < Ks; ++kk, b += kPanelVecs) {
      const V b0 = b[0], b1 = b[1], b2 = b[2], b3 = b[3];
      for (int m = 0; m < MR; ++m) {
        const S a = As[m * ld + kk];
        c[0][m][0] += a * b0;
        c[0][m][1] += a * b1;
        c[0][m][2] += a * b2;
        c[0][m][3] += a * b3;
      }
    }
  }
  store(C, acc);
}

// C (m x n) (+)= A (m x k) . panels (k x n).
// With k2 > 0: C (m x n) (+)= [A (m x k) | A2 (m x k2)] . panels (k + k2 x n).
template <typename S>
void own_mul(int64_t m, int64_t k, int64_t n, const S* A, int64_t lda, const S* panels, S* C,
             int64_t ldc, bool acc, int64_t k2 = 0, const S* A2 = nullptr, int64_t lda2 = 0,
             S* Cx = nullptr) {
  constexpr int W = kPanelVecs * V64<S>::L;
  // row blocks of at most 6, as even as possible (32 rows: 6 6 5 5 5 5, not 6 6 6 6 6 2); each
  // panel is read once and serves every row block
  const int64_t nb = (m + 5) / 6;
  for (int64_t p = 0; p * W < n; ++p) {
    const S* Bp = panels + p * (k + k2) * W;
    const int64_t ncols = std::min<int64_t>(W, n - p * W);
    for (int64_t q = 0, r = 0; q < nb; ++q) {
      const int64_t mr = m / nb + (q < m % nb ? 1 : 0);
      const S* a = A + r * lda;
      const S* a2 = A2 == nullptr ? nullptr : A2 + r * lda2;
      S* c = C + r * ldc + p * W;
      S* cx = Cx == nullptr ? nullptr : Cx + r * ldc + p * W;
      switch (mr) {
        case 6: micro<S, 6>(k, a, lda, Bp, c, ldc, ncols, acc, k2, a2, lda2, cx); break;
        case 5: micro<S, 5>(k, a, lda, Bp, c, ldc, ncols, acc, k2, a2, lda2, cx); break;
        case 4: micro<S, 4>(k, a, lda, Bp, c, ldc, ncols, acc, k2, a2, lda2, cx); break;
        case 3: micro<S, 3>(k, a, lda, Bp, c, ldc, ncols, acc, k2, a2, lda2, cx); break;
        case 2: micro<S, 2>(k, a, lda, Bp, c, ldc, ncols, acc, k2, a2, lda2, cx); break;
        default: micro<S, 1>(k, a, lda, Bp, c, ldc, ncols, acc, k2, a2, lda2, cx); break;
      }
      r += mr;
    }
  }
}

// B (k x n, row-major, ldb) into panels of W columns: dst (ceil(n / W), k, W), zero padded.
template <typename S>
void pack_panels(bool transB, int64_t k, int64_t n, const S* B, int64_t ldb, S* dst) {
  constexpr int W = kPanelVecs * V64<S>::L;
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

template <typename S>
S* aligned_array(int64_t count) {
  const size_t bytes = ((sizeof(S) * std::max<int64_t>(count, 1) + 63) / 64) * 64;
  void* p = std::aligned_alloc(64, bytes);
  if (p == nullptr) throw std::bad_alloc();
  return static_cast<S*>(p);
}

// Rows per product up to which lstmkit's own kernel is used (override with LSTMKIT_OWN_GEMM_ROWS,
// 0 = always the BLAS). With AVX-512 (32 vector registers) its 6 x 64 register block beats MKL's
// packed GEMM at every size measured (about 110 vs 90 GFLOP/s per core on the benchmark machine);
// with narrower vectors the block spills registers, so only single-row products use it.
int own_rows_limit() {
  if (const char* e = std::getenv("LSTMKIT_OWN_GEMM_ROWS")) return std::atoi(e);
#ifdef __AVX512F__
  return 1 << 30;
#else
  return 1;
#endif
}

// Row-major C = alpha op(A) op(B) + beta C by loops (only without any BLAS).
template <typename S>
void loop_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, S alpha, const S* A, int64_t lda,
               const S* B, int64_t ldb, S beta, S* C, int64_t ldc) {
  std::vector<S> row(n);
  for (int64_t i = 0; i < m; ++i) {
    std::fill(row.begin(), row.end(), S(0));
    for (int64_t kk = 0; kk < k; ++kk) {
      const S a = ta ? A[kk * lda + i] : A[i * lda + kk];
      if (tb) {
        for (int64_t j = 0; j < n; ++j) row[j] += a * B[j * ldb + kk];
      } else {
        const S* b = B + kk * ldb;
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) row[j] += a * b[j];
      }
    }
    S* c = C + i * ldc;
    for (int64_t j = 0; j < n; ++j) c[j] = alpha * row[j] + (beta == S(0) ? S(0) : beta * c[j]);
  }
}

}  // namespace

static bool use_thp() {
  static const bool thp = [] {
    const char* e = std::getenv("LSTMKIT_THP");
    return e == nullptr || std::strcmp(e, "0") != 0;
  }();
  return thp;
}

constexpr size_t kHugePage = size_t(2) << 20;

size_t big_size(size_t bytes) {
  if (use_thp() && bytes >= kHugePage) return (bytes + kHugePage - 1) / kHugePage * kHugePage;
  return (bytes + 4095) / 4096 * 4096;
}

void* big_alloc(size_t bytes) {
  bytes = big_size(bytes);
  const bool huge = use_thp() && bytes >= kHugePage;
  void* p = std::aligned_alloc(huge ? kHugePage : 64, bytes);
  if (p == nullptr) throw std::bad_alloc();
  if (huge) madvise(p, bytes, MADV_HUGEPAGE);  // advice only: plain pages if the kernel has none
  return p;
}

const char* blas_backend() {
  const bool own = own_rows_limit() > 8;
  if (blas().packed()) return own ? "lstmkit 6x64 kernel + MKL" : "MKL packed GEMM";
  if (blas().sgemm && blas().dgemm) return own ? "lstmkit 6x64 kernel + BLAS" : "BLAS";
  return own ? "lstmkit 6x64 kernel + loops" : "loops";
}

int num_threads() { return g_threads ? std::max(1, g_threads()) : 1; }
void set_num_threads_getter(int (*getter)()) { g_threads = getter; }

template <>
void gemm<float>(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* A,
                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // C = beta * C
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) C[i * ldc + j] = beta == 0.f ? 0.f : beta * C[i * ldc + j];
    return;
  }
  Blas& b = blas();
  if (b.sgemm) {
    SerialBlas serial;
    // row-major C = op(A) op(B)  <=>  column-major C^T = op(B)^T op(A)^T: swap the operands.
    const int M = int(n), N = int(m), K = int(k), LA = int(ldb), LB = int(lda), LC = int(ldc);
    b.sgemm(tb ? "T" : "N", ta ? "T" : "N", &M, &N, &K, &alpha, B, &LA, A, &LB, &beta, C, &LC);
  } else {
    loop_gemm<float>(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
  }
}

template <>
void gemm<double>(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* A,
                  int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) C[i * ldc + j] = beta == 0. ? 0. : beta * C[i * ldc + j];
    return;
  }
  Blas& b = blas();
  if (b.dgemm) {
    SerialBlas serial;
    const int M = int(n), N = int(m), K = int(k), LA = int(ldb), LB = int(lda), LC = int(ldc);
    b.dgemm(tb ? "T" : "N", ta ? "T" : "N", &M, &N, &K, &alpha, B, &LA, A, &LB, &beta, C, &LC);
  } else {
    loop_gemm<double>(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
  }
}

template <typename S>
PackedB<S>::PackedB(bool transB, int64_t k, int64_t n, const S* B, int64_t ldb, int64_t max_m)
    : transB_(transB), k_(k), n_(n), ldb_(ldb), B_(B) {
  if (k == 0 || n == 0) return;
  constexpr int W = kPanelVecs * V64<S>::L;
  const int64_t np = (n + W - 1) / W;
  // own kernel: if enabled for this many rows, and the last panel's padding wastes little (or the
  // product is so small that the BLAS call overhead would cost more)
  if (max_m <= own_rows_limit() && (max_m <= 8 || np * W * 4 <= n * 5)) {
    own_max_m_ = max_m;
    panels_ = aligned_array<S>(np * k * W);
    pack_panels<S>(transB, k, n, B, ldb, panels_);
    return;
  }
  if constexpr (sizeof(S) == 4) {
    Blas& b = blas();
    if (b.packed()) {
      const size_t bytes = b.pack_size(kBMatrix, int(max_m), int(n), int(k));
      mkl_ = aligned_array<char>(int64_t(bytes));
      b.pack(kRowMajor, kBMatrix, transB ? kTrans : kNoTrans, int(max_m), int(n), int(k), 1.0f,
             reinterpret_cast<const float*>(B), int(ldb), static_cast<float*>(mkl_));
    }
  }
}

template <typename S>
PackedB<S>::~PackedB() {
  std::free(panels_);
  std::free(mkl_);
}

template <typename S>
void PackedB<S>::mul(int64_t m, const S* A, int64_t lda, S* C, int64_t ldc, bool accumulate) const {
  if (m == 0 || n_ == 0) return;
  if (k_ == 0) {
    if (!accumulate)
      for (int64_t i = 0; i < m; ++i) std::memset(C + i * ldc, 0, sizeof(S) * n_);
    return;
  }
  if (panels_ != nullptr && m <= own_max_m_) {
    own_mul<S>(m, k_, n_, A, lda, panels_, C, ldc, accumulate);
    return;
  }
  if constexpr (sizeof(S) == 4) {
    if (mkl_ != nullptr) {
      SerialBlas serial;
      blas().compute(kRowMajor, kNoTrans, kPacked, int(m), int(n_), int(k_),
                     reinterpret_cast<const float*>(A), int(lda), static_cast<const float*>(mkl_),
                     int(n_), accumulate ? 1.0f : 0.0f, reinterpret_cast<float*>(C), int(ldc));
      return;
    }
  }
  gemm<S>(false, transB_, m, n_, k_, S(1), A, lda, B_, ldb_, accumulate ? S(1) : S(0), C, ldc);
}

template <typename S>
void PackedB<S>::mul_split(int64_t m, int64_t k1, const S* A1, int64_t lda1, const S* A2, int64_t lda2,
                           S* C, int64_t ldc, S* Cx) const {
  if (m == 0 || n_ == 0) return;
  if (panels_ != nullptr && m <= own_max_m_) {
    own_mul<S>(m, k1, n_, A1, lda1, panels_, C, ldc, false, k_ - k1, A2, lda2, Cx);
    return;
  }
  // the BLAS: two products on the two column blocks of op(B)
  const S* B2 = transB_ ? B_ + k1 : B_ + k1 * ldb_;
  gemm<S>(false, transB_, m, n_, k1, S(1), A1, lda1, B_, ldb_, S(0), Cx ? Cx : C, ldc);
  gemm<S>(false, transB_, m, n_, k_ - k1, S(1), A2, lda2, B2, ldb_, Cx ? S(0) : S(1), C, ldc);
}

template class PackedB<float>;
template class PackedB<double>;

template <typename S>
S* scratch(int slot, int64_t count) {
  struct Buf {
    S* p = nullptr;
    int64_t n = 0;
    ~Buf() { std::free(p); }
  };
  thread_local Buf bufs[8];
  Buf& b = bufs[slot];
  if (b.n < count) {
    std::free(b.p);
    b.p = aligned_array<S>(count);
    b.n = count;
  }
  return b.p;
}

template float* scratch<float>(int, int64_t);
template double* scratch<double>(int, int64_t);

}  // namespace lstmkit
