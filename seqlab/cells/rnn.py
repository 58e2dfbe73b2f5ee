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

from . import _autograd, reference
from ._steps import (
    StepProduct,
    active_rows,
    alloc,
    final_state,
    live_steps,
    product_dtype,
    recurrent_weight_grad,
    relu_grad,
    rows,
    seed_rows,
    state_grads,
    tanh_grad,
)


class RNNFunction(torch.autograd.Function):
    """(xw (T, B, H), h0 (B, H), w_hh (H, H), relu: bool, batch_sizes, slot, projection) -> (h (T, B, H), h_n).
    See LSTMFunction for the rest."""

    spec = _autograd.Spec(reference.rnn_over, tensors=3, states=(1,), axes=(1, 0), public=2)

    @staticmethod
    def forward(xw, h0, w_hh, relu, batch_sizes, slot, projection):
        T, B, H = xw.shape
        bs, full = active_rows(batch_sizes, T, B)
        mm = product_dtype(h0)  # bfloat16 products under autocast
        h = alloc(full)(T, B, H, dtype=xw.dtype, device=xw.device)
        xs, hs = xw.unbind(0), h.unbind(0)  # per-step views, made once
        act = torch.Tensor.relu_ if relu else torch.Tensor.tanh_
        step = StepProduct(w_hh, B, mm)  # h_{t-1} W_hh^T
        h_prev = h0
        for t in range(live_steps(bs)):
            b = bs[t]
            act(step(rows(h_prev, b, B), rows(hs[t], b, B), add=rows(xs[t], b, B)))
            h_prev = hs[t]
        if slot is not None:
            slot.keep(h=h)
        return h, final_state(h, h0, bs)

    @staticmethod
    def setup_context(ctx, inputs, output):
        xw, h0, _, relu, batch_sizes, slot, _ = inputs
        _autograd.setup(ctx, RNNFunction.spec, inputs, output, keep=(output[0],))
        ctx.bs, ctx.full = active_rows(batch_sizes, xw.shape[0], xw.shape[1])
        ctx.slot, ctx.mm, ctx.relu = slot, product_dtype(h0), relu

    @staticmethod
    def backward(ctx, *grads):
        return _autograd.backward(ctx, grads, RNNFunction.reverse)

    @staticmethod
    def reverse(ctx, dy, dh_n):
        """dh_t = ∂L/∂h_t, through the output and through time:

        da_t     = dh_t ⊙ φ'_t,  φ' = 1 - h² (tanh) or [h > 0] (relu)    (one fused kernel)
        dh_{t-1} = dy_{t-1} + W_hh^T da_t                                (one addmm)
        No factors are precomputed per chunk, unlike LSTM and GRU: φ'_t ⊙ dh_t is already one kernel per step.
        """
        (h,), (_, h0, w_hh) = _autograd.saved(ctx)
        bs, slot = ctx.bs, ctx.slot
        T, B, H = h.shape
        like = {"dtype": h.dtype, "device": h.device}
        da = alloc(ctx.full)(T, B, H, **like)  # = ∂L/∂xw, returned
        dh0 = dh_n.clone()  # rows of length 0 pass their final gradient straight to h0
        dhs, dh_rec = state_grads(dy, dh_n, bs, record=slot is not None)
        das, dys, hs = da.unbind(0), dy.unbind(0), h.unbind(0)
        back = StepProduct(w_hh.t(), B, ctx.mm)  # da_t W_hh
        n_live = live_steps(bs)
        for t in range(n_live - 1, -1, -1):
            b = bs[t]
            dh, ht, da_t = rows(dhs[t], b, B), rows(hs[t], b, B), rows(das[t], b, B)
            if ctx.relu:
                relu_grad(dh, ht, 0, grad_input=da_t)
            else:
                tanh_grad(dh, ht, grad_input=da_t)
            if t == 0:
                back(da_t, rows(dh0, b, B))
                break
            back(da_t, rows(dhs[t - 1], b, B), add=rows(dys[t - 1], b, B))
            seed_rows(dhs[t - 1], dh_n, dys[t - 1], b, bs[t - 1])
        if slot is not None:
            slot.keep_grad(dh_rec)
        return da, dh0, recurrent_weight_grad(da, h, h0, ctx.mm), None, None, None, None

    @staticmethod
    def jvp(ctx, *tangents):
        return _autograd.jvp(ctx, tangents)

    @staticmethod
    def vmap(info, in_dims, *args):
        return _autograd.vmap(RNNFunction, info, in_dims, args)
