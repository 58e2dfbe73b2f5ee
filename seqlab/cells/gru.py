"""GRU: one state h, blended with a candidate by an update gate.

    r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)            reset gate
    z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)            update gate: how much of h_{t-1} to keep
    n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn))  candidate
    h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}

Layout (as torch.nn.GRU): weight_ih (3H, I), weight_hh (3H, H), bias_ih and bias_hh (3H,), gate blocks in the
order r, z, n along the rows.
Legend: T time, B batch, I input, H hidden.

The layer computes xw = x W_ih^T + b_ih + [b_hr, b_hz, 0] in one product over all steps with autograd. b_hn sits
inside r ⊙ (·), so it enters ``GRUFunction`` separately.

Memory saved for backward: r and z (T·B·2H), n (T·B·H) and W_hn h + b_hn (T·B·H); h is the output.
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


class GRUFunction(torch.autograd.Function):
    """(xw (T, B, 3H), h0 (B, H), w_hh (3H, H), b_hn (H,) or None, batch_sizes, slot, projection)
    -> (h (T, B, H), h_n, and three buffers for backward: σ(r, z), n, W_hn h + b_hn). See LSTMFunction for the rest.
    """

    spec = _autograd.Spec(reference.gru_over, tensors=4, states=(1,), axes=(1, 0, 1, 1, 1), public=2)

    @staticmethod
    def forward(xw, h0, w_hh, b_hn, batch_sizes, slot, projection):
        T, B, G = xw.shape
        H = G // 3
        bs, full = active_rows(batch_sizes, T, B)
        mm = product_dtype(h0)  # bfloat16 products under autocast
        new = alloc(full)
        like = {"dtype": xw.dtype, "device": xw.device}
        rz = new(T, B, 2 * H, **like)  # σ of the r and z pre-activations, side by side: one addmm writes both
        n = new(T, B, H, **like)
        hn = new(T, B, H, **like)  # W_hn h_{t-1} + b_hn
        h = new(T, B, H, **like)
        loop = compiled.usable(xw, w_hh, slot=slot, product=mm)
        if loop is not None:  # the C++ loop (loop.cpp) with no variant: one product of all three blocks
            bias = None if b_hn is None else torch.cat([b_hn.new_zeros(2 * H), b_hn])
            inputs = compiled.dense(xw, h0, w_hh, StepProduct(w_hh, B, mm).packed, bias, *(None,) * 4)
            loop.gru_forward(*inputs, bs[: live_steps(bs)], rz, n, hn, h, None, None, 0.0)
            return h, final_state(h, h0, bs), rz, n, hn
        step_rz, step_n = StepProduct(w_hh[: 2 * H], B, mm), StepProduct(w_hh[2 * H :], B, mm)
        x_rz, x_n = xw[..., : 2 * H].unbind(0), xw[..., 2 * H :].unbind(0)
        rzs, rs, zs = rz.unbind(0), rz[..., :H].unbind(0), rz[..., H:].unbind(0)
        ns, hns, hs = n.unbind(0), hn.unbind(0), h.unbind(0)
        h_prev = h0
        for t in range(live_steps(bs)):
            b = bs[t]
            hp = rows(h_prev, b, B)
            step_rz(hp, rows(rzs[t], b, B), add=rows(x_rz[t], b, B)).sigmoid_()
            hnt = step_n(hp, rows(hns[t], b, B), bias=b_hn)
            nt = torch.addcmul(rows(x_n[t], b, B), rows(rs[t], b, B), hnt, out=rows(ns[t], b, B)).tanh_()
            torch.lerp(nt, hp, rows(zs[t], b, B), out=rows(hs[t], b, B))  # n + z ⊙ (h_prev - n)
            h_prev = hs[t]
        if slot is not None:
            slot.keep(r=rz[..., :H], z=rz[..., H:], n=n, h=h)
        return h, final_state(h, h0, bs), rz, n, hn

    @staticmethod
    def setup_context(ctx, inputs, output):
        xw, h0, _, b_hn, batch_sizes, slot, _ = inputs
        h, _, rz, n, hn = output
        _autograd.setup(ctx, GRUFunction.spec, inputs, output, keep=(rz, n, hn, h))
        ctx.bs, ctx.full = active_rows(batch_sizes, xw.shape[0], xw.shape[1])
        ctx.slot, ctx.mm, ctx.has_bias = slot, product_dtype(h0), b_hn is not None

    @staticmethod
    def backward(ctx, *grads):
        return _autograd.backward(ctx, grads, GRUFunction.reverse)

    @staticmethod
    def reverse(ctx, dy, dh_n):
        """dh_t = ∂L/∂h_t, through the output and through time. With ∂h/∂a_n = (1 - z_t)(1 - n_t²) (``dan_per_dh``
        in the code), the share of dh_t that reaches the n pre-activation:

        da_n  = dh_t ⊙ ∂h/∂a_n                                   (n pre-activation, input side)
        da_z  = dh_t ⊙ (h_{t-1} - n_t) z_t (1 - z_t)
        da_r  = dh_t ⊙ ∂h/∂a_n (W_hn h_{t-1} + b_hn) r_t (1 - r_t)
        d(W_hn h + b_hn) = dh_t ⊙ ∂h/∂a_n r_t
        dh_{t-1} = dy_{t-1} + dh_t ⊙ z_t + W_hh^T [da_r, da_z, d(W_hn h + b_hn)]
        The four gate gradients are dh_t times factors of the saved forward, computed for a chunk of steps at once,
        so each step is three ops: one broadcast multiply, one addcmul, one addmm. ∂W_hh is one product at the end.
        """
        (rz, n, hn, h), (_, h0, w_hh, _) = _autograd.saved(ctx)
        bs, slot = ctx.bs, ctx.slot
        T, B, H = h.shape
        like = {"dtype": h.dtype, "device": h.device}
        loop = compiled.usable(h, w_hh, slot=slot, product=ctx.mm)
        if loop is not None:  # the C++ loop (loop.cpp) with no variant
            dxw, dq = alloc(ctx.full)(T, B, 3 * H, **like), alloc(ctx.full)(T, B, 3 * H, **like)
            dh0 = dh_n.contiguous().clone()
            packed = StepProduct(w_hh.t(), B, ctx.mm).packed
            inputs, grads = compiled.dense(w_hh, packed, rz, n, hn, h, h0, *(None,) * 5), compiled.dense(dy, dh_n)
            loop.gru_backward(*inputs, bs[: live_steps(bs)], *grads, dxw, dq, dq, dh0)
            db_hn = dq[..., 2 * H :].sum((0, 1)) if ctx.has_bias else None
            return dxw, dh0, recurrent_weight_grad(dq, h, h0, ctx.mm), db_hn, None, None, None
        # Per step, one broadcast multiply of dh_t writes all four blocks [da_r, da_z, d(W_hn h + b_hn), da_n]; the
        # first three are what W_hh saw, and r, z, n are what W_ih saw.
        d4 = alloc(ctx.full)(T, B, 4, H, **like)
        dh0 = dh_n.clone()
        dhs, dh_rec = state_grads(dy, dh_n, bs, record=slot is not None)
        d4s, da_hhs, dys, zs = (
            d4.unbind(0),
            d4[:, :, :3].reshape(T, B, 3 * H).unbind(0),  # per step (B, 3H): what W_hh h_{t-1} receives
            dy.unbind(0),
            rz[..., H:].unbind(0),
        )
        dy_through_z = torch.empty(B, H, **like)  # scratch for dy_{t-1} + dh_t ⊙ z_t
        back = StepProduct(w_hh.t(), B, ctx.mm)  # [da_r, da_z, d(W_hn h + b_hn)] W_hh
        n_live = live_steps(bs)
        # Steps t0..t1-1 at a time; their factors are (t1 - t0, m, ·) for the m = bs[t0] rows active at t0, the most
        # in the window (step t keeps its first bs[t] <= m of them); index t - t0 on the first axis is step t.
        for t0, t1 in reverse_chunks(n_live, B * 6 * H):
            m = bs[t0]
            r, z, n_win = rz[t0:t1, :m, :H], rz[t0:t1, :m, H:], n[t0:t1, :m]
            gate_factors = torch.empty(t1 - t0, m, 4, H, **like)  # d4 = dh ⊙ gate_factors, block by block
            dan_per_dh = tanh_grad(1 - z, n_win, grad_input=gate_factors[:, :, 3])  # ∂h/∂a_n = (1 - z)(1 - n²)
            sigmoid_grad(dan_per_dh * hn[t0:t1, :m], r, grad_input=gate_factors[:, :, 0])
            sigmoid_grad(previous(h, h0, t0, t1, m) - n_win, z, grad_input=gate_factors[:, :, 1])
            torch.mul(dan_per_dh, r, out=gate_factors[:, :, 2])
            for t in range(t1 - 1, t0 - 1, -1):
                b = bs[t]
                dh = rows(dhs[t], b, B)
                torch.mul(dh.unsqueeze(1), rows(gate_factors[t - t0], b, m), out=rows(d4s[t], b, B))
                if t == 0:
                    back(rows(da_hhs[0], b, B), rows(dh0, b, B), add=dh * rows(zs[0], b, B))
                    break
                dyz = torch.addcmul(rows(dys[t - 1], b, B), dh, rows(zs[t], b, B), out=rows(dy_through_z, b, B))
                back(rows(da_hhs[t], b, B), rows(dhs[t - 1], b, B), add=dyz)
                seed_rows(dhs[t - 1], dh_n, dys[t - 1], b, bs[t - 1])
        dw_hh = recurrent_weight_grad(d4[:, :, :3].reshape(T, B, 3 * H), h, h0, ctx.mm)
        db_hn = d4[:, :, 2].sum((0, 1)) if ctx.has_bias else None
        d4[:, :, 2] = d4[:, :, 3]  # the input side of the n block takes da_n, not da_n ⊙ r
        if slot is not None:
            slot.keep_grad(dh_rec)
        return d4[:, :, :3].reshape(T, B, 3 * H), dh0, dw_hh, db_hn, None, None, None

    @staticmethod
    def jvp(ctx, *tangents):
        return _autograd.jvp(ctx, tangents)

    @staticmethod
    def vmap(info, in_dims, *args):
        return _autograd.vmap(GRUFunction, info, in_dims, args)
