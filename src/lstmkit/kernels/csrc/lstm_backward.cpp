// The LSTM backward through time declared in fused.h, mirroring lstm_forward.cpp: per step only the
// products with the packed recurrent weights stay in the loop (one block of rows per thread); the
// weight, bias and input gradients are single GEMMs over all T*N rows afterwards.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "blas.h"
#include "fused.h"
#include "pointwise.h"
#include "rows.h"
#include "layer_norm.h"
#include "lstm_cell.h"

namespace lstmkit {
namespace {

// Per-thread accumulators of the parameter gradients that are sums over rows.
template <typename S>
struct Acc {
  S* db;    // (4H)
  S* dpp;   // (3H)
  S* dlih;  // (4H)
  S* dlhh;  // (4H)
  S* dlcw;  // (H)
  S* dlcb;  // (H)
  static int64_t size(int64_t H) { return 17 * H; }
  Acc(S* base, int64_t H)
      : db(base), dpp(base + 4 * H), dlih(base + 7 * H), dlhh(base + 11 * H), dlcw(base + 15 * H),
        dlcb(base + 16 * H) {}
};

template <typename S>
struct BackBuffers {
  S* dzh;    // (T, N, 4H) the W_hh-side pre-activation gradients (== dxw without layer norm)
  S* dxw;    // (T, N, 4H) the W_ih-side ones (layer norm; with kInputGrad, dz itself); null with
             // layer norm when the input side's products run in the loop (Ip > 0)
  S* dzifo;  // (T, N, 3H) gate-recurrence operand [dz_i; dz_f; dz_o], or null
  S* dhnew;  // (T, N, P) dL/d(projected h_t before zoneout), or null without projection
  // The input side's products in the loop (input_side_rows, see lstm_backward): Wg (4H, Ip) = W_ih,
  // or diag(g_ih) W_ih (ln_input_through_x), with I padded to Ip; the rows of D Wg are dx, or
  // layer norm's V (from which ln_input_rows_block makes dx). Each thread adds D^T [x or rstd x] to
  // its own (4H, Ip) accumulator (backward_rows' a_part) and, with layer norm's V, its share of C to
  // c_part. Ip == 0: the products run after the loop.
  int64_t Ip = 0;
  const S* Wg = nullptr;
  const S* gram = nullptr;  // (I, Ip) W_ih^T W_ih (centred), for ln_input_rows_block in the loop
                            // (layer norm with dx), or null
};

template <typename S>
void backward_rows(const LstmBackward<S>& b, const BackBuffers<S>& w, Block blk, const PackedB<S>& whh,
                   const PackedB<S>* whr, const PackedB<S>* wgr, Acc<S> acc, S* a_part, S* c_part) {
  const LstmForward<S>& a = b.f;
  const LstmConfig& k = a.cfg;
  const int64_t T = k.T, N = k.N, H = k.H, P = k.P, G4 = 4 * H, H3 = 3 * H;
  const int64_t r0 = blk.r0, rows = blk.r1 - blk.r0;
  if (rows <= 0) return;
  const bool ln = k.flags & kLayerNorm, fgr = k.flags & kGateRecurrence, proj = a.w_hr != nullptr;
  const bool through_x = ln_input_through_x(k);  // dz itself goes to w.dxw
  const bool any_trace = b.dgates != nullptr || b.dc_trace != nullptr;
  const bool fast = fast_path<S>(k) && a.zone_c == nullptr && !any_trace;
  const bool peep = a.w_peep != nullptr, coupled = k.flags & kCoupled;

  S* dh = b.dh0 + r0 * P;  // running dL/dh_t, then dL/dh0 (rows, P)
  S* dc = b.dc0 + r0 * H;  // running dL/dc_t, then dL/dc0 (rows, H)
  if (b.dh_n != nullptr) std::memcpy(dh, b.dh_n + r0 * P, sizeof(S) * rows * P);
  else zero(dh, rows * P);
  if (b.dc_n != nullptr) std::memcpy(dc, b.dc_n + r0 * H, sizeof(S) * rows * H);
  else zero(dc, rows * H);

  const int64_t Ip = w.Ip, xrows = Ip > 0 ? std::min(rows, whh.chunk_rows()) : 0;
  S* sbuf = scratch<S>(4, rows * (P + P + H3 + G4) + 3 * H + 2 + kBlockRows * G4 + 3 * xrows * Ip +
                           xrows);
  S* dhn_own = sbuf;                 // (rows, P) dL/dh_new when there is no projection buffer
  S* rec = dhn_own + rows * P;       // (rows, P) dz W_hh
  S* da = rec + rows * P;            // (rows, 3H) dL/d[i; f; o]_t from step t + 1
  S* dm_buf = da + rows * H3;        // (rows, 4H) dL/dm (projection)
  S* y = dm_buf + rows * G4;         // (H, H, H, 2) temporaries of cell_backward (the fast path's
  S* chat = y + H;                   // tmp, tmp2 and [m1, m2], cell_ln_backward_pre)
  S* dcn = chat + H;
  S* lnm = dcn + H;
  S* dzrows = lnm + 2;               // (kBlockRows, 4H) the group's dz (layer norm without through_x)
  S* xs_rows = dzrows + kBlockRows * G4;  // (chunk, Ip) x, or rstd_ih x, of the chunk's rows (in-loop
                                           // input side)
  S* v_rows = xs_rows + xrows * Ip;  // (chunk, Ip) their rows of V
  S* dx_rows = v_rows + xrows * Ip;  // (chunk, Ip) their dx (layer norm with dx)
  S* rs_rows = dx_rows + xrows * Ip; // (chunk) their rstd_ih (layer norm with dx)
  if (fgr) zero(da, rows * H3);
  const int64_t chunk = std::min(rows, whh.chunk_rows());
  const int64_t nch = (rows + chunk - 1) / chunk;
  // With layer norm, the chunk's dxw goes to a warm buffer and is streamed out to w.dxw (read only
  // by the GEMMs after the loop) with non-temporal stores.
  const bool stream = ln;
  S* dxw_step = stream ? scratch<S>(7, ((rows + nch - 1) / nch) * G4) : nullptr;
  // So does the chunk's dzh (all options), after its product with W_hh has read it from L1.
  S* dzh_step = scratch<S>(5, ((rows + nch - 1) / nch) * G4);
  // Layer norm: the projections' backward runs over groups of rows (layer_norm.h)
  LnRows<S> lnr;
  const int group = through_x ? ln_group_rows<false>() : ln_group_rows<true>();
  auto ln_group = [&] {
    if (lnr.n == 0) return;
    if (through_x)
      projection_ln_backward_rows<S, false>(G4, lnr, a.ln_ih, a.ln_hh, acc.dlih, acc.dlhh, acc.db);
    else
      projection_ln_backward_rows<S, true>(G4, lnr, a.ln_ih, a.ln_hh, acc.dlih, acc.dlhh, acc.db);
    lnr.n = 0;
  };

  for (int64_t t = T - 1; t >= 0; --t) {
    // dL/dh_t = carried + dy_t; split by zoneout into the new value's share and h_{t-1}'s share
    S* dhnew = proj ? w.dhnew + (t * N + r0) * P : dhn_own;
    for (int64_t n = r0; n < blk.r1; ++n) {
      const int64_t row = t * N + n, rr = n - r0;
      S* dhn = dhnew + rr * P;
      if (!valid(a.lengths, t, n)) {
        zero(dhn, P);
        continue;
      }
      S* dht = dh + rr * P;
      if (b.dy != nullptr) {
        const S* d = b.dy + row * P;
#pragma omp simd
        for (int64_t j = 0; j < P; ++j) dht[j] += d[j];
      }
      if (a.zone_h != nullptr) {
        const S* kh = a.zone_h + row * P;
#pragma omp simd
        for (int64_t j = 0; j < P; ++j) dhn[j] = (S(1) - kh[j]) * dht[j];
      } else {
        std::memcpy(dhn, dht, sizeof(S) * P);
      }
      if (b.dc_trace != nullptr) {  // the c trace is c_t after zoneout
        const S* d = b.dc_trace + row * H;
        S* dcr = dc + rr * H;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) dcr[j] += d[j];
      }
    }
    const S* dm = dhnew;  // (rows, H): dL/dm, m = o * act(c)
    if (proj) {
      whr->mul(rows, dhnew, P, dm_buf, H, false);  // dm = dh_new W_hr
      dm = dm_buf;
    }

    // in chunks: the chunk's pointwise pass, then at once its dz W_hh (dz still in L1)
    for (int64_t q = 0, c0 = r0; q < nch; ++q) {
      const int64_t cr = rows / nch + (q < rows % nch ? 1 : 0);  // rows [c0, c0 + cr)
      if (ln) {  // the next chunk's h W_hh^T (layer norm): written with streamed stores by forward, so
                 // read from memory; requested now, it arrives while this chunk is computed (measured at
                 // (B, T, I, H) = (1, 500, 8, 64): read on demand, projection_ln_backward_h waited
                 // on memory for longer than the rest of the row's backward took). A chunk of one row
                 // (the thread's step is then one chain of dependent work) has it brought into L1:
                 // layer norm fwd+bwd at (1, 500, 8, 64) 2-3 % faster on the AVX-512 path and 4-5 %
                 // on the AVX2 path, 1-3 % at (2, 500, 8, 64), no change at (1, 500, 8, 128);
                 // at larger chunks into L2 only (into L1 too: 1-2 % slower at (32, 100, 16, 64)).
                 // In-process alternation, docs/benchmarks.md.
        const bool last = q + 1 == nch;
        const int64_t tn = last ? t - 1 : t, n0 = last ? r0 : c0 + cr;
        const int64_t nr = last ? rows / nch + (rows % nch ? 1 : 0) : rows / nch + (q + 1 < rows % nch ? 1 : 0);
        if (tn >= 0) {
          prefetch(a.hw + (tn * N + n0) * G4, nr * G4, nr == 1);
          if (!through_x) prefetch(a.xw + (tn * N + n0) * G4, nr * G4, nr == 1);  // x W_ih^T, kept likewise
        }
      }
      for (int64_t n = c0; n < c0 + cr; ++n) {
        const int64_t row = t * N + n, rr = n - r0;
        S* dzh = dzh_step ? dzh_step + (n - c0) * G4 : w.dzh + row * G4;
        if (!valid(a.lengths, t, n)) {
          zero(dzh, G4);
          if (ln) zero(dxw_step + (n - c0) * G4, G4);
          if (fgr) zero(w.dzifo + row * H3, H3);
          continue;
        }
        const S* gt = a.gates + row * G4;
        const S* cp = t == 0 ? a.c0 + n * H : a.c + (row - N) * H;
        const S* cn = a.c_new + row * H;
        S* dxw = ln ? dxw_step + (n - c0) * G4 : nullptr;
        S* dz = through_x ? dxw : ln ? dzrows + lnr.n * G4 : dzh;
        const S* st = ln ? a.stats + row * 6 : nullptr;
        if constexpr (sizeof(S) == 4) if (fast) {
#define LSTMKIT_BWD(PE, CO, LN)                                                                    \
    cell_backward_fast<S, PE, CO, LN>(H, gt, cp, cn, a.w_peep, dm + rr * H, dc + rr * H, dz, acc.dpp, \
                                      st ? st + 4 : nullptr, y, chat, lnm)
          if (ln) {  // the cell's layer norm: its first pass, then the row's
            cell_ln_backward_pre<S>(H, gt + 3 * H, cn, dm + rr * H, a.ln_cw, a.ln_cb, st + 4, acc.dlcw,
                                    acc.dlcb, y, chat, lnm);
            if (peep) coupled ? LSTMKIT_BWD(true, true, true) : LSTMKIT_BWD(true, false, true);
            else coupled ? LSTMKIT_BWD(false, true, true) : LSTMKIT_BWD(false, false, true);
          } else {
            if (peep) coupled ? LSTMKIT_BWD(true, true, false) : LSTMKIT_BWD(true, false, false);
            else coupled ? LSTMKIT_BWD(false, true, false) : LSTMKIT_BWD(false, false, false);
          }
#undef LSTMKIT_BWD
        }
        if (!fast) {
          cell_backward<S>(k, gt, cp, cn, a.zone_c ? a.zone_c + row * H : nullptr, a.w_peep, a.ln_cw,
                           a.ln_cb, st ? st + 4 : nullptr, dm + rr * H, dc + rr * H, dz,
                           fgr ? da + rr * H3 : nullptr, b.dgates ? b.dgates + row * G4 : nullptr,
                           acc.dpp, acc.dlcw, acc.dlcb, y, chat, dcn);
        }
        if (ln) {  // the row joins the group, which is taken back through the LayerNorms when full
          const int i = lnr.n++;
          lnr.dz[i] = dz;
          lnr.hw[i] = a.hw + row * G4;
          lnr.st[i] = st;
          lnr.dhw[i] = dzh;
          lnr.xw[i] = through_x ? nullptr : a.xw + row * G4;
          lnr.dxw[i] = through_x ? nullptr : dxw;
          if (lnr.n == group) ln_group();
        } else {
          S* db = acc.db;
#pragma omp simd
          for (int64_t j = 0; j < G4; ++j) db[j] += dz[j];
        }
        if (fgr) {
          S* d = w.dzifo + row * H3;
          std::memcpy(d, dz, sizeof(S) * 2 * H);
          std::memcpy(d + 2 * H, dz + 3 * H, sizeof(S) * H);
        }
      }

      if (ln) ln_group();
      if (Ip > 0) {  // the input side's products while D (dz, or dxw) is in L1 (see lstm_backward)
        for (int64_t n = c0; n < c0 + cr; ++n) {
          const int64_t row = t * N + n;
          S* xs = xs_rows + (n - c0) * Ip;
          zero(xs, Ip);
          rs_rows[n - c0] = S(0);
          if (!valid(a.lengths, t, n)) continue;
          const S rs = through_x ? a.stats[row * 6 + 1] : S(1);
          const S* xr = a.x + row * k.I;
          for (int64_t l = 0; l < k.I; ++l) xs[l] = rs * xr[l];
          rs_rows[n - c0] = rs;
        }
        const int64_t nb = (cr + kBlockRows - 1) / kBlockRows;  // blocks as even as possible
        for (int64_t q2 = 0, r = 0; q2 < nb; ++q2) {
          const int64_t mr = cr / nb + (q2 < cr % nb ? 1 : 0);
          const S* D = (ln ? dxw_step : dzh_step) + r * G4;
          input_side_rows_n<S, kBlockRows>(mr, G4, Ip, D, w.Wg, xs_rows + r * Ip, v_rows + r * Ip, a_part);
          if (through_x)  // the rows' terms of the input side's LayerNorm backward (layer_norm.h)
            ln_input_rows_block_n<S, kBlockRows>(mr, k.I, Ip, G4, rs_rows + r, v_rows + r * Ip,
                                                 xs_rows + r * Ip, w.gram, dx_rows + r * Ip, c_part);
          r += mr;
        }
        const S* src = through_x ? dx_rows : v_rows;  // the rows' dx
        if (b.dx != nullptr)
          for (int64_t n = c0; n < c0 + cr; ++n)
            std::memcpy(b.dx + (t * N + n) * k.I, src + (n - c0) * Ip, sizeof(S) * k.I);
      } else if (stream) {
        stream_copy(w.dxw + (t * N + c0) * G4, dxw_step, cr * G4);
      }
      // dL/dh_{t-1} = zoneout share + (dz W_hh) * mask
      whh.mul(cr, dzh_step ? dzh_step : w.dzh + (t * N + c0) * G4, G4, rec + (c0 - r0) * P, P, false);
      if (dzh_step) stream_copy(w.dzh + (t * N + c0) * G4, dzh_step, cr * G4);
      for (int64_t n = c0; n < c0 + cr; ++n) {
        if (!valid(a.lengths, t, n)) continue;  // padding: dL/dh carried unchanged
        const int64_t rr = n - r0;
        S* dht = dh + rr * P;
        const S* r = rec + rr * P;
        const S* kh = a.zone_h ? a.zone_h + (t * N + n) * P : nullptr;
        const S* mk = a.rec_mask ? a.rec_mask + n * P : nullptr;
#pragma omp simd
        for (int64_t j = 0; j < P; ++j)
          dht[j] = (kh ? kh[j] * dht[j] : S(0)) + (mk ? r[j] * mk[j] : r[j]);
      }
      if (fgr) {  // dL/da_{t-1}
        wgr->mul(cr, w.dzifo + (t * N + c0) * H3, H3, da + (c0 - r0) * H3, H3, false);
      }
      c0 += cr;
    }
  }
  stream_fence();
}

}  // namespace

template <typename S>
void lstm_backward(const LstmBackward<S>& b_in) {
  LstmBackward<S> b = b_in;
  const LstmForward<S>& a = b.f;
  const LstmConfig& k = a.cfg;
  const int64_t T = k.T, N = k.N, I = k.I, H = k.H, P = k.P, G4 = 4 * H, H3 = 3 * H;
  const bool ln = k.flags & kLayerNorm, fgr = k.flags & kGateRecurrence, proj = a.w_hr != nullptr;
  // Layer norm: the forward's products ran through the centred weights, and so do the backward's;
  // their gradients are centred at the end
  std::unique_ptr<S[]> centred;
  use_centred_weights(b.f, centred);
  const bool through_x = ln_input_through_x(k);
  const int nth = threads_for(N);
  const int64_t max_rows = (N + nth - 1) / nth;
  // The input side's products over all rows run in the loop, chunk by chunk while the chunk's
  // operand D is in L1 (input_side_rows), so that D is not read back from memory after the loop (with
  // layer norm it is then never written out at all):
  //   without layer norm:         D = dz;  dW_ih = D^T x, dx = D W_ih;
  //   layer norm without dx:      D = dxw (the gradient at x W_ih^T);  dW_ih = D^T x;
  //   layer norm with dx (through_x): D = dz;  A = D^T (rstd x), V = D diag(g_ih) W_ih, and from V's
  //                                rows their dx and share of C (layer_norm.h, ln_input_rows_block).
  // Where the thread's (4H, I) accumulator, read and written once per block of rows, would take
  // more than half the core's L2 cache (the rest holds the block's D, Wg and the packed weights),
  // they run after the loop over the kept D instead (rows_pass, ln_input_products). Measured
  // (fwd+bwd, 1 MiB L2, alternating, ms, vanilla and layer norm; after the loop -> in the loop):
  // AVX-512: (32, 100, 16, 64): 3.98 -> 3.50, 4.40 -> 4.23; batch 1 (1, 500, 8, 64): 1.63 -> 1.62,
  // 1.91 -> 1.81; two rows a thread (4, 200, 8, 64): 1.40 -> 1.30, 1.64 -> 1.51; accumulator
  // 1 MiB (128, 50, 128, 512): 271 -> 256, 299 -> 267; accumulator 4 MiB (32, 20, 512, 512):
  // 54 -> 73, 71 -> 97. AVX2 path (vanilla, best of two): (32, 100, 16, 64): 3.80 -> 3.45;
  // (64, 100, 32, 128): 22.6 -> 22.3; accumulator 1 MiB (128, 50, 128, 512), median of three:
  // 286 -> 314 (docs/benchmarks.md).
  constexpr int L = Vec<S>::L;
  const int64_t Ip = (I + L - 1) / L * L;
  const bool in_loop = I > 0 && (b.dw_ih || b.dx || through_x) &&
                       size_t(G4 * Ip) * sizeof(S) <= l2_cache_bytes() / 2;
  BackBuffers<S> w;
  w.dzh = scratch<S>(0, T * N * G4);
  w.dxw = !ln ? w.dzh : in_loop ? nullptr : scratch<S>(1, T * N * G4);
  w.dzifo = fgr ? scratch<S>(2, T * N * H3) : nullptr;
  w.dhnew = proj ? scratch<S>(3, T * N * P) : nullptr;

  PackedB<S> whh(false, G4, P, a.w_hh, P, max_rows);  // dz (rows, 4H) . W_hh
  std::unique_ptr<PackedB<S>> whr, wgr;
  if (proj) whr.reset(new PackedB<S>(false, P, H, a.w_hr, H, max_rows));
  if (fgr) wgr.reset(new PackedB<S>(false, H3, H3, a.w_gr, H3, max_rows));
  std::vector<S> wg, a_parts, c_parts, gram;
  if (through_x && b.dx) gram = ln_input_gram<S>(a.w_ih, G4, I, Ip);
  if (in_loop) {
    wg.assign(size_t(G4 * Ip), S(0));  // W_ih, or diag(g_ih) W_ih, with I padded to Ip
    for (int64_t j = 0; j < G4; ++j)
      for (int64_t l = 0; l < I; ++l) wg[j * Ip + l] = (through_x ? a.ln_ih[j] : S(1)) * a.w_ih[j * I + l];
    a_parts.assign(size_t(nth * G4 * Ip), S(0));
    w.Ip = Ip;
    w.Wg = wg.data();
    w.gram = gram.empty() ? nullptr : gram.data();
    if (through_x && b.dw_ih) c_parts.assign(size_t(nth * I * Ip), S(0));
  }
  std::vector<S> accs(size_t(nth) * Acc<S>::size(H), S(0));
  for_each_block(nth, N, [&](int tid, Block blk) {
    backward_rows<S>(b, w, blk, whh, whr.get(), wgr.get(), Acc<S>(accs.data() + tid * Acc<S>::size(H), H),
                     in_loop ? a_parts.data() + tid * G4 * Ip : nullptr,
                     c_parts.empty() ? nullptr : c_parts.data() + tid * I * Ip);
  });
  // sums over rows, then the large GEMMs over all T*N rows
  for (int tid = 1; tid < nth; ++tid)
    for (int64_t j = 0; j < Acc<S>::size(H); ++j) accs[j] += accs[tid * Acc<S>::size(H) + j];
  Acc<S> acc(accs.data(), H);
  if (b.dbias) std::memcpy(b.dbias, acc.db, sizeof(S) * G4);
  if (b.dw_peep) std::memcpy(b.dw_peep, acc.dpp, sizeof(S) * H3);
  if (b.dln_ih) std::memcpy(b.dln_ih, acc.dlih, sizeof(S) * G4);
  if (b.dln_hh) std::memcpy(b.dln_hh, acc.dlhh, sizeof(S) * G4);
  if (b.dln_cw) std::memcpy(b.dln_cw, acc.dlcw, sizeof(S) * H);
  if (b.dln_cb) std::memcpy(b.dln_cb, acc.dlcb, sizeof(S) * H);
  const int64_t TN = T * N;
  if (b.dw_hh) {  // dW_hh = dz^T (4H, TN) . h_in (TN, P)
    const S* hin = a.rec_mask ? a.h_in : a.h_all;
    gemm<S>(true, false, G4, P, TN, S(1), w.dzh, G4, hin, P, S(0), b.dw_hh, P);
  }
  if (in_loop) {  // the threads' accumulators summed, unpadded: dW_ih, or layer norm's A
    std::vector<S> A(through_x ? size_t(G4 * I) : 0);
    S* dst = through_x ? A.data() : b.dw_ih;
    if (dst) {
      const std::vector<S> sum = sum_parts(a_parts, nth);
      for (int64_t j = 0; j < G4; ++j) std::memcpy(dst + j * I, sum.data() + j * Ip, sizeof(S) * I);
    }
    // dx already written by the loop; with through_x the threads' C summed, and the weight terms
    if (through_x) {
      const std::vector<S> C = sum_parts(c_parts, nth);
      ln_input_weights<S>(b, A.data(), C.data(), Ip, b.dln_ih);
    }
  } else if (through_x) {  // w.dxw holds dz
    std::vector<S> A, C;
    const S* V = ln_input_products<S>(b, w.dxw, b.dln_ih, A);
    if (V != nullptr) C = ln_input_rows<S>(b, V, gram, Ip);
    ln_input_weights<S>(b, A.data(), C.data(), Ip, b.dln_ih);
  } else {
    // dW_ih = dxw^T x and dx = dxw W_ih, in one pass over dxw
    if (b.dw_ih) rows_pass<S>(TN, G4, w.dxw, a.w_ih, I, b.dx, a.x, I, b.dw_ih);
    else if (b.dx) project_rows<S>(false, TN, G4, I, w.dxw, a.w_ih, b.dx);
  }
  if (ln) {  // dW = dWc centred (pointwise.h, centre_rows)
    if (b.dw_ih) centre_rows(b.dw_ih, G4, I);
    if (b.dw_hh) centre_rows(b.dw_hh, G4, P);
  }
  if (b.dw_hr) gemm<S>(true, false, P, H, TN, S(1), w.dhnew, P, a.m, H, S(0), b.dw_hr, H);
  if (b.dw_gr) gemm<S>(true, false, H3, H3, TN, S(1), w.dzifo, H3, a.a, H3, S(0), b.dw_gr, H3);
}

template void lstm_backward<float>(const LstmBackward<float>&);
template void lstm_backward<double>(const LstmBackward<double>&);

}  // namespace lstmkit
