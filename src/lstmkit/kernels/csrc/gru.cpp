// The GRU kernels declared in fused.h (equations: gru_step of lstmkit/cells/gru.py).
//
//   r = sigmoid(xr + b_ir + hr + b_hr)      z = sigmoid(xz + b_iz + hz + b_hz)
//   n = tanh(xn + b_in + r * (hn + b_hn))   h_t = (1 - z) n + z h_{t-1}
// with [hr | hz | hn] = (h_{t-1} * rec_mask) W_hh^T; the carried term z h_{t-1} uses the undropped
// state, and zoneout then keeps h_{t-1} with probability zone_h.
#include <algorithm>
#include <cstring>
#include <vector>

#include "blas.h"
#include "fused.h"
#include "pointwise.h"
#include "rows.h"

namespace lstmkit {
namespace {

template <typename S>
void forward_rows(const GruForward<S>& a, Block blk, const PackedB<S>& whh, const S* bih, const S* bhh) {
  const int64_t T = a.cfg.T, N = a.cfg.N, H = a.cfg.H, G3 = 3 * H;
  const int64_t r0 = blk.r0, rows = blk.r1 - blk.r0;
  if (rows <= 0) return;
  S* hw = scratch<S>(4, rows * G3);  // (rows, 3H) h W_hh^T of this step
  for (int64_t t = 0; t < T; ++t) {
    const S* hprev = a.h_all + (t * N + r0) * H;
    const S* hin = hprev;
    if (a.rec_mask != nullptr) {
      S* dst = a.h_in + (t * N + r0) * H;
      const S* mk = a.rec_mask + r0 * H;
#pragma omp simd
      for (int64_t j = 0; j < rows * H; ++j) dst[j] = hprev[j] * mk[j];
      hin = dst;
    }
    whh.mul(rows, hin, H, hw, G3, false);
    for (int64_t n = r0; n < blk.r1; ++n) {
      const int64_t row = t * N + n;
      S* g = a.gates + row * G3;  // in: x W_ih^T; out: [r | z | n]
      S* hn = a.hn + row * H;
      S* h = a.h_all + (row + N) * H;
      if (!valid(a.lengths, t, n)) {
        zero(g, G3);
        zero(hn, H);
        zero(h, H);
        continue;
      }
      const S* hp = a.h_all + row * H;
      const S* w = hw + (n - r0) * G3;
      const S* kh = a.zone_h ? a.zone_h + row * H : nullptr;
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        const S r = sigm<S>(g[j] + bih[j] + w[j] + bhh[j]);
        const S z = sigm<S>(g[H + j] + bih[H + j] + w[H + j] + bhh[H + j]);
        const S hnj = w[2 * H + j] + bhh[2 * H + j];
        const S nn = tanhx<S>(g[2 * H + j] + bih[2 * H + j] + r * hnj);
        const S hnew = (S(1) - z) * nn + z * hp[j];
        g[j] = r;
        g[H + j] = z;
        g[2 * H + j] = nn;
        hn[j] = hnj;
        h[j] = kh ? kh[j] * hp[j] + (S(1) - kh[j]) * hnew : hnew;
      }
    }
  }
}

template <typename S>
void backward_rows(const GruBackward<S>& b, S* dxw, S* dhw, Block blk, const PackedB<S>& whh,
                   S* dbih, S* dbhh) {
  const GruForward<S>& a = b.f;
  const int64_t T = a.cfg.T, N = a.cfg.N, H = a.cfg.H, G3 = 3 * H;
  const int64_t r0 = blk.r0, rows = blk.r1 - blk.r0;
  if (rows <= 0) return;
  S* dh = b.dh0 + r0 * H;  // running dL/dh_t, finally dL/dh0
  if (b.dh_n != nullptr) std::memcpy(dh, b.dh_n + r0 * H, sizeof(S) * rows * H);
  else zero(dh, rows * H);
  S* rec = scratch<S>(4, rows * H);
  for (int64_t t = T - 1; t >= 0; --t) {
    for (int64_t n = r0; n < blk.r1; ++n) {
      const int64_t row = t * N + n;
      S* dx = dxw + row * G3;
      S* dw = dhw + row * G3;
      if (!valid(a.lengths, t, n)) {
        zero(dx, G3);
        zero(dw, G3);
        continue;
      }
      S* dht = dh + (n - r0) * H;
      const S* g = a.gates + row * G3;
      const S* hn = a.hn + row * H;
      const S* hp = a.h_all + row * H;
      const S* dy = b.dy ? b.dy + row * H : nullptr;
      const S* kh = a.zone_h ? a.zone_h + row * H : nullptr;
      const S* dtr = b.dgates ? b.dgates + row * G3 : nullptr;  // trace gradients of r, z, n
      const S* dtz = b.dgates ? dtr + H : nullptr;
      const S* dtn = b.dgates ? dtr + 2 * H : nullptr;
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        const S r = g[j], z = g[H + j], nn = g[2 * H + j];
        const S d = dht[j] + (dy ? dy[j] : S(0));
        const S dnew = kh ? (S(1) - kh[j]) * d : d;
        const S dz = dnew * (hp[j] - nn) + (dtz ? dtz[j] : S(0));
        const S dn = dnew * (S(1) - z) + (dtn ? dtn[j] : S(0));
        const S dzn = dn * (S(1) - nn * nn);
        const S dr = dzn * hn[j] + (dtr ? dtr[j] : S(0));
        const S dzr = dr * r * (S(1) - r);
        const S dzz = dz * z * (S(1) - z);
        dx[j] = dzr;
        dx[H + j] = dzz;
        dx[2 * H + j] = dzn;
        dw[j] = dzr;
        dw[H + j] = dzz;
        dw[2 * H + j] = dzn * r;
        dht[j] = (kh ? kh[j] * d : S(0)) + dnew * z;  // direct share of dL/dh_{t-1}
      }
#pragma omp simd
      for (int64_t j = 0; j < G3; ++j) {
        dbih[j] += dx[j];
        dbhh[j] += dw[j];
      }
    }
    whh.mul(rows, dhw + (t * N + r0) * G3, G3, rec, H, false);  // dL/d(h_in) = dhw W_hh
    for (int64_t n = r0; n < blk.r1; ++n) {
      if (!valid(a.lengths, t, n)) continue;
      S* dht = dh + (n - r0) * H;
      const S* r = rec + (n - r0) * H;
      const S* mk = a.rec_mask ? a.rec_mask + n * H : nullptr;
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) dht[j] += mk ? r[j] * mk[j] : r[j];
    }
  }
}

}  // namespace

template <typename S>
void gru_forward(const GruForward<S>& a) {
  const int64_t T = a.cfg.T, N = a.cfg.N, I = a.cfg.I, H = a.cfg.H, G3 = 3 * H;
  project_rows<S>(true, T * N, I, G3, a.x, a.w_ih, a.gates);
  std::memcpy(a.h_all, a.h0, sizeof(S) * N * H);
  const int nth = threads_for(N);
  PackedB<S> whh(true, H, G3, a.w_hh, H, (N + nth - 1) / nth);
  std::vector<S> zeros(a.b_ih ? 0 : G3, S(0));
  const S* bih = a.b_ih ? a.b_ih : zeros.data();
  const S* bhh = a.b_hh ? a.b_hh : zeros.data();
  for_each_block(nth, N, [&](int, Block blk) { forward_rows<S>(a, blk, whh, bih, bhh); });
  for (int64_t n = 0; n < N; ++n) {
    const int64_t L = a.lengths ? a.lengths[n] : T;
    std::memcpy(a.h_n + n * H, a.h_all + (L * N + n) * H, sizeof(S) * H);
  }
}

template <typename S>
void gru_backward(const GruBackward<S>& b) {
  const GruForward<S>& a = b.f;
  const int64_t T = a.cfg.T, N = a.cfg.N, I = a.cfg.I, H = a.cfg.H, G3 = 3 * H, TN = T * N;
  S* dxw = scratch<S>(0, TN * G3);
  S* dhw = scratch<S>(1, TN * G3);
  const int nth = threads_for(N);
  PackedB<S> whh(false, G3, H, a.w_hh, H, (N + nth - 1) / nth);
  std::vector<S> accs(size_t(nth) * 2 * G3, S(0));
  for_each_block(nth, N, [&](int tid, Block blk) {
    S* acc = accs.data() + tid * 2 * G3;
    backward_rows<S>(b, dxw, dhw, blk, whh, acc, acc + G3);
  });
  for (int tid = 1; tid < nth; ++tid)
    for (int64_t j = 0; j < 2 * G3; ++j) accs[j] += accs[tid * 2 * G3 + j];
  if (b.db_ih) std::memcpy(b.db_ih, accs.data(), sizeof(S) * G3);
  if (b.db_hh) std::memcpy(b.db_hh, accs.data() + G3, sizeof(S) * G3);
  if (b.dw_hh) {
    const S* hin = a.rec_mask ? a.h_in : a.h_all;
    gemm<S>(true, false, G3, H, TN, S(1), dhw, G3, hin, H, S(0), b.dw_hh, H);
  }
  if (b.dw_ih) gemm<S>(true, false, G3, I, TN, S(1), dxw, G3, a.x, I, S(0), b.dw_ih, I);
  if (b.dx) project_rows<S>(false, TN, G3, I, dxw, a.w_ih, b.dx);
}

template void gru_forward<float>(const GruForward<float>&);
template void gru_forward<double>(const GruForward<double>&);
template void gru_backward<float>(const GruBackward<float>&);
template void gru_backward<double>(const GruBackward<double>&);

}  // namespace lstmkit
