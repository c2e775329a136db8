// The LSTM forward declared in fused.h: the whole sequence of one layer and direction, every option.
//
// Rows (sequences) never interact, so each thread owns a block of rows for the whole time loop
// (rows.h); per step one product with the packed recurrent weights (blas.h) and the pointwise pass of
// lstm_cell.h.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "blas.h"
#include "fused.h"
#include "pointwise.h"
#include "rows.h"
#include "lstm_cell.h"

namespace lstmkit {
namespace {

// xin: whh is [W_ih | W_hh] packed together, and each step's product takes x_t and h_{t-1} at once
// (x W_ih^T was not computed beforehand).
template <typename S>
void forward_rows(const LstmForward<S>& a, Block blk, const PackedB<S>& whh, const PackedB<S>* whr,
                  const PackedB<S>* wgr, const S* zero_bias, bool xin) {
  const LstmConfig& k = a.cfg;
  const int64_t T = k.T, N = k.N, H = k.H, P = k.P, G4 = 4 * H, H3 = 3 * H;
  const int64_t r0 = blk.r0, rows = blk.r1 - blk.r0;
  if (rows <= 0) return;
  const bool ln = k.flags & kLayerNorm, fgr = k.flags & kGateRecurrence, proj = a.w_hr != nullptr;
  const bool fast = fast_path<S>(k);
  const bool peep = a.w_peep != nullptr, coupled = k.flags & kCoupled;
  const S* bias = a.bias != nullptr ? a.bias : zero_bias;
  S* R = fgr ? scratch<S>(4, rows * H3) : nullptr;  // (rows, 3H) W_gr a_{t-1}
  // The rows are processed in chunks: the chunk's h W_hh^T (chunk, 4H), then at once its pointwise
  // pass, so the product is still in L1 when it is read (a warm buffer, reused; with layer norm the
  // product is kept for backward instead).
  const int64_t nch = (rows + std::min(rows, whh.chunk_rows()) - 1) / std::min(rows, whh.chunk_rows());
  // With layer norm the raw projections xw, hw are kept for backward, unless this is a forward-only
  // call (a.hw null): then they too live in warm per-thread buffers of one chunk.
  // When they are kept, the chunk's products still go to the warm buffers first and are streamed
  // out to the kept tensors after its pointwise pass (non-temporal stores: no read-for-ownership).
  // xw is kept only for a backward that runs the input side's LayerNorm backward in its loop (without
  // kInputGrad); with xin and no xw to keep, it too lives in a warm per-thread buffer.
  const bool keep_ln = ln && a.hw != nullptr, keep_xw = ln && a.xw != nullptr;
  const bool stream = keep_ln;
  S* hw_step = scratch<S>(6, ((rows + nch - 1) / nch) * G4);
  constexpr int64_t L2 = 2 * Vec<S>::L;
  S* tmp = scratch<S>(5, H + (ln && xin ? ((rows + nch - 1) / nch) * L2 : 0));
  S* sq = tmp + H;  // (chunk, 2L) layer norm's sums of squares from the step's product (mul_split)
  S* xw_step = ln && xin ? scratch<S>(7, ((rows + nch - 1) / nch) * G4) : nullptr;

  for (int64_t t = 0; t < T; ++t) {
    const S* hprev = a.h_all + (t * N + r0) * P;  // h_{t-1} of this block (rows, P)
    const S* hin = hprev;
    if (a.rec_mask != nullptr) {  // variational dropout: the W_hh operand is h_{t-1} * mask
      S* dst = a.h_in + (t * N + r0) * P;
      const S* mk = a.rec_mask + r0 * P;
#pragma omp simd
      for (int64_t j = 0; j < rows * P; ++j) dst[j] = hprev[j] * mk[j];
      hin = dst;
    }
    for (int64_t q = 0, c0 = r0; q < nch; ++q) {
      const int64_t cr = rows / nch + (q < rows % nch ? 1 : 0);  // rows [c0, c0 + cr)
      S* hw_rows = hw_step;
      // xw of the chunk: kept, or (forward only) the warm buffer, or the buffer of all steps
      S* xw_rows = !ln ? nullptr : xw_step != nullptr ? xw_step : a.xw + (t * N + c0) * G4;
      const bool have_sq = ln && xin && whh.own(cr);  // layer norm's sums of squares from the product
      if (have_sq) zero(sq, cr * L2);
      if (xin)  // with layer norm, x_t W_ih^T goes apart into xw
        whh.mul_split(cr, k.I, a.x + (t * N + c0) * k.I, k.I, hin + (c0 - r0) * P, P, hw_rows, G4,
                      xw_rows, have_sq ? sq : nullptr);
      else whh.mul(cr, hin + (c0 - r0) * P, P, hw_rows, G4, false);
      if (fgr) wgr->mul(cr, a.a + (t * N + c0) * H3, H3, R + (c0 - r0) * H3, H3, false);

      if (ln) {  // the chunk's statistics first: independent rows, so their reductions overlap
        for (int64_t n = c0; n < c0 + cr; ++n) {
          if (!valid(a.lengths, t, n)) {  // padding: zeros (returned, and read by nothing)
            zero(a.stats + (t * N + n) * 6, 6);
            continue;
          }
          if (have_sq) projection_rstd_sq<S>(sq + (n - c0) * L2, G4, kLnEps, a.stats + (t * N + n) * 6);
          else projection_rstd2<S>(xw_rows + (n - c0) * G4, hw_rows + (n - c0) * G4, G4, kLnEps,
                                   a.stats + (t * N + n) * 6);
        }
      }
      for (int64_t n = c0; n < c0 + cr; ++n) {
        const int64_t row = t * N + n;
        S* z = a.gates + row * G4;
        S* cz = a.c + row * H;
        S* cn = a.c_new + row * H;
        S* m = proj ? a.m + row * H : a.h_all + (row + N) * P;
        if (!valid(a.lengths, t, n)) {  // padding: state carried (read from the last real step), zeros out
          zero(z, G4);
          zero(cz, H);
          if (cn != cz) zero(cn, H);
          zero(m, H);
          if (proj) zero(a.h_all + (row + N) * P, P);
          if (fgr) zero(a.a + (row + N) * H3, H3);
          continue;
        }
        const S* cp = t == 0 ? a.c0 + n * H : a.c + (row - N) * H;
        S* st = ln ? a.stats + row * 6 : nullptr;
        const S* xw = ln ? xw_rows + (n - c0) * G4 : nullptr;  // raw projections (layer norm)
        const S* hw = hw_rows + (n - c0) * G4;
        if constexpr (sizeof(S) == 4) if (fast) {
#define LSTMKIT_FWD(PE, CO, LN)                                                                    \
    cell_forward_fast<S, PE, CO, LN>(H, z, bias, cp, a.w_peep, cn, m, xw, hw, a.ln_ih, a.ln_hh, st)
#define LSTMKIT_FWDX(PE, CO)                                                                      \
    cell_forward_fast<S, PE, CO, false, true>(H, z, bias, cp, a.w_peep, cn, m, xw, hw, a.ln_ih, a.ln_hh, \
                                              st)
          if (ln) {
            if (peep) coupled ? LSTMKIT_FWD(true, true, true) : LSTMKIT_FWD(true, false, true);
            else coupled ? LSTMKIT_FWD(false, true, true) : LSTMKIT_FWD(false, false, true);
          } else {
            if (xin) {
              if (peep) coupled ? LSTMKIT_FWDX(true, true) : LSTMKIT_FWDX(true, false);
              else coupled ? LSTMKIT_FWDX(false, true) : LSTMKIT_FWDX(false, false);
            } else {
              if (peep) coupled ? LSTMKIT_FWD(true, true, false) : LSTMKIT_FWD(true, false, false);
              else coupled ? LSTMKIT_FWD(false, true, false) : LSTMKIT_FWD(false, false, false);
            }
          }
#undef LSTMKIT_FWD
#undef LSTMKIT_FWDX
          if (ln)  // the cell's layer norm (lstm_cell.h; its statistics were taken in the gate loop)
            cell_ln_output<S>(H, cn, z + 3 * H, st + 4, a.ln_cw, a.ln_cb, m);
        }
        if (!fast) {
          if (ln) {  // z = LN(x W_ih^T) g_ih + LN(h W_hh^T) g_hh (+ b in the cell); xw, hw have mean 0
            const S rx = st[1], rh = st[3];
#pragma omp simd
            for (int64_t j = 0; j < G4; ++j) z[j] = xw[j] * rx * a.ln_ih[j] + hw[j] * rh * a.ln_hh[j];
          } else if (xin) {  // hw = x W_ih^T + h W_hh^T already
            std::memcpy(z, hw, sizeof(S) * G4);
          } else {  // z = x W_ih^T + h W_hh^T (+ b in the cell)
#pragma omp simd
            for (int64_t j = 0; j < G4; ++j) z[j] += hw[j];
          }
          cell_forward_generic<S>(k, z, a.bias, cp, a.w_peep, fgr ? R + (n - r0) * H3 : nullptr,
                                  a.ln_cw, a.ln_cb, cn, m, st ? st + 4 : nullptr, tmp);
        }
        if (a.zone_c != nullptr) {  // zoneout: c_t = k c_{t-1} + (1 - k) c_t
          const S* kc = a.zone_c + row * H;
#pragma omp simd
          for (int64_t j = 0; j < H; ++j) cz[j] = kc[j] * cp[j] + (S(1) - kc[j]) * cn[j];
        }
        if (fgr) {  // a_t = [i; f; o]
          S* an = a.a + (row + N) * H3;
          std::memcpy(an, z, sizeof(S) * 2 * H);
          std::memcpy(an + 2 * H, z + 3 * H, sizeof(S) * H);
        }
      }
      if (stream) {
        stream_copy(a.hw + (t * N + c0) * G4, hw_rows, cr * G4);
        if (xw_step != nullptr && keep_xw) stream_copy(a.xw + (t * N + c0) * G4, xw_rows, cr * G4);
      }
      c0 += cr;
    }
    S* hn = a.h_all + ((t + 1) * N + r0) * P;  // (rows, P)
    if (proj) whr->mul(rows, a.m + (t * N + r0) * H, H, hn, P, false);  // h_t = m W_hr^T
    if (a.zone_h != nullptr) {
      for (int64_t n = r0; n < blk.r1; ++n) {
        if (!valid(a.lengths, t, n)) continue;
        const S* kh = a.zone_h + (t * N + n) * P;
        const S* hp = a.h_all + (t * N + n) * P;
        S* h = a.h_all + ((t + 1) * N + n) * P;
#pragma omp simd
        for (int64_t j = 0; j < P; ++j) h[j] = kh[j] * hp[j] + (S(1) - kh[j]) * h[j];
      }
    }
  }
  if (stream) stream_fence();
}

}  // namespace

template <typename S>
void lstm_forward(const LstmForward<S>& a_in) {
  LstmForward<S> a = a_in;
  const LstmConfig& k = a.cfg;
  const int64_t T = k.T, N = k.N, I = k.I, H = k.H, P = k.P, G4 = 4 * H, H3 = 3 * H;
  const bool ln = k.flags & kLayerNorm, fgr = k.flags & kGateRecurrence;
  const int nth = threads_for(N);
  const int64_t max_rows = (N + nth - 1) / nth;
  // 1. Where lstmkit's own kernel runs the per-step product: [W_ih | W_hh] packed together, and each
  // step computes x_t W_ih^T + h_{t-1} W_hh^T in one product (no pass over a (T, N, 4H) buffer of
  // input projections between the two; with layer norm the two halves are stored apart, xw of the
  // step is then still in L1 for its statistics). Otherwise x W_ih^T for all steps in one GEMM
  // first (into the gate buffer, or the LN buffer), and W_hh packed alone.
  // Layer norm: both products run through centred weights, so that their rows have mean 0 and the
  // statistics are one sum of squares per row (pointwise.h, centre_rows); [W_ih | W_hh] is then
  // written centred, and otherwise the two are centred apart (use_centred_weights; the centred
  // [W_ih | W_hh] goes unused then, a cost only where the products are large enough for MKL).
  std::unique_ptr<PackedB<S>> wxh;
  std::unique_ptr<S[]> wcat;
  if (I > 0) {
    const int64_t ld = I + P;
    wcat.reset(new S[size_t(G4 * ld)]);  // (every entry written: no zero fill)
    if (ln) {
      centred_copy(a.w_ih, G4, I, wcat.get(), ld);
      centred_copy(a.w_hh, G4, P, wcat.get() + I, ld);
    } else {
      for (int64_t r = 0; r < G4; ++r) {
        std::memcpy(wcat.get() + r * ld, a.w_ih + r * I, sizeof(S) * I);
        std::memcpy(wcat.get() + r * ld + I, a.w_hh + r * P, sizeof(S) * P);
      }
    }
    wxh.reset(new PackedB<S>(true, ld, G4, wcat.get(), ld, max_rows));
    if (!wxh->own(max_rows)) wxh.reset();
  }
  const bool xin = wxh != nullptr;
  std::unique_ptr<S[]> centred;
  if (!xin) use_centred_weights(a, centred);  // (layer norm only)
  if (ln && !xin) {  // the projections of all steps come first (into work buffers where not kept)
    if (a.xw == nullptr) a.xw = scratch<S>(0, T * N * G4);
    if (a.hw == nullptr) a.hw = scratch<S>(1, T * N * G4);
  }
  if (!xin) project_rows<S>(true, T * N, I, G4, a.x, a.w_ih, ln ? a.xw : a.gates);
  std::memcpy(a.h_all, a.h0, sizeof(S) * N * P);
  if (fgr) zero(a.a, N * H3);
  // 2. pack the per-step operands once
  std::unique_ptr<PackedB<S>> whh_own;
  if (!xin) whh_own.reset(new PackedB<S>(true, P, G4, a.w_hh, P, max_rows));  // h (rows, P) . W_hh^T
  const PackedB<S>& whh = xin ? *wxh : *whh_own;
  std::unique_ptr<PackedB<S>> whr, wgr;
  if (a.w_hr != nullptr) whr.reset(new PackedB<S>(true, H, P, a.w_hr, H, max_rows));
  if (fgr) wgr.reset(new PackedB<S>(true, H3, H3, a.w_gr, H3, max_rows));
  std::vector<S> zero_bias(a.bias == nullptr ? G4 : 0, S(0));
  // 3. the time loop, one block of rows per thread
  for_each_block(nth, N, [&](int, Block blk) {
    forward_rows<S>(a, blk, whh, whr.get(), wgr.get(), a.bias ? a.bias : zero_bias.data(), xin);
  });
  // final states: each row's last real step
  for (int64_t n = 0; n < N; ++n) {
    const int64_t L = a.lengths ? a.lengths[n] : T;
    std::memcpy(a.h_n + n * P, a.h_all + (L * N + n) * P, sizeof(S) * P);
    std::memcpy(a.c_n + n * H, a.c + ((L - 1) * N + n) * H, sizeof(S) * H);
  }
}

template void lstm_forward<float>(const LstmForward<float>&);
template void lstm_forward<double>(const LstmForward<double>&);

}  // namespace lstmkit
