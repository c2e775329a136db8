// The LSTM kernels declared in fused.h: forward and backward through time, every option.
//
// Per step and row the math is lstm_step of lstmkit/cells/lstm.py; comments name its symbols.
// Rows (sequences) never interact, so each thread owns a block of rows for the whole time loop.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "blas.h"
#include "fused.h"
#include "pointwise.h"
#include "rows.h"

namespace lstmkit {
namespace {

constexpr double kLnEps = 1e-5;  // cells/lstm.py LN_EPS

// ---- one row of one step, forward ------------------------------------------------------------------
// z (4H): in, the pre-activations [z_i | z_f | z_g | z_o] without bias and peepholes; out, the
// activations [i | f | g | o]. cp (H) is c_{t-1}; cn (H) receives c_t; m (H) receives o * act(c_t)
// (h_t before projection and zoneout).

// Fast path: sigmoid gates, tanh activations, all gates present, no gate recurrence. z = xw + hw + b
// is formed on the fly (hw = h W_hh^T of this step, in a warm per-thread buffer); with LN (layer
// norm), from the raw projections xw, hw and their statistics ln_st =
// [mean_ih, rstd_ih, mean_hh, rstd_hh], and c_t is normalised before the output activation (a second
// short pass, after the row statistics, which go to ln_st[4], ln_st[5]).
template <typename S, bool PEEP, bool COUPLED, bool LN, bool XIN = false>
inline void cell_forward_fast(int64_t H, S* z, const S* b, const S* cp, const S* pp, S* cn, S* m,
                              const S* xw, const S* hw, const S* gih, const S* ghh, const S* lncw,
                              const S* lncb, S* ln_st) {
  S* zi = z;
  S* zf = z + H;
  S* zg = z + 2 * H;
  S* zo = z + 3 * H;
  S mx = 0, rx = 0, mh = 0, rh = 0;
  if (LN) {
    mx = ln_st[0];
    rx = ln_st[1];
    mh = ln_st[2];
    rh = ln_st[3];
  }
  // pre-activation of gate q at unit j (z holds x W_ih^T without layer norm, unless XIN: then hw
  // already holds x W_ih^T + h W_hh^T)
  auto pre = [&](int64_t q, int64_t j) __attribute__((always_inline)) {
    const int64_t c = q * H + j;
    return LN ? (xw[c] - mx) * rx * gih[c] + (hw[c] - mh) * rh * ghh[c] + b[c]
              : XIN ? hw[c] + b[c] : z[c] + hw[c] + b[c];
  };
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const S i = sigm<S>(pre(0, j) + (PEEP ? pp[j] * cp[j] : S(0)));
    const S f = COUPLED ? S(1) - i : sigm<S>(pre(1, j) + (PEEP ? pp[H + j] * cp[j] : S(0)));
    const S g = tanhx<S>(pre(2, j));
    const S c = f * cp[j] + i * g;
    const S o = sigm<S>(pre(3, j) + (PEEP ? pp[2 * H + j] * c : S(0)));
    zi[j] = i;
    zf[j] = f;
    zg[j] = g;
    zo[j] = o;
    cn[j] = c;
    if (!LN) m[j] = o * tanhx<S>(c);
  }
  if (LN) {
    S mean;
    const S rstd = layer_norm_stats<S>(cn, H, kLnEps, &mean);
    ln_st[4] = mean;
    ln_st[5] = rstd;
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) m[j] = zo[j] * tanhx<S>((cn[j] - mean) * rstd * lncw[j] + lncb[j]);
  }
}

// Any options: a few short passes over the row, each one vectorised.
template <typename S>
void cell_forward_generic(const LstmConfig& k, S* z, const S* b, const S* cp, const S* pp, const S* R,
                          const S* lncw, const S* lncb, S* cn, S* m, S* st, S* tmp) {
  const int64_t H = k.H;
  S* zi = z;
  S* zf = z + H;
  S* zg = z + 2 * H;
  S* zo = z + 3 * H;
  if (b != nullptr) {
#pragma omp simd
    for (int64_t j = 0; j < 4 * H; ++j) z[j] += b[j];
  }
  if (pp != nullptr) {
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      zi[j] += pp[j] * cp[j];
      zf[j] += pp[H + j] * cp[j];
    }
  }
  if (R != nullptr) {  // gate recurrence: + W_gr [i; f; o]_{t-1}
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      zi[j] += R[j];
      zf[j] += R[H + j];
      zo[j] += R[2 * H + j];
    }
  }
  if (k.flags & kNoInputGate) fill<S>(zi, S(1), H);
  else act_apply<S>(k.gate_act, zi, zi, H);
  if (k.flags & kCoupled) {
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) zf[j] = S(1) - zi[j];
  } else if (k.flags & kNoForgetGate) {
    fill<S>(zf, S(1), H);
  } else {
    act_apply<S>(k.gate_act, zf, zf, H);
  }
  act_apply<S>(k.input_act, zg, zg, H);
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) cn[j] = zf[j] * cp[j] + zi[j] * zg[j];
  if (pp != nullptr) {
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) zo[j] += pp[2 * H + j] * cn[j];
  }
  if (k.flags & kNoOutputGate) fill<S>(zo, S(1), H);
  else act_apply<S>(k.gate_act, zo, zo, H);
  if (k.flags & kLayerNorm) {  // act(LN(c_t) * w + b)
    S mean;
    const S rstd = layer_norm_stats<S>(cn, H, kLnEps, &mean);
    st[0] = mean;
    st[1] = rstd;
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) tmp[j] = (cn[j] - mean) * rstd * lncw[j] + lncb[j];
    act_apply<S>(k.output_act, tmp, tmp, H);
  } else {
    act_apply<S>(k.output_act, cn, tmp, H);
  }
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) m[j] = zo[j] * tmp[j];
}

// The fused single-pass row kernels are compiled for float32 only (the speed path); float64 takes
// the generic passes, which keeps the build short.
template <typename S>
bool fast_path(const LstmConfig& k) {
  return sizeof(S) == 4 && k.gate_act == kSigmoid && k.input_act == kTanh && k.output_act == kTanh &&
         !(k.flags & (kNoInputGate | kNoForgetGate | kNoOutputGate | kGateRecurrence));
}

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
  S* tmp = scratch<S>(5, H);
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
  static const bool no_stream = std::getenv("LSTMKIT_NO_STREAM") != nullptr;  // A/B switch
  const bool stream = keep_ln && !no_stream;
  S* hw_step = keep_ln && !stream ? nullptr : scratch<S>(6, ((rows + nch - 1) / nch) * G4);
  S* xw_step = ln && xin && (stream || !keep_xw) ? scratch<S>(7, ((rows + nch - 1) / nch) * G4) : nullptr;

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
      S* hw_rows = keep_ln && !stream ? a.hw + (t * N + c0) * G4 : hw_step;
      // xw of the chunk: kept, or (forward only) the warm buffer, or the buffer of all steps
      S* xw_rows = !ln ? nullptr : xw_step != nullptr ? xw_step : a.xw + (t * N + c0) * G4;
      if (xin)  // with layer norm, x_t W_ih^T goes apart into xw
        whh.mul_split(cr, k.I, a.x + (t * N + c0) * k.I, k.I, hin + (c0 - r0) * P, P, hw_rows, G4,
                      xw_rows);
      else whh.mul(cr, hin + (c0 - r0) * P, P, hw_rows, G4, false);
      if (fgr) wgr->mul(cr, a.a + (t * N + c0) * H3, H3, R + (c0 - r0) * H3, H3, false);

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
        if (ln) {
          st[1] = layer_norm_stats<S>(xw, G4, kLnEps, &st[0]);
          st[3] = layer_norm_stats<S>(hw, G4, kLnEps, &st[2]);
        }
        if constexpr (sizeof(S) == 4) if (fast) {
#define LSTMKIT_FWD(PE, CO, LN)                                                                    \
    cell_forward_fast<S, PE, CO, LN>(H, z, bias, cp, a.w_peep, cn, m, xw, hw, a.ln_ih, a.ln_hh, a.ln_cw, \
                                     a.ln_cb, st)
#define LSTMKIT_FWDX(PE, CO)                                                                      \
    cell_forward_fast<S, PE, CO, false, true>(H, z, bias, cp, a.w_peep, cn, m, xw, hw, a.ln_ih, a.ln_hh, \
                                              a.ln_cw, a.ln_cb, st)
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
        }
        if (!fast) {
          if (ln) {  // z = LN(x W_ih^T) g_ih + LN(h W_hh^T) g_hh (+ b in the cell)
            const S mx = st[0], rx = st[1], mh = st[2], rh = st[3];
#pragma omp simd
            for (int64_t j = 0; j < G4; ++j)
              z[j] = (xw[j] - mx) * rx * a.ln_ih[j] + (hw[j] - mh) * rh * a.ln_hh[j];
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

// ---- one row of one step, backward -----------------------------------------------------------------
// In: the saved activations gt [i | f | g | o], c_{t-1} cp, c_t before zoneout cn, dm = dL/dm,
// dc = dL/dc_t (after zoneout, from step t + 1 and the trace), da = dL/d[i; f; o]_t from the gate
// recurrence of step t + 1, dgt = trace gradients of [i | f | g | o] (4H) or null. Out: dz (4H) =
// dL/dz (pre-activations), dc = dL/dc_{t-1} (this step's share). Accumulates the peephole and
// cell-LayerNorm parameter gradients.
template <typename S>
void cell_backward(const LstmConfig& k, const S* gt, const S* cp, const S* cn, const S* kc,
                   const S* pp, const S* lncw, const S* lncb, const S* st, const S* dm, S* dc, S* dz,
                   const S* da, const S* dgt, S* dpp, S* dlncw, S* dlncb, S* y, S* chat,
                   S* dcn) {
  const int64_t H = k.H;
  const S* i = gt;
  const S* f = gt + H;
  const S* g = gt + 2 * H;
  const S* o = gt + 3 * H;
  S* dzi = dz;
  S* dzf = dz + H;
  S* dzg = dz + 2 * H;
  S* dzo = dz + 3 * H;
  const bool ln = k.flags & kLayerNorm;
  const S mean = ln ? st[0] : S(0), rstd = ln ? st[1] : S(1);
  // y = act(c_hat), c_hat = LN(c_t) w + b or c_t
  if (ln) {
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      chat[j] = (cn[j] - mean) * rstd;
      y[j] = chat[j] * lncw[j] + lncb[j];
    }
    act_apply<S>(k.output_act, y, y, H);
  } else {
    act_apply<S>(k.output_act, cn, y, H);
  }
  // m = o * y
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    dzo[j] = dm[j] * y[j];
    dcn[j] = dm[j] * o[j];
  }
  act_grad_mul<S>(k.output_act, y, dcn, H);
  if (ln) {
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      dlncw[j] += dcn[j] * chat[j];
      dlncb[j] += dcn[j];
      dcn[j] *= lncw[j];
    }
    layer_norm_row_backward<S>(dcn, chat, rstd, dcn, H);
  }
  // the carried cell state: c_t = k c_{t-1} + (1 - k) cn
  if (kc != nullptr) {
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) dcn[j] += (S(1) - kc[j]) * dc[j];
  } else {
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) dcn[j] += dc[j];
  }
  // output gate (after c_t: its peephole sees c_t)
  if (dgt != nullptr) {  // trace gradient of o
    const S* d = dgt + 3 * H;
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) dzo[j] += d[j];
  }
  if (da != nullptr) {
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) dzo[j] += da[2 * H + j];
  }
  if (k.flags & kNoOutputGate) zero(dzo, H);
  else act_grad_mul<S>(k.gate_act, o, dzo, H);
  if (pp != nullptr) {
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      dcn[j] += dzo[j] * pp[2 * H + j];
      dpp[2 * H + j] += dzo[j] * cn[j];
    }
  }
  // c_t = f c_{t-1} + i g
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    dzi[j] = dcn[j] * g[j];
    dzf[j] = dcn[j] * cp[j];
    dzg[j] = dcn[j] * i[j];
    dc[j] = dcn[j] * f[j] + (kc != nullptr ? kc[j] * dc[j] : S(0));
  }
  for (int q = 0; q < 3; ++q) {  // trace gradients of i, f, g
    if (dgt == nullptr) break;
    const S* d = dgt + q * H;
    S* dst = dz + q * H;
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) dst[j] += d[j];
  }
  if (da != nullptr) {
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      dzi[j] += da[j];
      dzf[j] += da[H + j];
    }
  }
  if (k.flags & kCoupled) {  // f = 1 - i
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) dzi[j] -= dzf[j];
  }
  if (k.flags & kNoInputGate) zero(dzi, H);
  else act_grad_mul<S>(k.gate_act, i, dzi, H);
  if (k.flags & (kCoupled | kNoForgetGate)) zero(dzf, H);
  else act_grad_mul<S>(k.gate_act, f, dzf, H);
  act_grad_mul<S>(k.input_act, g, dzg, H);
  if (pp != nullptr) {
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      dc[j] += dzi[j] * pp[j] + dzf[j] * pp[H + j];
      dpp[j] += dzi[j] * cp[j];
      dpp[H + j] += dzf[j] * cp[j];
    }
  }
}

// Fast path of cell_backward (the conditions of cell_forward_fast, and no trace or zoneout on c).
// tmp, tmp2: (H) scratch, used with LNC.
template <typename S, bool PEEP, bool COUPLED, bool LNC>
inline void cell_backward_fast(int64_t H, const S* gt, const S* cp, const S* cn, const S* pp,
                               const S* dm, S* dc, S* dz, S* dpp, const S* lncw, const S* lncb,
                               const S* st, S* dlncw, S* dlncb, S* tmp, S* tmp2) {
  const S* gi = gt;
  const S* gf = gt + H;
  const S* gg = gt + 2 * H;
  const S* go = gt + 3 * H;
  S mean = 0, rstd = 1, m1 = 0, m2 = 0;
  if (LNC) {  // y = tanh(chat w + b), chat = LN(c_t): dL/dchat needs two row means first
    mean = st[0];
    rstd = st[1];
    S s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
    for (int64_t j = 0; j < H; ++j) {
      const S chat = (cn[j] - mean) * rstd;
      const S y = tanhx<S>(chat * lncw[j] + lncb[j]);
      const S g = dm[j] * go[j] * (S(1) - y * y);
      dlncw[j] += g * chat;
      dlncb[j] += g;
      const S gw = g * lncw[j];
      tmp[j] = y;
      tmp2[j] = gw;
      s1 += gw;
      s2 += gw * chat;
    }
    m1 = s1 / S(H);
    m2 = s2 / S(H);
  }
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const S i = gi[j], f = gf[j], g = gg[j], o = go[j];
    S y, dcn;
    if (LNC) {
      y = tmp[j];
      dcn = rstd * (tmp2[j] - m1 - (cn[j] - mean) * rstd * m2) + dc[j];
    } else {
      y = tanhx<S>(cn[j]);
      dcn = dm[j] * o * (S(1) - y * y) + dc[j];
    }
    const S dzo = dm[j] * y * o * (S(1) - o);
    if (PEEP) dcn += dzo * pp[2 * H + j];
    S di = dcn * g;
    const S df = dcn * cp[j];
    S dcp = dcn * f;
    S dzi, dzf;
    if (COUPLED) {
      di -= df;
      dzi = di * i * (S(1) - i);
      dzf = S(0);
    } else {
      dzi = di * i * (S(1) - i);
      dzf = df * f * (S(1) - f);
    }
    const S dzg = dcn * i * (S(1) - g * g);
    if (PEEP) {
      dcp += dzi * pp[j] + dzf * pp[H + j];
      dpp[j] += dzi * cp[j];
      dpp[H + j] += dzf * cp[j];
      dpp[2 * H + j] += dzo * cn[j];
    }
    dz[j] = dzi;
    dz[H + j] = dzf;
    dz[2 * H + j] = dzg;
    dz[3 * H + j] = dzo;
    dc[j] = dcp;
  }
}

// Back through z = LN(xw) g_ih + LN(hw) g_hh + b, for one row: dz (4H) in; dxw, dhw (4H) out;
// accumulates the gains' and the bias's gradients. st = [mean_ih, rstd_ih, mean_hh, rstd_hh].
template <typename S>
inline void projection_ln_backward(int64_t G4, const S* dz, const S* xw, const S* hw, const S* st,
                                   const S* gih, const S* ghh, S* dxw, S* dhw, S* dgih, S* dghh,
                                   S* db) {
  const S mx = st[0], rx = st[1], mh = st[2], rh = st[3];
  S sx1 = 0, sx2 = 0, sh1 = 0, sh2 = 0;
#pragma omp simd reduction(+ : sx1, sx2, sh1, sh2)
  for (int64_t j = 0; j < G4; ++j) {
    const S xh = (xw[j] - mx) * rx, hh = (hw[j] - mh) * rh;
    const S gx = dz[j] * gih[j], gh = dz[j] * ghh[j];
    dgih[j] += dz[j] * xh;
    dghh[j] += dz[j] * hh;
    db[j] += dz[j];
    sx1 += gx;
    sx2 += gx * xh;
    sh1 += gh;
    sh2 += gh * hh;
  }
  const S mx1 = sx1 / S(G4), mx2 = sx2 / S(G4), mh1 = sh1 / S(G4), mh2 = sh2 / S(G4);
#pragma omp simd
  for (int64_t j = 0; j < G4; ++j) {
    const S xh = (xw[j] - mx) * rx, hh = (hw[j] - mh) * rh;
    dxw[j] = rx * (dz[j] * gih[j] - mx1 - xh * mx2);
    dhw[j] = rh * (dz[j] * ghh[j] - mh1 - hh * mh2);
  }
}

// The recurrent half of projection_ln_backward, for a backward that runs the input half after the
// loop (kInputGrad, see ln_input_backward): dz (4H) in; dhw (4H) out; accumulates g_hh's and the
// bias's gradients, and of the input half what needs dz element by element: dlih += dz * rstd_ih *
// mean_ih (its correction term) and *s1x = sum(dz * g_ih).
template <typename S>
inline void projection_ln_backward_h(int64_t G4, const S* dz, const S* hw, const S* st, const S* gih,
                                     const S* ghh, S* dhw, S* dghh, S* db, S* dlih, S* s1x) {
  const S mh = st[2], rh = st[3], xc = st[0] * st[1];
  S s1 = 0, s2 = 0, sx = 0;
#pragma omp simd reduction(+ : s1, s2, sx)
  for (int64_t j = 0; j < G4; ++j) {
    const S hh = (hw[j] - mh) * rh, gh = dz[j] * ghh[j];
    dghh[j] += dz[j] * hh;
    db[j] += dz[j];
    dlih[j] += dz[j] * xc;
    s1 += gh;
    s2 += gh * hh;
    sx += dz[j] * gih[j];
  }
  *s1x = sx;
  const S m1 = s1 / S(G4), m2 = s2 / S(G4);
#pragma omp simd
  for (int64_t j = 0; j < G4; ++j) dhw[j] = rh * (dz[j] * ghh[j] - m1 - (hw[j] - mh) * rh * m2);
}

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
  S* dxw;    // (T, N, 4H) the W_ih-side ones (layer norm; with kInputGrad, dz itself)
  S* dzifo;  // (T, N, 3H) gate-recurrence operand [dz_i; dz_f; dz_o], or null
  S* dhnew;  // (T, N, P) dL/d(projected h_t before zoneout), or null without projection
  S* s1x;    // (T, N) sum(dz * g_ih) per row (ln_input_after_loop), or null
};

template <typename S>
void backward_rows(const LstmBackward<S>& b, const BackBuffers<S>& w, Block blk, const PackedB<S>& whh,
                   const PackedB<S>* whr, const PackedB<S>* wgr, Acc<S> acc) {
  const LstmForward<S>& a = b.f;
  const LstmConfig& k = a.cfg;
  const int64_t T = k.T, N = k.N, H = k.H, P = k.P, G4 = 4 * H, H3 = 3 * H;
  const int64_t r0 = blk.r0, rows = blk.r1 - blk.r0;
  if (rows <= 0) return;
  const bool ln = k.flags & kLayerNorm, fgr = k.flags & kGateRecurrence, proj = a.w_hr != nullptr;
  const bool post_x = ln_input_after_loop(k);  // dz itself goes to w.dxw
  const bool any_trace = b.dgates != nullptr || b.dc_trace != nullptr;
  const bool fast = fast_path<S>(k) && a.zone_c == nullptr && !any_trace;
  const bool peep = a.w_peep != nullptr, coupled = k.flags & kCoupled;

  S* dh = b.dh0 + r0 * P;  // running dL/dh_t, then dL/dh0 (rows, P)
  S* dc = b.dc0 + r0 * H;  // running dL/dc_t, then dL/dc0 (rows, H)
  if (b.dh_n != nullptr) std::memcpy(dh, b.dh_n + r0 * P, sizeof(S) * rows * P);
  else zero(dh, rows * P);
  if (b.dc_n != nullptr) std::memcpy(dc, b.dc_n + r0 * H, sizeof(S) * rows * H);
  else zero(dc, rows * H);

  S* sbuf = scratch<S>(4, rows * (P + P + H3 + G4) + 7 * H);
  S* dhn_own = sbuf;                 // (rows, P) dL/dh_new when there is no projection buffer
  S* rec = dhn_own + rows * P;       // (rows, P) dz W_hh
  S* da = rec + rows * P;            // (rows, 3H) dL/d[i; f; o]_t from step t + 1
  S* dm_buf = da + rows * H3;        // (rows, 4H) dL/dm (projection) or the LN row dz
  S* y = dm_buf + rows * G4;         // (H, H, H, 4H) temporaries of cell_backward
  S* chat = y + H;
  S* dcn = chat + H;
  S* dzrow = dcn + H;
  if (fgr) zero(da, rows * H3);
  const int64_t chunk = std::min(rows, whh.chunk_rows());
  const int64_t nch = (rows + chunk - 1) / chunk;
  // With layer norm, the chunk's dxw goes to a warm buffer and is streamed out to w.dxw (read only
  // by the GEMMs after the loop) with non-temporal stores.
  static const bool no_stream = std::getenv("LSTMKIT_NO_STREAM") != nullptr;  // A/B switch
  const bool stream = ln && !no_stream;
  S* dxw_step = stream ? scratch<S>(7, ((rows + nch - 1) / nch) * G4) : nullptr;
  // So does the chunk's dzh (all options), after its product with W_hh has read it from L1.
  static const bool stream_dz = std::getenv("LSTMKIT_NO_STREAM_DZ") == nullptr && !no_stream;
  S* dzh_step = stream_dz ? scratch<S>(5, ((rows + nch - 1) / nch) * G4) : nullptr;

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
      for (int64_t n = c0; n < c0 + cr; ++n) {
        const int64_t row = t * N + n, rr = n - r0;
        S* dzh = dzh_step ? dzh_step + (n - c0) * G4 : w.dzh + row * G4;
        if (!valid(a.lengths, t, n)) {
          zero(dzh, G4);
          if (ln) zero(stream ? dxw_step + (n - c0) * G4 : w.dxw + row * G4, G4);
          if (post_x) w.s1x[row] = S(0);
          if (fgr) zero(w.dzifo + row * H3, H3);
          continue;
        }
        const S* gt = a.gates + row * G4;
        const S* cp = t == 0 ? a.c0 + n * H : a.c + (row - N) * H;
        const S* cn = a.c_new + row * H;
        S* dxw = !ln ? nullptr : stream ? dxw_step + (n - c0) * G4 : w.dxw + row * G4;
        S* dz = post_x ? dxw : ln ? dzrow : dzh;
        const S* st = ln ? a.stats + row * 6 : nullptr;
        if constexpr (sizeof(S) == 4) if (fast) {
#define LSTMKIT_BWD(PE, CO, LN)                                                                    \
    cell_backward_fast<S, PE, CO, LN>(H, gt, cp, cn, a.w_peep, dm + rr * H, dc + rr * H, dz, acc.dpp, \
                                      a.ln_cw, a.ln_cb, st ? st + 4 : nullptr, acc.dlcw, acc.dlcb, y, chat)
          if (ln) {
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
        if (post_x) {
          projection_ln_backward_h<S>(G4, dz, a.hw + row * G4, st, a.ln_ih, a.ln_hh, dzh, acc.dlhh,
                                      acc.db, acc.dlih, w.s1x + row);
        } else if (ln) {
          projection_ln_backward<S>(G4, dz, a.xw + row * G4, a.hw + row * G4, st, a.ln_ih, a.ln_hh,
                                    dxw, dzh, acc.dlih, acc.dlhh, acc.db);
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

      if (stream) stream_copy(w.dxw + (t * N + c0) * G4, dxw_step, cr * G4);
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
  if (stream || dzh_step) stream_fence();
}

// One pass over the rows of D (R, G) for two products that would each read all of it (D is large and
// was streamed out to memory; dW_ih and dx, or layer norm's A and V): in blocks of rows that stay in L2,
// Y = D B (B (G, n); Y (R, n), optional) and Acc = D^T X (X (R, m); Acc (G, m)), the latter summed
// over per-thread partial sums. Without Y this is just the second product.
template <typename S>
void rows_pass(int64_t R, int64_t G, const S* D, const S* B, int64_t n, S* Y, const S* X, int64_t m,
               S* Acc) {
  const int nth = int(std::max<int64_t>(1, std::min<int64_t>(num_threads(), R / 64)));
  // about 256 KiB of D per block, and at least 4m rows so that the accumulating product is not
  // dominated by reading and writing Acc
  const int64_t blk = std::max<int64_t>({16, (int64_t(64) << 10) / G, 4 * m});
  std::vector<S> part(size_t(nth > 1 ? (nth - 1) * G * m : 0), S(0));
  for_each_block(nth, R, [&](int tid, Block b) {
    S* acc = tid == 0 ? Acc : part.data() + (tid - 1) * G * m;
    for (int64_t r = b.r0; r < b.r1; r += blk) {
      const int64_t rows = std::min(blk, b.r1 - r);
      if (Y != nullptr) gemm<S>(false, false, rows, n, G, S(1), D + r * G, G, B, n, S(0), Y + r * n, n);
      gemm<S>(true, false, G, m, rows, S(1), D + r * G, G, X + r * m, m, r == b.r0 ? S(0) : S(1), acc, m);
    }
  });
  for (int t = 1; t < nth; ++t) {
    const S* p = part.data() + (t - 1) * G * m;
    for (int64_t j = 0; j < G * m; ++j) Acc[j] += p[j];
  }
}

// The input side of layer norm, after the loop (kInputGrad). z = LN(xw) g_ih + ... with xw = x W^T
// (W = W_ih (4H, I)); per row r, with u = dz * g_ih, xhat = (xw - mean) * rstd and G = 4H:
//   dxw = rstd * (u - m1 - xhat * m2),  m1 = sum(u) / G,  m2 = sum(u * xhat) / G.
// xw is not kept: every term is rewritten through x, so that all that is read of the rows is dz
// ((T, N, 4H), written by the loop) and x. sum(u) comes from the loop (s1x). With V = dz diag(g_ih) W
// (TN, I) (the product dx needs anyway), sum(u * xw) = V . x, hence m2; then
//   dx    = dxw W = rstd * (V - m1 cs - m2 rstd (x W^T W - mean cs)),           cs = 1^T W
//   dW    = dxw^T x = diag(g_ih) A - 1 beta^T - W C + 1 gamma^T,                A = dz^T (rstd x)
//   dg_ih = sum_r dz * xhat = rowsum(W * A) - dz^T (rstd mean)  (the last term from the loop, in dlih)
// with beta = sum_r rstd m1 x, C = x^T diag(c) x, gamma = sum_r c mean x, c = rstd^2 m2.
// The two products over all rows, A and V, have the shapes of the dW_ih and dx products they replace.
template <typename S>
void ln_input_backward(const LstmBackward<S>& b, const S* dz, const S* s1x, S* dlih) {
  const LstmForward<S>& a = b.f;
  const LstmConfig& k = a.cfg;
  const int64_t T = k.T, N = k.N, I = k.I, G4 = 4 * k.H, TN = T * N;
  const S* W = a.w_ih;
  const S* gih = a.ln_ih;
  // per-row statistics of xw; padding rows (dz zero there) get zeros, never their unwritten stats
  std::vector<S> mean(TN, S(0)), rstd(TN, S(0));
  for (int64_t r = 0; r < TN; ++r) {
    if (!valid(a.lengths, r / N, r % N)) continue;
    mean[r] = a.stats[r * 6];
    rstd[r] = a.stats[r * 6 + 1];
  }
  // one pass over dz: A = dz^T (rstd x) (4H, I) and V = dz diag(g_ih) W (TN, I)
  const bool want_a = b.dw_ih || dlih, want_v = b.dx || b.dw_ih;
  std::vector<S> A(want_a ? size_t(G4 * I) : 0), Wg(want_v ? size_t(G4 * I) : 0);
  S* XS = want_a ? scratch<S>(4, TN * I) : nullptr;
  S* V = want_v ? scratch<S>(5, TN * I) : nullptr;
  if (want_a) {
    for (int64_t r = 0; r < TN; ++r) {
      const S* xr = a.x + r * I;
      S* d = XS + r * I;
      for (int64_t l = 0; l < I; ++l) d[l] = rstd[r] * xr[l];
    }
  }
  if (want_v) {
    for (int64_t j = 0; j < G4; ++j)
      for (int64_t l = 0; l < I; ++l) Wg[j * I + l] = gih[j] * W[j * I + l];
  }
  if (want_a) rows_pass<S>(TN, G4, dz, Wg.data(), I, V, XS, I, A.data());
  else if (want_v) project_rows<S>(false, TN, G4, I, dz, Wg.data(), V);
  if (dlih) {
    for (int64_t j = 0; j < G4; ++j) {
      S sum = 0;
      for (int64_t l = 0; l < I; ++l) sum += W[j * I + l] * A[j * I + l];
      dlih[j] = sum - dlih[j];
    }
  }
  if (!want_v) return;
  std::vector<S> cs(b.dx ? size_t(I) : 0, S(0));  // column sums of W (dx only)
  S* XG = nullptr;  // (TN, I) x W^T W
  if (b.dx) {
    for (int64_t j = 0; j < G4; ++j)
      for (int64_t l = 0; l < I; ++l) cs[l] += W[j * I + l];
    std::vector<S> gram(size_t(I * I));
    gemm<S>(true, false, I, I, G4, S(1), W, I, W, I, S(0), gram.data(), I);
    XG = scratch<S>(4, TN * I);
    gemm<S>(false, false, TN, I, I, S(1), a.x, I, gram.data(), I, S(0), XG, I);
  }
  // one pass over the rows, split over the threads: m1, m2, then the row of dx and, for dW, the
  // row c x of C's product and the per-thread sums beta, gamma
  S* XC = b.dw_ih ? scratch<S>(7, TN * I) : nullptr;  // rows c_r x_r
  const int nth = int(std::max<int64_t>(1, std::min<int64_t>(num_threads(), TN / 64)));
  const int64_t stride = 2 * I + 16;  // apart by a cache line at least: no false sharing
  std::vector<S> sums(size_t(nth * stride), S(0));  // per thread [beta | gamma]
  for_each_block(nth, TN, [&](int tid, Block blk) {
    S* beta = sums.data() + tid * stride;
    S* gamma = beta + I;
    for (int64_t r = blk.r0; r < blk.r1; ++r) {
      S* dxr = b.dx ? b.dx + r * I : nullptr;
      S* xc = XC ? XC + r * I : nullptr;
      if (rstd[r] == S(0)) {  // padding
        if (dxr) zero(dxr, I);
        if (xc) zero(xc, I);
        continue;
      }
      const S* v = V + r * I;
      const S* xr = a.x + r * I;
      S p = 0;
#pragma omp simd reduction(+ : p)
      for (int64_t l = 0; l < I; ++l) p += v[l] * xr[l];
      const S rs = rstd[r], mu = mean[r], m1 = s1x[r] / S(G4), m2 = rs * (p - mu * s1x[r]) / S(G4);
      if (dxr) {  // dx = rstd (V - m1 cs - m2 rstd (x W^T W - mean cs))
        const S* xg = XG + r * I;
        const S q = m2 * rs;
#pragma omp simd
        for (int64_t l = 0; l < I; ++l) dxr[l] = rs * (v[l] - m1 * cs[l] - q * (xg[l] - mu * cs[l]));
      }
      if (xc) {
        const S c = rs * rs * m2, bm = rs * m1, gm = c * mu;
#pragma omp simd
        for (int64_t l = 0; l < I; ++l) {
          xc[l] = c * xr[l];
          beta[l] += bm * xr[l];
          gamma[l] += gm * xr[l];
        }
      }
    }
  });
  if (b.dw_ih) {  // dW = diag(g_ih) A - 1 beta^T - W C + 1 gamma^T
    std::vector<S> beta(size_t(I), S(0)), gamma(size_t(I), S(0)), C(size_t(I * I));
    for (int t = 0; t < nth; ++t)
      for (int64_t l = 0; l < I; ++l) {
        beta[l] += sums[t * stride + l];
        gamma[l] += sums[t * stride + I + l];
      }
    gemm<S>(true, false, I, I, TN, S(1), a.x, I, XC, I, S(0), C.data(), I);
    gemm<S>(false, false, G4, I, I, S(1), W, I, C.data(), I, S(0), b.dw_ih, I);  // W C
    for (int64_t j = 0; j < G4; ++j) {
      S* d = b.dw_ih + j * I;
      const S* Aj = A.data() + j * I;
      for (int64_t l = 0; l < I; ++l) d[l] = gih[j] * Aj[l] - beta[l] - d[l] + gamma[l];
    }
  }
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
  std::unique_ptr<PackedB<S>> wxh;
  std::vector<S> wcat;
  static const bool split_env = std::getenv("LSTMKIT_SPLIT_INPUT_GEMM") != nullptr;  // A/B switch
  if (!split_env && I > 0) {
    wcat.resize(size_t(G4 * (I + P)));
    for (int64_t r = 0; r < G4; ++r) {
      std::memcpy(wcat.data() + r * (I + P), a.w_ih + r * I, sizeof(S) * I);
      std::memcpy(wcat.data() + r * (I + P) + I, a.w_hh + r * P, sizeof(S) * P);
    }
    wxh.reset(new PackedB<S>(true, I + P, G4, wcat.data(), I + P, max_rows));
    if (!wxh->own(max_rows)) wxh.reset();
  }
  const bool xin = wxh != nullptr;
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

template <typename S>
void lstm_backward(const LstmBackward<S>& b) {
  const LstmForward<S>& a = b.f;
  const LstmConfig& k = a.cfg;
  const int64_t T = k.T, N = k.N, I = k.I, H = k.H, P = k.P, G4 = 4 * H, H3 = 3 * H;
  const bool ln = k.flags & kLayerNorm, fgr = k.flags & kGateRecurrence, proj = a.w_hr != nullptr;
  BackBuffers<S> w;
  w.dzh = scratch<S>(0, T * N * G4);
  w.dxw = ln ? scratch<S>(1, T * N * G4) : w.dzh;
  w.dzifo = fgr ? scratch<S>(2, T * N * H3) : nullptr;
  w.dhnew = proj ? scratch<S>(3, T * N * P) : nullptr;
  w.s1x = ln_input_after_loop(k) ? scratch<S>(6, T * N) : nullptr;

  const int nth = threads_for(N);
  const int64_t max_rows = (N + nth - 1) / nth;
  PackedB<S> whh(false, G4, P, a.w_hh, P, max_rows);  // dz (rows, 4H) . W_hh
  std::unique_ptr<PackedB<S>> whr, wgr;
  if (proj) whr.reset(new PackedB<S>(false, P, H, a.w_hr, H, max_rows));
  if (fgr) wgr.reset(new PackedB<S>(false, H3, H3, a.w_gr, H3, max_rows));
  std::vector<S> accs(size_t(nth) * Acc<S>::size(H), S(0));
  for_each_block(nth, N, [&](int tid, Block blk) {
    backward_rows<S>(b, w, blk, whh, whr.get(), wgr.get(), Acc<S>(accs.data() + tid * Acc<S>::size(H), H));
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
  if (ln_input_after_loop(k)) {  // w.dxw holds dz
    ln_input_backward<S>(b, w.dxw, w.s1x, b.dln_ih);  // b.dln_ih holds the loop's correction term
  } else {
    // dW_ih = dxw^T x and dx = dxw W_ih, in one pass over dxw
    if (b.dw_ih) rows_pass<S>(TN, G4, w.dxw, a.w_ih, I, b.dx, a.x, I, b.dw_ih);
    else if (b.dx) project_rows<S>(false, TN, G4, I, w.dxw, a.w_ih, b.dx);
  }
  if (b.dw_hr) gemm<S>(true, false, P, H, TN, S(1), w.dhnew, P, a.m, H, S(0), b.dw_hr, H);
  if (b.dw_gr) gemm<S>(true, false, H3, H3, TN, S(1), w.dzifo, H3, a.a, H3, S(0), b.dw_gr, H3);
}

template void lstm_forward<float>(const LstmForward<float>&);
template void lstm_forward<double>(const LstmForward<double>&);
template void lstm_backward<float>(const LstmBackward<float>&);
template void lstm_backward<double>(const LstmBackward<double>&);

}  // namespace lstmkit
