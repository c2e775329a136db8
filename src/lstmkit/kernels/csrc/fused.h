// lstmkit fused kernels: one layer, one direction, the whole sequence in one call.
//
// This is the C++ core behind lstmkit/kernels/fused.py; its contract is the one of
// lstmkit/kernels/reference.py (the equations are in lstmkit/cells/lstm.py and cells/gru.py).
// No torch types here: every tensor is a raw pointer to contiguous row-major storage, allocated by
// the binding (binding.cpp). Shape symbols:
//
//   T  time steps          N  batch           I  input features
//   H  hidden (cell) size  P  size of h (proj_size, else H)
//
// Sequences are left-aligned: with lengths, row n is real for t < lengths[n]; at padded steps its
// state is carried and every per-step output (y, gates, c, ...) is zero.
//
// Work plan of a forward call (LSTM; the GRU is the same with three gates):
//   1. input projections of all steps in one GEMM: XW (T*N, 4H) = x (T*N, I) . W_ih^T;
//   2. the recurrent weights are packed once (blas.h: PackedB);
//   3. the batch is split into one block of rows per thread, and each thread runs the whole time
//      loop for its rows: per step one GEMM with the packed W_hh and one pointwise pass (no barrier
//      between threads, rows never interact).
// Backward through time mirrors it: per step only dz . W_hh (and dh . W_hr, dz_ifo . W_gr) stays in
// the loop; the weight, bias and input gradients are single GEMMs over all T*N rows afterwards.
#pragma once

#include <cstdint>

namespace lstmkit {

// Bits of LstmConfig::flags.
enum LstmFlag : int {
  kPeephole = 1 << 0,       // i, f see c_{t-1}; o sees c_t (weight_peephole (3, H))
  kCoupled = 1 << 1,        // f = 1 - i (CIFG)
  kNoInputGate = 1 << 2,    // i = 1
  kNoForgetGate = 1 << 3,   // f = 1
  kNoOutputGate = 1 << 4,   // o = 1
  kGateRecurrence = 1 << 5, // i, f, o also see [i; f; o]_{t-1} through weight_gr (3H, 3H)
  kLayerNorm = 1 << 6,      // LN(x W_ih^T) g_ih + LN(h W_hh^T) g_hh + b; h = o act(LN(c))
  kNoBackward = 1 << 7,     // forward only (no grad): xw and hw (layer norm) need not be kept
  kInputGrad = 1 << 8,      // backward will need dx: with layer norm, the input side's LayerNorm
                            // backward is then rewritten through x, folded into the dx and dW_ih
                            // products (its row terms in the loop, its weight terms after it), and
                            // xw is not kept (see layer_norm.h, ln_input_rows_block)
};

struct LstmConfig {
  int64_t T, N, I, H, P;
  int flags;
  int gate_act, input_act, output_act;  // activation codes (pointwise.h)
};

// Layer norm with kInputGrad: the input side's LayerNorm backward is rewritten through x (layer_norm.h,
// ln_input_rows_block) and the forward keeps no xw, where I^2 <= 8H. The rewrite costs about 2 I^2
// multiply-adds a row (x W^T W and x x^T) and G4 I^2 once; keeping xw costs a (T, N, 4H) array
// written and read back and a LayerNorm backward pass over 4H a row. Measured (fwd+bwd, AVX-512,
// alternating, layer norm in ms, rewrite vs keep xw): (B, T, I, H) = (32, 100, 16, 64): 3.97 vs 4.17;
// (64, 100, 32, 128): 22.5 vs 23.1; (32, 100, 32, 64): 4.78 vs 4.38; (32, 200, 64, 256): 75.0 vs
// 75.3; (32, 100, 64, 64): 5.63 vs 5.47; (16, 40, 1024, 256): 73.0 vs 33.5. kernels/schema.py
// (_ln_keeps_xw) mirrors this rule for the shapes it declares.
inline bool ln_input_through_x(const LstmConfig& k) {
  return (k.flags & kLayerNorm) && (k.flags & kInputGrad) && k.I > 0 && k.I * k.I <= 8 * k.H;
}

// Everything a forward call reads and writes. Pointers marked "or null" are absent options.
template <typename S>
struct LstmForward {
  LstmConfig cfg;
  // inputs
  const S* x;          // (T, N, I)
  const S* h0;         // (N, P)
  const S* c0;         // (N, H)
  const S* w_ih;       // (4H, I)   rows [i | f | g | o]
  const S* w_hh;       // (4H, P)
  const S* bias;       // (4H) b_ih + b_hh, or null
  const S* w_hr;       // (P, H) projection, or null
  const S* w_peep;     // (3, H) [p_i; p_f; p_o], or null
  const S* w_gr;       // (3H, 3H), or null
  const S* ln_ih;      // (4H) LayerNorm gains (layer norm only), or null
  const S* ln_hh;      // (4H)
  const S* ln_cw;      // (H)
  const S* ln_cb;      // (H)
  const int64_t* lengths;  // (N), or null (all T)
  const S* rec_mask;   // (N, P) recurrent dropout mask (already scaled), or null
  const S* zone_c;     // (T, N, H) zoneout keep probability / sample for c, or null
  const S* zone_h;     // (T, N, P) the same for h, or null
  // outputs (also what backward needs)
  S* gates;   // (T, N, 4H) activations [i | f | g | o] (the gate trace)
  S* c;       // (T, N, H) cell state after zoneout (the c trace)
  S* c_new;   // (T, N, H) cell state before zoneout; == c when there is no zoneout on c
  S* h_all;   // (T + 1, N, P): [0] = h0, [t + 1] = h_t; h_all + N*P is the output y (T, N, P)
  S* h_in;    // (T, N, P) h_{t-1} * rec_mask (the W_hh operand), or null without rec_mask
  S* m;       // (T, N, H) o * act(c) before the projection, or null without projection
  S* a;       // (T + 1, N, 3H) [i; f; o] of the previous step (gate recurrence), or null
  S* xw;     // (T, N, 4H) x Wc_ih^T before its LayerNorm (layer norm, kept for backward), or null
             // (also with kNoBackward or kInputGrad); Wc the centred weights (pointwise.h,
             // centre_rows), so each row has mean 0 up to rounding
  S* hw;     // (T, N, 4H) h Wc_hh^T before its LayerNorm (layer norm), or null (also with kNoBackward)
  S* stats;  // (T, N, 6) [mean, rstd] of xw, of hw (means 0) and of c_t (layer norm), or null
  S* h_n;     // (N, P) final states (each row's last real step)
  S* c_n;     // (N, H)
};

// A backward call: the forward's tensors, the incoming gradients (null where none), the gradients out
// (null where not needed; dbias is d(b_ih) == d(b_hh)).
template <typename S>
struct LstmBackward {
  LstmForward<S> f;  // inputs and saved outputs of the forward call (its outputs read-only here)
  const S* dy;       // (T, N, P) or null
  const S* dh_n;     // (N, P) or null
  const S* dc_n;     // (N, H) or null
  const S* dgates;   // (T, N, 4H) gradient of the gate trace [i | f | g | o], or null
  const S* dc_trace;  // (T, N, H) gradient of the c trace, or null
  S* dx;        // (T, N, I)
  S* dh0;       // (N, P)
  S* dc0;       // (N, H)
  S* dw_ih;     // (4H, I)
  S* dw_hh;     // (4H, P)
  S* dbias;     // (4H)
  S* dw_hr;     // (P, H)
  S* dw_peep;   // (3, H)
  S* dw_gr;     // (3H, 3H)
  S* dln_ih;    // (4H)
  S* dln_hh;    // (4H)
  S* dln_cw;    // (H)
  S* dln_cb;    // (H)
};

template <typename S> void lstm_forward(const LstmForward<S>& a);
template <typename S> void lstm_backward(const LstmBackward<S>& a);

// ---- GRU ------------------------------------------------------------------------------------------
struct GruConfig {
  int64_t T, N, I, H;
};

template <typename S>
struct GruForward {
  GruConfig cfg;
  const S* x;          // (T, N, I)
  const S* h0;         // (N, H)
  const S* w_ih;       // (3H, I)   rows [r | z | n]
  const S* w_hh;       // (3H, H)
  const S* b_ih;       // (3H), or null
  const S* b_hh;       // (3H), or null
  const int64_t* lengths;  // (N), or null
  const S* rec_mask;   // (N, H), or null
  const S* zone_h;     // (T, N, H), or null
  S* gates;   // (T, N, 3H) activations [r | z | n]
  S* hn;      // (T, N, H) W_hn h_{t-1} + b_hn (what r multiplies)
  S* h_all;   // (T + 1, N, H): [0] = h0, [t + 1] = h_t; h_all + N*H is y (T, N, H)
  S* h_in;    // (T, N, H) h_{t-1} * rec_mask, or null
  S* h_n;     // (N, H)
};

template <typename S>
struct GruBackward {
  GruForward<S> f;
  const S* dy;         // (T, N, H) or null
  const S* dh_n;       // (N, H) or null
  const S* dgates;     // (T, N, 3H) gradient of the gate trace [r | z | n], or null
  S* dx;      // (T, N, I)
  S* dh0;     // (N, H)
  S* dw_ih;   // (3H, I)
  S* dw_hh;   // (3H, H)
  S* db_ih;   // (3H)
  S* db_hh;   // (3H)
};

template <typename S> void gru_forward(const GruForward<S>& a);
template <typename S> void gru_backward(const GruBackward<S>& a);

}  // namespace lstmkit
