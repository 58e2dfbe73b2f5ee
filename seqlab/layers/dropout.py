"""The dropouts of the AWD-LSTM recipe (Merity et al. 2018) that act around a recurrent stack; weight-drop and the
variational between-layer dropout are arguments of the layers themselves (``weight_drop=``, ``locked_dropout=``).

Legend: B batch, T time, F features, V vocabulary, E embedding.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F


def _check(p: float, name: str) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise ValueError(f"{name}: p must be a probability in [0, 1), got {p!r}")
    return float(p)


def locked_dropout(x: Tensor, p: float, batch_first: bool = True) -> Tensor:
    """x ⊙ m / (1 - p) with one Bernoulli mask per sequence and feature (time axis 1, or 0 without batch_first)."""
    shape = (x.shape[0], 1, *x.shape[2:]) if batch_first else (1, *x.shape[1:])
    return x * F.dropout(x.new_ones(shape), p, training=True)


class LockedDropout(nn.Module):
    """Variational dropout (Gal & Ghahramani 2016): x (B, T, F) -> x ⊙ m / (1 - p) with one Bernoulli mask m (B, 1, F)
    per sequence and feature, the same at every step; the identity in eval. ``batch_first=False`` takes (T, B, F).

    A fresh mask per step (nn.Dropout) lets every step see a different net, which the recurrence then averages away;
    one mask per sequence drops the same features all along it."""

    def __init__(self, p: float = 0.5, batch_first: bool = True):
        super().__init__()
        self.p, self.batch_first = _check(p, "LockedDropout"), batch_first

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        return locked_dropout(x, self.p, self.batch_first)

    def extra_repr(self) -> str:
        return f"p={self.p}" + ("" if self.batch_first else ", batch_first=False")


def embedding_dropout(embedding: nn.Embedding, ids: Tensor, p: float, training: bool) -> Tensor:
    """The embedding of ``ids`` with whole tokens dropped (Gal & Ghahramani 2016, as AWD-LSTM's ``dropoute``): each row
    of the V x E matrix is zeroed with probability p for this call, the rest scaled by 1 / (1 - p), so every
    occurrence of a dropped token in the batch reads zeros. The plain lookup in eval or at p = 0."""
    p = _check(p, "embedding_dropout")
    if not training or p == 0:
        return embedding(ids)
    weight = embedding.weight
    mask = F.dropout(weight.new_ones(weight.shape[0], 1), p, training=True)
    return F.embedding(ids, weight * mask, embedding.padding_idx, embedding.max_norm, embedding.norm_type,
                       embedding.scale_grad_by_freq, embedding.sparse)  # fmt: skip
