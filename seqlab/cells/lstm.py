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

With a projection (torch.nn's proj_size P): h_t = (o_t ⊙ tanh c_t) W_hr^T, W_hr (P, H); h and W_hh's columns have
P features, c keeps H.

Memory saved for backward: the activated gates (T·B·4H) and c (T·B·H); h is the output, kept by the caller
anyway. torch.nn.LSTM on oneDNN keeps a workspace of about twice that. tanh(c) (and o ⊙ tanh c for ∂W_hr) is
recomputed in backward. The autograd plumbing (second order, torch.func) is in _autograd.py.
"""

from __future__ import annotations

import torch

from . import _autograd, compiled, reference
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
    """(xw (T, B, 4H), h0 (B, P), c0 (B, H), w_hh (4H, P), w_hr (P, H) or None, batch_sizes, slot, projection)
    -> (h (T, B, P), h_n, c_n, and two buffers for backward: the activated gates and c). P = H without w_hr.

    batch_sizes[t] is the number of rows still inside their sequence at step t (rows sorted longest first), or
    None for a full batch. slot, if given, receives the gates and ∂L/∂h_t for diagnostics. projection: see
    seqlab.cells._autograd (None when calling directly). With w_hr, h_t = (o_t ⊙ tanh c_t) W_hr^T (proj_size).
    """

    spec = _autograd.Spec(reference.lstm_over, tensors=5, states=(1, 2), axes=(1, 0, 0, 1, 1), public=3)

    @staticmethod
    def forward(xw, h0, c0, w_hh, w_hr, batch_sizes, slot, projection):
        T, B, G = xw.shape
        H, P = G // 4, h0.shape[1]
        bs, full = active_rows(batch_sizes, T, B)
        mm = product_dtype(h0)  # bfloat16 products under autocast
        new = alloc(full)
        like = {"dtype": xw.dtype, "device": xw.device}
        gates = new(T, B, G, **like)  # activated i, f, g, o
        c = new(T, B, H, **like)
        h = new(T, B, P, **like)
        step = StepProduct(w_hh, B, mm)  # h_{t-1} W_hh^T
        project = None if w_hr is None else StepProduct(w_hr, B, mm)  # r_t W_hr^T
        r = None if w_hr is None else torch.empty(B, H, **like)  # o_t ⊙ tanh c_t before the projection
        loop = None if w_hr is not None else compiled.usable(xw, w_hh, slot=slot, product=mm)
        if loop is not None:  # the C++ loop (loop.cpp) with no variant: the same recurrence
            inputs = compiled.dense(xw, h0, c0, w_hh, step.packed, *(None,) * 7)  # no layer norm, zoneout, dropout
            loop.lstm_forward(*inputs, bs[: live_steps(bs)], gates, c, c, h, None, None, 0.0)
            return h, final_state(h, h0, bs), final_state(c, c0, bs), gates, c
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
            if project is None:
                torch.mul(o, ct.tanh(), out=rows(hs[t], b, B))
            else:
                project(torch.mul(o, ct.tanh(), out=rows(r, b, B)), rows(hs[t], b, B))
            h_prev, c_prev = hs[t], cs[t]
        if slot is not None:
            i, f, g, o = gates.chunk(4, 2)
            slot.keep(i=i, f=f, g=g, o=o, c=c, h=h)
        return h, final_state(h, h0, bs), final_state(c, c0, bs), gates, c

    @staticmethod
    def setup_context(ctx, inputs, output):
        xw, h0, _, _, _, batch_sizes, slot, _ = inputs
        _autograd.setup(ctx, LSTMFunction.spec, inputs, output, keep=(output[3], output[4], output[0]))
        ctx.bs, ctx.full = active_rows(batch_sizes, xw.shape[0], xw.shape[1])
        ctx.slot, ctx.mm = slot, product_dtype(h0)

    @staticmethod
    def backward(ctx, *grads):
        return _autograd.backward(ctx, grads, LSTMFunction.reverse)

    @staticmethod
    def reverse(ctx, dy, dh_n, dc_n):
        """Reverse of forward, step by step. With dh_t = ∂L/∂h_t and da the gradient of the gate pre-activations:

        ∂c_t     = ∂c_{t+1} ⊙ f_{t+1} + dr_t ⊙ o_t (1 - tanh² c_t),   dr_t = dh_t (dh_t W_hr with a projection)
        da_i     = ∂c_t ⊙ g_t i_t (1 - i_t)      da_f = ∂c_t ⊙ c_{t-1} f_t (1 - f_t)
        da_g     = ∂c_t ⊙ i_t (1 - g_t²)         da_o = dr_t ⊙ tanh(c_t) o_t (1 - o_t)
        dh_{t-1} = dy_{t-1} + W_hh^T da_t
        The factors multiplying ∂c_t and dr_t depend only on the saved forward, so they are computed for a chunk of
        steps at once with one-pass derivative kernels; each step is then five ops (six with a projection).
        ∂W_hh (and ∂W_hr = Σ_t dh_t^T (o_t ⊙ tanh c_t)) is one product at the end.
        """
        (gates, c, h), (_, h0, c0, w_hh, w_hr) = _autograd.saved(ctx)
        bs, slot = ctx.bs, ctx.slot
        T, B, G4 = gates.shape
        H = G4 // 4
        like = {"dtype": gates.dtype, "device": gates.device}
        dgates = alloc(ctx.full)(T, B, 4, H, **like)  # = ∂L/∂xw, returned
        dh0, dc = dh_n.contiguous().clone(), dc_n.contiguous().clone()  # rows not reached yet: their final state's
        loop = None if w_hr is not None else compiled.usable(gates, w_hh, slot=slot, product=ctx.mm)
        if loop is not None:  # the C++ loop (loop.cpp) with no variant
            back = StepProduct(w_hh.t(), B, ctx.mm)
            inputs, grads = compiled.dense(w_hh, back.packed, gates, c, c, c0, *(None,) * 8), compiled.dense(dy, dh_n)
            loop.lstm_backward(*inputs, bs[: live_steps(bs)], *grads, dgates, dgates, None, dh0, dc, 0.0)
            dgates = dgates.view(T, B, G4)
            return dgates, dh0, dc, recurrent_weight_grad(dgates, h, h0, ctx.mm), None, None, None, None
        # With a projection every dh_t is kept, for ∂W_hr at the end.
        dhs, dh_kept = state_grads(dy, dh_n, bs, record=slot is not None or w_hr is not None)
        das, dys, fs = dgates.view(T, B, G4).unbind(0), dy.unbind(0), gates[..., H : 2 * H].unbind(0)
        back = StepProduct(w_hh.t(), B, ctx.mm)  # da_t W_hh
        unproject = None if w_hr is None else StepProduct(w_hr.t(), B, ctx.mm)  # dh_t W_hr
        dr = None if w_hr is None else torch.empty(B, H, **like)
        n_live = live_steps(bs)
        # Steps t0..t1-1 at a time; their factors are (t1 - t0, m, ·) for the m = bs[t0] rows active at t0, the most
        # in the window (step t keeps its first bs[t] <= m of them); index k = t - t0 on the first axis is step t.
        for t0, t1 in reverse_chunks(n_live, B * 5 * H):
            m = bs[t0]
            i, f, g, o = gates[t0:t1, :m].chunk(4, 2)  # (t1 - t0, m, H) each
            tanh_c = c[t0:t1, :m].tanh()
            dc_per_dh = tanh_grad(o, tanh_c, grad_input=torch.empty_like(tanh_c))  # o (1 - tanh² c): ∂c_t += dr_t ⊙ it
            gate_factors = torch.empty(t1 - t0, m, 4, H, **like)  # da = [∂c, ∂c, ∂c, dr] ⊙ gate_factors
            sigmoid_grad(g, i, grad_input=gate_factors[:, :, 0])
            sigmoid_grad(previous(c, c0, t0, t1, m), f, grad_input=gate_factors[:, :, 1])
            tanh_grad(i, g, grad_input=gate_factors[:, :, 2])
            sigmoid_grad(tanh_c, o, grad_input=gate_factors[:, :, 3])
            del tanh_c
            for t in range(t1 - 1, t0 - 1, -1):
                b, k = bs[t], t - t0
                dh = rows(dhs[t], b, B) if unproject is None else unproject(rows(dhs[t], b, B), rows(dr, b, B))
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
            slot.keep_grad(dh_kept)
        dgates = dgates.view(T, B, G4)
        dw_hr = None if w_hr is None else projection_grad(dh_kept, gates[..., 3 * H :], c, ctx.mm)
        return dgates, dh0, dc, recurrent_weight_grad(dgates, h, h0, ctx.mm), dw_hr, None, None, None

    @staticmethod
    def jvp(ctx, *tangents):
        return _autograd.jvp(ctx, tangents)

    @staticmethod
    def vmap(info, in_dims, *args):
        return _autograd.vmap(LSTMFunction, info, in_dims, args)


def projection_grad(dh: torch.Tensor, o: torch.Tensor, c: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """∂L/∂W_hr = Σ_t dh_t^T (o_t ⊙ tanh c_t): one product over all steps (padding is zero in dh)."""
    r = (o * c.tanh()).reshape(-1, c.shape[-1])
    dh = dh.reshape(-1, dh.shape[-1])
    if dtype is not None and dtype != r.dtype:
        return (dh.to(dtype).t() @ r.to(dtype)).to(r.dtype)
    return dh.t() @ r
