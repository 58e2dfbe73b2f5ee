"""LSTM: a long-term memory c that gates decide to keep, write and read, and a short-term memory h.

    i_t = σ(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)      input gate: how much of the candidate to write
    f_t = σ(W_if x_t + b_if + W_hf h_{t-1} + b_hf)      forget gate: how much of the long-term memory to keep
    g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)   candidate memory
    o_t = σ(W_io x_t + b_io + W_ho h_{t-1} + b_ho)      output gate: how much of the memory to show
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t                     long-term memory
    h_t = o_t ⊙ tanh(c_t)                               short-term memory: the output and the next step's state

Layout (as torch.nn.LSTM): weight_ih (4H, I), weight_hh (4H, H), bias_ih and bias_hh (4H,), gate blocks in the
order i, f, g, o along the rows.
Legend: T time, B batch, I input, H hidden, G = 4H gate pre-activations.

The input projection xw = x W_ih^T + b_ih + b_hh is one large product over all steps, taken by the layer with
autograd; ``LSTMFunction`` runs the recurrence over it and differentiates it by hand.

Memory saved for backward: the activated gates (T·B·4H) and c (T·B·H); h is the output, kept by the caller
anyway. torch.nn.LSTM on oneDNN keeps a workspace of about twice that. tanh(c) is recomputed in backward.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from ._steps import (
    StepProduct,
    active_rows,
    alloc,
    final_state,
    live_steps,
    previous,
    product_dtype,
    recurrent_weight_grad,
    reverse_chunks,
    rows,
    seed_rows,
    sigmoid_grad,
    state_grads,
    tanh_grad,
)


class LSTMFunction(torch.autograd.Function):
    """(xw (T, B, 4H), h0 (B, H), c0 (B, H), w_hh (4H, H), batch_sizes, slot) -> (h (T, B, H), h_n, c_n).

    batch_sizes[t] is the number of rows still inside their sequence at step t (rows sorted longest first), or
    None for a full batch. slot, if given, receives the gates and ∂L/∂h_t for diagnostics.
    """

    @staticmethod
    def forward(ctx, xw, h0, c0, w_hh, batch_sizes, slot):
        T, B, G = xw.shape
        H = G // 4
        bs, full = active_rows(batch_sizes, T, B)
        mm = product_dtype(h0)  # bfloat16 products under autocast
        new = alloc(full)
        like = {"dtype": xw.dtype, "device": xw.device}
        gates = new(T, B, G, **like)  # activated i, f, g, o
        c = new(T, B, H, **like)
        h = new(T, B, H, **like)
        step = StepProduct(w_hh, B, mm)  # h_{t-1} W_hh^T
        xs, gs, cs, hs = xw.unbind(0), gates.unbind(0), c.unbind(0), h.unbind(0)
        h_prev, c_prev = h0, c0
        for t in range(live_steps(bs)):
            b = bs[t]
            a = step(rows(h_prev, b, B), rows(gs[t], b, B), add=rows(xs[t], b, B))
            i, f, g, o = a.chunk(4, 1)
            a[:, : 2 * H].sigmoid_()  # i, f
            g.tanh_()
            o.sigmoid_()
            ct = torch.mul(f, rows(c_prev, b, B), out=rows(cs[t], b, B)).addcmul_(i, g)
            torch.mul(o, ct.tanh(), out=rows(hs[t], b, B))
            h_prev, c_prev = hs[t], cs[t]
        ctx.save_for_backward(gates, c, h, h0, c0, w_hh)
        ctx.bs, ctx.full, ctx.slot, ctx.mm = bs, full, slot, mm
        if slot is not None:
            i, f, g, o = gates.chunk(4, 2)
            slot.keep(i=i, f=f, g=g, o=o, c=c, h=h)
        return h, final_state(h, h0, bs), final_state(c, c0, bs)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dh_n, dc_n):
        """Reverse of forward, step by step. With dh_t = ∂L/∂h_t and da the gradient of the gate pre-activations:

        ∂c_t     = ∂c_{t+1} ⊙ f_{t+1} + dh_t ⊙ o_t (1 - tanh² c_t)
        da_i     = ∂c_t ⊙ g_t i_t (1 - i_t)      da_f = ∂c_t ⊙ c_{t-1} f_t (1 - f_t)
        da_g     = ∂c_t ⊙ i_t (1 - g_t²)         da_o = dh_t ⊙ tanh(c_t) o_t (1 - o_t)
        dh_{t-1} = dy_{t-1} + W_hh^T da_t
        The factors multiplying ∂c_t and dh_t depend only on the saved forward, so they are computed for a chunk of
        steps at once with one-pass derivative kernels; each step is then five ops. ∂W_hh is one product at the end.
        """
        gates, c, h, h0, c0, w_hh = ctx.saved_tensors
        bs, slot = ctx.bs, ctx.slot
        T, B, G4 = gates.shape
        H = G4 // 4
        like = {"dtype": gates.dtype, "device": gates.device}
        dgates = alloc(ctx.full)(T, B, 4, H, **like)  # = ∂L/∂xw, returned
        dh0, dc = dh_n.clone(), dc_n.clone()  # rows not reached yet hold the gradient of their final state
        dhs, dh_rec = state_grads(dy, dh_n, bs, record=slot is not None)
        das, dys, fs = dgates.view(T, B, G4).unbind(0), dy.unbind(0), gates[..., H : 2 * H].unbind(0)
        back = StepProduct(w_hh.t(), B, ctx.mm)  # da_t W_hh
        n_live = live_steps(bs)
        # Steps t0..t1-1 at a time; their factors are (t1 - t0, m, ·) for the m = bs[t0] rows active at t0, the most
        # in the window (step t keeps its first bs[t] <= m of them); index k = t - t0 on the first axis is step t.
        for t0, t1 in reverse_chunks(n_live, B * 5 * H):
            m = bs[t0]
            i, f, g, o = gates[t0:t1, :m].chunk(4, 2)  # (t1 - t0, m, H) each
            tanh_c = c[t0:t1, :m].tanh()
            dc_per_dh = tanh_grad(o, tanh_c, grad_input=torch.empty_like(tanh_c))  # o (1 - tanh² c): ∂c_t += dh_t ⊙ it
            gate_factors = torch.empty(t1 - t0, m, 4, H, **like)  # da = [∂c, ∂c, ∂c, dh] ⊙ gate_factors
            sigmoid_grad(g, i, grad_input=gate_factors[:, :, 0])
            sigmoid_grad(previous(c, c0, t0, t1, m), f, grad_input=gate_factors[:, :, 1])
            tanh_grad(i, g, grad_input=gate_factors[:, :, 2])
            sigmoid_grad(tanh_c, o, grad_input=gate_factors[:, :, 3])
            del tanh_c
            for t in range(t1 - 1, t0 - 1, -1):
                b, k = bs[t], t - t0
                dh = rows(dhs[t], b, B)
                dct = rows(dc, b, B).addcmul_(dh, rows(dc_per_dh[k], b, m))
                da4 = rows(dgates[t], b, B)  # (b, 4, H): da_i, da_f, da_g, da_o
                factors = rows(gate_factors[k], b, m)
                torch.mul(dct.unsqueeze(1), factors[:, :3], out=da4[:, :3])
                torch.mul(dh, factors[:, 3], out=da4[:, 3])
                dct.mul_(rows(fs[t], b, B))  # ∂c_{t-1}
                if t == 0:
                    back(rows(das[0], b, B), rows(dh0, b, B))
                    break
                back(rows(das[t], b, B), rows(dhs[t - 1], b, B), add=rows(dys[t - 1], b, B))
                seed_rows(dhs[t - 1], dh_n, dys[t - 1], b, bs[t - 1])
        if slot is not None:
            slot.keep_grad(dh_rec)
        dgates = dgates.view(T, B, G4)
        return dgates, dh0, dc, recurrent_weight_grad(dgates, h, h0, ctx.mm), None, None
