// The time loops of the variant LSTM and GRU (seqlab/cells/{lstm,gru}_variants.py) in C++: the same recurrences
// and the same hand-written backward as the Python loops there, which stay as the fallback and the oracle.
//
// Why: at small batch a step is a few microseconds of arithmetic, and the Python loop spends far more than that on
// dispatching a dozen ATen ops per step. Here each step is one matrix product (ATen's, or oneDNN's on a prepacked
// weight, as StepProduct) and one fused pass per row over its gates, written with ATen's Vectorized (the same SIMD
// exp/tanh as torch.sigmoid/torch.tanh). Results equal the Python loop's to rounding: layer norm's sums and the
// sigmoid are evaluated in a different order than ATen's kernels.
//
// Layout (all contiguous, rows sorted longest first; bs[t] rows active at step t, bs non-increasing):
//   xw, gates, r, dgates, dr: (T, B, 4H) in gate order i, f, g, o;   c_tilde, c, h, z_h, z_c, dn: (T, B, H);
//   stats: (4, T, B) mean and 1/σ of r, then of c̃;   h0, c0, m, dh0, dc: (B, H).
//   GRU: rz (T, B, 2H); dxw, dq, dq_raw, q_raw (T, B, 3H) in gate order r, z, n; n, qn (T, B, H); stats (2, T, B).
// Registered as torch.ops.seqlab_loop.{lstm,gru}_{forward,backward}; seqlab/cells/compiled.py builds and loads it.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <utility>
#include <vector>

namespace {

using at::Tensor;
using Opt = std::optional<Tensor>;
template <typename T>
using Vec = at::vec::Vectorized<T>;

// f(j, k) over [0, n) in SIMD widths: k lanes starting at j, the last call with the remainder.
template <typename T, typename F>
inline void lanes(int64_t n, F f) {
  constexpr int64_t W = Vec<T>::size();
  int64_t j = 0;
  for (; j + W <= n; j += W) f(j, W);
  if (j < n) f(j, n - j);
}

// Rows of one step are independent: split them over threads once a step has this many gate elements to compute
// (below that, a parallel region costs more than it saves; at batch 1 the loop stays on one thread).
constexpr int64_t PARALLEL_ELEMENTS = 8192;

template <typename F>
inline void over_rows(int64_t b, int64_t G, F f) {
  at::parallel_for(0, b, std::max<int64_t>(1, PARALLEL_ELEMENTS / G), f);
}

template <typename T>
inline Vec<T> ld(const T* p, int64_t j, int64_t k) {
  return Vec<T>::loadu(p + j, k);
}

template <typename T>
inline Vec<T> sigmoid(Vec<T> a) {
  return (Vec<T>(1) + a.neg().exp()).reciprocal();
}

// start + w (end - start) as torch.lerp computes it: from the nearer end, so w = 0 gives start and w = 1 gives end
// exactly (a zoned-out unit keeps its previous value bit for bit).
template <typename T>
inline Vec<T> lerp(Vec<T> start, Vec<T> end, Vec<T> w) {
  const Vec<T> near = w.abs() < Vec<T>(0.5);
  return at::vec::fmadd(Vec<T>::blendv(w - Vec<T>(1), w, near), end - start, Vec<T>::blendv(end, start, near));
}

template <typename T>
T* ptr(const Opt& t) {  // an absent optional is a null pointer
  return t.has_value() ? t->data_ptr<T>() : nullptr;
}

// Mean and 1/σ (biased variance, as native_layer_norm) of x[0..n).
template <typename T>
std::pair<T, T> moments(const T* x, int64_t n, double eps) {
  auto add = [](Vec<T>& a, Vec<T>& b) { return a + b; };
  T mean = at::vec::reduce_all<T>(add, x, n) / T(n);
  T var = at::vec::map_reduce_all<T>(
              [mean](Vec<T> v) {
                Vec<T> d = v - Vec<T>(mean);
                return d * d;
              },
              add, x, n) /
          T(n);
  return {mean, T(1) / std::sqrt(var + T(eps))};
}

// dx of y = LN(x) = γ x̂ + β over n, x̂ = (x - mean)·rstd, given dy: rstd·(γdy - mean(γdy) - x̂·mean(γdy·x̂)).
template <typename T>
void ln_input_grad(const T* dy, const T* x, const T* gamma, T mean, T rstd, int64_t n, T* dx) {
  Vec<T> s1(0), s2(0);
  T t1 = 0, t2 = 0;
  lanes<T>(n, [&](int64_t j, int64_t k) {
    Vec<T> gy = ld(dy, j, k) * ld(gamma, j, k), xh = (ld(x, j, k) - Vec<T>(mean)) * Vec<T>(rstd);
    if (k == Vec<T>::size()) {
      s1 = s1 + gy;
      s2 = s2 + gy * xh;
    } else {  // the tail: only its k lanes count (a partial load need not zero the others on every ISA)
      T a[Vec<T>::size()], b[Vec<T>::size()];
      gy.store(a, k);
      (gy * xh).store(b, k);
      for (int64_t q = 0; q < k; ++q) t1 += a[q], t2 += b[q];
    }
  });
  T m1 = (at::vec::vec_reduce_all<T>([](Vec<T>& a, Vec<T>& b) { return a + b; }, s1) + t1) / T(n);
  T m2 = (at::vec::vec_reduce_all<T>([](Vec<T>& a, Vec<T>& b) { return a + b; }, s2) + t2) / T(n);
  lanes<T>(n, [&](int64_t j, int64_t k) {
    Vec<T> gy = ld(dy, j, k) * ld(gamma, j, k), xh = (ld(x, j, k) - Vec<T>(mean)) * Vec<T>(rstd);
    (Vec<T>(rstd) * (gy - Vec<T>(m1) - xh * Vec<T>(m2))).store(dx + j, k);
  });
}

// Below this many rows a step's product is computed here, row by row (y = x·W with W read along its rows, 8
// SIMD accumulators per block of columns): at batch 1 ATen's mm costs more in dispatch and tensor views than
// the arithmetic, which is then about a microsecond. At more rows, ATen's GEMM (MKL) or oneDNN's reads W once.
constexpr int64_t SMALL_ROWS = 4;

// y = x·w for one row: x (K), w (K, N) row-major, y (N).
template <typename T>
void row_product(const T* x, const T* w, int64_t K, int64_t N, T* y) {
  constexpr int64_t W = Vec<T>::size(), V = 8;
  int64_t n0 = 0;
  for (; n0 + V * W <= N; n0 += V * W) {
    Vec<T> acc[V];
    for (int64_t v = 0; v < V; ++v) acc[v] = Vec<T>(0);
    for (int64_t k = 0; k < K; ++k) {
      const Vec<T> xk(x[k]);
      const T* wk = w + k * N + n0;
      for (int64_t v = 0; v < V; ++v) acc[v] = at::vec::fmadd(xk, Vec<T>::loadu(wk + v * W), acc[v]);
    }
    for (int64_t v = 0; v < V; ++v) acc[v].store(y + n0 + v * W);
  }
  lanes<T>(N - n0, [&](int64_t j, int64_t k) {
    Vec<T> acc(0);
    for (int64_t q = 0; q < K; ++q) acc = at::vec::fmadd(Vec<T>(x[q]), ld(w + q * N + n0, j, k), acc);
    acc.store(y + n0 + j, k);
  });
}

// out (b, N) = x (b, K) · w, w given as a (K, N) row-major tensor `wk` (small batches) and as the (N, K) weight
// `wn` for ATen or its oneDNN-packed form (StepProduct's rule).
template <typename T>
void product(T* out, const T* x, int64_t b, const Tensor& wk, const Tensor& wn, const Opt& packed) {
  const int64_t K = wk.size(0), N = wk.size(1);
  if (b <= SMALL_ROWS) {
    for (int64_t i = 0; i < b; ++i) row_product(x + i * K, wk.data_ptr<T>(), K, N, out + i * N);
    return;
  }
  const auto opt = wk.options();
  Tensor xt = at::from_blob(const_cast<T*>(x), {b, K}, opt), y = at::from_blob(out, {b, N}, opt);
  if (!packed.has_value()) {
    at::mm_out(y, xt, wn.t());
    return;
  }
  static const auto op = c10::Dispatcher::singleton().findSchemaOrThrow("mkldnn::_linear_pointwise", "");
  torch::jit::Stack stack{xt, *packed, c10::IValue(), std::string("none"), c10::List<std::optional<at::Scalar>>(),
                          std::string("")};
  op.callBoxed(&stack);
  y.copy_(stack[0].toTensor());
}

// The time loop both cells share. At step t (b = bs[t] rows): the product (h_{t-1} ⊙ m) W_hh^T into out + t·stride
// (stride 0: one scratch for every step), then rows(t, lo, hi, h_{t-1}, product) over the rows, split over threads.
// h: the outputs (T, B, H) the rows write, read back as h_{t-1}.
template <typename T, typename Rows>
void forward_steps(at::IntArrayRef bs, const Tensor& h0, const T* h, const Tensor& w_hh, const Opt& packed,
                   const Opt& m, T* out, int64_t stride, Rows rows) {
  const int64_t B = h0.size(0), H = h0.size(1), G = w_hh.size(0);
  const Tensor wt = w_hh.t().contiguous(), masked = at::empty_like(h0);  // wt: (H, G) for row_product
  const T *mp = ptr<T>(m), *h0p = h0.data_ptr<T>();
  T* read_m = masked.data_ptr<T>();
  for (int64_t t = 0; t < (int64_t)bs.size(); ++t) {
    const int64_t b = bs[t];
    const T *hp = t == 0 ? h0p : h + (t - 1) * B * H, *read = hp;
    if (mp) {  // h ⊙ m: the rows of one step are contiguous
      lanes<T>(b * H, [&](int64_t j, int64_t k) { (ld(hp, j, k) * ld(mp, j, k)).store(read_m + j, k); });
      read = read_m;
    }
    T* p = out + t * stride;
    product<T>(p, read, b, wt, w_hh, packed);
    over_rows(b, G, [&](int64_t lo, int64_t hi) { rows(t, lo, hi, hp, p); });
  }
}

// Rows [lo, hi) meet their last step: their ∂L/∂h starts as ∂L/∂h_n + ∂L/∂y_t (as _steps.seed_rows).
template <typename T>
void seed(T* dh, const T* dh_n, const T* dy_t, int64_t H, int64_t lo, int64_t hi) {
  if (hi > lo)
    lanes<T>((hi - lo) * H, [&](int64_t j, int64_t k) {
      j += lo * H;
      (ld(dh_n, j, k) + ld(dy_t, j, k)).store(dh + j, k);
    });
}

// The reverse loop both cells share. dh_t, the total ∂L/∂h_t, starts at each row's last step as ∂L/∂h_n + ∂L/∂y_t.
// At step t: rows(t, lo, hi, dh_t) writes the step's gradients, among them dW + t·B·G (what W_hh's product
// received); then dh_{t-1} = (dW_t W_hh) ⊙ m + carry + ∂L/∂y_{t-1} + dh_t ⊙ z_t, into dh0 at t = 0. carry (B, H),
// what the rows sent to h_{t-1} directly, and z (T, B, H), zoneout's mask, may each be null.
template <typename T, typename Rows>
void reverse_steps(at::IntArrayRef bs, const Tensor& w_hh, const Opt& packed_t, const T* dW, const Opt& m,
                   const T* carry, const T* z, const Tensor& dy, const Tensor& dh_n, const Tensor& dh0, Rows rows) {
  const int64_t B = dh0.size(0), H = dh0.size(1), G = w_hh.size(0), L = bs.size();
  if (L == 0) return;
  const Tensor wn = w_hh.t();  // row_product reads W_hh (G, H) as it is, ATen takes its transpose
  Tensor cur = at::empty_like(dh0), next = at::empty_like(dh0);
  const T *dyp = dy.data_ptr<T>(), *dhn = dh_n.data_ptr<T>(), *mp = ptr<T>(m);
  T *dh = cur.data_ptr<T>(), *prev = next.data_ptr<T>();
  seed(dh, dhn, dyp + (L - 1) * B * H, H, 0, bs[L - 1]);
  for (int64_t t = L - 1; t >= 0; --t) {
    const int64_t b = bs[t];
    over_rows(b, G, [&](int64_t lo, int64_t hi) { rows(t, lo, hi, dh); });
    T* target = t == 0 ? dh0.data_ptr<T>() : prev;
    product<T>(target, dW + t * B * G, b, w_hh, wn, packed_t);
    const T *dyt = t == 0 ? nullptr : dyp + (t - 1) * B * H, *zt = z ? z + t * B * H : nullptr;
    if (mp || carry || dyt || zt)
      lanes<T>(b * H, [&](int64_t j, int64_t q) {
        Vec<T> v = ld(target, j, q);
        if (mp) v = v * ld(mp, j, q);
        if (carry) v = v + ld(carry, j, q);
        if (dyt) v = v + ld(dyt, j, q);
        if (zt) v = v + ld(dh, j, q) * ld(zt, j, q);
        v.store(target + j, q);
      });
    if (t > 0) seed(prev, dhn, dyt, H, b, bs[t - 1]);
    std::swap(dh, prev);
  }
}

template <typename T>
struct Forward {
  int64_t B, H, T_;  // T_: steps of the buffers (the loop runs bs.size() of them)
  const T *xw, *gh, *bh, *gc, *bc, *zh, *zc;
  T *gates, *ct, *c, *h, *r, *stats;
  double eps;

  // Step t, row i (< bs[t]): gates from xw and the recurrent product (already in r, or in gates without layer
  // norm), then c̃, c and h. hp, cp: the row's state entering the step.
  void row(int64_t t, int64_t i, const T* hp, const T* cp) const {
    const int64_t G = 4 * H, at = t * B + i;
    T* a = gates + at * G;  // holds the recurrent product unless layer norm put it in r
    const T *x = xw + at * G, *rr = r ? r + at * G : nullptr;
    T mean = 0, rstd = 1;
    if (r) {
      std::tie(mean, rstd) = moments(rr, G, eps);
      stats[at] = mean, stats[T_ * B + at] = rstd;
    }
    auto activate = [&](int64_t lo, int64_t hi, auto f) {  // a = f(xw + LN_h(r)), or f(xw + a)
      lanes<T>(hi - lo, [&](int64_t j, int64_t k) {
        j += lo;
        Vec<T> v = r ? (ld(rr, j, k) - Vec<T>(mean)) * Vec<T>(rstd) * ld(gh, j, k) + ld(bh, j, k) : ld(a, j, k);
        f(ld(x, j, k) + v).store(a + j, k);
      });
    };
    activate(0, 2 * H, [](Vec<T> v) { return sigmoid(v); });
    activate(2 * H, 3 * H, [](Vec<T> v) { return v.tanh(); });
    activate(3 * H, G, [](Vec<T> v) { return sigmoid(v); });
    T* cti = ct + at * H;
    lanes<T>(H, [&](int64_t j, int64_t k) {
      (ld(a, H + j, k) * ld(cp, j, k) + ld(a, j, k) * ld(a, 2 * H + j, k)).store(cti + j, k);
    });
    if (r) {
      std::tie(mean, rstd) = moments(cti, H, eps);
      stats[2 * T_ * B + at] = mean, stats[3 * T_ * B + at] = rstd;
    }
    T* hi = h + at * H;
    lanes<T>(H, [&](int64_t j, int64_t k) {
      Vec<T> n = ld(cti, j, k);
      if (r) n = (n - Vec<T>(mean)) * Vec<T>(rstd) * ld(gc, j, k) + ld(bc, j, k);
      Vec<T> hh = ld(a, 3 * H + j, k) * n.tanh();
      if (zh) hh = lerp(hh, ld(hp, j, k), ld(zh + at * H, j, k));
      hh.store(hi + j, k);
      if (zc) {
        lerp(ld(cti, j, k), ld(cp, j, k), ld(zc + at * H, j, k)).store(c + at * H + j, k);
      }
    });
  }
};

void lstm_forward(const Tensor& xw, const Tensor& h0, const Tensor& c0, const Tensor& w_hh, const Opt& packed,
                  const Opt& g_h, const Opt& b_h, const Opt& g_c, const Opt& b_c, const Opt& z_h, const Opt& z_c,
                  const Opt& m, at::IntArrayRef bs, const Tensor& gates, const Tensor& c_tilde, const Tensor& c,
                  const Tensor& h, const Opt& r, const Opt& stats, double eps) {
  const int64_t B = h0.size(0), H = h0.size(1);
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "lstm_forward", [&] {
    using T = scalar_t;
    Forward<T> f{B,           H,           gates.size(0), xw.data_ptr<T>(), ptr<T>(g_h), ptr<T>(b_h), ptr<T>(g_c),
                 ptr<T>(b_c), ptr<T>(z_h), ptr<T>(z_c),   gates.data_ptr<T>(), c_tilde.data_ptr<T>(),
                 c.data_ptr<T>(), h.data_ptr<T>(), ptr<T>(r), ptr<T>(stats), eps};
    const T* c0p = c0.data_ptr<T>();
    // The product goes to r with layer norm, else to the gates; the rows read it from there.
    forward_steps<T>(bs, h0, f.h, w_hh, packed, m, f.r ? f.r : f.gates, B * 4 * H,
                     [&](int64_t t, int64_t lo, int64_t hi, const T* hp, const T*) {
                       const T* cp = t == 0 ? c0p : f.c + (t - 1) * B * H;
                       for (int64_t i = lo; i < hi; ++i) f.row(t, i, hp + i * H, cp + i * H);
                     });
  });
}

template <typename T>
struct Backward {
  int64_t B, H, T_;
  const T *gates, *ct, *gc, *bc, *gh, *zh, *zc, *r, *stats;
  T *dgates, *dr, *dn;
  double eps;

  // Step t, row i: from dh (total ∂L/∂h_t) and dc (∂L/∂c_t, updated in place to ∂L/∂c_{t-1}), the gate gradients
  // (dgates), and with layer norm dn (LN_c's output gradient) and dr (LN_h's input gradient). tmp: H scratch.
  void row(int64_t t, int64_t i, const T* dh, T* dc, const T* cp, T* tmp) const {
    const int64_t G = 4 * H, at = t * B + i;
    const T *a = gates + at * G, *cti = ct + at * H, *z = zh ? zh + at * H : nullptr;
    T* da = dgates + at * G;
    T mean = r ? stats[2 * T_ * B + at] : 0, rstd = r ? stats[3 * T_ * B + at] : 1;
    T* dni = dn ? dn + at * H : tmp;
    lanes<T>(H, [&](int64_t j, int64_t k) {
      Vec<T> n = ld(cti, j, k), o = ld(a, 3 * H + j, k), one(1);
      if (r) n = (n - Vec<T>(mean)) * Vec<T>(rstd) * ld(gc, j, k) + ld(bc, j, k);
      Vec<T> tn = n.tanh(), d = ld(dh, j, k);
      if (z) d = d * (one - ld(z, j, k));
      (d * tn * o * (one - o)).store(da + 3 * H + j, k);
      (d * o * (one - tn * tn)).store(dni + j, k);
    });
    if (r) ln_input_grad(dni, cti, gc, mean, rstd, H, tmp);
    const T* zci = zc ? zc + at * H : nullptr;
    lanes<T>(H, [&](int64_t j, int64_t k) {
      Vec<T> ig = ld(a, j, k), f = ld(a, H + j, k), g = ld(a, 2 * H + j, k), one(1), dcin = ld(dc, j, k);
      Vec<T> dct = ld(tmp, j, k) + (zci ? dcin * (one - ld(zci, j, k)) : dcin);
      (dct * g * ig * (one - ig)).store(da + j, k);
      (dct * ld(cp, j, k) * f * (one - f)).store(da + H + j, k);
      (dct * ig * (one - g * g)).store(da + 2 * H + j, k);
      (zci ? dct * f + dcin * ld(zci, j, k) : dct * f).store(dc + j, k);
    });
    if (r) ln_input_grad(da, r + at * G, gh, stats[at], stats[T_ * B + at], G, dr + at * G);
  }
};

void lstm_backward(const Tensor& w_hh, const Opt& packed_t, const Tensor& gates, const Tensor& c_tilde,
                   const Tensor& c, const Tensor& c0, const Opt& g_h, const Opt& g_c, const Opt& b_c,
                   const Opt& z_h, const Opt& z_c, const Opt& m, const Opt& r, const Opt& stats, at::IntArrayRef bs,
                   const Tensor& dy, const Tensor& dh_n, const Tensor& dgates, const Tensor& dr, const Opt& dn,
                   const Tensor& dh0, const Tensor& dc, double eps) {
  const int64_t B = dh0.size(0), H = dh0.size(1);
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "lstm_backward", [&] {
    using T = scalar_t;
    Backward<T> k{B,           H,          gates.size(0),          gates.data_ptr<T>(), c_tilde.data_ptr<T>(),
                  ptr<T>(g_c), ptr<T>(b_c), ptr<T>(g_h),           ptr<T>(z_h),         ptr<T>(z_c),
                  ptr<T>(r),   ptr<T>(stats), dgates.data_ptr<T>(), dr.data_ptr<T>(),   ptr<T>(dn), eps};
    const T* c0p = c0.data_ptr<T>();
    T* dcp = dc.data_ptr<T>();
    // dh_{t-1} = (dr_t W_hh) ⊙ m + ∂L/∂y_{t-1} + dh_t ⊙ z^h
    reverse_steps<T>(bs, w_hh, packed_t, k.dr, m, nullptr, k.zh, dy, dh_n, dh0,
                     [&](int64_t t, int64_t lo, int64_t hi, const T* dh) {
                       const T* cp = t == 0 ? c0p : c.data_ptr<T>() + (t - 1) * B * H;
                       std::vector<T> tmp(H);
                       for (int64_t i = lo; i < hi; ++i)
                         k.row(t, i, dh + i * H, dcp + i * H, cp + i * H, tmp.data());
                     });
  });
}

// ---- GRU (seqlab/cells/gru_variants.py): r, z, n blocks; q the recurrent product after LN_h and the bias. ----

template <typename T>
struct GRUForward {
  int64_t B, H, T_;
  const T *xw, *bias, *gh, *bh, *zh;
  T *rz, *n, *qn, *h, *q_raw, *stats;
  double eps;

  // Step t, row i: p is the row's recurrent product (in q_raw with layer norm), hp its state entering the step.
  void row(int64_t t, int64_t i, const T* hp, const T* p) const {
    const int64_t G = 3 * H, at = t * B + i;
    const T* x = xw + at * G;
    T mean = 0, rstd = 1;
    if (q_raw) {
      std::tie(mean, rstd) = moments(p, G, eps);
      stats[at] = mean, stats[T_ * B + at] = rstd;
    }
    auto q = [&](int64_t j, int64_t k) {
      Vec<T> v = ld(p, j, k);
      if (q_raw) v = (v - Vec<T>(mean)) * Vec<T>(rstd) * ld(gh, j, k) + ld(bh, j, k);
      return bias ? v + ld(bias, j, k) : v;
    };
    T *rzi = rz + at * 2 * H, *ni = n + at * H, *qni = qn + at * H, *hi = h + at * H;
    lanes<T>(2 * H, [&](int64_t j, int64_t k) { sigmoid(ld(x, j, k) + q(j, k)).store(rzi + j, k); });
    lanes<T>(H, [&](int64_t j, int64_t k) {
      Vec<T> qnj = q(2 * H + j, k), hpj = ld(hp, j, k);
      qnj.store(qni + j, k);
      Vec<T> nj = at::vec::fmadd(ld(rzi, j, k), qnj, ld(x, 2 * H + j, k)).tanh();
      nj.store(ni + j, k);
      Vec<T> hh = lerp(nj, hpj, ld(rzi, H + j, k));
      if (zh) hh = lerp(hh, hpj, ld(zh + at * H, j, k));
      hh.store(hi + j, k);
    });
  }
};

void gru_forward(const Tensor& xw, const Tensor& h0, const Tensor& w_hh, const Opt& packed, const Opt& bias,
                 const Opt& g_h, const Opt& b_h, const Opt& z_h, const Opt& m, at::IntArrayRef bs, const Tensor& rz,
                 const Tensor& n, const Tensor& qn, const Tensor& h, const Opt& q_raw, const Opt& stats,
                 double eps) {
  const int64_t B = h0.size(0), H = h0.size(1), G = 3 * H;
  const Tensor scratch = at::empty({B, G}, h0.options());
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "gru_forward", [&] {
    using T = scalar_t;
    GRUForward<T> f{B,          H,           xw.size(0),        xw.data_ptr<T>(),  ptr<T>(bias),
                    ptr<T>(g_h), ptr<T>(b_h), ptr<T>(z_h),      rz.data_ptr<T>(),  n.data_ptr<T>(),
                    qn.data_ptr<T>(), h.data_ptr<T>(), ptr<T>(q_raw), ptr<T>(stats), eps};
    // The raw product is kept in q_raw with layer norm (for its backward), else one scratch serves every step.
    T* out = f.q_raw ? f.q_raw : scratch.data_ptr<T>();
    forward_steps<T>(bs, h0, f.h, w_hh, packed, m, out, f.q_raw ? B * G : 0,
                     [&](int64_t t, int64_t lo, int64_t hi, const T* hp, const T* p) {
                       for (int64_t i = lo; i < hi; ++i) f.row(t, i, hp + i * H, p + i * G);
                     });
  });
}

template <typename T>
struct GRUBackward {
  int64_t B, H, T_;
  const T *rz, *n, *qn, *gh, *zh, *q_raw, *stats;
  T *dxw, *dq, *dq_raw, *carry;

  // Step t, row i: from dh (total ∂L/∂h_t), the pre-activation gradients dxw, dq (and dq_raw through LN_h), and
  // in carry what reaches h_{t-1} directly (through z and zoneout).
  void row(int64_t t, int64_t i, const T* dh, const T* hp) const {
    const int64_t G = 3 * H, at = t * B + i;
    const T *rzi = rz + at * 2 * H, *ni = n + at * H, *qni = qn + at * H, *z = zh ? zh + at * H : nullptr;
    T *dx = dxw + at * G, *dqi = dq + at * G, *ci = carry + i * H;
    lanes<T>(H, [&](int64_t j, int64_t k) {
      const Vec<T> one(1), r = ld(rzi, j, k), u = ld(rzi, H + j, k), nj = ld(ni, j, k), d = ld(dh, j, k);
      const Vec<T> dht = z ? d * (one - ld(z, j, k)) : d;
      const Vec<T> dan = dht * (one - u) * (one - nj * nj), dar = dan * ld(qni, j, k) * r * (one - r);
      const Vec<T> dau = dht * (ld(hp, j, k) - nj) * u * (one - u);
      dar.store(dx + j, k), dau.store(dx + H + j, k), dan.store(dx + 2 * H + j, k);
      dar.store(dqi + j, k), dau.store(dqi + H + j, k), (dan * r).store(dqi + 2 * H + j, k);
      (z ? dht * u + d * ld(z, j, k) : dht * u).store(ci + j, k);
    });
    if (q_raw) ln_input_grad(dqi, q_raw + at * G, gh, stats[at], stats[T_ * B + at], G, dq_raw + at * G);
  }
};

void gru_backward(const Tensor& w_hh, const Opt& packed_t, const Tensor& rz, const Tensor& n, const Tensor& qn,
                  const Tensor& h, const Tensor& h0, const Opt& g_h, const Opt& z_h, const Opt& m, const Opt& q_raw,
                  const Opt& stats, at::IntArrayRef bs, const Tensor& dy, const Tensor& dh_n, const Tensor& dxw,
                  const Tensor& dq, const Tensor& dq_raw, const Tensor& dh0) {
  const int64_t B = dh0.size(0), H = dh0.size(1);
  const Tensor carry = at::empty_like(dh0);
  AT_DISPATCH_FLOATING_TYPES(rz.scalar_type(), "gru_backward", [&] {
    using T = scalar_t;
    GRUBackward<T> k{B,           H,          rz.size(0),        rz.data_ptr<T>(), n.data_ptr<T>(),
                     qn.data_ptr<T>(), ptr<T>(g_h), ptr<T>(z_h), ptr<T>(q_raw),    ptr<T>(stats),
                     dxw.data_ptr<T>(), dq.data_ptr<T>(), dq_raw.data_ptr<T>(), carry.data_ptr<T>()};
    const T* h0p = h0.data_ptr<T>();
    // dh_{t-1} = (dq_raw W_hh) ⊙ m + carry + ∂L/∂y_{t-1}; zoneout's share is in carry
    reverse_steps<T>(bs, w_hh, packed_t, k.dq_raw, m, k.carry, nullptr, dy, dh_n, dh0,
                     [&](int64_t t, int64_t lo, int64_t hi, const T* dh) {
                       const T* hp = t == 0 ? h0p : h.data_ptr<T>() + (t - 1) * B * H;
                       for (int64_t i = lo; i < hi; ++i) k.row(t, i, dh + i * H, hp + i * H);
                     });
  });
}

}  // namespace

TORCH_LIBRARY(seqlab_loop, lib) {
  lib.def("lstm_forward", &lstm_forward);
  lib.def("lstm_backward", &lstm_backward);
  lib.def("gru_forward", &gru_forward);
  lib.def("gru_backward", &gru_backward);
}
