"""Sequence classifier: inputs -> recurrent encoder over valid steps -> masked pooling -> linear head.

Legend: B batch, T time, C channels, V vocabulary, E embedding, H hidden, D directions, K classes.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..layers import Pool, layer_class


class Classifier(nn.Module):
    """(x, lengths) -> logits (B, K). x is (B, T, C) float for series, or (B, T) token ids when vocab_size is given.

    Arguments: classes K; channels C (series) or vocab_size V and embed E (text); model 'rnn' | 'lstm' | 'gru';
    hidden H, layers, bidirectional; pooling 'last' | 'mean' | 'max' | 'attention' | 'concat' (seqlab.layers.Pool);
    dropout between layers and before the head; backend of the recurrent layer.

    A sequence's logits never depend on its batch: the encoder runs each row within its own length, pooling reads
    only valid steps, and nothing normalises across the batch.
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
    ):
        super().__init__()
        if (channels is None) == (vocab_size is None):
            raise ValueError("give channels (series) or vocab_size (text), one of them")
        self.embedding = nn.Embedding(vocab_size, embed) if vocab_size is not None else None
        rnn = layer_class(model)
        self.rnn = rnn(
            embed if vocab_size is not None else channels,
            hidden,
            layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
            bidirectional=bidirectional,
            backend=backend,
        )
        D = 2 if bidirectional else 1
        self.pool = Pool(pooling, D * hidden, D)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(self.pool.width, classes)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        if self.embedding is not None:
            x = self.embedding(x)  # (B, T, E)
        h, _ = self.rnn(x, lengths=lengths)  # (B, T, D*H), zero past each length
        return self.head(self.drop(self.pool(h, lengths)))  # (B, K)
