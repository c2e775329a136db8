// The thin binding: torch tensors in, raw pointers to the kernels of fused.h, tensors out.
//
// Registered as the torch operators torch.ops.lstmkit.* with boxed kernels (no pybind11, no Python
// headers, no unboxing templates, so the build stays short, and the library loads with
// torch.ops.load_library). Autograd lives in Python (lstmkit/kernels/fused.py); these operators run
// with grad mode off.
//
// Argument and result lists (every tensor contiguous, one dtype: float32 or float64; lengths int64):
//
// lstm_forward(x (T,N,I), h0 (N,P), c0 (N,H), w_ih (4H,I), w_hh (4H,P), b_ih?, b_hh? (4H), w_hr? (P,H),
//              w_peep? (3,H), w_gr? (3H,3H), ln_ih?, ln_hh? (4H), ln_cw?, ln_cb? (H), lengths? (N),
//              rec_mask? (N,P), zone_c? (T,N,H), zone_h? (T,N,P), config [flags, gate_act,
//              input_act, output_act])
//   -> [y (T,N,P), h_n (N,P), c_n (N,H), gates (T,N,4H), c (T,N,H), c_new (T,N,H), h_all (T+1,N,P),
//       h_in?, m?, a?, xw?, hw?, stats?]            (see LstmForward in fused.h; ? = None)
// lstm_backward(the 18 inputs of lstm_forward, saved = results [3:13], grads = [dy (T,N,P), dh_n,
//               dc_n, d gates (T,N,4H), d c (T,N,H)] (each may be None), config [flags, acts x3,
//               needs])
//   -> [dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr, dw_peep, dw_gr, dln_ih, dln_hh, dln_cw,
//       dln_cb]; bit q of `needs` asks for gradient q (x = bit 0 ... ln_cb = bit 13), None otherwise.
// gru_forward(x, h0 (N,H), w_ih (3H,I), w_hh (3H,H), b_ih?, b_hh? (3H), lengths?, rec_mask? (N,H),
//             zone_h? (T,N,H)) -> [y, h_n, gates (T,N,3H), hn (T,N,H), h_all (T+1,N,H), h_in?]
// gru_backward(the 9 inputs, saved = results [2:6], grads = [dy, dh_n, d gates (T,N,3H)], config
//              [needs]) -> [dx, dh0, dw_ih, dw_hh, db_ih, db_hh]
// info() -> "<blas backend>"
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/core/stack.h>
#include <ATen/ops/from_blob.h>
#include <torch/library.h>

#include <cstdlib>
#include <initializer_list>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "blas.h"
#include "fused.h"

namespace lstmkit {
namespace {

using at::Tensor;
using OptT = std::optional<Tensor>;
using Tensors = std::vector<Tensor>;  // a Tensor?[] argument: undefined where None

int torch_threads() { return at::get_num_threads(); }

struct Registrar {
  Registrar() {
    set_num_threads_getter(&torch_threads);
  }
} registrar;

// ---- argument helpers ---------------------------------------------------------------------------------
void check(const Tensor& t, const char* name, c10::ScalarType dtype) {
  TORCH_CHECK(t.device().is_cpu(), "lstmkit fused: ", name, " must be on the CPU, got ", t.device());
  TORCH_CHECK(t.scalar_type() == dtype, "lstmkit fused: ", name, " must be ", dtype, ", got ",
              t.scalar_type());
  TORCH_CHECK(t.is_contiguous(), "lstmkit fused: ", name, " must be contiguous");
}

template <typename S>
const S* ptr(const OptT& t, const char* name, c10::ScalarType dtype) {
  if (!t.has_value() || !t->defined()) return nullptr;
  check(*t, name, dtype);
  return t->data_ptr<S>();
}

template <typename S>
const S* ptr(const Tensor& t, const char* name, c10::ScalarType dtype) {
  check(t, name, dtype);
  return t.data_ptr<S>();
}

const int64_t* lengths_ptr(const OptT& t) {
  if (!t.has_value() || !t->defined()) return nullptr;
  TORCH_CHECK(t->scalar_type() == at::kLong && t->is_contiguous() && t->device().is_cpu(),
              "lstmkit fused: lengths must be a contiguous int64 CPU tensor");
  return t->data_ptr<int64_t>();
}

// ---- memory: big buffers come from a pool, so that repeated calls do not fault fresh pages -----------
// A tensor from the pool owns its block until it dies (returned to the user, saved for backward...),
// then the block goes back to the pool. Free blocks are kept up to LSTMKIT_POOL_MB (default 1024) MiB.
class Pool {
 public:
  void* get(size_t bytes) {
    bytes = big_size(bytes);
    {
      std::lock_guard<std::mutex> g(mu_);
      auto it = free_.lower_bound(bytes);
      if (it != free_.end() && it->first <= bytes + bytes / 4) {
        void* p = it->second;
        cached_ -= it->first;
        free_.erase(it);
        return p;
      }
    }
    void* p = big_alloc(bytes);
    std::lock_guard<std::mutex> g(mu_);
    size_[p] = bytes;
    return p;
  }
  void put(void* p) {
    std::lock_guard<std::mutex> g(mu_);
    const size_t bytes = size_[p];
    free_.emplace(bytes, p);
    cached_ += bytes;
    while (cached_ > cap() && !free_.empty()) {  // drop the largest blocks first
      auto last = std::prev(free_.end());
      cached_ -= last->first;
      size_.erase(last->second);
      std::free(last->second);
      free_.erase(last);
    }
  }

 private:
  static size_t cap() {
    static const size_t c = [] {
      const char* e = std::getenv("LSTMKIT_POOL_MB");
      return size_t(e ? std::atoll(e) : 1024) << 20;
    }();
    return c;
  }
  std::mutex mu_;
  std::multimap<size_t, void*> free_;
  std::unordered_map<void*, size_t> size_;
  size_t cached_ = 0;
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: tensors may outlive static destruction
  return *p;
}

constexpr size_t kPoolMinBytes = 1 << 16;

Tensor empty_like_dtype(at::IntArrayRef shape, const Tensor& like) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  const size_t bytes = size_t(n) * like.element_size();
  if (bytes < kPoolMinBytes) return at::empty(shape, like.options());
  void* p = pool().get(bytes);
  return at::from_blob(p, shape, [](void* q) { pool().put(q); }, like.options());
}

template <typename S>
S* out_ptr(const Tensor& t) {
  return t.defined() ? t.data_ptr<S>() : nullptr;
}

Tensor opt_at(const Tensors& l, size_t i) { return i < l.size() ? l[i] : Tensor(); }

// Point *dst[q] at the data of list[q], or null where the list has no defined tensor q (a saved
// buffer or an incoming gradient). The returned tensors keep that data alive while it is used.
template <typename S, typename P>
std::vector<Tensor> bind_list(const Tensors& list, std::initializer_list<P*> dst, const char* what,
                              c10::ScalarType dt) {
  std::vector<Tensor> keep;
  keep.reserve(dst.size());
  for (P* d : dst) {
    keep.push_back(opt_at(list, keep.size()));
    *d = keep.back().defined() ? const_cast<S*>(ptr<S>(keep.back(), what, dt)) : nullptr;
  }
  return keep;
}

// b_ih + b_hh, or undefined
Tensor bias_sum(const OptT& bih, const OptT& bhh) {
  if (!bih.has_value() || !bih->defined()) return Tensor();
  Tensor b = at::empty(bih->sizes(), bih->options());
  AT_DISPATCH_FLOATING_TYPES(b.scalar_type(), "lstmkit_bias", [&] {
    const scalar_t* p = bih->data_ptr<scalar_t>();
    const scalar_t* q = bhh->data_ptr<scalar_t>();
    scalar_t* o = b.data_ptr<scalar_t>();
    for (int64_t j = 0; j < b.numel(); ++j) o[j] = p[j] + q[j];
  });
  return b;
}

// ---- LSTM ---------------------------------------------------------------------------------------------
template <typename S>
LstmForward<S> lstm_inputs(const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& w_ih,
                           const Tensor& w_hh, const Tensor& bias, const OptT& w_hr, const OptT& w_peep,
                           const OptT& w_gr, const OptT& ln_ih, const OptT& ln_hh, const OptT& ln_cw,
                           const OptT& ln_cb, const OptT& lengths, const OptT& rec_mask,
                           const OptT& zone_c, const OptT& zone_h, at::IntArrayRef config) {
  const auto dt = x.scalar_type();
  TORCH_CHECK(x.dim() == 3 && h0.dim() == 2 && c0.dim() == 2 && config.size() >= 4,
              "lstmkit fused: expected x (T, N, I), h0 (N, P), c0 (N, H) and a 4-entry config");
  LstmForward<S> a{};
  a.cfg.T = x.size(0);
  a.cfg.N = x.size(1);
  a.cfg.I = x.size(2);
  a.cfg.H = c0.size(1);
  a.cfg.P = h0.size(1);
  a.cfg.flags = int(config[0]);
  a.cfg.gate_act = int(config[1]);
  a.cfg.input_act = int(config[2]);
  a.cfg.output_act = int(config[3]);
  const int64_t H = a.cfg.H, P = a.cfg.P, I = a.cfg.I;
  TORCH_CHECK(w_ih.sizes() == at::IntArrayRef({4 * H, I}) && w_hh.sizes() == at::IntArrayRef({4 * H, P}),
              "lstmkit fused: expected weight_ih (", 4 * H, ", ", I, ") and weight_hh (", 4 * H, ", ",
              P, "), got ", w_ih.sizes(), " and ", w_hh.sizes());
  TORCH_CHECK(P == H || (w_hr.has_value() && w_hr->defined()),
              "lstmkit fused: h0 has ", P, " features but c0 has ", H, " and there is no weight_hr");
  a.x = ptr<S>(x, "x", dt);
  a.h0 = ptr<S>(h0, "h0", dt);
  a.c0 = ptr<S>(c0, "c0", dt);
  a.w_ih = ptr<S>(w_ih, "weight_ih", dt);
  a.w_hh = ptr<S>(w_hh, "weight_hh", dt);
  a.bias = bias.defined() ? bias.data_ptr<S>() : nullptr;
  a.w_hr = ptr<S>(w_hr, "weight_hr", dt);
  a.w_peep = ptr<S>(w_peep, "weight_peephole", dt);
  a.w_gr = ptr<S>(w_gr, "weight_gr", dt);
  a.ln_ih = ptr<S>(ln_ih, "ln_ih", dt);
  a.ln_hh = ptr<S>(ln_hh, "ln_hh", dt);
  a.ln_cw = ptr<S>(ln_cw, "ln_c_weight", dt);
  a.ln_cb = ptr<S>(ln_cb, "ln_c_bias", dt);
  a.lengths = lengths_ptr(lengths);
  a.rec_mask = ptr<S>(rec_mask, "rec_mask", dt);
  a.zone_c = ptr<S>(zone_c, "zoneout_c", dt);
  a.zone_h = ptr<S>(zone_h, "zoneout_h", dt);
  TORCH_CHECK(!(a.cfg.flags & kPeephole) || a.w_peep, "lstmkit fused: peephole without weight_peephole");
  TORCH_CHECK(!(a.cfg.flags & kGateRecurrence) || a.w_gr, "lstmkit fused: gate_recurrence without weight_gr");
  TORCH_CHECK(!(a.cfg.flags & kLayerNorm) || (a.ln_ih && a.ln_hh && a.ln_cw && a.ln_cb),
              "lstmkit fused: layer_norm without its gains");
  return a;
}

std::vector<Tensor> lstm_forward_op(const Tensor& x, const Tensor& h0, const Tensor& c0,
                                    const Tensor& w_ih, const Tensor& w_hh, const OptT& b_ih,
                                    const OptT& b_hh, const OptT& w_hr, const OptT& w_peep,
                                    const OptT& w_gr, const OptT& ln_ih, const OptT& ln_hh,
                                    const OptT& ln_cw, const OptT& ln_cb, const OptT& lengths,
                                    const OptT& rec_mask, const OptT& zone_c, const OptT& zone_h,
                                    at::IntArrayRef config) {
  const Tensor bias = bias_sum(b_ih, b_hh);
  std::vector<Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstmkit_lstm_forward", [&] {
    using S = scalar_t;
    LstmForward<S> a = lstm_inputs<S>(x, h0, c0, w_ih, w_hh, bias, w_hr, w_peep, w_gr, ln_ih, ln_hh,
                                      ln_cw, ln_cb, lengths, rec_mask, zone_c, zone_h, config);
    const int64_t T = a.cfg.T, N = a.cfg.N, H = a.cfg.H, P = a.cfg.P;
    const bool ln = a.cfg.flags & kLayerNorm;
    Tensor gates = empty_like_dtype({T, N, 4 * H}, x);
    Tensor c = empty_like_dtype({T, N, H}, x);
    Tensor c_new = a.zone_c ? empty_like_dtype({T, N, H}, x) : c;
    Tensor h_all = empty_like_dtype({T + 1, N, P}, x);
    Tensor h_in = a.rec_mask ? empty_like_dtype({T, N, P}, x) : Tensor();
    Tensor m = a.w_hr ? empty_like_dtype({T, N, H}, x) : Tensor();
    Tensor ga = (a.cfg.flags & kGateRecurrence) ? empty_like_dtype({T + 1, N, 3 * H}, x) : Tensor();
    const bool keep = ln && !(a.cfg.flags & kNoBackward);  // what only backward reads
    Tensor xw = keep && !ln_input_after_loop(a.cfg) ? empty_like_dtype({T, N, 4 * H}, x) : Tensor();
    Tensor hw = keep ? empty_like_dtype({T, N, 4 * H}, x) : Tensor();
    Tensor stats = ln ? empty_like_dtype({T, N, 6}, x) : Tensor();
    Tensor h_n = empty_like_dtype({N, P}, x);
    Tensor c_n = empty_like_dtype({N, H}, x);
    a.gates = gates.data_ptr<S>();
    a.c = c.data_ptr<S>();
    a.c_new = c_new.data_ptr<S>();
    a.h_all = h_all.data_ptr<S>();
    a.h_in = out_ptr<S>(h_in);
    a.m = out_ptr<S>(m);
    a.a = out_ptr<S>(ga);
    a.xw = out_ptr<S>(xw);
    a.hw = out_ptr<S>(hw);
    a.stats = out_ptr<S>(stats);
    a.h_n = h_n.data_ptr<S>();
    a.c_n = c_n.data_ptr<S>();
    lstm_forward<S>(a);
    out = {h_all.narrow(0, 1, T), h_n, c_n, gates, c, c_new, h_all, h_in, m, ga, xw, hw, stats};
  });
  return out;
}

std::vector<Tensor> lstm_backward_op(const Tensor& x, const Tensor& h0, const Tensor& c0,
                                     const Tensor& w_ih, const Tensor& w_hh, const OptT& b_ih,
                                     const OptT& b_hh, const OptT& w_hr, const OptT& w_peep,
                                     const OptT& w_gr, const OptT& ln_ih, const OptT& ln_hh,
                                     const OptT& ln_cw, const OptT& ln_cb, const OptT& lengths,
                                     const OptT& rec_mask, const OptT& zone_c, const OptT& zone_h,
                                     const Tensors& saved, const Tensors& grads,
                                     at::IntArrayRef config) {
  TORCH_CHECK(config.size() >= 5 && saved.size() == 10 && grads.size() == 5,
              "lstmkit fused: lstm_backward expects 10 saved tensors, 5 gradients and a 5-entry config");
  const int64_t needs = config[4];
  auto need = [&](int q) { return (needs >> q) & 1; };
  const Tensor bias = bias_sum(b_ih, b_hh);
  std::vector<Tensor> out(14);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstmkit_lstm_backward", [&] {
    using S = scalar_t;
    const auto dt = x.scalar_type();
    LstmBackward<S> b{};
    b.f = lstm_inputs<S>(x, h0, c0, w_ih, w_hh, bias, w_hr, w_peep, w_gr, ln_ih, ln_hh, ln_cw, ln_cb,
                         lengths, rec_mask, zone_c, zone_h, config);
    LstmForward<S>& a = b.f;
    const auto keep = bind_list<S, S*>(
        saved, {&a.gates, &a.c, &a.c_new, &a.h_all, &a.h_in, &a.m, &a.a, &a.xw, &a.hw, &a.stats},
        "saved", dt);
    const auto g = bind_list<S, const S*>(grads, {&b.dy, &b.dh_n, &b.dc_n, &b.dgates, &b.dc_trace},
                                          "grad", dt);

    const Tensor* like[14] = {&x, &h0, &c0, &w_ih, &w_hh, nullptr, nullptr, nullptr, nullptr,
                              nullptr, nullptr, nullptr, nullptr, nullptr};
    const OptT* opt_like[14] = {nullptr, nullptr, nullptr, nullptr, nullptr, &b_ih, &b_hh, &w_hr,
                                &w_peep, &w_gr, &ln_ih, &ln_hh, &ln_cw, &ln_cb};
    for (int q = 0; q < 14; ++q) {
      const bool always = q == 1 || q == 2;  // dh0, dc0 are the kernel's running state
      const Tensor* src = like[q] ? like[q] : (opt_like[q]->has_value() ? &opt_like[q]->value() : nullptr);
      if (src && src->defined() && (always || need(q))) out[q] = empty_like_dtype(src->sizes(), x);
    }
    // d(b_ih) == d(b_hh): computed once, copied
    Tensor dbias = (need(5) || need(6)) && bias.defined() ? at::empty(bias.sizes(), x.options()) : Tensor();
    b.dx = out_ptr<S>(out[0]);
    b.dh0 = out_ptr<S>(out[1]);
    b.dc0 = out_ptr<S>(out[2]);
    b.dw_ih = out_ptr<S>(out[3]);
    b.dw_hh = out_ptr<S>(out[4]);
    b.dbias = out_ptr<S>(dbias);
    b.dw_hr = out_ptr<S>(out[7]);
    b.dw_peep = out_ptr<S>(out[8]);
    b.dw_gr = out_ptr<S>(out[9]);
    b.dln_ih = out_ptr<S>(out[10]);
    b.dln_hh = out_ptr<S>(out[11]);
    b.dln_cw = out_ptr<S>(out[12]);
    b.dln_cb = out_ptr<S>(out[13]);
    lstm_backward<S>(b);
    if (dbias.defined()) {
      out[5] = need(5) ? dbias : Tensor();
      out[6] = need(6) ? (need(5) ? dbias.clone() : dbias) : Tensor();
    }
  });
  return out;
}

// ---- GRU ----------------------------------------------------------------------------------------------
template <typename S>
GruForward<S> gru_inputs(const Tensor& x, const Tensor& h0, const Tensor& w_ih, const Tensor& w_hh,
                         const OptT& b_ih, const OptT& b_hh, const OptT& lengths, const OptT& rec_mask,
                         const OptT& zone_h) {
  const auto dt = x.scalar_type();
  TORCH_CHECK(x.dim() == 3 && h0.dim() == 2, "lstmkit fused: expected x (T, N, I) and h0 (N, H)");
  GruForward<S> a{};
  a.cfg.T = x.size(0);
  a.cfg.N = x.size(1);
  a.cfg.I = x.size(2);
  a.cfg.H = h0.size(1);
  const int64_t H = a.cfg.H, I = a.cfg.I;
  TORCH_CHECK(w_ih.sizes() == at::IntArrayRef({3 * H, I}) && w_hh.sizes() == at::IntArrayRef({3 * H, H}),
              "lstmkit fused: expected GRU weight_ih (", 3 * H, ", ", I, ") and weight_hh (", 3 * H,
              ", ", H, "), got ", w_ih.sizes(), " and ", w_hh.sizes());
  a.x = ptr<S>(x, "x", dt);
  a.h0 = ptr<S>(h0, "h0", dt);
  a.w_ih = ptr<S>(w_ih, "weight_ih", dt);
  a.w_hh = ptr<S>(w_hh, "weight_hh", dt);
  a.b_ih = ptr<S>(b_ih, "bias_ih", dt);
  a.b_hh = ptr<S>(b_hh, "bias_hh", dt);
  a.lengths = lengths_ptr(lengths);
  a.rec_mask = ptr<S>(rec_mask, "rec_mask", dt);
  a.zone_h = ptr<S>(zone_h, "zoneout_h", dt);
  return a;
}

std::vector<Tensor> gru_forward_op(const Tensor& x, const Tensor& h0, const Tensor& w_ih,
                                   const Tensor& w_hh, const OptT& b_ih, const OptT& b_hh,
                                   const OptT& lengths, const OptT& rec_mask, const OptT& zone_h) {
  std::vector<Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstmkit_gru_forward", [&] {
    using S = scalar_t;
    GruForward<S> a = gru_inputs<S>(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, rec_mask, zone_h);
    const int64_t T = a.cfg.T, N = a.cfg.N, H = a.cfg.H;
    Tensor gates = empty_like_dtype({T, N, 3 * H}, x);
    Tensor hn = empty_like_dtype({T, N, H}, x);
    Tensor h_all = empty_like_dtype({T + 1, N, H}, x);
    Tensor h_in = a.rec_mask ? empty_like_dtype({T, N, H}, x) : Tensor();
    Tensor h_n = empty_like_dtype({N, H}, x);
    a.gates = gates.data_ptr<S>();
    a.hn = hn.data_ptr<S>();
    a.h_all = h_all.data_ptr<S>();
    a.h_in = out_ptr<S>(h_in);
    a.h_n = h_n.data_ptr<S>();
    gru_forward<S>(a);
    out = {h_all.narrow(0, 1, T), h_n, gates, hn, h_all, h_in};
  });
  return out;
}

std::vector<Tensor> gru_backward_op(const Tensor& x, const Tensor& h0, const Tensor& w_ih,
                                    const Tensor& w_hh, const OptT& b_ih, const OptT& b_hh,
                                    const OptT& lengths, const OptT& rec_mask, const OptT& zone_h,
                                    const Tensors& saved, const Tensors& grads, at::IntArrayRef config) {
  TORCH_CHECK(config.size() >= 1 && saved.size() == 4 && grads.size() == 3,
              "lstmkit fused: gru_backward expects 4 saved tensors, 3 gradients and a 1-entry config");
  const int64_t needs = config[0];
  auto need = [&](int q) { return (needs >> q) & 1; };
  std::vector<Tensor> out(6);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstmkit_gru_backward", [&] {
    using S = scalar_t;
    const auto dt = x.scalar_type();
    GruBackward<S> b{};
    b.f = gru_inputs<S>(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, rec_mask, zone_h);
    GruForward<S>& a = b.f;
    const auto keep = bind_list<S, S*>(saved, {&a.gates, &a.hn, &a.h_all, &a.h_in}, "saved", dt);
    const auto g = bind_list<S, const S*>(grads, {&b.dy, &b.dh_n, &b.dgates}, "grad", dt);
    if (need(0)) out[0] = empty_like_dtype(x.sizes(), x);
    out[1] = at::empty(h0.sizes(), x.options());
    if (need(2)) out[2] = at::empty(w_ih.sizes(), x.options());
    if (need(3)) out[3] = at::empty(w_hh.sizes(), x.options());
    if (need(4) && b_ih.has_value()) out[4] = at::empty(b_ih->sizes(), x.options());
    if (need(5) && b_hh.has_value()) out[5] = at::empty(b_hh->sizes(), x.options());
    b.dx = out_ptr<S>(out[0]);
    b.dh0 = out_ptr<S>(out[1]);
    b.dw_ih = out_ptr<S>(out[2]);
    b.dw_hh = out_ptr<S>(out[3]);
    b.db_ih = out_ptr<S>(out[4]);
    b.db_hh = out_ptr<S>(out[5]);
    gru_backward<S>(b);
  });
  return out;
}

// ---- boxed kernels: arguments popped from the operator stack, results pushed ---------------------------
OptT opt(const c10::IValue& v) { return v.isNone() ? OptT() : OptT(v.toTensor()); }

Tensors tensors(const c10::IValue& v) {
  Tensors out;
  for (const c10::IValue& e : v.toListRef()) out.push_back(e.isNone() ? Tensor() : e.toTensor());
  return out;
}

void lstm_forward_boxed(const c10::OperatorHandle&, torch::jit::Stack* st) {
  auto a = torch::jit::last(*st, 19);
  std::vector<int64_t> cfg = a[18].toIntVector();
  Tensors out = lstm_forward_op(a[0].toTensor(), a[1].toTensor(), a[2].toTensor(), a[3].toTensor(),
                                a[4].toTensor(), opt(a[5]), opt(a[6]), opt(a[7]), opt(a[8]), opt(a[9]),
                                opt(a[10]), opt(a[11]), opt(a[12]), opt(a[13]), opt(a[14]), opt(a[15]),
                                opt(a[16]), opt(a[17]), cfg);
  torch::jit::drop(*st, 19);
  st->emplace_back(std::move(out));
}

void lstm_backward_boxed(const c10::OperatorHandle&, torch::jit::Stack* st) {
  auto a = torch::jit::last(*st, 21);
  std::vector<int64_t> cfg = a[20].toIntVector();
  Tensors out = lstm_backward_op(a[0].toTensor(), a[1].toTensor(), a[2].toTensor(), a[3].toTensor(),
                                 a[4].toTensor(), opt(a[5]), opt(a[6]), opt(a[7]), opt(a[8]),
                                 opt(a[9]), opt(a[10]), opt(a[11]), opt(a[12]), opt(a[13]),
                                 opt(a[14]), opt(a[15]), opt(a[16]), opt(a[17]), tensors(a[18]),
                                 tensors(a[19]), cfg);
  torch::jit::drop(*st, 21);
  st->emplace_back(std::move(out));
}

void gru_forward_boxed(const c10::OperatorHandle&, torch::jit::Stack* st) {
  auto a = torch::jit::last(*st, 9);
  Tensors out = gru_forward_op(a[0].toTensor(), a[1].toTensor(), a[2].toTensor(), a[3].toTensor(),
                               opt(a[4]), opt(a[5]), opt(a[6]), opt(a[7]), opt(a[8]));
  torch::jit::drop(*st, 9);
  st->emplace_back(std::move(out));
}

void gru_backward_boxed(const c10::OperatorHandle&, torch::jit::Stack* st) {
  auto a = torch::jit::last(*st, 12);
  std::vector<int64_t> cfg = a[11].toIntVector();
  Tensors out = gru_backward_op(a[0].toTensor(), a[1].toTensor(), a[2].toTensor(), a[3].toTensor(),
                                opt(a[4]), opt(a[5]), opt(a[6]), opt(a[7]), opt(a[8]), tensors(a[9]),
                                tensors(a[10]), cfg);
  torch::jit::drop(*st, 12);
  st->emplace_back(std::move(out));
}

void info_boxed(const c10::OperatorHandle&, torch::jit::Stack* st) {
  st->emplace_back(std::string(blas_backend()));
}

}  // namespace
}  // namespace lstmkit

TORCH_LIBRARY(lstmkit, m) {
  using namespace lstmkit;
  using torch::CppFunction;
  m.def("lstm_forward(Tensor x, Tensor h0, Tensor c0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, "
        "Tensor? b_hh, Tensor? w_hr, Tensor? w_peep, Tensor? w_gr, Tensor? ln_ih, Tensor? ln_hh, "
        "Tensor? ln_cw, Tensor? ln_cb, Tensor? lengths, Tensor? rec_mask, Tensor? zone_c, "
        "Tensor? zone_h, int[] config) -> Tensor[]",
        CppFunction::makeFromBoxedFunction<&lstm_forward_boxed>());
  m.def("lstm_backward(Tensor x, Tensor h0, Tensor c0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, "
        "Tensor? b_hh, Tensor? w_hr, Tensor? w_peep, Tensor? w_gr, Tensor? ln_ih, Tensor? ln_hh, "
        "Tensor? ln_cw, Tensor? ln_cb, Tensor? lengths, Tensor? rec_mask, Tensor? zone_c, "
        "Tensor? zone_h, Tensor?[] saved, Tensor?[] grads, int[] config) -> Tensor[]",
        CppFunction::makeFromBoxedFunction<&lstm_backward_boxed>());
  m.def("gru_forward(Tensor x, Tensor h0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, Tensor? b_hh, "
        "Tensor? lengths, Tensor? rec_mask, Tensor? zone_h) -> Tensor[]",
        CppFunction::makeFromBoxedFunction<&gru_forward_boxed>());
  m.def("gru_backward(Tensor x, Tensor h0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, Tensor? b_hh, "
        "Tensor? lengths, Tensor? rec_mask, Tensor? zone_h, Tensor?[] saved, Tensor?[] grads, "
        "int[] config) -> Tensor[]",
        CppFunction::makeFromBoxedFunction<&gru_backward_boxed>());
  m.def("info() -> str", CppFunction::makeFromBoxedFunction<&info_boxed>());
}
