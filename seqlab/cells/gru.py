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
from torch.autograd.function import once_differentiable

from ._steps import active_rows, alloc, final_state, previous, recurrent_weight_grad, reverse_chunks


class GRUFunction(torch.autograd.Function):
    """(xw (T, B, 3H), h0 (B, H), w_hh (3H, H), b_hn (H,) or None, batch_sizes, slot) -> (h (T, B, H), h_n)."""

    @staticmethod
    def forward(ctx, xw, h0, w_hh, b_hn, batch_sizes, slot):
        T, B, G = xw.shape
        H = G // 3
        bs, full = active_rows(batch_sizes, T, B)
        new = alloc(full)
        like = {"dtype": xw.dtype, "device": xw.device}
        rz = new(T, B, 2 * H, **like)
        n = new(T, B, H, **like)
        hn = new(T, B, H, **like)  # W_hn h_{t-1} + b_hn
        h = new(T, B, H, **like)
        w_rz, w_n = w_hh[: 2 * H].t(), w_hh[2 * H :].t()
        h_prev = h0
        for t in range(T):
            b = bs[t]
            if b == 0:
                break
            hp = h_prev[:b]
            rzt = torch.addmm(xw[t, :b, : 2 * H], hp, w_rz, out=rz[t, :b]).sigmoid_()
            hnt = torch.mm(hp, w_n, out=hn[t, :b]) if b_hn is None else torch.addmm(b_hn, hp, w_n, out=hn[t, :b])
            nt = torch.addcmul(xw[t, :b, 2 * H :], rzt[:, :H], hnt, out=n[t, :b]).tanh_()
            torch.lerp(nt, hp, rzt[:, H:], out=h[t, :b])  # n + z ⊙ (h_prev - n)
            h_prev = h[t]
        ctx.save_for_backward(rz, n, hn, h, h0, w_hh)
        ctx.bs, ctx.full, ctx.slot, ctx.has_bias = bs, full, slot, b_hn is not None
        if slot is not None:
            slot.keep(r=rz[..., :H], z=rz[..., H:], n=n, h=h)
        return h, final_state(h, h0, bs)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dh_n):
        """Reverse of forward. With ∂h_t = dy_t + (gradient arriving from step t+1):

        da_n  = ∂h_t ⊙ (1 - z_t)(1 - n_t²)                 = ∂h_t ⊙ A_t
        da_z  = ∂h_t ⊙ (h_{t-1} - n_t) z_t (1 - z_t)
        da_r  = da_n ⊙ (W_hn h_{t-1} + b_hn) r_t (1 - r_t)
        d(W_hn h + b_hn) = da_n ⊙ r_t
        ∂h_{t-1} = ∂h_t ⊙ z_t + W_hh^T [da_r, da_z, da_n ⊙ r_t]
        All four are ∂h_t times factors of the saved forward, computed for a chunk of steps at once, so each step
        is four small ops. The input-side da_n and ∂W_hh are products over all steps after the loop.
        """
        rz, n, hn, h, h0, w_hh = ctx.saved_tensors
        bs, slot = ctx.bs, ctx.slot
        T, B, H = h.shape
        like = {"dtype": h.dtype, "device": h.device}
        dgh = alloc(ctx.full)(T, B, 3 * H, **like)  # [da_r, da_z, d(W_hn h + b_hn)]; becomes ∂L/∂xw below
        dh_all = torch.zeros(T, B, H, **like)  # ∂L/∂h_t
        dh = dh_n.clone()
        for t0, t1 in reverse_chunks(T, B * 4 * H):
            rows = bs[t0]
            if rows == 0:
                continue
            r, z = rz[t0:t1, :rows].chunk(2, 2)
            nk = n[t0:t1, :rows]
            A = (1 - z) * (1 - nk * nk)
            K = torch.empty(t1 - t0, rows, 3, H, **like)
            torch.mul(A * hn[t0:t1, :rows], r * (1 - r), out=K[:, :, 0])
            torch.mul(previous(h, h0, t0, t1, rows) - nk, z * (1 - z), out=K[:, :, 1])
            torch.mul(A, r, out=K[:, :, 2])
            del A
            for t in range(t1 - 1, t0 - 1, -1):
                b, k = bs[t], t - t0
                if b == 0:
                    continue
                dht = torch.add(dh[:b], dy[t, :b], out=dh_all[t, :b])
                d = dgh[t, :b]
                torch.mul(dht.unsqueeze(1), K[k, :b], out=d.view(b, 3, H))
                torch.addmm(dht * z[k, :b], d, w_hh, out=dh[:b])
        dw_hh = recurrent_weight_grad(dgh, h, h0)
        db_hn = dgh[..., 2 * H :].sum((0, 1)) if ctx.has_bias else None
        for t0, t1 in reverse_chunks(T, B * H):  # the n block of ∂L/∂xw is da_n, not da_n ⊙ r
            z, nk = rz[t0:t1, :, H:], n[t0:t1]
            torch.mul(dh_all[t0:t1], (1 - z) * (1 - nk * nk), out=dgh[t0:t1, :, 2 * H :])
        if slot is not None:
            slot.keep_grad(dh_all)
        return dgh, dh, dw_hh, db_hn, None, None
