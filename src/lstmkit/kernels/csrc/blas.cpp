// See blas.h. No torch headers here: this file only needs the BLAS symbols torch already loaded.
#include "blas.h"

#include <dlfcn.h>
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
  FallbackGemmF fallback_f = nullptr;
  FallbackGemmD fallback_d = nullptr;

  Blas() {
    if (std::getenv("LSTMKIT_NO_BLAS") != nullptr) return;  // test switch: exercise the ATen path
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
// GCC vector extensions: lowered to AVX-512, AVX2 or SSE as the build machine allows.
template <typename S> struct V64;
template <> struct V64<float> {
  typedef float v __attribute__((vector_size(64)));
  static constexpr int L = 16;
};
template <> struct V64<double> {
  typedef double v __attribute__((vector_size(64)));
  static constexpr int L = 8;
};
constexpr int kPanelVecs = 4;  // a panel is 4 vectors wide (64 floats, 32 doubles)

template <typename S, int MR>
inline void micro(int64_t K, const S* A, int64_t lda, const S* Bp, S* C, int64_t ldc, int64_t ncols,
                  bool acc) {
  using V = typename V64<S>::v;
  constexpr int L = V64<S>::L, W = kPanelVecs * L;
  V c[MR][kPanelVecs];
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < kPanelVecs; ++v) c[m][v] = V{};
  const V* b = reinterpret_cast<const V*>(Bp);
  for (int64_t kk = 0; kk < K; ++kk, b += kPanelVecs) {
    const V b0 = b[0], b1 = b[1], b2 = b[2], b3 = b[3];
    for (int m = 0; m < MR; ++m) {
      const S a = A[m * lda + kk];
      c[m][0] += a * b0;
      c[m][1] += a * b1;
      c[m][2] += a * b2;
      c[m][3] += a * b3;
    }
  }
  for (int m = 0; m < MR; ++m) {
    S* out = C + m * ldc;
    if (ncols == W) {
      if (acc) {
        for (int v = 0; v < kPanelVecs; ++v) {
          V o;
          std::memcpy(&o, out + v * L, sizeof(V));
          o += c[m][v];
          std::memcpy(out + v * L, &o, sizeof(V));
        }
      } else {
        std::memcpy(out, c[m], sizeof(V) * kPanelVecs);
      }
    } else {
      S tmp[W];
      std::memcpy(tmp, c[m], sizeof tmp);
      for (int64_t j = 0; j < ncols; ++j) out[j] = acc ? out[j] + tmp[j] : tmp[j];
    }
  }
}

template <typename S>
void own_mul(int64_t m, int64_t k, int64_t n, const S* A, int64_t lda, const S* panels, S* C,
             int64_t ldc, bool acc) {
  constexpr int W = kPanelVecs * V64<S>::L;
  for (int64_t p = 0; p * W < n; ++p) {
    const S* Bp = panels + p * k * W;
    const int64_t ncols = std::min<int64_t>(W, n - p * W);
    int64_t r = 0;
    for (; r + 4 <= m; r += 4) micro<S, 4>(k, A + r * lda, lda, Bp, C + r * ldc + p * W, ldc, ncols, acc);
    switch (m - r) {
      case 3: micro<S, 3>(k, A + r * lda, lda, Bp, C + r * ldc + p * W, ldc, ncols, acc); break;
      case 2: micro<S, 2>(k, A + r * lda, lda, Bp, C + r * ldc + p * W, ldc, ncols, acc); break;
      case 1: micro<S, 1>(k, A + r * lda, lda, Bp, C + r * ldc + p * W, ldc, ncols, acc); break;
      default: break;
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

int own_rows_limit() {
  static const int limit = [] {
    const char* e = std::getenv("LSTMKIT_OWN_GEMM_ROWS");
    return e ? std::atoi(e) : 8;
  }();
  return limit;
}

}  // namespace

const char* blas_backend() {
  if (blas().packed()) return "mkl-packed";
  if (blas().sgemm && blas().dgemm) return "blas";
  return "aten";
}

void set_fallback_gemm(FallbackGemmF f, FallbackGemmD d) {
  blas().fallback_f = f;
  blas().fallback_d = d;
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
  } else if (b.fallback_f) {
    b.fallback_f(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
  } else {
    throw std::runtime_error("lstmkit: no GEMM available (no BLAS symbols and no ATen fallback)");
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
  } else if (b.fallback_d) {
    b.fallback_d(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
  } else {
    throw std::runtime_error("lstmkit: no GEMM available (no BLAS symbols and no ATen fallback)");
  }
}

template <typename S>
PackedB<S>::PackedB(bool transB, int64_t k, int64_t n, const S* B, int64_t ldb, int64_t max_m)
    : transB_(transB), k_(k), n_(n), ldb_(ldb), B_(B) {
  if (k == 0 || n == 0) return;
  if (max_m <= own_rows_limit()) {
    own_max_m_ = max_m;
    constexpr int W = kPanelVecs * V64<S>::L;
    const int64_t np = (n + W - 1) / W;
    panels_ = aligned_array<S>(np * k * W);
    for (int64_t p = 0; p < np; ++p) {
      S* dst = panels_ + p * k * W;
      for (int64_t kk = 0; kk < k; ++kk)
        for (int64_t j = 0; j < W; ++j) {
          const int64_t col = p * W + j;
          dst[kk * W + j] = col < n ? (transB ? B[col * ldb + kk] : B[kk * ldb + col]) : S(0);
        }
    }
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
