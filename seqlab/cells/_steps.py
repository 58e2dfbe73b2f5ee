"""Bookkeeping shared by the hand-written BPTT cells: active rows per step, final states, backward chunks.

Legend: T time, B batch, H hidden, G gate pre-activations per step (LSTM 4H, GRU 3H, RNN H).

Variable lengths are handled without masks. The layer sorts the batch by length, longest first, so at step t the
rows still inside their sequence are a prefix ``[:b_t]`` with ``b_t = batch_sizes[t]`` non-increasing. Each step
then works on that prefix only: no arithmetic is spent on padding, a finished row's state is never touched again,
and its outputs past its length stay zero. This is what PackedSequence promises, without its per-step overhead.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

# Backward computes the per-step factors for a chunk of steps at once: one elementwise op over K steps instead
# of K small ones. The chunk is capped in elements so the extra memory stays small next to what forward saved.
CHUNK_ELEMENTS = 1 << 20

# One-pass derivative kernels: grad ⊙ y(1 - y) for y = σ(a), grad ⊙ (1 - y²) for y = tanh(a), grad ⊙ [y > 0] for
# y = relu(a). Each replaces two or three elementwise passes and their temporaries.
sigmoid_grad = torch.ops.aten.sigmoid_backward.grad_input
tanh_grad = torch.ops.aten.tanh_backward.grad_input
relu_grad = torch.ops.aten.threshold_backward.grad_input


def active_rows(batch_sizes: Sequence[int] | None, T: int, B: int) -> tuple[tuple[int, ...], bool]:
    """Rows active at each step, and whether every row runs all T steps (then nothing needs zeroing)."""
    if batch_sizes is None:
        return (B,) * T, True
    bs = tuple(int(b) for b in batch_sizes)
    return bs, len(bs) == T and all(b == B for b in bs)


# Weights at least this large (elements) are prepacked for oneDNN's GEMM; see StepProduct.
PACK_MIN_ELEMENTS = 1 << 17
_linear = getattr(torch.ops.mkldnn, "_linear_pointwise", None)
_reorder = getattr(torch.ops.mkldnn, "_reorder_linear_weight", None)


def bf16_native() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX): oneDNN's test. Without it, bfloat16
    products are emulated, slower than float32."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check is not None and torch.backends.mkldnn.is_available() and check())


def product_dtype(state: torch.Tensor) -> torch.dtype | None:
    """The reduced precision (bfloat16, or float16 on CUDA) the cells' matrix products run in under
    ``torch.autocast``; None outside autocast, or for a state autocast leaves alone (float64). Only the products
    go down: the states, the gate arithmetic and every sum stay in the state's float32."""
    kind = state.device.type
    if state.dtype != torch.float32 or not torch.is_autocast_enabled(kind):
        return None
    return torch.get_autocast_dtype(kind)


class StepProduct:
    """y = x W^T (+ bias) (+ add), for one weight W (N, K) used at every step of a sequence.

    Per-step products are small-M GEMMs, where MKL's sgemm behind torch.addmm reached 75-130 GFLOP/s on this 2-core
    Zen4 and oneDNN's GEMM on a weight reordered once reached 120-210: 1.1-3.1x faster once W has 2^17 elements or
    more, and slower below that, where its ~20 µs call overhead dominates (measured, benchmarks in seqlab bench).
    So W is reordered once per sequence when it is that large, on CPU, in float32 or bfloat16; otherwise addmm.

    ``dtype`` (``product_dtype``): W is cast once, x at each call, and the product, in that reduced precision, is
    added to ``add`` or ``bias`` and written to ``out`` in their own (float32) precision.
    """

    def __init__(self, w: torch.Tensor, rows_hint: int, dtype: torch.dtype | None = None):
        self.dtype = dtype if dtype != w.dtype else None
        if self.dtype is not None:
            w = w.to(self.dtype)
        self.wt = w.t()
        self.packed = None
        if (
            _reorder is not None
            and torch.backends.mkldnn.is_available()
            and w.device.type == "cpu"
            and (w.dtype == torch.float32 or (w.dtype == torch.bfloat16 and bf16_native()))
            and w.numel() >= PACK_MIN_ELEMENTS
        ):
            self.packed = _reorder(w.contiguous(), rows_hint)

    def __call__(self, x, out, add=None, bias=None):
        if self.dtype is not None:
            y = self._product(x.to(self.dtype), None)
            if add is None and bias is None:
                return y.float() if out is None else out.copy_(y)
            return torch.add(add if add is not None else bias, y, out=out)
        return self._product(x, out, add, bias)

    def _product(self, x, out, add=None, bias=None):
        if self.packed is None:
            if add is None:
                return torch.mm(x, self.wt, out=out) if bias is None else torch.addmm(bias, x, self.wt, out=out)
            return torch.addmm(add, x, self.wt, out=out)
        if add is None:
            y = _linear(x, self.packed, bias, "none", [], "")
        else:
            y = _linear.binary(x, add, self.packed, bias, "add")
        return y if out is None else out.copy_(y)


def live_steps(bs: tuple[int, ...]) -> int:
    """Number of leading steps with at least one active row (bs is non-increasing)."""
    return sum(1 for b in bs if b > 0)


def rows(v: torch.Tensor, b: int, B: int) -> torch.Tensor:
    """The first b rows of v; v itself when that is all of it (a view costs about a microsecond per step)."""
    return v if b == B else v[:b]


def seed_rows(dh: torch.Tensor, dh_n: torch.Tensor, dy_t: torch.Tensor, lo: int, hi: int) -> None:
    """Rows [lo, hi) meet their last step here: their gradient dh starts as ∂L/∂h_n + ∂L/∂y_t."""
    if hi > lo:
        torch.add(dh_n[lo:hi], dy_t[lo:hi], out=dh[lo:hi])


def state_grads(dy: torch.Tensor, dh_n: torch.Tensor, bs: tuple[int, ...], record: bool):
    """Where dh_t = ∂L/∂h_t lives during the reverse loop, with the last live step already seeded.

    Returns (dhs, kept): dhs[t] is the (B, H) buffer for step t — one scratch shared by every step, or, when
    recording, views of ``kept`` (T, B, H), which then holds every dh_t for the diagnostics.
    """
    T, B, H = dy.shape
    kept = torch.zeros(T, B, H, dtype=dy.dtype, device=dy.device) if record else None
    dhs = kept.unbind(0) if record else (torch.empty(B, H, dtype=dy.dtype, device=dy.device),) * T
    n = live_steps(bs)
    if n:
        seed_rows(dhs[n - 1], dh_n, dy[n - 1], 0, bs[n - 1])
    return dhs, kept


def alloc(full: bool):
    """Buffers of a full batch are entirely overwritten; otherwise padded positions must read as zero."""
    return torch.empty if full else torch.zeros


def final_state(seq: torch.Tensor, init: torch.Tensor, bs: tuple[int, ...]) -> torch.Tensor:
    """State of every row at its own last step: ``seq[len_i - 1, i]``, or ``init[i]`` for an empty row.

    seq: (T, B, H) states per step; init: (B, H). Rows ``[bs[t+1], bs[t])`` end at step t.
    """
    out = init.clone()
    T = len(bs)
    for t in range(T):
        lo, hi = (bs[t + 1] if t + 1 < T else 0), bs[t]
        if lo < hi:
            out[lo:hi] = seq[t, lo:hi]
    return out


def previous(seq: torch.Tensor, init: torch.Tensor, t0: int, t1: int, rows: int) -> torch.Tensor:
    """States entering steps t0..t1-1 for the first ``rows`` rows: (t1 - t0, rows, H)."""
    if t0 > 0:
        return seq[t0 - 1 : t1 - 1, :rows]
    return torch.cat([init[None, :rows], seq[: t1 - 1, :rows]])


def reverse_chunks(T: int, per_step: int) -> Iterator[tuple[int, int]]:
    """(t0, t1) windows covering 0..T-1 from the end, each holding at most CHUNK_ELEMENTS of factors."""
    steps = max(1, min(T, CHUNK_ELEMENTS // max(per_step, 1)))  # per window
    t1 = T
    while t1 > 0:
        t0 = max(0, t1 - steps)
        yield t0, t1
        t1 = t0


def recurrent_weight_grad(dgates: torch.Tensor, h: torch.Tensor, h0: torch.Tensor,
                          dtype: torch.dtype | None = None) -> torch.Tensor:  # fmt: skip
    """∂L/∂W_hh = Σ_t dgates_t^T h_{t-1}, as two large products over all steps instead of T small ones.

    dgates: (T, B, G) gradients of the pre-activations that W_hh feeds; h: (T, B, H) outputs; h0: (B, H).
    Padded positions hold zeros in both, so they add nothing. ``dtype``: the products run in that reduced
    precision (``product_dtype``); the gradient returned is in h's.
    """
    if dtype is not None and dtype != h.dtype:
        return recurrent_weight_grad(dgates.to(dtype), h.to(dtype), h0.to(dtype)).to(h.dtype)
    T, _, G = dgates.shape
    if T == 0:  # no steps (a direct call; the layers refuse T = 0)
        return h0.new_zeros(G, h0.shape[-1])
    dw = dgates[0].t() @ h0
    if T > 1:
        dw.addmm_(dgates[1:].reshape(-1, G).t(), h[:-1].reshape(-1, h.shape[-1]))
    return dw
