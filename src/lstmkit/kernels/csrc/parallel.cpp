// Threads of the fused kernels: as many as torch's intra-op setting (torch.set_num_threads), on
// torch's own threads; the library starts none of its own. Two builds (kernels/build.py decides):
//  * torch's parallel backend is OpenMP and the compiler has OpenMP (g++ on Linux): at::parallel_for,
//    i.e. torch's intra-op pool itself. One pool for torch's ops and ours: the threads that torch's
//    last op leaves spinning are the ones the next kernel runs on. (A separate pool fights them for
//    the cores: on 2 cores a fused forward right after a torch op took 1.6x as long.)
//  * otherwise (no OpenMP in the compiler, e.g. Apple's clang; LSTMKIT_OPENMP=0): the calling thread
//    plus tasks on torch's inter-op pool (at::launch), which needs no OpenMP. at::parallel_for is not
//    used there: with torch's OpenMP backend it is an inline template whose `#pragma omp parallel`
//    needs -fopenmp in THIS build, and without it runs every task on the calling thread.
// The only file of the core besides binding.cpp that includes ATen.
#include <ATen/Parallel.h>
#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>

#include "blas.h"
#include "rows.h"

namespace lstmkit {

namespace {
int (*g_threads)() = nullptr;
thread_local bool g_in_region = false;  // this thread is running one of parallel_run's tasks

// A child of fork() cannot start an OpenMP region once its parent has started GNU OpenMP's pool: it
// waits for threads that were not copied (torch's own ops hang the same way unless the child calls
// torch.set_num_threads(1), as DataLoader workers do). Nor is torch's inter-op pool safe there: its
// new threads race to rebuild torch's thread pools and abort now and then ("Invalid thread pool!",
// about 1 child in 12). So a child runs the kernels on its calling thread only, with the BLAS held
// to that thread too (blas.cpp: SerialBlas).
bool g_forked = false;
const int g_atfork = pthread_atfork(nullptr, nullptr, [] { g_forked = true; });

// One parallel_run on the inter-op pool (a build without OpenMP): tasks are claimed from `next`, so
// only running threads ever hold a task, and the caller waits only for tasks that were claimed. Kept
// alive by shared_ptr: a pool thread that starts after everything is done finds nothing to claim and
// touches no caller state.
struct Run {
  int nth = 0;
  void (*fn)(void*, int) = nullptr;
  void* ctx = nullptr;
  std::atomic<int> next{0}, done{0};
  std::atomic_flag failed = ATOMIC_FLAG_INIT;
  std::exception_ptr error;
  std::mutex m;
  std::condition_variable cv;
};

void work(const std::shared_ptr<Run>& r) {
  const bool was = g_in_region;
  g_in_region = true;
  for (int tid; (tid = r->next.fetch_add(1)) < r->nth;) {
    try {
      r->fn(r->ctx, tid);
    } catch (...) {
      if (!r->failed.test_and_set()) r->error = std::current_exception();
    }
    if (r->done.fetch_add(1) + 1 == r->nth) {
      std::lock_guard<std::mutex> lock(r->m);
      r->cv.notify_all();
    }
  }
  g_in_region = was;
}
}  // namespace

int num_threads() { return std::max(1, g_threads ? g_threads() : at::get_num_threads()); }
void set_num_threads_getter(int (*getter)()) { g_threads = getter; }

bool in_parallel_region() { return g_in_region || at::in_parallel_region(); }
bool forked_child() { return g_forked; }
void mark_forked() { g_forked = true; }

const char* threads_backend() {
  if (g_forked)
    return "the calling thread only (a child of fork(): torch's pools cannot be restarted there)";
#ifdef _OPENMP
  return "torch's intra-op pool (at::parallel_for, OpenMP)";
#else
  return "torch's inter-op pool (at::launch; this build has no OpenMP)";
#endif
}

void parallel_run(int nth, void (*fn)(void*, int), void* ctx) {
  // Nested calls (a kernel inside one of these tasks or inside a torch parallel region) and a child
  // of fork() run inline.
  if (nth <= 1 || in_parallel_region() || g_forked) {
    for (int tid = 0; tid < nth; ++tid) fn(ctx, tid);
    return;
  }
#ifdef _OPENMP
  // grain 1: one task per thread of torch's pool (nth <= at::get_num_threads(), see rows.h)
  at::parallel_for(0, nth, 1, [&](int64_t b, int64_t e) {
    const bool was = g_in_region;
    g_in_region = true;
    for (int64_t tid = b; tid < e; ++tid) fn(ctx, int(tid));
    g_in_region = was;
  });
  return;
#endif
  // The calling thread and nth - 1 tasks on torch's inter-op pool claim the nth tasks.
  auto r = std::make_shared<Run>();
  r->nth = nth;
  r->fn = fn;
  r->ctx = ctx;
  for (int i = 1; i < nth; ++i) at::launch([r] { work(r); });
  work(r);
  {
    std::unique_lock<std::mutex> lock(r->m);
    r->cv.wait(lock, [&] { return r->done.load() == r->nth; });
  }
  if (r->error) std::rethrow_exception(r->error);
}

}  // namespace lstmkit
