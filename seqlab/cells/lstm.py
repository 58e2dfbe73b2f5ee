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

from ._steps import active_rows, alloc, final_state, previous, recurrent_weight_grad, reverse_chunks


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
        new = alloc(full)
        gates = new(T, B, G, dtype=xw.dtype, device=xw.device)  # activated i, f, g, o
        c = new(T, B, H, dtype=xw.dtype, device=xw.device)
        h = new(T, B, H, dtype=xw.dtype, device=xw.device)
        w_t = w_hh.t()
        h_prev, c_prev = h0, c0
        for t in range(T):
            b = bs[t]
            if b == 0:
                break
            a = gates[t, :b]
            torch.addmm(xw[t, :b], h_prev[:b], w_t, out=a)
            a[:, : 2 * H].sigmoid_()  # i, f
            a[:, 2 * H : 3 * H].tanh_()  # g
            a[:, 3 * H :].sigmoid_()  # o
            i, f, g, o = a.chunk(4, 1)
            ct = torch.mul(f, c_prev[:b], out=c[t, :b]).addcmul_(i, g)
            torch.mul(o, ct.tanh(), out=h[t, :b])
            h_prev, c_prev = h[t], c[t]
        ctx.save_for_backward(gates, c, h, h0, c0, w_hh)
        ctx.bs, ctx.full, ctx.slot = bs, full, slot
        if slot is not None:
            i, f, g, o = gates.chunk(4, 2)
            slot.keep(i=i, f=f, g=g, o=o, c=c, h=h)
        return h, final_state(h, h0, bs), final_state(c, c0, bs)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dh_n, dc_n):
        """Reverse of forward, step by step. With da the gradient of the gate pre-activations:

        ∂h_t   = dy_t + W_hh^T da_{t+1}                     (dy: gradient arriving at the output h_t)
        ∂c_t   = ∂c_{t+1} ⊙ f_{t+1} + ∂h_t ⊙ o_t (1 - tanh² c_t)
        da_i   = ∂c_t ⊙ g_t i_t (1 - i_t)      da_f = ∂c_t ⊙ c_{t-1} f_t (1 - f_t)
        da_g   = ∂c_t ⊙ i_t (1 - g_t²)         da_o = ∂h_t ⊙ tanh(c_t) o_t (1 - o_t)
        The factors multiplying ∂c_t and ∂h_t depend only on the saved forward, so they are computed for a chunk
        of steps at once; each step is then six small ops. ∂W_hh is one product over all steps at the end.
        """
        gates, c, h, h0, c0, w_hh = ctx.saved_tensors
        bs, slot = ctx.bs, ctx.slot
        T, B, G = gates.shape
        H = G // 4
        like = {"dtype": gates.dtype, "device": gates.device}
        dgates = alloc(ctx.full)(T, B, G, **like)  # = ∂L/∂xw, returned
        dh, dc = dh_n.clone(), dc_n.clone()  # rows not reached yet hold the gradient of their final state
        dh_rec = torch.zeros(T, B, H, **like) if slot is not None else None
        scratch = torch.empty(B, H, **like) if slot is None else None
        for t0, t1 in reverse_chunks(T, B * 5 * H):
            rows = bs[t0]
            if rows == 0:
                continue
            i, f, g, o = gates[t0:t1, :rows].chunk(4, 2)  # (K, rows, H) each
            tc = c[t0:t1, :rows].tanh()
            P = o * (1 - tc * tc)  # ∂c_t += ∂h_t ⊙ P_t
            Q = torch.empty(t1 - t0, rows, 4, H, **like)  # da = [∂c, ∂c, ∂c, ∂h] ⊙ Q
            torch.mul(g, i * (1 - i), out=Q[:, :, 0])
            torch.mul(previous(c, c0, t0, t1, rows), f * (1 - f), out=Q[:, :, 1])
            torch.mul(i, 1 - g * g, out=Q[:, :, 2])
            torch.mul(tc, o * (1 - o), out=Q[:, :, 3])
            del tc
            for t in range(t1 - 1, t0 - 1, -1):
                b, k = bs[t], t - t0
                if b == 0:
                    continue
                dht = torch.add(dh[:b], dy[t, :b], out=(dh_rec[t] if slot is not None else scratch)[:b])
                dct = dc[:b].addcmul_(dht, P[k, :b])
                da = dgates[t, :b]
                da4 = da.view(b, 4, H)
                torch.mul(dct.unsqueeze(1), Q[k, :b, :3], out=da4[:, :3])
                torch.mul(dht, Q[k, :b, 3], out=da4[:, 3])
                dct.mul_(f[k, :b])  # ∂c_{t-1}
                torch.mm(da, w_hh, out=dh[:b])  # ∂h_{t-1} through the recurrence
        if slot is not None:
            slot.keep_grad(dh_rec)
        return dgates, dh, dc, recurrent_weight_grad(dgates, h, h0), None, None
