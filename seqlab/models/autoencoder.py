"""Sequence autoencoder: a recurrent encoder -> a fixed-size code -> a recurrent decoder that rebuilds the sequence.

Legend: B batch, T time, C channels, Z code size, H hidden, L layers, D encoder directions.

The encoder reads each sequence within its own length; its final states (both directions) become the code through
one linear map. The decoder starts from a state made from the code, gets the code again at every step beside the
previous value, and emits one step at a time (Srivastava et al. 2015; EncDec-AD, Malhotra et al. 2016).
- ``reconstruct(..., teacher=True)``: the previous true value is the input (teacher forcing), for training;
- ``teacher=False``: the decoder's own previous output is the input (free running), for scoring — a decoder that
  saw the true previous value would copy an anomaly instead of failing on it.

``NextStep`` is the other detector: a causal stack that predicts each step from the steps before it (LSTM-AD,
Malhotra et al. 2015). It needs no code and no look-ahead, so it scores a stream of any length chunk by chunk.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..layers import Pool, valid_mask
from .backbone import accept_old_checkpoints, backbone


class SequenceAutoencoder(nn.Module):
    def __init__(self, channels: int, model: str = "gru", hidden: int = 64, layers: int = 1, code: int = 16,
                 bidirectional: bool = True, backend: str = "auto"):  # fmt: skip
        super().__init__()
        self.layers, self.hidden = layers, hidden
        common = {"hidden": hidden, "layers": layers, "backend": backend}
        self.encoder = backbone(model, channels=channels, bidirectional=bidirectional, **common)
        self.pool = Pool("last", self.encoder.width, backward=self.encoder.backward)
        self.to_code = nn.Linear(self.encoder.width, code)
        self.from_code = nn.Linear(code, layers * hidden)
        self.decoder = backbone(model, channels=channels + code, **common)
        self.out = nn.Linear(hidden, channels)
        accept_old_checkpoints(self)

    def encode(self, x: Tensor, lengths: Tensor) -> Tensor:
        """(B, T, C) -> codes (B, Z), from each sequence's own final states."""
        h, _ = self.encoder(x, lengths=lengths)
        return self.to_code(self.pool(h, lengths))

    def _start(self, code: Tensor):
        h0 = torch.tanh(self.from_code(code)).view(-1, self.layers, self.hidden).transpose(0, 1).contiguous()
        return self.decoder.state_from(h0)  # (L, B, H), and a zero cell state for an LSTM

    def reconstruct(self, code: Tensor, lengths: Tensor, x: Tensor | None = None) -> Tensor:
        """codes (B, Z) -> (B, T, C), zero past each length. With x (teacher forcing), step t reads x_{t-1};
        without it, step t reads the decoder's own output at t-1. Step 0 reads zeros."""
        B, T = code.shape[0], int(lengths.max())
        if x is not None:
            prev = torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], dim=1)  # (B, T, C) shifted right
            inputs = torch.cat([prev, code[:, None].expand(B, T, code.shape[1])], dim=2)
            h, _ = self.decoder(inputs, self._start(code), lengths=lengths)
            out = self.out(h)
        else:
            state, step, outs = self._start(code), torch.zeros(B, 1, self.out.out_features, device=code.device), []
            for _ in range(T):
                h, state = self.decoder(torch.cat([step, code[:, None]], dim=2), state)
                step = self.out(h)  # (B, 1, C)
                outs.append(step)
            out = torch.cat(outs, dim=1)
        return out * valid_mask(lengths.to(out.device), T)[:, :, None]

    def forward(self, x: Tensor, lengths: Tensor, teacher: bool = True) -> Tensor:
        return self.reconstruct(self.encode(x, lengths), lengths, x if teacher else None)


class NextStep(nn.Module):
    """A causal multi-step-ahead model (LSTM-AD): h_t = stack(x_{t-1}, h_{t-1}) with x_{-1} = 0, and from h_t the
    predictions of the next ``ahead`` steps, x̂_{t+k|t-1} = W_k h_t + b_k for k = 0 .. ahead-1.

    ``forward(x, lengths, state, prev)`` returns the predictions (B, T, ahead, C) made at every step of x (B, T, C)
    from the steps before it, with the state after the chunk. To go on with the next chunk of the same sequences,
    pass that state and ``prev``, the chunk's last step (B, 1, C): chunk by chunk equals whole (a test holds it)."""

    def __init__(self, channels: int, model: str = "gru", hidden: int = 64, layers: int = 1, backend: str = "auto",
                 ahead: int = 1):  # fmt: skip
        super().__init__()
        self.ahead = ahead
        self.stack = backbone(model, channels=channels, hidden=hidden, layers=layers, backend=backend)
        self.out = nn.Linear(hidden, ahead * channels)

    def forward(self, x: Tensor, lengths: Tensor | None = None, state=None, prev: Tensor | None = None):
        B, T, C = x.shape
        prev = torch.zeros_like(x[:, :1]) if prev is None else prev
        h, state = self.stack(torch.cat([prev, x[:, :-1]], dim=1), state, lengths=lengths)
        out = self.out(h).view(B, T, self.ahead, C)
        if lengths is not None:
            out = out * valid_mask(lengths.to(out.device), T)[:, :, None, None]
        return out, state


def aligned(pred: Tensor, x: Tensor) -> Tensor:
    """Errors at the step they predict: (B, T, ahead, C) predictions and x (B, T, C) -> e (B, T, ahead, C) with
    e[:, t, k] = x_t - x̂_{t|t-k-1}, the error of the prediction made k steps earlier; NaN where t < k."""
    e = torch.full_like(pred, float("nan"))
    for k in range(min(pred.shape[2], x.shape[1])):
        e[:, k:, k] = x[:, k:] - pred[:, : x.shape[1] - k, k]
    return e
