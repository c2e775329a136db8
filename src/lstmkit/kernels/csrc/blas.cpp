// See blas.h: the BLAS torch links, found at run time, GEMM through it, and PackedB, which runs each
// product on lstmkit's own kernel (microkernel.h) or the BLAS by the measured crossover. No torch
// headers here: this file only needs the BLAS symbols torch already loaded.
#include "blas.h"

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "isa.h"
#include "microkernel.h"
#include "packing.h"

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

// Inside one of our parallel regions, and in a child of fork() (whose OpenMP pool is gone), MKL must
// run on the calling thread only.
struct SerialBlas {
  int old = -1;
  SerialBlas() {
    if (blas().set_local_threads && (in_parallel_region() || forked_child()))
      old = blas().set_local_threads(1);
  }
  ~SerialBlas() {
    if (old >= 0) blas().set_local_threads(old);
  }
};

// ---- which products run on lstmkit's own kernel ------------------------------------------------------
// The measured crossover (set_own_rows): (columns, rows) pairs; read by PackedB's constructor.
std::mutex g_rows_mutex;
std::vector<int64_t> g_cols, g_rows;

// Rows up to which products with n output columns use lstmkit's kernel. LSTMKIT_OWN_GEMM_ROWS
// overrides (0: never); without a measurement, single rows only (a BLAS call's overhead dominates).
int64_t own_rows_limit(int64_t n) {
  if (const char* e = std::getenv("LSTMKIT_OWN_GEMM_ROWS")) return std::atoll(e);
  std::lock_guard<std::mutex> lock(g_rows_mutex);
  if (g_cols.empty()) return 1;
  size_t best = 0;
  for (size_t i = 1; i < g_cols.size(); ++i)
    if (std::fabs(std::log(double(g_cols[i]) / double(n))) < std::fabs(std::log(double(g_cols[best]) / double(n))))
      best = i;
  return g_rows[best];
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
        for (int64_t j = 0; j < n; ++j) row[j] += a * b[j];
      }
    }
    S* c = C + i * ldc;
    for (int64_t j = 0; j < n; ++j) c[j] = alpha * row[j] + (beta == S(0) ? S(0) : beta * c[j]);
  }
}

}  // namespace

const char* blas_backend() {
  static thread_local std::string text;
  const std::string lib = blas().packed() ? "MKL packed GEMM"
                          : blas().sgemm && blas().dgemm ? "BLAS"
                                                          : "loops";
  const int64_t rows = own_rows_limit(256);
  text = std::string(kIsaName) + ": ";
  if (rows <= 0) {
    text += lib;
  } else {
    text += "lstmkit " + std::to_string(kBlockRows) + "x" + std::to_string(panel_width<float>()) +
            " kernel up to " + (rows >= (int64_t(1) << 30) ? std::string("any number of") : std::to_string(rows)) +
            " rows, else " + lib;
  }
  return text.c_str();
}

const char* isa_name() { return kIsaName; }

void set_own_rows(const std::vector<int64_t>& cols, const std::vector<int64_t>& rows) {
  std::lock_guard<std::mutex> lock(g_rows_mutex);
  g_cols.clear();
  g_rows.clear();
  for (size_t i = 0; i < cols.size() && i < rows.size(); ++i)
    if (cols[i] > 0) g_cols.push_back(cols[i]), g_rows.push_back(rows[i]);
}

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
PackedB<S>::PackedB(bool transB, int64_t k, int64_t n, const S* B, int64_t ldb, int64_t max_m, int force)
    : transB_(transB), k_(k), n_(n), ldb_(ldb), B_(B) {
  if (k == 0 || n == 0) return;
  constexpr int W = panel_width<S>();
  const int64_t np = (n + W - 1) / W;
  // own kernel: if measured faster for this many rows, and the last panel's padding wastes little (or
  // the product is so small that the BLAS call overhead would cost more)
  const bool own = force >= 0 ? force == 1
                              : max_m <= own_rows_limit(n) && (max_m <= 8 || np * W * 4 <= n * 5);
  if (own) {
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
                           S* C, int64_t ldc, S* Cx, S* sq) const {
  if (m == 0 || n_ == 0) return;
  if (own(m)) {
    own_mul<S>(m, k1, n_, A1, lda1, panels_, C, ldc, false, k_ - k1, A2, lda2, Cx, Cx ? sq : nullptr);
    return;
  }
  // the BLAS: two products on the two column blocks of op(B)
  const S* B2 = transB_ ? B_ + k1 : B_ + k1 * ldb_;
  gemm<S>(false, transB_, m, n_, k1, S(1), A1, lda1, B_, ldb_, S(0), Cx ? Cx : C, ldc);
  gemm<S>(false, transB_, m, n_, k_ - k1, S(1), A2, lda2, B2, ldb_, Cx ? S(0) : S(1), C, ldc);
}

template <typename S>
int64_t PackedB<S>::chunk_rows() const {
  return panels_ != nullptr ? kBlockRows : (int64_t(1) << 40);
}

template class PackedB<float>;
template class PackedB<double>;

double gemm_seconds(int64_t m, int64_t k, int64_t n, bool own, int reps) {
  std::vector<float> A(size_t(m * k)), B(size_t(n * k)), C(size_t(m * n));
  for (size_t i = 0; i < A.size(); ++i) A[i] = float(i % 7) * 0.01f - 0.03f;
  for (size_t i = 0; i < B.size(); ++i) B[i] = float(i % 5) * 0.01f - 0.02f;
  const PackedB<float> pb(true, k, n, B.data(), k, m, own ? 1 : 0);
  // one thread, as each thread's products inside the kernels' parallel loops
  struct OneThread {
    int old = -1;
    OneThread() {
      if (blas().set_local_threads) old = blas().set_local_threads(1);
    }
    ~OneThread() {
      if (old >= 0) blas().set_local_threads(old);
    }
  } one;
  // a batch of products of about 2e6 flops (~50 us at 40 GFLOP/s), best of reps batches
  const int64_t per = std::max<int64_t>(1, int64_t(2e6) / std::max<int64_t>(1, 2 * m * n * k));
  pb.mul(m, A.data(), k, C.data(), n, false);  // warm
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < per; ++i) pb.mul(m, A.data(), k, C.data(), n, i > 0);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, dt / double(per));
  }
  return best;
}

}  // namespace lstmkit
