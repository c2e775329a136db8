// Threads of the fused kernels: torch's intra-op pool through at::parallel_for, so the library needs
// no OpenMP of its own (no -fopenmp: Apple's clang has none), follows torch.set_num_threads and
// shares one pool with torch. The only file of the core besides binding.cpp that includes ATen.
#include <ATen/Parallel.h>

#include "blas.h"
#include "rows.h"

namespace lstmkit {

namespace {
int (*g_threads)() = nullptr;
}

int num_threads() { return std::max(1, g_threads ? g_threads() : at::get_num_threads()); }
void set_num_threads_getter(int (*getter)()) { g_threads = getter; }

bool in_parallel_region() { return at::in_parallel_region(); }

void parallel_run(int nth, void (*fn)(void*, int), void* ctx) {
  // grain 1 over nth items: torch hands each of (at most) nth threads one contiguous range; inside
  // another parallel region it runs inline on the calling thread
  at::parallel_for(0, nth, 1, [&](int64_t b, int64_t e) {
    for (int64_t tid = b; tid < e; ++tid) fn(ctx, int(tid));
  });
}

}  // namespace lstmkit
