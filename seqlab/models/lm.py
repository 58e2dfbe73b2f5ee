"""Language model: embedding -> recurrent stack -> linear head over the vocabulary.

Legend: B batch, T time, V vocabulary, E embedding, H hidden.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import layer_class


class LanguageModel(nn.Module):
    """ids (B, T) -> logits (B, T, V), carrying the recurrent state between calls.

    Arguments: vocab_size; model 'rnn' | 'lstm' | 'gru'; embed (E), hidden (H), layers; dropout between layers and
    before the head; tie (share the embedding and head weights, needs E == H); backend of the recurrent layer.
    """

    def __init__(
        self,
        vocab_size: int,
        model: str = "lstm",
        embed: int = 64,
        hidden: int = 512,
        layers: int = 2,
        dropout: float = 0.1,
        tie: bool = False,
        backend: str = "auto",
    ):
        super().__init__()
        if tie and embed != hidden:
            raise ValueError(f"tie needs embed == hidden, got embed={embed} hidden={hidden}")
        self.embedding = nn.Embedding(vocab_size, embed)
        rnn = layer_class(model)
        self.rnn = rnn(embed, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0, backend=backend)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, vocab_size)
        if tie:
            self.head.weight = self.embedding.weight

    def forward(self, ids: torch.Tensor, state=None):
        x = self.embedding(ids)  # (B, T, E)
        h, state = self.rnn(x, state)  # (B, T, H)
        return self.head(self.drop(h)), state  # (B, T, V)

    @staticmethod
    def detach(state):
        """Cut the graph between windows (truncated BPTT); the values carry on."""
        if state is None:
            return None
        return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
