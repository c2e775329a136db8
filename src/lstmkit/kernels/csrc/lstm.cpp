// The LSTM kernels declared in fused.h: forward and backward through time, every option.
//
// Per step and row the math is lstm_step of lstmkit/cells/lstm.py; comments name its symbols.
// Rows (sequences) never interact, so each thread owns a block of rows for the whole time loop.
#include <algorithm>
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

// Fast path: sigmoid gates, tanh activations, all gates present, no layer norm / gate recurrence.
template <typename S, bool PEEP, bool COUPLED>
inline void cell_forward_fast(int64_t H, S* z, const S* b, const S* cp, const S* pp, S* cn, S* m) {
  S* zi = z;
  S* zf = z + H;
  S* zg = z + 2 * H;
  S* zo = z + 3 * H;
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const S i = sigm<S>(zi[j] + b[j] + (PEEP ? pp[j] * cp[j] : S(0)));
    const S f = COUPLED ? S(1) - i : sigm<S>(zf[j] + b[H + j] + (PEEP ? pp[H + j] * cp[j] : S(0)));
    const S g = tanhx<S>(zg[j] + b[2 * H + j]);
    const S c = f * cp[j] + i * g;
    const S o = sigm<S>(zo[j] + b[3 * H + j] + (PEEP ? pp[2 * H + j] * c : S(0)));
    zi[j] = i;
    zf[j] = f;
    zg[j] = g;
    zo[j] = o;
    cn[j] = c;
    m[j] = o * tanhx<S>(c);
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
    double s = 0;
    for (int64_t j = 0; j < H; ++j) s += cn[j];
    const S mean = S(s / H);
    double v = 0;
    for (int64_t j = 0; j < H; ++j) v += (double(cn[j]) - mean) * (double(cn[j]) - mean);
    const S rstd = S(1.0 / std::sqrt(v / H + kLnEps));
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

template <typename S>
bool fast_path(const LstmConfig& k) {
  return k.gate_act == kSigmoid && k.input_act == kTanh && k.output_act == kTanh &&
         !(k.flags & (kNoInputGate | kNoForgetGate | kNoOutputGate | kGateRecurrence | kLayerNorm));
}

template <typename S>
void forward_rows(const LstmForward<S>& a, Block blk, const PackedB<S>& whh, const PackedB<S>* whr,
                  const PackedB<S>* wgr, const S* zero_bias) {
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
    S* g = a.gates + (t * N + r0) * G4;  // (rows, 4H): x W_ih^T of all steps, computed up front
    if (ln) whh.mul(rows, hin, P, a.hw_hat + (t * N + r0) * G4, G4, false);
    else whh.mul(rows, hin, P, g, G4, true);  // z = x W_ih^T + h W_hh^T
    if (fgr) wgr->mul(rows, a.a + (t * N + r0) * H3, H3, R, H3, false);

    for (int64_t n = r0; n < blk.r1; ++n) {
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
      if (ln) {  // z = LN(x W_ih^T) g_ih + LN(h W_hh^T) g_hh + b
        S* xh = a.xw_hat + row * G4;
        S* hh = a.hw_hat + row * G4;
        S* st = a.stats + row * 4;
        st[0] = layer_norm_row<S>(xh, G4, kLnEps);
        st[1] = layer_norm_row<S>(hh, G4, kLnEps);
#pragma omp simd
        for (int64_t j = 0; j < G4; ++j) z[j] = xh[j] * a.ln_ih[j] + hh[j] * a.ln_hh[j] + bias[j];
      }
      if (fast) {
        if (peep) {
          if (coupled) cell_forward_fast<S, true, true>(H, z, bias, cp, a.w_peep, cn, m);
          else cell_forward_fast<S, true, false>(H, z, bias, cp, a.w_peep, cn, m);
        } else {
          if (coupled) cell_forward_fast<S, false, true>(H, z, bias, cp, a.w_peep, cn, m);
          else cell_forward_fast<S, false, false>(H, z, bias, cp, a.w_peep, cn, m);
        }
      } else {
        cell_forward_generic<S>(k, z, ln ? nullptr : a.bias, cp, a.w_peep,
                                fgr ? R + (n - r0) * H3 : nullptr, a.ln_cw, a.ln_cb, cn, m,
                                ln ? a.stats + row * 4 + 2 : nullptr, tmp);
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
}

// ---- one row of one step, backward -----------------------------------------------------------------
// In: the saved activations gt [i | f | g | o], c_{t-1} cp, c_t before zoneout cn, dm = dL/dm,
// dc = dL/dc_t (after zoneout, from step t + 1 and the trace), da = dL/d[i; f; o]_t from the gate
// recurrence of step t + 1, dt* = trace gradients. Out: dz (4H) = dL/dz (pre-activations), dc =
// dL/dc_{t-1} (this step's share). Accumulates the peephole and cell-LayerNorm parameter gradients.
template <typename S>
void cell_backward(const LstmConfig& k, const S* gt, const S* cp, const S* cn, const S* kc,
                   const S* pp, const S* lncw, const S* lncb, const S* st, const S* dm, S* dc, S* dz,
                   const S* da, const S* const* dtr, int64_t row, S* dpp, S* dlncw, S* dlncb,
                   S* y, S* chat, S* dcn) {
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
  if (dtr[3] != nullptr) {
    const S* d = dtr[3] + row * H;
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
    if (dtr[q] == nullptr) continue;
    const S* d = dtr[q] + row * H;
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

// Fast path of cell_backward (same conditions as cell_forward_fast, no trace/zoneout/LN).
template <typename S, bool PEEP, bool COUPLED>
inline void cell_backward_fast(int64_t H, const S* gt, const S* cp, const S* cn, const S* pp,
                               const S* dm, S* dc, S* dz, S* dpp) {
  const S* gi = gt;
  const S* gf = gt + H;
  const S* gg = gt + 2 * H;
  const S* go = gt + 3 * H;
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const S i = gi[j], f = gf[j], g = gg[j], o = go[j];
    const S y = tanhx<S>(cn[j]);
    const S dzo = dm[j] * y * o * (S(1) - o);
    S dcn = dm[j] * o * (S(1) - y * y) + dc[j];
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
  S* dxw;    // (T, N, 4H) the W_ih-side ones
  S* dzifo;  // (T, N, 3H) gate-recurrence operand [dz_i; dz_f; dz_o], or null
  S* dhnew;  // (T, N, P) dL/d(projected h_t before zoneout), or null without projection
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
  const bool any_trace = b.dtrace[0] || b.dtrace[1] || b.dtrace[2] || b.dtrace[3] || b.dtrace[4];
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
      if (b.dtrace[4] != nullptr) {  // the c trace is c_t after zoneout
        const S* d = b.dtrace[4] + row * H;
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

    for (int64_t n = r0; n < blk.r1; ++n) {
      const int64_t row = t * N + n, rr = n - r0;
      S* dzh = w.dzh + row * G4;
      if (!valid(a.lengths, t, n)) {
        zero(dzh, G4);
        if (ln) zero(w.dxw + row * G4, G4);
        if (fgr) zero(w.dzifo + row * H3, H3);
        continue;
      }
      const S* gt = a.gates + row * G4;
      const S* cp = t == 0 ? a.c0 + n * H : a.c + (row - N) * H;
      const S* cn = a.c_new + row * H;
      S* dz = ln ? dzrow : dzh;
      if (fast) {
        if (peep) {
          if (coupled) cell_backward_fast<S, true, true>(H, gt, cp, cn, a.w_peep, dm + rr * H, dc + rr * H, dz, acc.dpp);
          else cell_backward_fast<S, true, false>(H, gt, cp, cn, a.w_peep, dm + rr * H, dc + rr * H, dz, acc.dpp);
        } else {
          if (coupled) cell_backward_fast<S, false, true>(H, gt, cp, cn, a.w_peep, dm + rr * H, dc + rr * H, dz, acc.dpp);
          else cell_backward_fast<S, false, false>(H, gt, cp, cn, a.w_peep, dm + rr * H, dc + rr * H, dz, acc.dpp);
        }
      } else {
        cell_backward<S>(k, gt, cp, cn, a.zone_c ? a.zone_c + row * H : nullptr, a.w_peep, a.ln_cw,
                         a.ln_cb, ln ? a.stats + row * 4 + 2 : nullptr, dm + rr * H, dc + rr * H, dz,
                         fgr ? da + rr * H3 : nullptr, b.dtrace, row, acc.dpp, acc.dlcw, acc.dlcb, y,
                         chat, dcn);
      }
      S* db = acc.db;
#pragma omp simd
      for (int64_t j = 0; j < G4; ++j) db[j] += dz[j];
      if (ln) {  // z = xhat g_ih + hhat g_hh + b: back through both LayerNorms
        const S* xh = a.xw_hat + row * G4;
        const S* hh = a.hw_hat + row * G4;
        S* dxw = w.dxw + row * G4;
#pragma omp simd
        for (int64_t j = 0; j < G4; ++j) {
          acc.dlih[j] += dz[j] * xh[j];
          acc.dlhh[j] += dz[j] * hh[j];
          dxw[j] = dz[j] * a.ln_ih[j];
          dzh[j] = dz[j] * a.ln_hh[j];
        }
        layer_norm_row_backward<S>(dxw, xh, a.stats[row * 4 + 0], dxw, G4);
        layer_norm_row_backward<S>(dzh, hh, a.stats[row * 4 + 1], dzh, G4);
      }
      if (fgr) {
        S* d = w.dzifo + row * H3;
        std::memcpy(d, dz, sizeof(S) * 2 * H);
        std::memcpy(d + 2 * H, dz + 3 * H, sizeof(S) * H);
      }
    }

    // dL/dh_{t-1} = zoneout share + (dz W_hh) * mask
    whh.mul(rows, w.dzh + (t * N + r0) * G4, G4, rec, P, false);
    for (int64_t n = r0; n < blk.r1; ++n) {
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
    if (fgr) wgr->mul(rows, w.dzifo + (t * N + r0) * H3, H3, da, H3, false);  // dL/da_{t-1}
  }
}

}  // namespace

template <typename S>
void lstm_forward(const LstmForward<S>& a) {
  const LstmConfig& k = a.cfg;
  const int64_t T = k.T, N = k.N, I = k.I, H = k.H, P = k.P, G4 = 4 * H, H3 = 3 * H;
  const bool ln = k.flags & kLayerNorm, fgr = k.flags & kGateRecurrence;
  // 1. x W_ih^T for all steps in one GEMM (into the gate buffer, or the LN buffer)
  gemm<S>(false, true, T * N, G4, I, S(1), a.x, I, a.w_ih, I, S(0), ln ? a.xw_hat : a.gates, G4);
  std::memcpy(a.h_all, a.h0, sizeof(S) * N * P);
  if (fgr) zero(a.a, N * H3);
  // 2. pack the per-step operands once
  const int nth = threads_for(N);
  const int64_t max_rows = (N + nth - 1) / nth;
  PackedB<S> whh(true, P, G4, a.w_hh, P, max_rows);  // h (rows, P) . W_hh^T
  std::unique_ptr<PackedB<S>> whr, wgr;
  if (a.w_hr != nullptr) whr.reset(new PackedB<S>(true, H, P, a.w_hr, H, max_rows));
  if (fgr) wgr.reset(new PackedB<S>(true, H3, H3, a.w_gr, H3, max_rows));
  std::vector<S> zero_bias(a.bias == nullptr ? G4 : 0, S(0));
  // 3. the time loop, one block of rows per thread
  for_each_block(nth, N, [&](int, Block blk) {
    forward_rows<S>(a, blk, whh, whr.get(), wgr.get(), a.bias ? a.bias : zero_bias.data());
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
  if (b.dw_ih) gemm<S>(true, false, G4, I, TN, S(1), w.dxw, G4, a.x, I, S(0), b.dw_ih, I);
  if (b.dx) gemm<S>(false, false, TN, I, G4, S(1), w.dxw, G4, a.w_ih, I, S(0), b.dx, I);
  if (b.dw_hr) gemm<S>(true, false, P, H, TN, S(1), w.dhnew, P, a.m, H, S(0), b.dw_hr, H);
  if (b.dw_gr) gemm<S>(true, false, H3, H3, TN, S(1), w.dzifo, H3, a.a, H3, S(0), b.dw_gr, H3);
}

template void lstm_forward<float>(const LstmForward<float>&);
template void lstm_forward<double>(const LstmForward<double>&);
template void lstm_backward<float>(const LstmBackward<float>&);
template void lstm_backward<double>(const LstmBackward<double>&);

}  // namespace lstmkit
