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


def lstm_cell(x: Tensor, state: State, w_ih, w_hh, b_ih, b_hh, w_hr=None) -> State:
    """i, f, o = σ(·), g = tanh(·);  c' = f ⊙ c + i ⊙ g;  h' = o ⊙ tanh(c'), or (o ⊙ tanh(c')) W_hr^T with a
    projection (Sak et al. 2014; torch.nn.LSTM's proj_size): h' then has P < H features, and W_hh is (4H, P)."""
    h, c = state
    i, f, g, o = (F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)).chunk(4, dim=1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g
    h = o * torch.tanh(c)
    return (h if w_hr is None else F.linear(h, w_hr)), c


def gru_cell(x: Tensor, state: State, w_ih, w_hh, b_ih, b_hh) -> State:
    """r, z = σ(·);  n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn));  h' = (1 - z) ⊙ n + z ⊙ h"""
    (h,) = state
    xr, xz, xn = F.linear(x, w_ih, b_ih).chunk(3, dim=1)
    hr, hz, hn = F.linear(h, w_hh, b_hh).chunk(3, dim=1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return ((1 - z) * n + z * h,)


Cell = Callable[..., State]


# The recurrences over a precomputed input projection xw = x W_ih^T + b (T, B, G), as the bptt Functions take it:
# the specification their second-order gradients, forward-mode derivatives and vmap fallback differentiate.
# ``bs``: rows active per step (a non-increasing prefix, as seqlab.cells._steps.active_rows gives), or None.
def lstm_over(xw: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor, w_hr: Tensor | None, bs) -> tuple[Tensor, ...]:
    def step(a, state):
        h, c = state
        i, f, g, o = (a + F.linear(h, w_hh)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return (h if w_hr is None else F.linear(h, w_hr)), c

    return over(step, xw, (h0, c0), bs)


def gru_over(xw: Tensor, h0: Tensor, w_hh: Tensor, b_hn: Tensor | None, bs) -> tuple[Tensor, ...]:
    """xw carries b_ih and b_hh's r, z blocks; b_hn stays inside r ⊙ (W_hn h + b_hn)."""

    def step(a, state):
        (h,) = state
        xr, xz, xn = a.chunk(3, dim=1)
        hr, hz, hn = F.linear(h, w_hh).chunk(3, dim=1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * (hn if b_hn is None else hn + b_hn))
        return ((1 - z) * n + z * h,)

    return over(step, xw, (h0,), bs)


def rnn_over(xw: Tensor, h0: Tensor, w_hh: Tensor, relu: bool, bs) -> tuple[Tensor, ...]:
    act = torch.relu if relu else torch.tanh
    return over(lambda a, state: (act(a + F.linear(state[0], w_hh)),), xw, (h0,), bs)


def variant_lstm_over(xw, h0, c0, w_hh, g_h, b_h, g_c, b_c, z_h, z_c, m, bs) -> tuple[Tensor, ...]:
    """The LSTM with layer norm (γ, β not None), zoneout masks z_h, z_c (T, B, H) and a recurrent dropout mask m
    (B, H), any of them None: the equations of seqlab/cells/lstm_variants.py, step by step."""
    G, H = xw.shape[-1], h0.shape[-1]
    masks = torch.stack([z if z is not None else xw.new_zeros(*xw.shape[:2], H) for z in (z_h, z_c)], 2)

    def step(inputs, state):
        a, z = inputs
        h, c = state
        r = F.linear(h if m is None else h * m, w_hh)
        i, f, g, o = (a + (r if g_h is None else F.layer_norm(r, (G,), g_h, b_h, 1e-5))).chunk(4, dim=1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        n = c_new if g_c is None else F.layer_norm(c_new, (H,), g_c, b_c, 1e-5)
        h_new = torch.sigmoid(o) * torch.tanh(n)
        return torch.lerp(h_new, h, z[:, 0]), torch.lerp(c_new, c, z[:, 1])

    return over(step, xw, (h0, c0), bs, extra=masks)


def variant_gru_over(xw, h0, w_hh, b_hh, g_h, b_h, z_h, m, bs) -> tuple[Tensor, ...]:
    """The GRU with layer norm (γ_h, β_h not None; then all of b_hh is added after it, else only b_hn, the r and z
    blocks being in xw), a zoneout mask z_h (T, B, H) and a recurrent dropout mask m (B, H), any of them None: the
    equations of seqlab/cells/gru_variants.py, step by step."""
    G, H = xw.shape[-1], h0.shape[-1]
    masks = z_h if z_h is not None else xw.new_zeros(*xw.shape[:2], H)
    bias = None if b_hh is None else (b_hh if g_h is not None else torch.cat([b_hh.new_zeros(2 * H), b_hh[2 * H :]]))

    def step(inputs, state):
        a, z_out = inputs
        (h,) = state
        q = F.linear(h if m is None else h * m, w_hh)
        q = q if g_h is None else F.layer_norm(q, (G,), g_h, b_h, 1e-5)
        q = q if bias is None else q + bias
        r, z = torch.sigmoid(a[:, :H] + q[:, :H]), torch.sigmoid(a[:, H : 2 * H] + q[:, H : 2 * H])
        n = torch.tanh(a[:, 2 * H :] + r * q[:, 2 * H :])
        return (torch.lerp((1 - z) * n + z * h, h, z_out),)

    return over(step, xw, (h0,), bs, extra=masks)


def over(step, xw: Tensor, state: State, bs, extra: Tensor | None = None) -> tuple[Tensor, ...]:
    """-> (outputs (T, B, ·) zero past each row's length, *final states at each row's own last step). ``extra``:
    per-step inputs handed to ``step`` beside xw_t (zoneout masks)."""
    T, B = xw.shape[:2]
    outputs = []
    for t in range(T):
        new = step(xw[t] if extra is None else (xw[t], extra[t]), state)
        if bs is None or bs[t] == B:
            state = new
            outputs.append(new[0])
        else:
            live = (torch.arange(B, device=xw.device) < bs[t]).unsqueeze(1)  # (B, 1)
            state = tuple(torch.where(live, n, s) for n, s in zip(new, state, strict=True))
            outputs.append(torch.where(live, new[0], torch.zeros_like(new[0])))
    return (torch.stack(outputs) if T else xw.new_zeros(0, B, state[0].shape[-1]), *state)


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
