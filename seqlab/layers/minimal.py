"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs all we needed?"): recurrences whose gates read the input only,
so training runs over time in parallel, by a scan, and generation one step at a time with a state of fixed size.

Legend: T time, B batch, I input, H hidden, L layers, D directions (1 or 2).

    minGRU:   z_t = σ(W_z x_t + b_z)            h̃_t = g(W_h x_t + b_h)
              h_t = (1 - z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t
    minLSTM:  f_t = σ(W_f x_t + b_f)   i_t = σ(W_i x_t + b_i)   h̃_t = g(W_h x_t + b_h)
              f'_t = f_t / (f_t + i_t)   i'_t = i_t / (f_t + i_t)
              h_t = f'_t ⊙ h_{t-1} + i'_t ⊙ h̃_t
    g(v) = v + 1/2 for v ≥ 0, σ(v) for v < 0   (positive, so the scan can run in log space)

Both are h_t = a_t ⊙ h_{t-1} + b_t with a_t ∈ (0, 1) and b_t > 0 computed from x alone. The parallel form is
Heinsen's (2023) log-space scan over each chunk of ``chunk`` steps:

    a*_t = Σ_{s≤t} log a_s        h_t = exp(a*_t + logcumsumexp_{s≤t}(log b_s - a*_s)) + exp(a*_t) ⊙ h_0

The h_0 term is added outside the logs, so any initial state works, of either sign (a log-space h_0 would need
h_0 > 0: the bug other implementations shipped). Chunks carry h on, so there is no length limit, and a*, the sum
of at most ``chunk`` logs, stays small enough for float32. With one step (generation), the layer runs the
recurrence directly. A forward equals a per-step loop to float64 precision (tests/test_minimal.py).

The layers take torch.nn's recurrent call: ``layer(x, hx=None, lengths=None) -> (output, h_n)`` with x (T, B, I)
or batch_first (B, T, I), output (.., D·H), h_n (L·D, B, H). With ``lengths`` every row runs within its own length:
outputs past it are zero, h_n is taken at its last step, and the reverse direction starts at its own end.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .pooling import valid_mask

CHUNK = 128


def g(v: Tensor) -> Tensor:
    return torch.where(v >= 0, v + 0.5, torch.sigmoid(v))


def log_g(v: Tensor) -> Tensor:
    return torch.where(v >= 0, (F.relu(v) + 0.5).log(), -F.softplus(-v))


def scan(log_a: Tensor, log_b: Tensor, h0: Tensor | None, chunk: int = CHUNK) -> Tensor:
    """h_t = a_t ⊙ h_{t-1} + b_t for (B, T, H) log a, log b, from h0 (B, H) or zeros: every h_t, (B, T, H)."""
    out, h = [], h0
    for s in range(0, log_a.shape[1], chunk):
        la, lb = log_a[:, s : s + chunk], log_b[:, s : s + chunk]
        a_star = la.cumsum(1)
        part = torch.exp(a_star + torch.logcumsumexp(lb - a_star, 1))
        if h is not None:
            part = part + torch.exp(a_star) * h[:, None]
        out.append(part)
        h = part[:, -1]
    return torch.cat(out, 1)


def _reverse_within(x: Tensor, lengths: Tensor) -> Tensor:
    """Each row of x (B, T, ·) reversed within its own length; the padding stays where it is. Its own inverse."""
    T = x.shape[1]
    t = torch.arange(T, device=x.device)[None]
    index = torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)  # (B, T)
    return x.gather(1, index[:, :, None].expand_as(x))


class MinimalRecurrent(nn.Module):
    """Abstract: the stack, directions, lengths and both ways to run; a subclass gives ``blocks`` (how many H-wide
    pre-activations one step's input makes) and ``coefficients`` (pre-activations -> log a, log b)."""

    blocks: int

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, *,
                 backend: str = "auto", chunk: int = CHUNK) -> None:  # fmt: skip
        super().__init__()
        name = type(self).__name__
        for arg, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers),
                           ("chunk", chunk)):  # fmt: skip
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: {arg} must be a positive integer, got {value!r}")
        for arg, value in (("bias", bias), ("batch_first", batch_first), ("bidirectional", bidirectional)):
            if not isinstance(value, bool):
                raise TypeError(f"{name}: {arg} should be of type bool, got: {type(value).__name__}")
        if not 0 <= dropout <= 1:
            raise ValueError(f"{name}: dropout must be in [0, 1], got {dropout}")
        if backend != "auto":
            raise ValueError(f"{name} has one backend, the parallel scan (backend='auto'), got {backend!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.batch_first, self.bidirectional, self.dropout, self.chunk = batch_first, bidirectional, dropout, chunk
        self.directions = 2 if bidirectional else 1
        self.maps = nn.ModuleList(
            nn.Linear(input_size if layer == 0 else self.directions * hidden_size, self.blocks * hidden_size, bias)
            for layer in range(num_layers)
            for _ in range(self.directions)
        )

    def coefficients(self, pre: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def step(self, pre: Tensor, h: Tensor | None) -> Tensor:
        """One step in the recurrence's own terms: pre-activations (B, blocks·H) and h_{t-1} -> h_t."""
        log_a, log_b = self.coefficients(pre)
        return log_b.exp() + (0 if h is None else log_a.exp() * h)

    def _run(self, pre: Tensor, h0: Tensor | None, lengths: Tensor | None, reverse: bool) -> Tensor:
        if reverse:
            pre = _reverse_within(pre, lengths) if lengths is not None else pre.flip(1)
        one = pre.shape[1] == 1  # generation: the recurrence itself, no logs
        out = self.step(pre[:, 0], h0)[:, None] if one else scan(*self.coefficients(pre), h0, self.chunk)
        if reverse:
            out = _reverse_within(out, lengths) if lengths is not None else out.flip(1)
        return out

    def forward(self, input: Tensor, hx: Tensor | None = None, lengths: Tensor | None = None):
        x = input if self.batch_first else input.transpose(0, 1)  # (B, T, I)
        name = type(self).__name__
        if x.dim() != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"{name}: input must be (.., {self.input_size}) and 3-D, got {tuple(input.shape)}")
        B, T = x.shape[:2]
        if T == 0:
            raise ValueError(f"{name}: sequence length 0")
        if T > 1 and (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting()):
            raise RuntimeError(  # never a silently wrong graph: a trace would fix the scan's chunks at this T
                f"{name}: its parallel scan cannot be traced or exported over T > 1: ONNX has no operator for the "
                "log-space scan (logcumsumexp), and the chunks a trace records fix the length; one step (T = 1, "
                "the recurrence itself) traces and exports"
            )
        shape = (self.num_layers * self.directions, B, self.hidden_size)
        if hx is not None and tuple(hx.shape) != shape:
            raise ValueError(f"{name}: Expected hidden size {shape}, got {tuple(hx.shape)}")
        if lengths is not None:
            lengths = torch.as_tensor(lengths, device=x.device)
            if lengths.shape != (B,) or int(lengths.min()) < 1 or int(lengths.max()) > T:
                raise ValueError(f"{name}: lengths must be {B} values in [1, {T}], got {lengths.tolist()}")
        finals = []
        for layer in range(self.num_layers):
            outs = []
            for d in range(self.directions):
                k = layer * self.directions + d
                pre = self.maps[k](x).to(self.maps[k].weight.dtype)  # the scan in float32 under autocast
                h = self._run(pre, None if hx is None else hx[k], lengths, reverse=d == 1)
                outs.append(h)
                finals.append(self._final(h, lengths, reverse=d == 1))
            x = torch.cat(outs, 2) if self.directions == 2 else outs[0]
            if lengths is not None:
                x = x * valid_mask(lengths, T)[:, :, None].to(x.dtype)
            if layer < self.num_layers - 1 and self.dropout and self.training:
                x = F.dropout(x, self.dropout)
        out = x if self.batch_first else x.transpose(0, 1)
        return out, torch.stack(finals)

    @staticmethod
    def _final(h: Tensor, lengths: Tensor | None, reverse: bool) -> Tensor:
        """The state after a direction has read every step: the last valid step forward, step 0 in reverse."""
        if reverse:
            return h[:, 0]
        if lengths is None:
            return h[:, -1]
        return h[torch.arange(h.shape[0], device=h.device), lengths - 1]


class MinGRU(MinimalRecurrent):
    """minGRU: a_t = 1 - z_t, b_t = z_t ⊙ g(h̃_t); the module docstring."""

    blocks = 2

    def coefficients(self, pre: Tensor) -> tuple[Tensor, Tensor]:
        k, v = pre.chunk(2, dim=-1)
        return -F.softplus(k), -F.softplus(-k) + log_g(v)  # log(1 - z), log z + log g(h̃)


class MinLSTM(MinimalRecurrent):
    """minLSTM: a_t = f'_t, b_t = i'_t ⊙ g(h̃_t), with f' and i' the gates normalised to sum to 1."""

    blocks = 3

    def coefficients(self, pre: Tensor) -> tuple[Tensor, Tensor]:
        f, i, v = pre.chunk(3, dim=-1)
        diff = F.softplus(-f) - F.softplus(-i)  # log i - log f
        return -F.softplus(diff), -F.softplus(-diff) + log_g(v)  # log f', log i' + log g(h̃)
