"""Masked pooling: a (B, T, F) sequence of states -> one (B, F) vector per sequence, from its valid steps only.

Legend: B batch, T time (padded), F features, D directions.

Padding never reaches the result: 'mean' divides by each sequence's own length, 'max' and 'attention' mask the
padded steps out with -inf, and 'last' reads each sequence at its own last step — for a bidirectional layer the
forward half at step length-1 and the backward half at step 0, which are the two directions' final states. A
backbone whose backward-running features are not the second half (a recurrent block beside a convolutional one)
names them with ``backward``, a slice of F.
'concat' is ULMFiT's concat pooling (Howard & Ruder 2018): last, max and mean side by side, 3F wide.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

POOLINGS = ("last", "mean", "max", "attention", "concat")


def valid_mask(lengths: Tensor, T: int) -> Tensor:
    """(B, T) bool: True where step t lies within sequence b."""
    return torch.arange(T, device=lengths.device) < lengths[:, None]


class Pool(nn.Module):
    """Arguments: how ('last' | 'mean' | 'max' | 'attention' | 'concat'), features F, directions D (the halves of F
    for 'last'), or ``backward``: the slice of F that runs backward in time, read at step 0 by 'last' (default: the
    second half when D is 2, else none). ``width`` is the size of what it returns: F, or 3F for 'concat'.

    'attention' learns a score per step, s_t = v·tanh(W h_t + b), and returns Σ_t softmax(s)_t h_t over valid steps
    (Yang et al. 2016's attention pooling, without their word/sentence hierarchy).
    """

    def __init__(self, how: str, features: int, directions: int = 1, backward: slice | None = None):
        super().__init__()
        if backward is None and directions == 2:
            backward = slice(features // 2, features)
        self.backward = backward
        if how not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {how!r}")
        self.how, self.directions = how, directions
        self.width = 3 * features if how == "concat" else features
        if how == "attention":
            self.score = nn.Sequential(nn.Linear(features, features), nn.Tanh(), nn.Linear(features, 1, bias=False))

    def forward(self, h: Tensor, lengths: Tensor) -> Tensor:
        lengths = lengths.to(h.device)
        if self.how == "concat":
            return torch.cat([self._pool(h, lengths, how) for how in ("last", "max", "mean")], dim=1)  # (B, 3F)
        return self._pool(h, lengths, self.how)

    def _pool(self, h: Tensor, lengths: Tensor, how: str) -> Tensor:
        B, T, _ = h.shape
        if how == "last":
            rows = torch.arange(B, device=h.device)
            last = h[rows, lengths - 1]  # (B, F)
            if self.backward is None:
                return last
            b = self.backward
            return torch.cat([last[:, : b.start], h[:, 0, b], last[:, b.stop :]], dim=1)
        mask = valid_mask(lengths, T)[:, :, None]  # (B, T, 1)
        if how == "mean":
            return (h * mask).sum(1) / lengths[:, None].to(h.dtype)
        if how == "max":
            return h.masked_fill(~mask, -torch.inf).amax(1)
        weights = torch.softmax(self.score(h).masked_fill(~mask, -torch.inf), dim=1)  # (B, T, 1)
        return (weights * h).sum(1)

    def extra_repr(self) -> str:
        return f"how={self.how!r}, directions={self.directions}"
