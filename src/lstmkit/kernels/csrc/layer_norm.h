// LayerNorm backward of the fused LSTM (layer_norm=True): the projections' backward over groups of
// rows in the time loop, and the input side's backward rewritten through x (kInputGrad: its row
// terms in the loop, its weight terms after it). Included by lstm_backward.cpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "blas.h"
#include "fused.h"
#include "pointwise.h"
#include "rows.h"

namespace lstmkit {
namespace {

// Rows back through z = LN(xw) g_ih + LN(hw) g_hh + b, for a group of R rows of one step (rows never
// interact). LnRows holds the rows: dz (4H) in; dxw, dhw (4H) out; xw, hw the raw projections; st
// the rows' statistics [0, rstd_ih, 0, rstd_hh]. Accumulates the gains' and the bias's gradients.
// XS: both halves; without it only the recurrent one (a backward that takes the input half through
// x, kInputGrad: ln_input_rows_block), and xw, dxw go unused.
// xw and hw are products with centred weights, of mean 0 (pointwise.h, centre_rows). Per half, with
// u = dz * g and xhat = xw * rstd, LayerNorm's backward is dxw = rstd * (u - m1 - xhat * m2),
// m1 = mean(u), m2 = mean(u * xhat); the m1 term is a multiple of 1 per row, which the centred
// weights map to 0 (in dx = dxw Wc, and in dWc = dxw^T x once centred), so it is left out.
// The first pass runs over the columns with the R rows inside (vertical): the accumulators of dg and
// db are read and written once per group instead of once per row, and the R rows' sums of u * xhat
// are independent chains. Layer norm fwd+bwd at (32, 100, 16, 64), two threads, median of paired
// rounds in one process: 1.176x vanilla's time in groups, 1.194x one row at a time.
template <typename S>
struct LnRows {
  const S* dz[kBlockRows];
  const S* xw[kBlockRows];
  const S* hw[kBlockRows];
  const S* st[kBlockRows];
  S* dxw[kBlockRows];
  S* dhw[kBlockRows];
  int n = 0;
};

// Rows per group: its sums, two vectors a row with XS, must leave room in the vector registers for
// the accumulators and operands (16 registers on AVX2 and the portable ISAs).
template <bool XS>
constexpr int ln_group_rows() {
  return kVecBytes >= 64 ? kBlockRows : XS ? 2 : 4;
}

template <typename S, bool XS, int R>
inline void projection_ln_backward_group(int64_t G4, const LnRows<S>& g, const S* gih,
                                         const S* ghh, S* dgih, S* dghh, S* db) {
  using V = typename Vec<S>::v;
  V vx[R], vh[R];
  S sx[R], sh[R], rx[R], rh[R];
  for (int r = 0; r < R; ++r) {
    vx[r] = vh[r] = V{};
    sx[r] = sh[r] = S(0);
    rx[r] = XS ? g.st[r][1] : S(0);
    rh[r] = g.st[r][3];
  }
  for_vec<S, 1>(G4, [&](auto tag, int64_t j, auto) __attribute__((always_inline)) {
    using T = decltype(tag);
    const T gh = load_as<T>(ghh + j);
    T ah = load_as<T>(dghh + j), ab = load_as<T>(db + j);
    T gx{}, ax{};
    if constexpr (XS) {
      gx = load_as<T>(gih + j);
      ax = load_as<T>(dgih + j);
    }
    for (int r = 0; r < R; ++r) {
      const T d = load_as<T>(g.dz[r] + j);
      const T dh = d * load_as<T>(g.hw[r] + j) * rh[r];  // dz * hhat
      ah += dh;
      ab += d;
      if constexpr (std::is_same_v<T, S>) sh[r] += dh * gh;
      else vh[r] += dh * gh;
      if constexpr (XS) {
        const T dx = d * load_as<T>(g.xw[r] + j) * rx[r];
        ax += dx;
        if constexpr (std::is_same_v<T, S>) sx[r] += dx * gx;
        else vx[r] += dx * gx;
      }
    }
    store_as(dghh + j, ah);
    store_as(db + j, ab);
    if constexpr (XS) store_as(dgih + j, ax);
  });
  for (int r = 0; r < R; ++r) {
    const S* d = g.dz[r];
    const S qh = rh[r] * (sh[r] + hsum<S>(vh[r])) / S(G4);  // rstd * m2
    const S* hw = g.hw[r];
    S* dhw = g.dhw[r];
    const S rhr = rh[r];
#pragma omp simd
    for (int64_t j = 0; j < G4; ++j) dhw[j] = rhr * (d[j] * ghh[j] - hw[j] * qh);
    if constexpr (XS) {
      const S qx = rx[r] * (sx[r] + hsum<S>(vx[r])) / S(G4);
      const S* xw = g.xw[r];
      S* dxw = g.dxw[r];
      const S rxr = rx[r];
#pragma omp simd
      for (int64_t j = 0; j < G4; ++j) dxw[j] = rxr * (d[j] * gih[j] - xw[j] * qx);
    }
  }
}

// projection_ln_backward_group for the run-time g.n <= R rows of g (R = ln_group_rows<XS>()).
template <typename S, bool XS, int R = ln_group_rows<XS>()>
void projection_ln_backward_rows(int64_t G4, const LnRows<S>& g, const S* gih, const S* ghh, S* dgih,
                                 S* dghh, S* db) {
  if constexpr (R > 1) {
    if (g.n < R) return projection_ln_backward_rows<S, XS, R - 1>(G4, g, gih, ghh, dgih, dghh, db);
  }
  projection_ln_backward_group<S, XS, R>(G4, g, gih, ghh, dgih, dghh, db);
}

// The input side's two products over all rows, for one block of CR rows inside the backward loop
// while the block's D is still in L1 (see lstm_backward):
//   Y (CR, Ip) = D Wg  and  Acc (4H, Ip) += D^T XS,
// D (CR, G4) the block's dz (or, layer norm without dx, dxw), Wg (G4, Ip) = W_ih (layer norm with
// dx: diag(g_ih) W_ih), XS (CR, Ip) the rows x (rstd_ih x), Acc the thread's partial dW_ih (A of
// ln_input_rows_block); Ip is I padded to whole vectors (the padding columns zero). Each broadcast of
// D[r, j] feeds both products; Y's rows stay in registers, Acc's row j is read and written once per
// block.
template <typename S, int CR>
inline void input_side_rows(int64_t G4, int64_t Ip, const S* D, const S* Wg, const S* XS, S* Y, S* Acc) {
  using V = typename Vec<S>::v;
  constexpr int L = Vec<S>::L;
  for (int64_t c = 0; c < Ip; c += L) {
    V y[CR], xs[CR];
    for (int r = 0; r < CR; ++r) {
      y[r] = V{};
      xs[r] = load_vec<S>(XS + r * Ip + c);
    }
    for (int64_t j = 0; j < G4; ++j) {
      const V w = load_vec<S>(Wg + j * Ip + c);
      V acc = load_vec<S>(Acc + j * Ip + c);
      for (int r = 0; r < CR; ++r) {
        const S d = D[r * G4 + j];
        y[r] += d * w;
        acc += d * xs[r];
      }
      store_vec<S>(Acc + j * Ip + c, acc);
    }
    for (int r = 0; r < CR; ++r) store_vec<S>(Y + r * Ip + c, y[r]);
  }
}

// input_side_rows<S, cr> for a run-time cr <= CR.
template <typename S, int CR>
inline void input_side_rows_n(int64_t cr, int64_t G4, int64_t Ip, const S* D, const S* Wg, const S* XS,
                              S* Y, S* Acc) {
  if constexpr (CR > 1) {
    if (cr < CR) return input_side_rows_n<S, CR - 1>(cr, G4, Ip, D, Wg, XS, Y, Acc);
  }
  input_side_rows<S, CR>(G4, Ip, D, Wg, XS, Y, Acc);
}

// The input side of layer norm's backward with dx (kInputGrad). z = LN(xw) g_ih + ... with
// xw = x W^T, W = Wc_ih (4H, I), the centred W_ih (pointwise.h, centre_rows: each row of xw has
// mean 0, and the column sums of W are 0). Per row r, with u = dz * g_ih, xhat = xw * rstd and
// G = 4H, LayerNorm's backward without its m1 term (which W maps to 0, see
// projection_ln_backward):
//   dxw = rstd * (u - xhat * m2),  m2 = sum(u * xhat) / G.
// xw is not kept: every term is rewritten through x, so that all that is read of the rows is dz and
// x. With V = dz diag(g_ih) W (TN, I) (the product dx needs anyway), sum(u * xw) = V . x, hence m2;
// then, with c_r = rstd^2 m2 of row r,
//   dx_r  = dxw_r W = rstd V_r - c_r x_r W^T W          (ln_input_rows_block)
//   dWc   = dxw^T x = diag(g_ih) A - W C,  A = dz^T (rstd x),  C = sum_r c_r x_r^T x_r
//   dg_ih = sum_r dz * xhat = rowsum(W * A)            (ln_input_weights)
// and dW_ih is dWc centred (the caller, lstm_backward). A and V have the shapes of the dW_ih and dx
// products they replace; both come from the backward loop (input_side_rows, where
// ln_input_rows_block then takes the block's rows while they are in L1), or from ln_input_products
// and ln_input_rows, passes over the kept dz after the loop. The row terms run in the loop, on
// blocks of rows: after the loop they were small BLAS calls over all T N rows (x W^T W, x^T (c x))
// and a pass between them, 95-112 us of a 4.4 ms call at (32, 100, 16, 64), two threads. Layer
// norm fwd+bwd / vanilla's, medians of paired rounds in alternating processes, after -> in the
// loop: (32, 100, 16, 64) 1.178 -> 1.170; (1, 500, 8, 64) 1.137 -> 1.079; (64, 100, 32, 128)
// 1.137 -> 1.125.

// W^T W (I, Ip), the Gram matrix of ln_input_rows_block (W = Wc_ih (4H, I)), each row padded with
// zeros to Ip.
template <typename S>
std::vector<S> ln_input_gram(const S* W, int64_t G4, int64_t I, int64_t Ip) {
  std::vector<S> gram(size_t(I * Ip), S(0));
  // Entry (l, m) is a sum over the 4H rows, vectorised over m: each lane's sums stay in registers
  // (four chains for the adds' latency) and are stored once. (Added into gram's rows one row of W at
  // a time, every add went through memory: 3-4 us a call at I = 16, H = 64.)
  for (int64_t l = 0; l < I; ++l) {
    S* gr = gram.data() + l * Ip;
    for_vec<S>(I, [&](auto tag, int64_t m, auto) __attribute__((always_inline)) {
      using T = decltype(tag);
      T s0{}, s1{}, s2{}, s3{};
      int64_t j = 0;
      for (; j + 4 <= G4; j += 4) {
        s0 += W[j * I + l] * load_as<T>(W + j * I + m);
        s1 += W[(j + 1) * I + l] * load_as<T>(W + (j + 1) * I + m);
        s2 += W[(j + 2) * I + l] * load_as<T>(W + (j + 2) * I + m);
        s3 += W[(j + 3) * I + l] * load_as<T>(W + (j + 3) * I + m);
      }
      for (; j < G4; ++j) s0 += W[j * I + l] * load_as<T>(W + j * I + m);
      store_as<T>(gr + m, (s0 + s1) + (s2 + s3));
    });
  }
  return gram;
}

// The row terms (see above) of CR rows: Vr (CR, Ip) their rows of V, XS (CR, Ip) their rstd x, both
// padded with zeros (XS zero at padding rows, where the forward zeroes rstd), rs (CR) their rstd.
// In terms of xs = rstd x and p = V_r . xs: dx_r = rstd V_r - (rstd p / G) xs W^T W, and the row's
// share of C is (p / G) xs^T xs. Writes DX (CR, Ip) where gram (I, Ip) is given; adds to C (I, Ip)
// where not null. The vectors of the CR rows are independent chains; each load of a row of gram or
// C serves all CR rows.
template <typename S, int CR>
inline void ln_input_rows_block(int64_t I, int64_t Ip, int64_t G4, const S* rs, const S* Vr,
                                const S* XS, const S* gram, S* DX, S* C) {
  using V = typename Vec<S>::v;
  constexpr int L = Vec<S>::L;
  S f[CR], e[CR];
  for (int r = 0; r < CR; ++r) {
    S p = 0;
#pragma omp simd reduction(+ : p)
    for (int64_t m = 0; m < Ip; ++m) p += Vr[r * Ip + m] * XS[r * Ip + m];
    f[r] = p / S(G4);
    e[r] = rs[r] * f[r];
  }
  for (int64_t m0 = 0; m0 < Ip; m0 += L) {
    if (gram != nullptr) {  // dx_r = rstd V_r - e_r (xs_r W^T W)
      V d[CR];
      for (int r = 0; r < CR; ++r) d[r] = V{};
      for (int64_t l = 0; l < I; ++l) {
        const V g = load_vec<S>(gram + l * Ip + m0);
        for (int r = 0; r < CR; ++r) d[r] += XS[r * Ip + l] * g;
      }
      for (int r = 0; r < CR; ++r)
        store_vec<S>(DX + r * Ip + m0, rs[r] * load_vec<S>(Vr + r * Ip + m0) - e[r] * d[r]);
    }
    if (C != nullptr) {  // C += sum_r xs_r^T (f_r xs_r)
      V ys[CR];
      for (int r = 0; r < CR; ++r) ys[r] = f[r] * load_vec<S>(XS + r * Ip + m0);
      for (int64_t l = 0; l < I; ++l) {
        V c = load_vec<S>(C + l * Ip + m0);
        for (int r = 0; r < CR; ++r) c += XS[r * Ip + l] * ys[r];
        store_vec<S>(C + l * Ip + m0, c);
      }
    }
  }
}

// The sum of nth equal parts of parts (each thread's partial sums); empty for empty parts.
template <typename S>
std::vector<S> sum_parts(const std::vector<S>& parts, int nth) {
  const size_t n = parts.size() / size_t(nth);
  std::vector<S> sum(parts.begin(), parts.begin() + n);
  for (int tid = 1; tid < nth; ++tid)
    for (size_t j = 0; j < n; ++j) sum[j] += parts[tid * n + j];
  return sum;
}

// ln_input_rows_block<S, cr> for a run-time cr <= CR.
template <typename S, int CR>
inline void ln_input_rows_block_n(int64_t cr, int64_t I, int64_t Ip, int64_t G4, const S* rs,
                                  const S* Vr, const S* XS, const S* gram, S* DX, S* C) {
  if constexpr (CR > 1) {
    if (cr < CR) return ln_input_rows_block_n<S, CR - 1>(cr, I, Ip, G4, rs, Vr, XS, gram, DX, C);
  }
  ln_input_rows_block<S, CR>(I, Ip, G4, rs, Vr, XS, gram, DX, C);
}

// The row terms over all T N rows after the loop, one row at a time, split over the threads: dx
// into b.dx (where not null); returns C (I, Ip) summed (where dw_ih is wanted; else empty). V (TN, I);
// gram (I, Ip) as ln_input_gram's, or empty without dx.
template <typename S>
std::vector<S> ln_input_rows(const LstmBackward<S>& b, const S* V, const std::vector<S>& gram,
                             int64_t Ip) {
  const LstmForward<S>& a = b.f;
  const LstmConfig& k = a.cfg;
  const int64_t I = k.I, G4 = 4 * k.H, TN = k.T * k.N;
  const int nth = int(std::max<int64_t>(1, std::min<int64_t>(num_threads(), TN / 64)));
  std::vector<S> parts(b.dw_ih ? size_t(nth * I * Ip) : 0, S(0));
  for_each_block(nth, TN, [&](int tid, Block blk) {
    std::vector<S> rowbuf(size_t(3 * Ip), S(0));  // the row's V, rstd x (padded) and dx
    S* vr = rowbuf.data();
    S* xs = vr + Ip;
    S* dx = xs + Ip;
    S* Ct = b.dw_ih ? parts.data() + tid * I * Ip : nullptr;
    for (int64_t r = blk.r0; r < blk.r1; ++r) {
      const S rs = a.stats[r * 6 + 1];
      for (int64_t l = 0; l < I; ++l) {
        vr[l] = V[r * I + l];
        xs[l] = rs * a.x[r * I + l];
      }
      ln_input_rows_block<S, 1>(I, Ip, G4, &rs, vr, xs, b.dx ? gram.data() : nullptr, dx, Ct);
      if (b.dx) std::memcpy(b.dx + r * I, dx, sizeof(S) * I);
    }
  });
  return sum_parts(parts, nth);
}

// The weight terms: dg_ih into dlih and dWc into b.dw_ih (where not null), from A (4H, I) and C
// (I, Ip).
template <typename S>
void ln_input_weights(const LstmBackward<S>& b, const S* A, const S* C, int64_t Ip, S* dlih) {
  const LstmForward<S>& a = b.f;
  const int64_t I = a.cfg.I, G4 = 4 * a.cfg.H;
  const S* W = a.w_ih;
  if (dlih) {
    for (int64_t j = 0; j < G4; ++j) {
      S sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t l = 0; l < I; ++l) sum += W[j * I + l] * A[j * I + l];
      dlih[j] = sum;
    }
  }
  if (b.dw_ih) {  // dWc = diag(g_ih) A - W C, each entry summed in a register (vectorised over m)
                  // and stored once (subtracted in place, row by row of C: 10-14 us a call at
                  // I = 16, H = 64, every subtraction through memory)
    for (int64_t j = 0; j < G4; ++j) {
      S* d = b.dw_ih + j * I;
      const S* Aj = A + j * I;
      const S* Wj = W + j * I;
      const S g = a.ln_ih[j];
      for_vec<S>(I, [&](auto tag, int64_t m, auto) __attribute__((always_inline)) {
        using T = decltype(tag);
        T v = load_as<T>(Aj + m) * g;
        for (int64_t l = 0; l < I; ++l) v -= Wj[l] * load_as<T>(C + l * Ip + m);
        store_as<T>(d + m, v);
      });
    }
  }
}

// After the loop, one pass over the kept dz (T, N, 4H): A = dz^T (rstd x) (4H, I) into A and
// V = dz diag(g_ih) W_ih (TN, I) into scratch, for ln_input_rows; each only where it is wanted.
template <typename S>
const S* ln_input_products(const LstmBackward<S>& b, const S* dz, S* dlih, std::vector<S>& A) {
  const LstmForward<S>& a = b.f;
  const LstmConfig& k = a.cfg;
  const int64_t T = k.T, N = k.N, I = k.I, G4 = 4 * k.H, TN = T * N;
  const bool want_a = b.dw_ih || dlih, want_v = b.dx || b.dw_ih;
  A.assign(want_a ? size_t(G4 * I) : 0, S(0));
  std::vector<S> Wg(want_v ? size_t(G4 * I) : 0);
  S* XS = want_a ? scratch<S>(4, TN * I) : nullptr;
  S* V = want_v ? scratch<S>(5, TN * I) : nullptr;
  if (want_a) {
    for (int64_t r = 0; r < TN; ++r) {  // padding rows: rstd 0 (the forward zeroes their stats)
      const S rs = a.stats[r * 6 + 1];
      const S* xr = a.x + r * I;
      S* d = XS + r * I;
      for (int64_t l = 0; l < I; ++l) d[l] = rs * xr[l];
    }
  }
  if (want_v) {
    for (int64_t j = 0; j < G4; ++j)
      for (int64_t l = 0; l < I; ++l) Wg[j * I + l] = a.ln_ih[j] * a.w_ih[j * I + l];
  }
  if (want_a) rows_pass<S>(TN, G4, dz, Wg.data(), I, V, XS, I, A.data());
  else if (want_v) project_rows<S>(false, TN, G4, I, dz, Wg.data(), V);
  return V;
}

}  // namespace
}  // namespace lstmkit
