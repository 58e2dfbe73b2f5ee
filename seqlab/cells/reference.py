"""The cells as plain per-step autograd: the readable specification, and the oracle the fast paths are tested against.

Legend: B batch, I input, H hidden. Weights follow torch.nn: weight_ih (G·H, I), weight_hh (G·H, H), biases (G·H,),
gate blocks stacked along the rows (LSTM i, f, g, o; GRU r, z, n).

Variable lengths use a mask here, the obvious way: a row past its length keeps its state and outputs zero.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

State = tuple[Tensor, ...]


def rnn_tanh_cell(x: Tensor, state: State, w_ih, w_hh, b_ih, b_hh) -> State:
    """h' = tanh(W_ih x + b_ih + W_hh h + b_hh)"""
    (h,) = state
    return (torch.tanh(F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)),)


def rnn_relu_cell(x: Tensor, state: State, w_ih, w_hh, b_ih, b_hh) -> State:
    """h' = relu(W_ih x + b_ih + W_hh h + b_hh)"""
    (h,) = state
    return (torch.relu(F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)),)


def lstm_cell(x: Tensor, state: State, w_ih, w_hh, b_ih, b_hh) -> State:
    """i, f, o = σ(·), g = tanh(·);  c' = f ⊙ c + i ⊙ g;  h' = o ⊙ tanh(c')"""
    h, c = state
    i, f, g, o = (F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)).chunk(4, dim=1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g
    return o * torch.tanh(c), c


def gru_cell(x: Tensor, state: State, w_ih, w_hh, b_ih, b_hh) -> State:
    """r, z = σ(·);  n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn));  h' = (1 - z) ⊙ n + z ⊙ h"""
    (h,) = state
    xr, xz, xn = F.linear(x, w_ih, b_ih).chunk(3, dim=1)
    hr, hz, hn = F.linear(h, w_hh, b_hh).chunk(3, dim=1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return ((1 - z) * n + z * h,)


Cell = Callable[..., State]


def run(cell: Cell, x: Tensor, state: State, weights: tuple, lengths: Tensor | None) -> tuple[Tensor, State]:
    """Run ``cell`` over x (T, B, I) from ``state`` (tuple of (B, H)); returns outputs (T, B, H) and final state."""
    outputs = []
    for t in range(x.shape[0]):
        new = cell(x[t], state, *weights)
        if lengths is None:
            state = new
            outputs.append(new[0])
        else:
            live = (lengths > t).unsqueeze(1)  # (B, 1)
            state = tuple(torch.where(live, n, s) for n, s in zip(new, state, strict=True))
            outputs.append(torch.where(live, new[0], torch.zeros_like(new[0])))
    return torch.stack(outputs), state


def scanned(cell: Cell, x: Tensor, state: State, weights: tuple, lengths: Tensor | None) -> tuple[Tensor, State]:
    """``run`` as one scan over time (torch's scan operator): what torch.export and the dynamo ONNX exporter record
    as a loop whose length is the input's (an ONNX Loop), where ``run``'s Python loop would be unrolled at the
    traced T. Same contract: x (T, B, I) -> outputs (T, B, H) zero past each length, and each row's final state."""
    from torch._higher_order_ops.scan import scan

    T = x.shape[0]
    steps = torch.arange(T, device=x.device)[:, None]  # (T, 1)
    live = (steps < lengths.to(x.device)[None, :] if lengths is not None else steps >= 0).unsqueeze(2)  # (T, B|1, 1)

    def step(carry: State, inputs: tuple[Tensor, Tensor]):
        xt, alive = inputs
        new = cell(xt, carry, *weights)
        kept = tuple(torch.where(alive, n, s) for n, s in zip(new, carry, strict=True))
        return kept, torch.where(alive, new[0], torch.zeros_like(new[0]))  # new tensors: scan refuses aliases

    # Fresh tensors, not views (a state row of the stacked (L·D, B, H), a transposed input): the scan operator
    # traces a view's base too, and two bases of the batch size in one graph made torch.export fix it.
    init = tuple(s.clone() for s in state)
    final, out = scan(step, init, (x.clone(), live.expand(T, x.shape[1], 1).clone()))
    return out, final
