// Big work arrays and per-thread scratch buffers (blas.h). No torch headers here.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <new>

#include "blas.h"
#include "packing.h"

namespace lstmkit {

size_t l2_cache_bytes() {
  static const size_t b = [] {
    long v = -1;
#ifdef _SC_LEVEL2_CACHE_SIZE
    v = sysconf(_SC_LEVEL2_CACHE_SIZE);  // glibc (from cpuid on x86, sysfs elsewhere)
#endif
    return v > 0 ? size_t(v) : size_t(256) << 10;
  }();
  return b;
}

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
#ifdef MADV_HUGEPAGE
  if (huge) madvise(p, bytes, MADV_HUGEPAGE);  // advice only: plain pages if the kernel has none
#endif
  return p;
}

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
