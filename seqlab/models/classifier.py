"""Sequence classifier: inputs -> backbone over valid steps (recurrent or Transformer) -> masked pooling -> linear head.

Legend: B batch, T time, C channels, V vocabulary, E embedding, H hidden, D directions, K classes.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..layers import Pool
from .backbone import accept_old_checkpoints, backbone


class Classifier(nn.Module):
    """(x, lengths) -> logits (B, K). x is (B, T, C) float for series, or (B, T) token ids when vocab_size is given.

    Arguments: classes K; channels C (series) or vocab_size V and embed E (text); model 'rnn' | 'lstm' | 'gru' |
    'transformer' (seqlab.models.backbone; attention is bidirectional here, with padded steps masked out, and heads
    sets its heads); hidden H, layers, bidirectional (recurrent); pooling 'last' | 'mean' | 'max' | 'attention' |
    'concat' (seqlab.layers.Pool); dropout between layers and before the head; backend of the recurrent layer.

    A sequence's logits never depend on its batch: the backbone runs each row within its own length (attention
    never sees a padded key), pooling reads only valid steps, and nothing normalises across the batch.
    """

    def __init__(
        self,
        classes: int,
        channels: int | None = None,
        vocab_size: int | None = None,
        embed: int = 64,
        model: str = "gru",
        hidden: int = 128,
        layers: int = 1,
        bidirectional: bool = True,
        pooling: str = "mean",
        dropout: float = 0.1,
        backend: str = "auto",
        heads: int = 4,
    ):
        super().__init__()
        self.backbone = backbone(model, channels=channels, vocab=vocab_size, embed=embed, hidden=hidden,
                                 layers=layers, dropout=dropout, bidirectional=bidirectional, causal=False,
                                 heads=heads, backend=backend)  # fmt: skip
        self.pool = Pool(pooling, self.backbone.width, backward=self.backbone.backward)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(self.pool.width, classes)
        accept_old_checkpoints(self)

    @property
    def classes(self) -> int:
        return self.head.out_features

    def member_logits(self, x: Tensor, lengths: Tensor) -> Tensor:
        """(1, B, K): a classifier is an ensemble of one."""
        return self(x, lengths)[None]

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        h, _ = self.backbone(x, lengths=lengths)  # (B, T, D*H); steps past a length are ignored by pooling
        return self.head(self.drop(self.pool(h, lengths)))  # (B, K)


class Ensemble(nn.Module):
    """M classifiers of one configuration, from different initial weights, trained side by side on the same batches
    (each on its own loss: ``member_logits``) and combined by averaging their probabilities, as InceptionTime's
    ensemble of five is. ``forward`` returns the log of the mean probability, so softmax(forward) is that mean and
    the module stands wherever a Classifier's logits are read. Arguments: M, then Classifier's."""

    def __init__(self, members: int, *args, **kwargs):
        super().__init__()
        if members < 1:
            raise ValueError(f"an ensemble needs at least 1 member, got {members}")
        self.members = nn.ModuleList(Classifier(*args, **kwargs) for _ in range(members))

    @property
    def classes(self) -> int:
        return self.members[0].classes

    def member_logits(self, x: Tensor, lengths: Tensor) -> Tensor:
        """(M, B, K): each member's logits."""
        return torch.stack([m(x, lengths) for m in self.members])

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        log_p = torch.log_softmax(self.member_logits(x, lengths), dim=2)  # (M, B, K)
        return torch.logsumexp(log_p, dim=0) - math.log(len(self.members))  # log of the mean probability
