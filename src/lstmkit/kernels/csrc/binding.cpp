// The thin binding: torch tensors in, raw pointers to the kernels of fused.h, tensors out.
//
// The operators torch.ops.lstmkit.{lstm,gru}_{forward,backward} are DEFINED in Python
// (lstmkit/kernels/schema.py holds the one ordered table of their named arguments and results;
// lstmkit/kernels/ops.py registers the schemas, the fake (meta) implementations and autograd with
// torch.library). This file registers their CPU kernels as boxed functions (no pybind11, no Python
// headers, no unboxing templates, so the build stays short and the library loads with
// torch.ops.load_library) and reads every argument, and writes every result, BY NAME through the
// registered schema: nothing here depends on the order of the table.
//
// Every tensor is checked at this boundary before a pointer is taken (check_args): device (CPU),
// dtype (x's, float32 or float64; lengths int64), contiguity, and its exact shape from the rules in
// kShapes (the shapes of schema.py, in the symbols of fused.h), so a wrong-sized parameter is an
// error naming the parameter, the expected and the actual shape, never an out-of-bounds read.
// Absent optional tensors are None; absent saved buffers are empty (0,) tensors.
//
// info() -> "<blas backend>" is defined here (TORCH_LIBRARY_FRAGMENT).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/stack.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <torch/library.h>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "blas.h"
#include "fused.h"
#include "pointwise.h"

namespace lstmkit {
namespace {

using at::Tensor;

int torch_threads() { return at::get_num_threads(); }

struct Registrar {
  Registrar() {
    set_num_threads_getter(&torch_threads);
  }
} registrar;

// ---- the shape of every tensor at the boundary (the shapes of kernels/schema.py) ----------------------
struct ShapeRule {
  const char* name;
  const char* lstm;  // shape in an LSTM call, or null
  const char* gru;   // shape in a GRU call, or null
};

// Every tensor argument of the four operators. A tensor argument without a rule is an error, so an
// argument added to kernels/schema.py cannot reach a kernel unchecked.
constexpr ShapeRule kShapes[] = {
    {"x", "T,N,I", "T,N,I"},
    {"h0", "N,P", "N,H"},
    {"c0", "N,H", nullptr},
    {"weight_ih", "4H,I", "3H,I"},
    {"weight_hh", "4H,P", "3H,H"},
    {"bias_ih", "4H", "3H"},
    {"bias_hh", "4H", "3H"},
    {"weight_hr", "P,H", nullptr},
    {"weight_peephole", "3,H", nullptr},
    {"weight_gr", "3H,3H", nullptr},
    {"ln_ih", "4H", nullptr},
    {"ln_hh", "4H", nullptr},
    {"ln_c_weight", "H", nullptr},
    {"ln_c_bias", "H", nullptr},
    {"lengths", "N", "N"},
    {"rec_mask", "N,P", "N,H"},
    {"zoneout_c", "T,N,H", nullptr},
    {"zoneout_h", "T,N,P", "T,N,H"},
    // saved by the forward call, read by backward
    {"h_all", "T+1,N,P", "T+1,N,H"},
    {"gates", "T,N,4H", "T,N,3H"},
    {"c", "T,N,H", nullptr},
    {"c_new", "T,N,H", nullptr},
    {"h_in", "T,N,P", "T,N,H"},
    {"m", "T,N,H", nullptr},
    {"a", "T+1,N,3H", nullptr},
    {"xw", "T,N,4H", nullptr},
    {"hw", "T,N,4H", nullptr},
    {"stats", "T,N,6", nullptr},
    {"hn", nullptr, "T,N,H"},
    // incoming gradients
    {"grad_y", "T,N,P", "T,N,H"},
    {"grad_h_n", "N,P", "N,H"},
    {"grad_c_n", "N,H", nullptr},
    {"grad_gates", "T,N,4H", "T,N,3H"},
    {"grad_c", "T,N,H", nullptr},
};

// Saved buffers that a call's options make absent arrive as empty (0,) placeholders.
bool is_saved_buffer(const std::string& name) {
  static const char* names[] = {"c_new", "h_in", "m", "a", "xw", "hw", "stats"};
  for (const char* n : names)
    if (name == n) return true;
  return false;
}

// One dimension of a shape rule: factor * symbol + plus ("4H" = {4, 'H', 0}, "T+1" = {1, 'T', 1},
// "6" = {6, 0, 0}).
struct Term {
  int64_t factor = 1;
  char sym = 0;
  int64_t plus = 0;
};

std::vector<Term> parse_shape(const char* spec) {
  std::vector<Term> out;
  for (const char* p = spec; *p;) {
    Term t;
    const char* q = p;
    int64_t f = 0;
    while (std::isdigit(static_cast<unsigned char>(*p))) f = 10 * f + (*p++ - '0');
    if (p != q) t.factor = f;
    if (*p && *p != ',') {
      t.sym = *p++;
      if (*p == '+') {
        ++p;
        int64_t v = 0;
        while (std::isdigit(static_cast<unsigned char>(*p))) v = 10 * v + (*p++ - '0');
        t.plus = v;
      }
    }
    TORCH_CHECK(p != q && (*p == ',' || *p == 0), "lstmkit fused: bad shape rule '", spec, "'");
    out.push_back(t);
    if (*p == ',') ++p;
  }
  return out;
}

// ---- arguments and results by name -------------------------------------------------------------------
// What the binding needs of one operator's schema, prepared once (per operator and kind): each
// argument's index by name, whether it is a tensor, and its parsed shape rule. A call then looks
// its arguments up by hash, and checks shapes without parsing text.
struct ArgInfo {
  const char* name = nullptr;  // the schema's own string (identifies the schema it came from)
  bool tensor = false;         // Tensor or Tensor?
  bool required = false;       // Tensor (not Tensor?)
  bool saved = false;          // a saved buffer, absent as an empty (0,) tensor
  const char* spec = nullptr;  // its shape rule in kShapes for this kind, or null
  std::vector<Term> shape;
};

struct Table {
  const c10::FunctionSchema* schema = nullptr;
  bool lstm = false;
  std::vector<ArgInfo> args;  // in the schema's order
  std::unordered_map<std::string_view, size_t> index;

  // Still the table of `s`: the same object, with the same argument strings (a schema registered
  // again at a reused address has new strings).
  bool describes(const c10::FunctionSchema& s, bool k) const {
    if (schema != &s || lstm != k || args.size() != s.arguments().size()) return false;
    for (size_t i = 0; i < args.size(); ++i)
      if (args[i].name != s.arguments()[i].name().c_str()) return false;
    return true;
  }
};

const Table& table_of(const c10::FunctionSchema& s, bool lstm) {
  static std::mutex mu;
  static auto* tables = new std::vector<std::unique_ptr<Table>>();  // never destroyed (few, small)
  std::lock_guard<std::mutex> g(mu);
  for (const auto& t : *tables)
    if (t->describes(s, lstm)) return *t;
  auto t = std::make_unique<Table>();
  t->schema = &s;
  t->lstm = lstm;
  for (const c10::Argument& arg : s.arguments()) {
    ArgInfo a;
    a.name = arg.name().c_str();
    a.tensor = arg.type()->isSubtypeOf(*c10::OptionalType::ofTensor());
    a.required = arg.type()->kind() == c10::TypeKind::TensorType;
    a.saved = is_saved_buffer(arg.name());
    for (const ShapeRule& r : kShapes)
      if (arg.name() == r.name) a.spec = lstm ? r.lstm : r.gru;
    if (a.spec) a.shape = parse_shape(a.spec);
    t->index.emplace(std::string_view(arg.name()), t->args.size());
    t->args.push_back(std::move(a));
  }
  tables->push_back(std::move(t));
  return *tables->back();
}

// The arguments of one boxed call, looked up by their schema names.
class Args {
 public:
  Args(const c10::OperatorHandle& op, torch::jit::Stack* st, bool lstm)
      : schema_(op.schema()), table_(table_of(schema_, lstm)), st_(st), n_(schema_.arguments().size()),
        base_(st->size() - n_) {}

  const c10::IValue& operator[](const char* name) const {
    auto it = table_.index.find(std::string_view(name));
    TORCH_CHECK(it != table_.index.end(), "lstmkit fused: operator ", schema_.name(), " has no argument '",
                name, "' (kernels/schema.py and csrc/binding.cpp disagree)");
    return (*st_)[base_ + it->second];
  }
  const c10::IValue& at(size_t i) const { return (*st_)[base_ + i]; }
  // an optional tensor: undefined where None (or, for saved buffers, an empty (0,) placeholder)
  Tensor tensor(const char* name) const {
    const c10::IValue& v = (*this)[name];
    if (v.isNone()) return Tensor();
    return v.toTensor();
  }
  bool flag(const char* name) const { return (*this)[name].toBool(); }
  std::string str(const char* name) const { return (*this)[name].toStringRef(); }
  std::vector<bool> bools(const char* name) const {
    std::vector<bool> out;
    for (const c10::IValue& e : (*this)[name].toListRef()) out.push_back(e.toBool());
    return out;
  }
  const c10::FunctionSchema& schema() const { return schema_; }
  const Table& table() const { return table_; }
  // Replace the arguments on the stack by the results, in the schema's order of named returns.
  void finish(std::map<std::string, Tensor>& results) {
    torch::jit::drop(*st_, n_);
    for (const c10::Argument& r : schema_.returns()) {
      auto it = results.find(r.name());
      TORCH_CHECK(it != results.end(), "lstmkit fused: no result '", r.name(), "' for ", schema_.name());
      st_->emplace_back(std::move(it->second));
    }
  }

 private:
  const c10::FunctionSchema& schema_;
  const Table& table_;
  torch::jit::Stack* st_;
  size_t n_, base_;
};

struct Dims {
  int64_t T = 0, N = 0, I = 0, H = 0, P = 0;
  int64_t get(char s) const {
    switch (s) {
      case 'T': return T;
      case 'N': return N;
      case 'I': return I;
      case 'H': return H;
      case 'P': return P;
    }
    TORCH_CHECK(false, "lstmkit fused: unknown shape symbol ", s);
  }
  // {4, 'H', 0}, {1, 'T', 1} -> {4 * H, T + 1}
  c10::SmallVector<int64_t, 4> eval(const std::vector<Term>& shape) const {
    c10::SmallVector<int64_t, 4> out;
    for (const Term& t : shape) out.push_back(t.factor * (t.sym ? get(t.sym) : 1) + t.plus);
    return out;
  }
};

std::string shape_str(at::IntArrayRef s) {
  std::ostringstream o;
  o << "(";
  for (size_t k = 0; k < s.size(); ++k) o << (k ? ", " : "") << s[k];
  o << (s.size() == 1 ? ",)" : ")");
  return o.str();
}

std::string symbols_str(const char* spec) {
  std::string s = spec;
  for (char& ch : s)
    if (ch == ',') ch = ';';
  std::string out = "(";
  for (char ch : s) out += ch == ';' ? std::string(", ") : std::string(1, ch);
  return out + (std::strchr(spec, ',') ? ")" : ",)");
}

// Check every tensor argument of the call: CPU, dtype, contiguity and exact shape, by name.
void check_args(const Args& args, const Dims& d, bool lstm, c10::ScalarType dt) {
  const Table& tab = args.table();
  for (size_t i = 0; i < tab.args.size(); ++i) {
    const ArgInfo& ai = tab.args[i];
    if (!ai.tensor) continue;  // flags, lists
    const c10::IValue& v = args.at(i);
    if (v.isNone() || !v.toTensor().defined()) continue;
    const Tensor& t = v.toTensor();
    if (ai.saved && t.dim() == 1 && t.numel() == 0) continue;  // absent buffer
    const char* name = ai.name;
    TORCH_CHECK(ai.spec, "lstmkit fused: ", args.schema().name(), ": no shape rule for the tensor argument '",
                name, "'");
    TORCH_CHECK_VALUE(t.device().is_cpu(), "lstmkit fused: ", name, ": expected a CPU tensor, got one on ",
                t.device());
    const bool is_lengths = std::strcmp(name, "lengths") == 0;
    const c10::ScalarType want_dt = is_lengths ? at::kLong : dt;
    TORCH_CHECK_TYPE(t.scalar_type() == want_dt, "lstmkit fused: ", name, ": expected dtype ", want_dt,
                is_lengths ? "" : " (x's dtype)", ", got ", t.scalar_type());
    const auto want = d.eval(ai.shape);
    TORCH_CHECK_VALUE(t.sizes() == at::IntArrayRef(want), "lstmkit fused: ", name, ": expected shape ",
                shape_str(want), " = ", symbols_str(ai.spec), " with T=", d.T, ", N=", d.N, ", I=", d.I,
                ", H=", d.H, lstm ? ", P=" : "", lstm ? std::to_string(d.P) : std::string(),
                "; got ", shape_str(t.sizes()));
    TORCH_CHECK_VALUE(t.is_contiguous(), "lstmkit fused: ", name, ": expected a contiguous tensor (call "
                ".contiguous()), got strides ", shape_str(t.strides()));
  }
  const Tensor lengths = args.tensor("lengths");
  if (lengths.defined()) {
    const int64_t* L = lengths.data_ptr<int64_t>();
    for (int64_t n = 0; n < d.N; ++n)
      TORCH_CHECK_VALUE(L[n] >= 1 && L[n] <= d.T, "lstmkit fused: lengths: expected every value in [1, T=",
                  d.T, "], got ", L[n], " at index ", n);
  }
}

// The call's dimensions from x (T, N, I) and the recurrent weights: LSTM weight_hh (4H, P) and
// weight_hr (P, H) when present; GRU weight_hh (3H, H).
Dims dims_of(const Args& args, bool lstm) {
  // a Tensor (not Tensor?) argument given as None arrives undefined: refuse it by name
  const Table& tab = args.table();
  for (size_t i = 0; i < tab.args.size(); ++i)
    TORCH_CHECK_VALUE(!tab.args[i].required || (!args.at(i).isNone() && args.at(i).toTensor().defined()),
                      "lstmkit fused: ",
                      args.schema().name(), ": ", tab.args[i].name, ": expected a tensor, got None");
  const Tensor x = args.tensor("x"), whh = args.tensor("weight_hh");
  TORCH_CHECK_VALUE(x.dim() == 3, "lstmkit fused: x: expected a 3-D tensor (T, N, I), got shape ",
              shape_str(x.sizes()));
  TORCH_CHECK_VALUE(x.size(0) > 0 && x.size(1) > 0, "lstmkit fused: x: expected T >= 1 and N >= 1, got shape ",
              shape_str(x.sizes()));
  const int G = lstm ? 4 : 3;
  TORCH_CHECK_VALUE(whh.dim() == 2 && whh.size(0) % G == 0 && whh.size(0) > 0,
              "lstmkit fused: weight_hh: expected shape (", G, "H, ", lstm ? "P" : "H",
              ") with H >= 1, got ", shape_str(whh.sizes()));
  Dims d;
  d.T = x.size(0);
  d.N = x.size(1);
  d.I = x.size(2);
  d.H = whh.size(0) / G;
  if (lstm) {
    const Tensor whr = args.tensor("weight_hr");
    d.P = whr.defined() && whr.dim() >= 1 ? whr.size(0) : d.H;
  } else {
    d.P = d.H;
  }
  return d;
}

template <typename S>
const S* cptr(const Tensor& t) {
  return t.defined() && t.numel() > 0 ? t.data_ptr<S>() : nullptr;
}

template <typename S>
S* mptr(const Tensor& t) {
  return t.defined() && t.numel() > 0 ? t.data_ptr<S>() : nullptr;
}

int activation(const std::string& name, const char* which) {
  static const std::pair<const char*, int> table[] = {
      {"sigmoid", kSigmoid}, {"tanh", kTanh}, {"identity", kIdentity},
      {"relu", kRelu}, {"hard_sigmoid", kHardSigmoid}, {"softsign", kSoftsign}};
  for (const auto& e : table)
    if (name == e.first) return e.second;
  TORCH_CHECK_VALUE(false, "lstmkit fused: ", which, ": unknown activation '", name, "'");
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

Tensor absent(const Tensor& like) { return at::empty({0}, like.options()); }

// b_ih + b_hh, or undefined
Tensor bias_sum(const Tensor& bih, const Tensor& bhh) {
  if (!bih.defined()) return Tensor();
  Tensor b = at::empty(bih.sizes(), bih.options());
  AT_DISPATCH_FLOATING_TYPES(b.scalar_type(), "lstmkit_bias", [&] {
    const scalar_t* p = bih.data_ptr<scalar_t>();
    const scalar_t* q = bhh.data_ptr<scalar_t>();
    scalar_t* o = b.data_ptr<scalar_t>();
    for (int64_t j = 0; j < b.numel(); ++j) o[j] = p[j] + q[j];
  });
  return b;
}

// ---- LSTM ---------------------------------------------------------------------------------------------
// The inputs of an LSTM call, checked; `bias` keeps b_ih + b_hh alive while the kernel runs.
template <typename S>
LstmForward<S> lstm_inputs(const Args& g, const Dims& d, const Tensor& bias) {
  LstmForward<S> a{};
  a.cfg.T = d.T;
  a.cfg.N = d.N;
  a.cfg.I = d.I;
  a.cfg.H = d.H;
  a.cfg.P = d.P;
  struct { const char* name; int bit; bool on; } flags[] = {
      {"peephole", kPeephole, true}, {"coupled", kCoupled, true},
      {"input_gate", kNoInputGate, false}, {"forget_gate", kNoForgetGate, false},
      {"output_gate", kNoOutputGate, false}, {"gate_recurrence", kGateRecurrence, true},
      {"layer_norm", kLayerNorm, true}, {"need_backward", kNoBackward, false},
      {"input_grad", kInputGrad, true}};
  for (const auto& f : flags)
    if (g.flag(f.name) == f.on) a.cfg.flags |= f.bit;
  a.cfg.gate_act = activation(g.str("gate_activation"), "gate_activation");
  a.cfg.input_act = activation(g.str("input_activation"), "input_activation");
  a.cfg.output_act = activation(g.str("output_activation"), "output_activation");
  a.x = cptr<S>(g.tensor("x"));
  a.h0 = cptr<S>(g.tensor("h0"));
  a.c0 = cptr<S>(g.tensor("c0"));
  a.w_ih = cptr<S>(g.tensor("weight_ih"));
  a.w_hh = cptr<S>(g.tensor("weight_hh"));
  a.bias = cptr<S>(bias);
  a.w_hr = cptr<S>(g.tensor("weight_hr"));
  a.w_peep = cptr<S>(g.tensor("weight_peephole"));
  a.w_gr = cptr<S>(g.tensor("weight_gr"));
  a.ln_ih = cptr<S>(g.tensor("ln_ih"));
  a.ln_hh = cptr<S>(g.tensor("ln_hh"));
  a.ln_cw = cptr<S>(g.tensor("ln_c_weight"));
  a.ln_cb = cptr<S>(g.tensor("ln_c_bias"));
  const Tensor lengths = g.tensor("lengths");
  a.lengths = lengths.defined() ? lengths.data_ptr<int64_t>() : nullptr;
  a.rec_mask = cptr<S>(g.tensor("rec_mask"));
  a.zone_c = cptr<S>(g.tensor("zoneout_c"));
  a.zone_h = cptr<S>(g.tensor("zoneout_h"));
  // every option's tensors present, and none without its option
  TORCH_CHECK_VALUE(g.flag("peephole") == (a.w_peep != nullptr), "lstmkit fused: peephole=",
              g.flag("peephole") ? "True" : "False", " but weight_peephole is ", a.w_peep ? "given" : "missing");
  TORCH_CHECK_VALUE(g.flag("gate_recurrence") == (a.w_gr != nullptr), "lstmkit fused: gate_recurrence=",
              g.flag("gate_recurrence") ? "True" : "False", " but weight_gr is ", a.w_gr ? "given" : "missing");
  const int ln_given = !!a.ln_ih + !!a.ln_hh + !!a.ln_cw + !!a.ln_cb;
  TORCH_CHECK_VALUE((g.flag("layer_norm") && ln_given == 4) || (!g.flag("layer_norm") && ln_given == 0),
              "lstmkit fused: layer_norm=", g.flag("layer_norm") ? "True" : "False", " but ", ln_given,
              " of its 4 gains (ln_ih, ln_hh, ln_c_weight, ln_c_bias) are given");
  TORCH_CHECK_VALUE(g.tensor("bias_ih").defined() == g.tensor("bias_hh").defined(),
              "lstmkit fused: bias_ih and bias_hh must be given together (or both None)");
  return a;
}

void lstm_forward_boxed(const c10::OperatorHandle& op, torch::jit::Stack* st) {
  Args g(op, st, true);
  const Dims d = dims_of(g, true);
  const Tensor x = g.tensor("x");
  TORCH_CHECK_TYPE(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "lstmkit fused: x: expected dtype float32 or float64, got ", x.scalar_type());
  check_args(g, d, true, x.scalar_type());
  const Tensor bias = bias_sum(g.tensor("bias_ih"), g.tensor("bias_hh"));
  std::map<std::string, Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstmkit_lstm_forward", [&] {
    using S = scalar_t;
    LstmForward<S> a = lstm_inputs<S>(g, d, bias);
    const int64_t T = d.T, N = d.N, H = d.H, P = d.P;
    const bool ln = a.cfg.flags & kLayerNorm;
    const bool keep = ln && !(a.cfg.flags & kNoBackward);  // what only backward reads
    auto buf = [&](bool present, std::initializer_list<int64_t> shape) {
      return present ? empty_like_dtype(shape, x) : absent(x);
    };
    out["gates"] = empty_like_dtype({T, N, 4 * H}, x);
    out["c"] = empty_like_dtype({T, N, H}, x);
    out["c_new"] = buf(a.zone_c, {T, N, H});
    out["h_all"] = empty_like_dtype({T + 1, N, P}, x);
    out["h_in"] = buf(a.rec_mask, {T, N, P});
    out["m"] = buf(a.w_hr, {T, N, H});
    out["a"] = buf(a.cfg.flags & kGateRecurrence, {T + 1, N, 3 * H});
    out["xw"] = buf(keep && !ln_input_through_x(a.cfg), {T, N, 4 * H});
    out["hw"] = buf(keep, {T, N, 4 * H});
    out["stats"] = buf(ln, {T, N, 6});
    out["h_n"] = empty_like_dtype({N, P}, x);
    out["c_n"] = empty_like_dtype({N, H}, x);
    a.gates = mptr<S>(out["gates"]);
    a.c = mptr<S>(out["c"]);
    a.c_new = a.zone_c ? mptr<S>(out["c_new"]) : a.c;
    a.h_all = mptr<S>(out["h_all"]);
    a.h_in = mptr<S>(out["h_in"]);
    a.m = mptr<S>(out["m"]);
    a.a = mptr<S>(out["a"]);
    a.xw = mptr<S>(out["xw"]);
    a.hw = mptr<S>(out["hw"]);
    a.stats = mptr<S>(out["stats"]);
    a.h_n = mptr<S>(out["h_n"]);
    a.c_n = mptr<S>(out["c_n"]);
    lstm_forward<S>(a);
  });
  g.finish(out);
}

// The gradient results of a backward call, named "grad_<input>", in the order of the output mask.
const char* const kLstmDiff[] = {"x", "h0", "c0", "weight_ih", "weight_hh", "bias_ih", "bias_hh",
                                 "weight_hr", "weight_peephole", "weight_gr", "ln_ih", "ln_hh",
                                 "ln_c_weight", "ln_c_bias"};
const char* const kGruDiff[] = {"x", "h0", "weight_ih", "weight_hh", "bias_ih", "bias_hh"};

void lstm_backward_boxed(const c10::OperatorHandle& op, torch::jit::Stack* st) {
  Args g(op, st, true);
  const Dims d = dims_of(g, true);
  const Tensor x = g.tensor("x");
  TORCH_CHECK_TYPE(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "lstmkit fused: x: expected dtype float32 or float64, got ", x.scalar_type());
  check_args(g, d, true, x.scalar_type());
  const std::vector<bool> mask = g.bools("output_mask");
  constexpr size_t kN = sizeof(kLstmDiff) / sizeof(kLstmDiff[0]);
  TORCH_CHECK(mask.size() == kN, "lstmkit fused: output_mask: expected ", kN, " entries, got ",
              mask.size());
  const Tensor bias = bias_sum(g.tensor("bias_ih"), g.tensor("bias_hh"));
  std::map<std::string, Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstmkit_lstm_backward", [&] {
    using S = scalar_t;
    LstmBackward<S> b{};
    b.f = lstm_inputs<S>(g, d, bias);
    LstmForward<S>& a = b.f;
    const char* saved[] = {"gates", "c", "c_new", "h_all", "h_in", "m", "a", "xw", "hw", "stats"};
    S** dst[] = {&a.gates, &a.c, &a.c_new, &a.h_all, &a.h_in, &a.m, &a.a, &a.xw, &a.hw, &a.stats};
    for (size_t q = 0; q < 10; ++q) *dst[q] = const_cast<S*>(cptr<S>(g.tensor(saved[q])));
    TORCH_CHECK(a.gates && a.c && a.h_all, "lstmkit fused: lstm_backward needs gates, c and h_all");
    // What the options make backward read must have been kept by the forward (a direct call of the
    // operator with need_backward=False, or with other options, would hand it empty placeholders).
    const LstmConfig& k = a.cfg;
    TORCH_CHECK(!(k.flags & kNoBackward), "lstmkit fused: lstm_backward: the forward ran with "
                "need_backward=False and kept nothing for backward; run it with need_backward=True "
                "to differentiate its results");
    const bool ln = k.flags & kLayerNorm;
    auto need = [&](bool when, const void* p, const char* name) {
      TORCH_CHECK(!when || p != nullptr, "lstmkit fused: lstm_backward: ", name, " (saved by the "
                  "forward) is empty, but these options need it: run the forward with the same "
                  "options and need_backward=True");
    };
    need(a.zone_c != nullptr, a.c_new, "c_new");
    need(a.rec_mask != nullptr, a.h_in, "h_in");
    need(a.w_hr != nullptr, a.m, "m");
    need(k.flags & kGateRecurrence, a.a, "a");
    need(ln, a.hw, "hw");
    need(ln, a.stats, "stats");
    need(ln && !ln_input_through_x(k), a.xw, "xw");
    if (!a.c_new) a.c_new = a.c;
    b.dy = cptr<S>(g.tensor("grad_y"));
    b.dh_n = cptr<S>(g.tensor("grad_h_n"));
    b.dc_n = cptr<S>(g.tensor("grad_c_n"));
    b.dgates = cptr<S>(g.tensor("grad_gates"));
    b.dc_trace = cptr<S>(g.tensor("grad_c"));
    S** grad_dst[] = {&b.dx, &b.dh0, &b.dc0, &b.dw_ih, &b.dw_hh, nullptr, nullptr, &b.dw_hr,
                      &b.dw_peep, &b.dw_gr, &b.dln_ih, &b.dln_hh, &b.dln_cw, &b.dln_cb};
    for (size_t q = 0; q < kN; ++q) {
      const Tensor src = g.tensor(kLstmDiff[q]);
      const bool always = q == 1 || q == 2;  // dh0, dc0 are the kernel's running state
      const bool want = src.defined() && (always || mask[q]);
      Tensor t = want ? empty_like_dtype(src.sizes(), x) : absent(x);
      if (grad_dst[q]) *grad_dst[q] = mptr<S>(t);
      out[std::string("grad_") + kLstmDiff[q]] = t;
    }
    // d(b_ih) == d(b_hh): computed once, copied
    Tensor dbias = (mask[5] || mask[6]) && bias.defined() ? at::empty(bias.sizes(), x.options()) : Tensor();
    b.dbias = mptr<S>(dbias);
    lstm_backward<S>(b);
    if (dbias.defined()) {
      if (mask[5]) out["grad_bias_ih"] = dbias;
      if (mask[6]) out["grad_bias_hh"] = mask[5] ? dbias.clone() : dbias;
    }
    if (!mask[1]) out["grad_h0"] = absent(x);
    if (!mask[2]) out["grad_c0"] = absent(x);
  });
  g.finish(out);
}

// ---- GRU ----------------------------------------------------------------------------------------------
template <typename S>
GruForward<S> gru_inputs(const Args& g, const Dims& d) {
  GruForward<S> a{};
  a.cfg.T = d.T;
  a.cfg.N = d.N;
  a.cfg.I = d.I;
  a.cfg.H = d.H;
  a.x = cptr<S>(g.tensor("x"));
  a.h0 = cptr<S>(g.tensor("h0"));
  a.w_ih = cptr<S>(g.tensor("weight_ih"));
  a.w_hh = cptr<S>(g.tensor("weight_hh"));
  a.b_ih = cptr<S>(g.tensor("bias_ih"));
  a.b_hh = cptr<S>(g.tensor("bias_hh"));
  TORCH_CHECK_VALUE((a.b_ih != nullptr) == (a.b_hh != nullptr),
              "lstmkit fused: bias_ih and bias_hh must be given together (or both None)");
  const Tensor lengths = g.tensor("lengths");
  a.lengths = lengths.defined() ? lengths.data_ptr<int64_t>() : nullptr;
  a.rec_mask = cptr<S>(g.tensor("rec_mask"));
  a.zone_h = cptr<S>(g.tensor("zoneout_h"));
  return a;
}

void gru_forward_boxed(const c10::OperatorHandle& op, torch::jit::Stack* st) {
  Args g(op, st, false);
  const Dims d = dims_of(g, false);
  const Tensor x = g.tensor("x");
  TORCH_CHECK_TYPE(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "lstmkit fused: x: expected dtype float32 or float64, got ", x.scalar_type());
  check_args(g, d, false, x.scalar_type());
  std::map<std::string, Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstmkit_gru_forward", [&] {
    using S = scalar_t;
    GruForward<S> a = gru_inputs<S>(g, d);
    const int64_t T = d.T, N = d.N, H = d.H;
    out["gates"] = empty_like_dtype({T, N, 3 * H}, x);
    out["hn"] = empty_like_dtype({T, N, H}, x);
    out["h_all"] = empty_like_dtype({T + 1, N, H}, x);
    out["h_in"] = a.rec_mask ? empty_like_dtype({T, N, H}, x) : absent(x);
    out["h_n"] = empty_like_dtype({N, H}, x);
    a.gates = mptr<S>(out["gates"]);
    a.hn = mptr<S>(out["hn"]);
    a.h_all = mptr<S>(out["h_all"]);
    a.h_in = mptr<S>(out["h_in"]);
    a.h_n = mptr<S>(out["h_n"]);
    gru_forward<S>(a);
  });
  g.finish(out);
}

void gru_backward_boxed(const c10::OperatorHandle& op, torch::jit::Stack* st) {
  Args g(op, st, false);
  const Dims d = dims_of(g, false);
  const Tensor x = g.tensor("x");
  TORCH_CHECK_TYPE(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "lstmkit fused: x: expected dtype float32 or float64, got ", x.scalar_type());
  check_args(g, d, false, x.scalar_type());
  const std::vector<bool> mask = g.bools("output_mask");
  constexpr size_t kN = sizeof(kGruDiff) / sizeof(kGruDiff[0]);
  TORCH_CHECK(mask.size() == kN, "lstmkit fused: output_mask: expected ", kN, " entries, got ",
              mask.size());
  std::map<std::string, Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstmkit_gru_backward", [&] {
    using S = scalar_t;
    GruBackward<S> b{};
    b.f = gru_inputs<S>(g, d);
    GruForward<S>& a = b.f;
    a.gates = const_cast<S*>(cptr<S>(g.tensor("gates")));
    a.hn = const_cast<S*>(cptr<S>(g.tensor("hn")));
    a.h_all = const_cast<S*>(cptr<S>(g.tensor("h_all")));
    a.h_in = const_cast<S*>(cptr<S>(g.tensor("h_in")));
    TORCH_CHECK(a.gates && a.hn && a.h_all, "lstmkit fused: gru_backward needs gates, hn and h_all");
    TORCH_CHECK(!a.rec_mask || a.h_in, "lstmkit fused: gru_backward: h_in (saved by the forward) is "
                "empty, but rec_mask needs it: run the forward with the same options");
    b.dy = cptr<S>(g.tensor("grad_y"));
    b.dh_n = cptr<S>(g.tensor("grad_h_n"));
    b.dgates = cptr<S>(g.tensor("grad_gates"));
    S** grad_dst[] = {&b.dx, &b.dh0, &b.dw_ih, &b.dw_hh, &b.db_ih, &b.db_hh};
    for (size_t q = 0; q < kN; ++q) {
      const Tensor src = g.tensor(kGruDiff[q]);
      const bool want = src.defined() && (q == 1 || mask[q]);  // dh0 is the running state
      Tensor t = want ? (q == 0 ? empty_like_dtype(src.sizes(), x) : at::empty(src.sizes(), x.options()))
                      : absent(x);
      *grad_dst[q] = mptr<S>(t);
      out[std::string("grad_") + kGruDiff[q]] = t;
    }
    gru_backward<S>(b);
    if (!mask[1]) out["grad_h0"] = absent(x);
  });
  g.finish(out);
}

void info_boxed(const c10::OperatorHandle&, torch::jit::Stack* st) {
  st->emplace_back(std::string(blas_backend()));
}

}  // namespace
}  // namespace lstmkit

// The schemas of these four are defined in Python (lstmkit/kernels/ops.py, from schema.py's tables).
TORCH_LIBRARY_IMPL(lstmkit, CPU, m) {
  using namespace lstmkit;
  using torch::CppFunction;
  m.impl("lstm_forward", CppFunction::makeFromBoxedFunction<&lstm_forward_boxed>());
  m.impl("lstm_backward", CppFunction::makeFromBoxedFunction<&lstm_backward_boxed>());
  m.impl("gru_forward", CppFunction::makeFromBoxedFunction<&gru_forward_boxed>());
  m.impl("gru_backward", CppFunction::makeFromBoxedFunction<&gru_backward_boxed>());
}

TORCH_LIBRARY_FRAGMENT(lstmkit, m) {
  m.def("info() -> str", torch::CppFunction::makeFromBoxedFunction<&lstmkit::info_boxed>());
}
