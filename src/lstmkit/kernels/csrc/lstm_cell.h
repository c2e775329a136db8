// One row of one LSTM time step, forward and backward: the pointwise part of the fused LSTM kernels
// (the equations are lstm_step of lstmkit/cells/lstm.py; comments name its symbols). Included by
// lstm_forward.cpp and lstm_backward.cpp.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>

#include "fused.h"
#include "pointwise.h"

namespace lstmkit {
namespace {

constexpr double kLnEps = 1e-5;  // cells/lstm.py LN_EPS

// Layer norm (kLayerNorm): points a.w_ih and a.w_hh at copies centred over their 4H rows, kept in
// `keep` (pointwise.h, centre_rows: every row of x W_ih^T and h W_hh^T then has mean 0). The
// forward's products and the backward's all take them; the backward centres dW_ih and dW_hh at the
// end. Without layer norm, nothing changes.
template <typename S>
void use_centred_weights(LstmForward<S>& a, std::unique_ptr<S[]>& keep) {
  if (!(a.cfg.flags & kLayerNorm)) return;
  const int64_t G4 = 4 * a.cfg.H, I = a.cfg.I, P = a.cfg.P;
  keep.reset(new S[size_t(G4 * (I + P))]);  // (every entry written: no zero fill)
  centred_copy(a.w_ih, G4, I, keep.get(), I);
  centred_copy(a.w_hh, G4, P, keep.get() + G4 * I, P);
  a.w_ih = keep.get();
  a.w_hh = keep.get() + G4 * I;
}

// Layer norm statistics of c_t (H) from its sums s1 = sum(c - k), s2 = sum((c - k)^2), taken in
// the gate loop with a shift k (c_{t-1}[0]): st = [mean, rstd]. One pass loses to cancellation in
// s2 / H - (s1 / H)^2 a relative share of the variance of about (1 + (s1 / H)^2 / var) times the
// rounding unit; where the shift lies more than 4 standard deviations from the row's mean (a shut
// forget gate, a c_0 given by the user) the row is taken again by the two-pass layer_norm_stats, so
// the loss stays within 17 units (float32, H = 4096, the shift at 0.9 sqrt(H) deviations: 3.0e-4
// relative error in the outputs with a guard at H var, found by a newcomer; 4e-7 with this one).
template <typename S>
inline void cell_ln_stats_from(int64_t H, const S* cn, S k, S s1, S s2, S* st) {
  const S md = s1 / S(H);
  const S var = s2 / S(H) - md * md;
  if (!(md * md <= S(16) * var)) {
    S mean;
    st[1] = layer_norm_stats<S>(cn, H, kLnEps, &mean);
    st[0] = mean;
    return;
  }
  st[0] = k + md;
  st[1] = S(1) / std::sqrt(var + S(kLnEps));
}

// ---- one row of one step, forward ------------------------------------------------------------------
// z (4H): in, the pre-activations [z_i | z_f | z_g | z_o] without bias and peepholes; out, the
// activations [i | f | g | o]. cp (H) is c_{t-1}; cn (H) receives c_t; m (H) receives o * act(c_t)
// (h_t before projection and zoneout).

// Fast path: sigmoid gates, tanh activations, all gates present, no gate recurrence. z = xw + hw + b
// is formed on the fly (hw = h W_hh^T of this step, in a warm per-thread buffer). With LN (layer
// norm) the pre-activations come from the raw projections xw, hw (of mean 0: centred weights, see
// pointwise.h, centre_rows) and their statistics ln_st = [0, rstd_ih, 0, rstd_hh] in a first pass
// over the 4H row into z (in L1), so that the gate loop is the same as without LN: one loop that
// also normalises would hold the statistics, gains and the activations' constants at once, more than
// AVX2's 16 vector registers (measured about 1.2x slower per row at H = 64). With LN the gate loop
// also sums c_t for its statistics (cell_ln_stats_from: no pass of its own over c_t, no reduction
// chain after the loop; no-grad layer norm at (32, 100, 16, 64), two threads: 1.21x -> 1.185x
// vanilla's time, median of paired rounds in one process), which go to ln_st[4], ln_st[5]; m is
// left to cell_ln_output.
template <typename S, bool PEEP, bool COUPLED, bool LN, bool XIN = false>
inline void cell_forward_fast(int64_t H, S* z, const S* b, const S* cp, const S* pp, S* cn, S* m,
                              const S* xw, const S* hw, const S* gih, const S* ghh, S* ln_st) {
  S* zi = z;
  S* zf = z + H;
  S* zg = z + 2 * H;
  S* zo = z + 3 * H;
  if (LN) {  // z = LN(xw) g_ih + LN(hw) g_hh + b (xw, hw of mean 0: centred weights)
    const S rx = ln_st[1], rh = ln_st[3];
#pragma omp simd
    for (int64_t c = 0; c < 4 * H; ++c) z[c] = xw[c] * rx * gih[c] + hw[c] * rh * ghh[c] + b[c];
  }
  // pre-activation of gate q at unit j (z holds x W_ih^T without layer norm, unless XIN: then hw
  // already holds x W_ih^T + h W_hh^T; with LN, z holds it all)
  auto pre = [&](int64_t q, int64_t j) __attribute__((always_inline)) {
    const int64_t c = q * H + j;
    return LN ? z[c] : XIN ? hw[c] + b[c] : z[c] + hw[c] + b[c];
  };
  // With peepholes the gate loop holds more than the vector registers can: c_{t-1} and three
  // peephole weights beside the activations' constants, and o_t reads c_t. GCC then spilled ~90
  // values per iteration on AVX2 (16 registers): at H = 64 the row took 1.55x vanilla's time (AVX2)
  // and 1.25x (AVX-512). So o and m get a loop of their own after c_t, and on 16-register ISAs so do
  // i and f (before): 1.0x vanilla on AVX2, 1.1x on AVX-512 (the row alone, timed in a loop).
  constexpr bool kSplitIF = PEEP && !COUPLED && kVecBytes < 64;
  if (kSplitIF) {
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      zi[j] = sigm<S>(pre(0, j) + pp[j] * cp[j]);
      zf[j] = sigm<S>(pre(1, j) + pp[H + j] * cp[j]);
    }
  }
  // LN: c_t's sums for its statistics, taken in the loop, shifted by k = c_{t-1}[0] (cell_ln_stats_from)
  const S k = LN ? cp[0] : S(0);
  S s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
  for (int64_t j = 0; j < H; ++j) {
    const S i = kSplitIF ? zi[j] : sigm<S>(pre(0, j) + (PEEP ? pp[j] * cp[j] : S(0)));
    const S f = kSplitIF  ? zf[j]
                : COUPLED ? S(1) - i
                          : sigm<S>(pre(1, j) + (PEEP ? pp[H + j] * cp[j] : S(0)));
    const S g = tanhx<S>(pre(2, j));
    const S c = f * cp[j] + i * g;
    zi[j] = i;
    zf[j] = f;
    zg[j] = g;
    cn[j] = c;
    if (LN) {
      const S d = c - k;
      s1 += d;
      s2 += d * d;
    }
    if (!PEEP) {
      const S o = sigm<S>(pre(3, j));
      zo[j] = o;
      if (!LN) m[j] = o * tanhx<S>(c);
    }
  }
  if (PEEP) {
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      const S o = sigm<S>(pre(3, j) + pp[2 * H + j] * cn[j]);
      zo[j] = o;
      if (!LN) m[j] = o * tanhx<S>(cn[j]);
    }
  }
  if (LN) cell_ln_stats_from<S>(H, cn, k, s1, s2, ln_st + 4);
}

// m = o * tanh(LN(c_t) w + b) for the fast path, after cell_forward_fast<..., LN = true> (which
// took c_t's statistics st = [mean, rstd]).
template <typename S>
inline void cell_ln_output(int64_t H, const S* cn, const S* zo, const S* st, const S* lncw,
                           const S* lncb, S* m) {
  const S mean = st[0], rstd = st[1];
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) m[j] = zo[j] * tanhx<S>((cn[j] - mean) * rstd * lncw[j] + lncb[j]);
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
// The cell's layer norm in cell_backward_fast (LNC): y = tanh(chat w + b), chat = LN(c_t); dL/dchat
// needs two row means first. This first pass over the row writes y and gw = dL/dy (1 - y^2) w o
// into tmp, tmp2 and the means m = [m1, m2]; accumulates w's and b's gradients. (Run for all rows
// of a chunk before their main passes instead, so that one row's reductions would overlap the next
// row's work: no faster, layer norm fwd+bwd at (32, 100, 16, 64) 1.16 against 1.15x vanilla.)
template <typename S>
inline void cell_ln_backward_pre(int64_t H, const S* go, const S* cn, const S* dm, const S* lncw,
                                 const S* lncb, const S* st, S* dlncw, S* dlncb, S* tmp, S* tmp2, S* m) {
  const S mean = st[0], rstd = st[1];
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
  m[0] = s1 / S(H);
  m[1] = s2 / S(H);
}

// With LNC, tmp, tmp2 and lnm = [m1, m2] come from cell_ln_backward_pre.
template <typename S, bool PEEP, bool COUPLED, bool LNC>
inline void cell_backward_fast(int64_t H, const S* gt, const S* cp, const S* cn, const S* pp,
                               const S* dm, S* dc, S* dz, S* dpp, const S* st, const S* tmp,
                               const S* tmp2, const S* lnm) {
  const S* gi = gt;
  const S* gf = gt + H;
  const S* gg = gt + 2 * H;
  const S* go = gt + 3 * H;
  const S mean = LNC ? st[0] : S(0), rstd = LNC ? st[1] : S(1);
  const S m1 = LNC ? lnm[0] : S(0), m2 = LNC ? lnm[1] : S(0);
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

}  // namespace
}  // namespace lstmkit
