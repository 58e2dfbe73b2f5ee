"""The GRU variants no vendor kernel has: layer normalisation, zoneout and recurrent (variational) dropout.

Any combination of the three, one recurrence, hand-written backward. With q_t the recurrent product:

    q_t  = LN_h((h_{t-1} ⊙ m) W_hh^T) + [b_hr, b_hz, b_hn]    LN_h over the 3H blocks (haste's LayerNormGRU); no
                                                             LN without layer norm; m: one mask per sequence
    r_t  = σ(xw_r + q_r),  z_t = σ(xw_z + q_z)
    n_t  = tanh(xw_n + r_t ⊙ q_n)
    h̃_t  = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}
    h_t  = z^h_t ⊙ h_{t-1} + (1 - z^h_t) ⊙ h̃_t              zoneout: Bernoulli(p) in training, p in eval

xw = LN_x(x W_ih^T) + b_ih + [b_hr, b_hz, 0] is taken by the layer over all steps, with autograd; b_hn enters here.

Legend: T time, B batch, H hidden. Memory saved for backward: σ(r, z) (T·B·2H), n and q_n (T·B·H each), with layer
norm the recurrent product (T·B·3H) and its mean and 1/σ; the zoneout mask, an input. h is the output.
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
    product_dtype,
    recurrent_weight_grad,
    rows,
    seed_rows,
    sigmoid_grad,
    state_grads,
)
from .lstm_variants import EPS, ln_input_grad, ln_param_grads, masked, recur


class VariantGRUFunction(torch.autograd.Function):
    """(xw (T, B, 3H), h0 (B, H), w_hh (3H, H), b_hh (3H,) or None, γ_h, β_h (3H,) or None, z_h (T, B, H) or None,
    m (B, H) or None, batch_sizes, slot, projection) -> (h (T, B, H), h_n, and buffers for backward). b_hh's r and
    z blocks must already be in xw when there is no layer norm (then only b_hn is read); with layer norm all of
    b_hh is added after LN_h. See the module docstring, and seqlab.cells._autograd for projection."""

    spec = _autograd.Spec(reference.variant_gru_over, tensors=8, states=(1,), axes=(1, 0, 1, 1, 1, 1, 1), public=2)

    @staticmethod
    def forward(xw, h0, w_hh, b_hh, g_h, b_h, z_h, m, batch_sizes, slot, projection):
        T, B, G = xw.shape
        H = G // 3
        norm = g_h is not None
        bs, full = active_rows(batch_sizes, T, B)
        new = alloc(full)
        like = {"dtype": xw.dtype, "device": xw.device}
        rz, n, qn, h = new(T, B, 2 * H, **like), new(T, B, H, **like), new(T, B, H, **like), new(T, B, H, **like)
        q_raw = new(T, B, G, **like) if norm else None
        stats = new(2, T, B, 1, **like) if norm else None
        bias = recurrent_bias(b_hh, norm, H)
        step = StepProduct(w_hh, B, product_dtype(h0))
        live, buffers = live_steps(bs), (rz, n, qn, h, q_raw, stats)
        loop = compiled.usable(xw, w_hh, slot=slot, product=step.dtype)
        if loop is not None:
            loop.gru_forward(
                *compiled.dense(xw, h0, w_hh, step.packed, bias, g_h, b_h, z_h, m), bs[:live], *buffers, EPS
            )
        else:
            forward_steps(xw, h0, step, bias, (g_h, b_h), z_h, m, bs[:live], buffers)
        if slot is not None:
            slot.keep(r=rz[..., :H], z=rz[..., H:], n=n, h=h)
        return h, final_state(h, h0, bs), rz, n, qn, q_raw, stats

    @staticmethod
    def setup_context(ctx, inputs, output):
        xw, h0, *_, batch_sizes, slot, _ = inputs
        h, _, rz, n, qn, q_raw, stats = output
        keep = (rz, n, qn, h) + ((q_raw, stats) if q_raw is not None else ())
        _autograd.setup(ctx, VariantGRUFunction.spec, inputs, output, keep=keep)
        ctx.bs, ctx.full = active_rows(batch_sizes, xw.shape[0], xw.shape[1])
        ctx.slot, ctx.mm = slot, product_dtype(h0)

    @staticmethod
    def backward(ctx, *grads):
        return _autograd.backward(ctx, grads, VariantGRUFunction.reverse)

    @staticmethod
    def reverse(ctx, dy, dh_n):
        """With dh_t the total gradient at h_t:

        dh̃ = dh_t ⊙ (1 - z^h);   da_n = dh̃ ⊙ (1 - z)(1 - n²);   da_z = dh̃ ⊙ (h_{t-1} - n) z (1 - z)
        dq_n = da_n ⊙ r;   da_r = da_n ⊙ q_n r (1 - r);   dq = [da_r, da_z, dq_n] through LN_h' (with layer norm)
        dh_{t-1} = dy_{t-1} + (dq W_hh) ⊙ m + dh̃ ⊙ z + dh_t ⊙ z^h
        ∂W_hh = Σ dq^T (h_{t-1} ⊙ m); ∂b_hh and γ_h, β_h from sums over all steps.
        """
        (rz, n, qn, h, *normed), (_, h0, w_hh, b_hh, g_h, b_h, z_h, m) = _autograd.saved(ctx)
        q_raw, stats = normed if normed else (None, None)
        bs, slot = ctx.bs, ctx.slot
        T, B, H = h.shape
        G = 3 * H
        like = {"dtype": h.dtype, "device": h.device}
        new = alloc(ctx.full)
        dxw = new(T, B, G, **like)
        dq = new(T, B, G, **like)  # what the recurrent projection (after LN_h) receives
        dq_raw = new(T, B, G, **like) if q_raw is not None else dq
        dh0 = dh_n.contiguous().clone()
        back = StepProduct(w_hh.t(), B, ctx.mm)
        tensors, live = (rz, n, qn, h, h0, g_h, z_h, m, q_raw, stats), live_steps(bs)
        loop = compiled.usable(h, w_hh, slot=slot, product=ctx.mm)
        if loop is not None:
            inputs, grads = compiled.dense(w_hh, back.packed, *tensors), compiled.dense(dy, dh_n)
            loop.gru_backward(*inputs, bs[:live], *grads, dxw, dq, dq_raw, dh0)
        else:
            dh_kept = backward_steps(tensors, back, dy, dh_n, bs[:live], slot is not None, (dxw, dq, dq_raw, dh0))
        if slot is not None:
            slot.keep_grad(dh_kept)
        dw_hh = recurrent_weight_grad(dq_raw, *masked(h, h0, m), ctx.mm)
        db_hh = None
        if b_hh is not None:
            db_hh = dq.sum((0, 1))
            if q_raw is None:  # b_hr, b_hz went into xw; only b_hn was read here
                db_hh[: 2 * H] = 0
        dg_h, db_h = (None, None) if q_raw is None else ln_param_grads(dq, q_raw, stats[:2], g_h, b_h)
        return dxw, dh0, dw_hh, db_hh, dg_h, db_h, None, None, None, None, None

    @staticmethod
    def jvp(ctx, *tangents):
        return _autograd.jvp(ctx, tangents)


def backward_steps(tensors, back: StepProduct, dy, dh_n, bs, record: bool, buffers):
    """VariantGRUFunction's reverse loop in Python (the C++ loop's fallback and oracle) over the len(bs) live
    steps: fills buffers = (dxw, dq, dq_raw, dh0); returns every ∂L/∂h_t (T, B, H) when record, else None."""
    rz, n, qn, h, h0, g_h, z_h, m, q_raw, stats = tensors
    dxw, dq, dq_raw, dh0 = buffers
    B, H = h0.shape
    dhs, dh_kept = state_grads(dy, dh_n, bs, record=record)
    scratch = torch.empty(B, H, dtype=h.dtype, device=h.device)
    for t in range(len(bs) - 1, -1, -1):
        b = bs[t]
        r, z, nt = rz[t, :b, :H], rz[t, :b, H:], n[t, :b]
        h_prev = h[t - 1, :b] if t > 0 else h0[:b]
        dh = rows(dhs[t], b, B)
        dh_tilde = dh if z_h is None else dh * (1 - z_h[t, :b])
        da_n = torch.ops.aten.tanh_backward(dh_tilde * (1 - z), nt)
        dxw[t, :b, 2 * H :] = da_n
        sigmoid_grad(dh_tilde * (h_prev - nt), z, grad_input=dxw[t, :b, H : 2 * H])
        sigmoid_grad(da_n * qn[t, :b], r, grad_input=dxw[t, :b, :H])
        dq[t, :b, : 2 * H] = dxw[t, :b, : 2 * H]
        torch.mul(da_n, r, out=dq[t, :b, 2 * H :])
        if q_raw is not None:
            dq_raw[t, :b] = ln_input_grad(dq[t, :b], q_raw[t, :b], stats[:2, t, :b], g_h, None)
        direct = dh_tilde * z if z_h is None else dh_tilde * z + dh * z_h[t, :b]  # before dhs is overwritten
        target = rows(dh0, b, B) if t == 0 else rows(dhs[t - 1], b, B)
        recur(back, dq_raw[t, :b], target, direct, None if m is None else m[:b], rows(scratch, b, B))
        if t > 0:
            target.add_(rows(dy[t - 1], b, B))
            seed_rows(dhs[t - 1], dh_n, dy[t - 1], b, bs[t - 1])
    return dh_kept


def forward_steps(xw, h0, step: StepProduct, bias, norm, z_h, m, bs, buffers) -> None:
    """VariantGRUFunction's time loop in Python (the C++ loop's fallback and oracle): fills buffers = (rz, n, qn,
    h, q_raw, stats) over the len(bs) live steps."""
    g_h, b_h = norm
    rz, n, qn, h, q_raw, stats = buffers
    B, G = xw.shape[1], xw.shape[2]
    H = G // 3
    h_prev = h0
    for t in range(len(bs)):
        b = bs[t]
        hp = rows(h_prev, b, B) if m is None else rows(h_prev, b, B) * rows(m, b, B)
        if q_raw is not None:
            raw = step(hp, rows(q_raw[t], b, B))
            q, mean, rstd = torch.native_layer_norm(raw, (G,), g_h, b_h, EPS)
            stats[0, t, :b], stats[1, t, :b] = mean, rstd
        else:
            q = step(hp, None)
        if bias is not None:
            q = q + bias
        x_t = xw[t, :b]
        torch.add(x_t[:, : 2 * H], q[:, : 2 * H], out=rz[t, :b]).sigmoid_()
        qn[t, :b] = q[:, 2 * H :]
        nt = torch.addcmul(x_t[:, 2 * H :], rz[t, :b, :H], q[:, 2 * H :], out=n[t, :b]).tanh_()
        ht = torch.lerp(nt, rows(h_prev, b, B), rz[t, :b, H:], out=rows(h[t], b, B))
        if z_h is not None:
            ht.lerp_(rows(h_prev, b, B), z_h[t, :b])
        h_prev = h[t]


def recurrent_bias(b_hh, norm: bool, H: int):
    """What is added to the recurrent product: all of b_hh after layer norm; else only b_hn (r, z are in xw)."""
    if b_hh is None:
        return None
    return b_hh if norm else torch.cat([b_hh.new_zeros(2 * H), b_hh[2 * H :]])
