"""Vanilla (Elman) RNN: one state, one matrix, one nonlinearity.

    h_t = φ(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),   φ = tanh or relu

Layout (as torch.nn.RNN): weight_ih (H, I), weight_hh (H, H), bias_ih and bias_hh (H,).
Legend: T time, B batch, I input, H hidden.

The layer computes xw = x W_ih^T + b_ih + b_hh in one product over all steps with autograd; ``RNNFunction`` runs
the recurrence. Memory saved for backward: nothing beyond h, the output (φ' is a function of h for both φ).
This is the cell whose gradients vanish or explode: ∂h_{t-1} = W_hh^T (φ'_t ⊙ ∂h_t), a product of T Jacobians.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from ._steps import active_rows, alloc, final_state, recurrent_weight_grad, reverse_chunks


class RNNFunction(torch.autograd.Function):
    """(xw (T, B, H), h0 (B, H), w_hh (H, H), relu: bool, batch_sizes, slot) -> (h (T, B, H), h_n)."""

    @staticmethod
    def forward(ctx, xw, h0, w_hh, relu, batch_sizes, slot):
        T, B, H = xw.shape
        bs, full = active_rows(batch_sizes, T, B)
        h = alloc(full)(T, B, H, dtype=xw.dtype, device=xw.device)
        w_t = w_hh.t()
        h_prev = h0
        for t in range(T):
            b = bs[t]
            if b == 0:
                break
            a = torch.addmm(xw[t, :b], h_prev[:b], w_t, out=h[t, :b])
            a.relu_() if relu else a.tanh_()
            h_prev = h[t]
        ctx.save_for_backward(h, h0, w_hh)
        ctx.bs, ctx.full, ctx.slot, ctx.relu = bs, full, slot, relu
        if slot is not None:
            slot.keep(h=h)
        return h, final_state(h, h0, bs)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dh_n):
        """∂h_t = dy_t + W_hh^T da_{t+1};  da_t = ∂h_t ⊙ φ'_t, with φ' = 1 - h² (tanh) or [h > 0] (relu)."""
        h, h0, w_hh = ctx.saved_tensors
        bs, slot = ctx.bs, ctx.slot
        T, B, H = h.shape
        like = {"dtype": h.dtype, "device": h.device}
        da = alloc(ctx.full)(T, B, H, **like)  # = ∂L/∂xw, returned
        dh = dh_n.clone()
        dh_rec = torch.zeros(T, B, H, **like) if slot is not None else None
        scratch = torch.empty(B, H, **like) if slot is None else None
        for t0, t1 in reverse_chunks(T, B * H):
            rows = bs[t0]
            if rows == 0:
                continue
            hk = h[t0:t1, :rows]
            D = (hk > 0).to(hk.dtype) if ctx.relu else 1 - hk * hk
            for t in range(t1 - 1, t0 - 1, -1):
                b = bs[t]
                if b == 0:
                    continue
                dht = torch.add(dh[:b], dy[t, :b], out=(dh_rec[t] if slot is not None else scratch)[:b])
                torch.mm(torch.mul(dht, D[t - t0, :b], out=da[t, :b]), w_hh, out=dh[:b])
        if slot is not None:
            slot.keep_grad(dh_rec)
        return da, dh, recurrent_weight_grad(da, h, h0), None, None, None
