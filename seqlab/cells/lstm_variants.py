"""The LSTM variants no vendor kernel has: layer normalisation, zoneout and recurrent (variational) dropout.

Any combination of the three, one recurrence, hand-written backward. With r_t the recurrent product:

    r_t  = (h_{t-1} ⊙ m) W_hh^T                       m: one dropout mask per sequence (Gal & Ghahramani 2016),
                                                       the same at every step; m = 1 without recurrent dropout
    a_t  = xw_t + LN_h(r_t)                           LN_h(r) = γ_h ⊙ (r - μ(r)) / σ(r) + β_h over the 4H gates;
                                                       plain r_t without layer norm (Ba et al. 2016; haste)
    i, f, o = σ(a_i, a_f, a_o),  g = tanh(a_g)
    c̃_t  = f ⊙ c_{t-1} + i ⊙ g
    h̃_t  = o ⊙ tanh(LN_c(c̃_t))                        LN_c over H; tanh(c̃_t) without layer norm
    c_t  = z^c_t ⊙ c_{t-1} + (1 - z^c_t) ⊙ c̃_t         zoneout (Krueger et al. 2017): z ~ Bernoulli(p) per unit
    h_t  = z^h_t ⊙ h_{t-1} + (1 - z^h_t) ⊙ h̃_t         and step in training, z = p (the expectation) in eval

xw = LN_x(x W_ih^T) + b_ih + b_hh is taken by the layer over all steps at once, with autograd (LN_x over 4H too).

Legend: T time, B batch, H hidden. Memory saved for backward: the activated gates (T·B·4H), c̃ (T·B·H), and with
layer norm r (T·B·4H) and its mean and 1/σ (T·B·1) and those of c̃; with zoneout on c, c (T·B·H); the zoneout
masks, which are inputs. h is the output. Layer norm's forward and backward per step are PyTorch's fused kernels
(native_layer_norm and its backward); γ and β get their gradients from one call over all steps at the end.
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

EPS = 1e-5
_ln_backward = torch.ops.aten.native_layer_norm_backward


class VariantLSTMFunction(torch.autograd.Function):
    """(xw (T, B, 4H), h0 (B, H), c0 (B, H), w_hh (4H, H), γ_h, β_h (4H,), γ_c, β_c (H,) or all four None,
    z_h, z_c (T, B, H) zoneout masks or None, m (B, H) recurrent dropout mask or None, batch_sizes, slot,
    projection) -> (h (T, B, H), h_n, c_n, and buffers for backward). See the module docstring for the math,
    LSTMFunction for batch_sizes and slot, seqlab.cells._autograd for projection."""

    spec = _autograd.Spec(
        reference.variant_lstm_over, tensors=11, states=(1, 2), axes=(1, 0, 0, 1, 1, 1, 1, 1), public=3
    )

    @staticmethod
    def forward(xw, h0, c0, w_hh, g_h, b_h, g_c, b_c, z_h, z_c, m, batch_sizes, slot, projection):
        if (g_h is None) != (g_c is None):
            raise ValueError("VariantLSTMFunction: layer norm takes γ and β of both LN_h and LN_c, or none")
        T, B, G = xw.shape
        H = G // 4
        norm = g_h is not None
        bs, full = active_rows(batch_sizes, T, B)
        mm = product_dtype(h0)
        new = alloc(full)
        like = {"dtype": xw.dtype, "device": xw.device}
        gates = new(T, B, G, **like)
        c_tilde = new(T, B, H, **like)
        c = c_tilde if z_c is None else new(T, B, H, **like)
        h = new(T, B, H, **like)
        r = new(T, B, G, **like) if norm else None
        stats = new(4, T, B, 1, **like) if norm else None  # mean and 1/σ of r, then of c̃
        step = StepProduct(w_hh, B, mm)
        n = live_steps(bs)
        loop = compiled.usable(xw, w_hh, slot=slot, product=mm)
        if loop is not None:
            inputs = compiled.dense(xw, h0, c0, w_hh, step.packed, g_h, b_h, g_c, b_c, z_h, z_c, m)
            loop.lstm_forward(*inputs, bs[:n], gates, c_tilde, c, h, r, stats, EPS)
        else:
            forward_steps(xw, h0, c0, step, (g_h, b_h, g_c, b_c), z_h, z_c, m, bs[:n], (gates, c_tilde, c, h, r, stats))
        if slot is not None:
            i, f, g, o = gates.chunk(4, 2)
            slot.keep(i=i, f=f, g=g, o=o, c=c, h=h)
        return h, final_state(h, h0, bs), final_state(c, c0, bs), gates, c_tilde, c, r, stats

    @staticmethod
    def setup_context(ctx, inputs, output):
        xw, h0, *_, batch_sizes, slot, _ = inputs
        h, _, _, gates, c_tilde, c, r, stats = output
        keep = (gates, c_tilde, c, h) + ((r, stats) if r is not None else ())
        _autograd.setup(ctx, VariantLSTMFunction.spec, inputs, output, keep=keep)
        ctx.bs, ctx.full = active_rows(batch_sizes, xw.shape[0], xw.shape[1])
        ctx.slot, ctx.mm = slot, product_dtype(h0)

    @staticmethod
    def backward(ctx, *grads):
        return _autograd.backward(ctx, grads, VariantLSTMFunction.reverse)

    @staticmethod
    def reverse(ctx, dy, dh_n, dc_n):
        """With dh_t the total gradient at h_t and ∂c_t at c_t (from step t + 1):

        dh̃ = dh_t ⊙ (1 - z^h),  dn = dh̃ ⊙ o (1 - tanh² n),  da_o = dh̃ ⊙ tanh n ⊙ o (1 - o)
        ∂c̃ = LN_c'(dn) + ∂c_t ⊙ (1 - z^c)                       (LN_c' the layer-norm backward; identity without)
        da_i, da_f, da_g as in the LSTM with ∂c̃;   ∂c_{t-1} = ∂c̃ ⊙ f + ∂c_t ⊙ z^c
        dr = LN_h'(da);   dh_{t-1} = dy_{t-1} + (dr W_hh) ⊙ m + dh_t ⊙ z^h
        ∂W_hh = Σ dr_t^T (h_{t-1} ⊙ m); γ, β of both norms from one layer-norm backward over all steps.
        """
        (gates, c_tilde, c, h, *normed), (_, h0, c0, w_hh, g_h, b_h, g_c, b_c, z_h, z_c, m) = _autograd.saved(ctx)
        r, stats = normed if normed else (None, None)
        bs, slot = ctx.bs, ctx.slot
        T, B, G = gates.shape
        H = G // 4
        like = {"dtype": gates.dtype, "device": gates.device}
        new = alloc(ctx.full)
        dgates = new(T, B, 4, H, **like)  # = ∂L/∂xw
        dr = new(T, B, G, **like) if r is not None else dgates.view(T, B, G)
        dn = new(T, B, H, **like) if r is not None else None  # what LN_c's output receives, for γ_c, β_c
        dh0, dc = dh_n.contiguous().clone(), dc_n.contiguous().clone()
        back = StepProduct(w_hh.t(), B, ctx.mm)
        tensors = (gates, c_tilde, c, c0, g_h, g_c, b_c, z_h, z_c, m, r, stats)
        buffers, n = (dgates, dr, dn, dh0, dc), live_steps(bs)
        loop = compiled.usable(gates, w_hh, slot=slot, product=ctx.mm)
        if loop is not None:
            inputs, grads = compiled.dense(w_hh, back.packed, *tensors), compiled.dense(dy, dh_n)
            loop.lstm_backward(*inputs, bs[:n], *grads, *buffers, EPS)
        else:
            dh_kept = backward_steps(tensors, back, dy, dh_n, bs[:n], slot is not None, buffers)
        if slot is not None:
            slot.keep_grad(dh_kept)
        dw_hh = recurrent_weight_grad(dr, *masked(h, h0, m), ctx.mm)
        ln = (None,) * 4
        if r is not None:
            ln = (*ln_param_grads(dgates, r, stats[:2], g_h, b_h), *ln_param_grads(dn, c_tilde, stats[2:], g_c, b_c))
        return (dgates.view(T, B, G), dh0, dc, dw_hh, *ln) + (None,) * 6

    @staticmethod
    def jvp(ctx, *tangents):
        return _autograd.jvp(ctx, tangents)


def backward_steps(tensors, back: StepProduct, dy, dh_n, bs, record: bool, buffers):
    """VariantLSTMFunction's reverse loop in Python (the C++ loop's fallback and oracle) over the len(bs) live
    steps: fills buffers = (dgates, dr, dn, dh0, dc); returns every ∂L/∂h_t (T, B, H) when record, else None."""
    gates, c_tilde, c, c0, g_h, g_c, b_c, z_h, z_c, m, r, stats = tensors
    dgates, dr, dn, dh0, dc = buffers
    T, B, G = gates.shape
    H = G // 4
    like = {"dtype": gates.dtype, "device": gates.device}
    dhs, dh_kept = state_grads(dy, dh_n, bs, record=record)
    das, drs, dys = dgates.view(T, B, G).unbind(0), dr.unbind(0), dy.unbind(0)
    scratch = torch.empty(B, H, **like)
    # Steps t0..t1-1 at a time, as LSTMFunction: every factor that does not depend on the incoming gradient is
    # computed for the window at once (rows of the m = bs[t0] active at t0), so each step is about ten ops.
    for t0, t1 in reverse_chunks(len(bs), B * 10 * H):
        m_rows = bs[t0]
        i, f, g, o = gates[t0:t1, :m_rows].chunk(4, 2)
        ct = c_tilde[t0:t1, :m_rows]
        tanh_n = (torch.native_layer_norm(ct, (H,), g_c, b_c, EPS)[0] if r is not None else ct).tanh()
        out_factors = torch.empty(2, t1 - t0, m_rows, H, **like)  # dh ⊙ them: da_o and dn
        sigmoid_grad(tanh_n, o, grad_input=out_factors[0])  # tanh n · o (1 - o)
        tanh_grad(o, tanh_n, grad_input=out_factors[1])  # o (1 - tanh² n)
        if z_h is not None:
            out_factors.mul_(1 - z_h[t0:t1, :m_rows])  # only h̃'s share of dh reaches the cell
        del tanh_n
        cell_factors = torch.empty(t1 - t0, m_rows, 3, H, **like)  # da_i, da_f, da_g = ∂c̃ ⊙ them
        sigmoid_grad(g, i, grad_input=cell_factors[:, :, 0])
        sigmoid_grad(previous(c, c0, t0, t1, m_rows), f, grad_input=cell_factors[:, :, 1])
        tanh_grad(i, g, grad_input=cell_factors[:, :, 2])
        for t in range(t1 - 1, t0 - 1, -1):
            b, k = bs[t], t - t0
            dh = rows(dhs[t], b, B)
            da4 = das[t][:b].view(b, 4, H)
            torch.mul(dh, out_factors[0, k, :b], out=da4[:, 3])
            dn_t = dh * out_factors[1, k, :b]
            if r is not None:
                dn[t, :b] = dn_t
                dn_t = ln_input_grad(dn_t, c_tilde[t, :b], stats[2:, t, :b], g_c, b_c)
            dct = rows(dc, b, B)
            dc_tilde = dn_t.add_(dct) if z_c is None else dn_t.addcmul_(dct, 1 - z_c[t, :b])
            torch.mul(dc_tilde.unsqueeze(1), cell_factors[k, :b], out=da4[:, :3])
            if z_c is None:
                torch.mul(dc_tilde, f[k, :b], out=dct)  # ∂c_{t-1}
            else:
                dct.mul_(z_c[t, :b]).addcmul_(dc_tilde, f[k, :b])
            if r is not None:
                drs[t][:b] = ln_input_grad(das[t][:b], r[t, :b], stats[:2, t, :b], g_h, None)
            target = rows(dh0, b, B) if t == 0 else rows(dhs[t - 1], b, B)
            carry = None if z_h is None else dh * z_h[t, :b]  # before target is written: dhs may share a buffer
            add = None if t == 0 else rows(dys[t - 1], b, B)
            recur(back, drs[t][:b], target, add, None if m is None else m[:b], rows(scratch, b, B))
            if carry is not None:
                target.add_(carry)
            if t > 0:
                seed_rows(dhs[t - 1], dh_n, dys[t - 1], b, bs[t - 1])
    return dh_kept


def forward_steps(xw, h0, c0, step: StepProduct, norms, z_h, z_c, m, bs, buffers) -> None:
    """VariantLSTMFunction's time loop in Python (the C++ loop's fallback and oracle): fills buffers = (gates,
    c_tilde, c, h, r, stats) over the len(bs) live steps."""
    g_h, b_h, g_c, b_c = norms
    gates, c_tilde, c, h, r, stats = buffers
    B, G = xw.shape[1], xw.shape[2]
    H, norm = G // 4, g_h is not None
    h_prev, c_prev = h0, c0
    for t in range(len(bs)):
        b = bs[t]
        hp = rows(h_prev, b, B) if m is None else rows(h_prev, b, B) * rows(m, b, B)
        if norm:
            rt = step(hp, rows(r[t], b, B))
            out, mean, rstd = torch.native_layer_norm(rt, (G,), g_h, b_h, EPS)
            stats[0, t, :b], stats[1, t, :b] = mean, rstd
            a = torch.add(rows(xw[t], b, B), out, out=rows(gates[t], b, B))
        else:
            a = step(hp, rows(gates[t], b, B), add=rows(xw[t], b, B))
        i, f, g, o = a.chunk(4, 1)
        a[:, : 2 * H].sigmoid_()
        g.tanh_()
        o.sigmoid_()
        ct = torch.mul(f, rows(c_prev, b, B), out=rows(c_tilde[t], b, B)).addcmul_(i, g)
        if norm:
            n, mean, rstd = torch.native_layer_norm(ct, (H,), g_c, b_c, EPS)
            stats[2, t, :b], stats[3, t, :b] = mean, rstd
        else:
            n = ct
        ht = torch.mul(o, n.tanh(), out=rows(h[t], b, B))
        if z_c is not None:
            torch.lerp(ct, rows(c_prev, b, B), rows(z_c[t], b, B), out=rows(c[t], b, B))
        if z_h is not None:
            ht.lerp_(rows(h_prev, b, B), rows(z_h[t], b, B))
        h_prev, c_prev = h[t], c[t]


# Shared by both variant cells' backward.
def ln_input_grad(dout: torch.Tensor, x: torch.Tensor, stats: torch.Tensor, g, b) -> torch.Tensor:
    """∂L/∂x of y = LN(x; γ, β) over the last axis, with stats = (mean, 1/σ) saved by forward: PyTorch's kernel."""
    return _ln_backward(dout, x, (x.shape[-1],), stats[0], stats[1], g, b, [True, False, False])[0]


def ln_param_grads(dout: torch.Tensor, x: torch.Tensor, stats: torch.Tensor, g, b) -> tuple[torch.Tensor, ...]:
    """∂L/∂γ, ∂L/∂β of LN over every step at once (padding has zero dout, so it adds nothing)."""
    n = x.shape[-1]
    mean, rstd = stats[0].reshape(-1, 1), stats[1].reshape(-1, 1)
    return _ln_backward(dout.reshape(-1, n), x.reshape(-1, n), (n,), mean, rstd, g, b, [False, True, True])[1:]


def recur(back: StepProduct, da: torch.Tensor, target: torch.Tensor, add, mask, scratch: torch.Tensor) -> None:
    """target = (da W_hh) ⊙ mask + add: what dh_{t-1} receives through the recurrent product, the recurrent dropout
    mask (one per sequence) applied as in forward; add None for nothing."""
    if mask is None:
        back(da, target, add=add)
        return
    product = back(da, scratch).mul_(mask)
    if add is None:
        target.copy_(product)
    else:
        torch.add(product, add, out=target)


def masked(h: torch.Tensor, h0: torch.Tensor, m) -> tuple[torch.Tensor, torch.Tensor]:
    """The states W_hh read in forward, h_t ⊙ m (T, B, H) and h_0 ⊙ m, for recurrent_weight_grad."""
    return (h, h0) if m is None else (h * m, h0 * m)
