"""Language model: embedding -> recurrent stack or causal Transformer -> linear head over the vocabulary.

Legend: B batch, T time, V vocabulary, E embedding, H hidden (the Transformer's width).
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import KVCache, Transformer, layer_class


class LanguageModel(nn.Module):
    """ids (B, T) -> logits (B, T, V), carrying the state between calls: the recurrent state, or the Transformer's
    key/value cache (in eval mode; a training forward carries nothing).

    Arguments: vocab_size; model 'rnn' | 'lstm' | 'gru' | 'transformer'; embed (E; the Transformer embeds in its
    width H), hidden (H), layers; dropout (recurrent: between layers and before the head; Transformer: in every
    block); tie (share the embedding and head weights, needs E == H for recurrent models); backend of the recurrent
    layer; heads and context (Transformer: attention heads, and the window each position sees — the training length).
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
        heads: int = 4,
        context: int = 128,
    ):
        super().__init__()
        self.is_transformer = model == "transformer"
        if self.is_transformer:
            embed = hidden
        if tie and embed != hidden:
            raise ValueError(f"tie needs embed == hidden, got embed={embed} hidden={hidden}")
        self.embedding = nn.Embedding(vocab_size, embed)
        if self.is_transformer:
            nn.init.normal_(self.embedding.weight, 0.0, 0.02)
            self.transformer = Transformer(hidden, layers, heads, dropout, causal=True, window=context)
        else:
            rnn = layer_class(model)
            self.rnn = rnn(
                embed, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0, backend=backend
            )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, vocab_size)
        if tie:
            self.head.weight = self.embedding.weight

    def forward(self, ids: torch.Tensor, state=None):
        x = self.embedding(ids)  # (B, T, E)
        if self.is_transformer:
            h, state = self.transformer(self.drop(x), state)  # (B, T, H), KVCache or None
            return self.head(h), state  # (B, T, V)
        h, state = self.rnn(x, state)  # (B, T, H)
        return self.head(self.drop(h)), state  # (B, T, V)

    @staticmethod
    def detach(state):
        """Cut the graph between windows (truncated BPTT); the values carry on."""
        if state is None:
            return None
        if isinstance(state, KVCache):
            return state.detach()
        return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
