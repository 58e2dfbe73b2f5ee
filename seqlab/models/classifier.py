"""Sequence classifier: inputs -> encoder over valid steps (recurrent or Transformer) -> masked pooling -> linear head.

Legend: B batch, T time, C channels, V vocabulary, E embedding, H hidden, D directions, K classes.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..layers import Pool, Transformer, layer_class


class Classifier(nn.Module):
    """(x, lengths) -> logits (B, K). x is (B, T, C) float for series, or (B, T) token ids when vocab_size is given.

    Arguments: classes K; channels C (series) or vocab_size V and embed E (text); model 'rnn' | 'lstm' | 'gru' |
    'transformer' (its width is H, its inputs are embedded or projected to H; attention is always bidirectional,
    with padded steps masked out, and heads sets its heads); hidden H, layers, bidirectional; pooling 'last' |
    'mean' | 'max' | 'attention' | 'concat' (seqlab.layers.Pool); dropout between layers and before the head;
    backend of the recurrent layer.

    A sequence's logits never depend on its batch: the encoder runs each row within its own length (attention
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
        if (channels is None) == (vocab_size is None):
            raise ValueError("give channels (series) or vocab_size (text), one of them")
        self.is_transformer = model == "transformer"
        if self.is_transformer:
            self.embedding = nn.Embedding(vocab_size, hidden) if vocab_size is not None else None
            self.project = nn.Linear(channels, hidden) if channels is not None else None
            self.transformer = Transformer(hidden, layers, heads, dropout, causal=False)
            self.pool = Pool(pooling, hidden)
            self.drop = nn.Dropout(dropout)
            self.head = nn.Linear(self.pool.width, classes)
            return
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
        if self.is_transformer:
            if self.project is not None:
                x = self.project(x)  # (B, T, H)
            h, _ = self.transformer(x, lengths=lengths)  # (B, T, H); rows past a length are ignored by pooling
        else:
            h, _ = self.rnn(x, lengths=lengths)  # (B, T, D*H), zero past each length
        return self.head(self.drop(self.pool(h, lengths)))  # (B, K)
