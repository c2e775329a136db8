// Operators of the ISA layer (a fragment of the lstmkit library; the kernels' operators are in
// binding.cpp):
//   isa() -> str                          the instruction set this build targets (isa.h)
//   threads() -> str                      where the kernels' threads come from (parallel.cpp)
//   mark_forked() -> ()                   this process is a child of fork() (kernels/build.py)
//   gemm_seconds(m, k, n, own, reps)      seconds per float32 product (m x k) . (k x n), lstmkit's
//                                         kernel (own) or the BLAS's packed GEMM: the calibration
//   set_own_rows(cols, rows)              the measured crossover (blas.h: set_own_rows)
// kernels/build.py runs the calibration at the first load of a build and caches its result.
#include <torch/library.h>

#include <string>
#include <vector>

#include "blas.h"

namespace lstmkit {
namespace {

std::string isa_op() { return isa_name(); }
std::string threads_op() { return threads_backend(); }
void mark_forked_op() { mark_forked(); }

double gemm_seconds_op(int64_t m, int64_t k, int64_t n, bool own, int64_t reps) {
  TORCH_CHECK(m > 0 && k > 0 && n > 0 && reps > 0 && m * k <= (int64_t(1) << 26) &&
                  n * k <= (int64_t(1) << 26),
              "lstmkit gemm_seconds: expected positive sizes of at most 2^26 elements, got m=", m,
              " k=", k, " n=", n, " reps=", reps);
  return gemm_seconds(m, k, n, own, int(reps));
}

void set_own_rows_op(std::vector<int64_t> cols, std::vector<int64_t> rows) {
  TORCH_CHECK(cols.size() == rows.size(), "lstmkit set_own_rows: ", cols.size(), " column counts but ",
              rows.size(), " row counts");
  set_own_rows(cols, rows);
}

}  // namespace
}  // namespace lstmkit

TORCH_LIBRARY_FRAGMENT(lstmkit, m) {
  m.def("isa() -> str", &lstmkit::isa_op);
  m.def("threads() -> str", &lstmkit::threads_op);
  m.def("mark_forked() -> ()", &lstmkit::mark_forked_op);
  m.def("gemm_seconds(int m, int k, int n, bool own, int reps) -> float", &lstmkit::gemm_seconds_op);
  m.def("set_own_rows(int[] cols, int[] rows) -> ()", &lstmkit::set_own_rows_op);
}
