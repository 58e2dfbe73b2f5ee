"""Language model: token ids -> backbone (embedding and sequence stack) -> linear head over the vocabulary.

Legend: B batch, T time, V vocabulary, E embedding, H hidden (the Transformer's width).
"""

from __future__ import annotations

import torch
from torch import nn

from .backbone import accept_old_checkpoints, backbone, detach


class LanguageModel(nn.Module):
    """ids (B, T) -> logits (B, T, V), carrying the state between calls: the recurrent state, or the Transformer's
    key/value cache (in eval mode; a training forward carries nothing).

    Arguments: vocab_size; model 'rnn' | 'lstm' | 'gru' | 'transformer' (seqlab.models.backbone); embed (E; the
    Transformer embeds in its width H), hidden (H), layers; dropout (recurrent: between layers and on the stack's
    output; Transformer: in every block and on the embedding); tie (share the embedding and head weights, needs
    E == H for recurrent models); backend of the recurrent layer; heads and context (Transformer: attention heads,
    and the window each position sees — the training length).

    AWD-LSTM's regularisers (Merity et al. 2018), for rnn, lstm and gru: weight_drop (DropConnect on each W_hh, one
    mask per call), locked_dropout (variational dropout at this rate on the embedding, between layers and on the
    stack's output, one mask per sequence; it takes the place of ``dropout``, which must then be 0) and
    embed_dropout (whole tokens dropped from the embedding).

    The LSTM's variants (seqlab.LSTM): layer_norm, zoneout and recurrent_dropout.
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
        weight_drop: float = 0.0,
        locked_dropout: float = 0.0,
        embed_dropout: float = 0.0,
        *,
        layer_norm: bool = False,
        zoneout: float = 0.0,
        recurrent_dropout: float = 0.0,
    ):
        super().__init__()
        awd: dict = {"weight_drop": weight_drop} if weight_drop else {}
        variants = {"layer_norm": layer_norm, "zoneout": zoneout, "recurrent_dropout": recurrent_dropout}
        awd.update({k: v for k, v in variants.items() if v})
        if locked_dropout:
            if dropout:
                raise ValueError(f"locked_dropout replaces dropout's per-step masks; give dropout=0 with it, got "
                                 f"{dropout}")  # fmt: skip
            awd["locked"], dropout = True, locked_dropout
        if embed_dropout:
            awd["embed_dropout"] = embed_dropout
        self.backbone = backbone(model, vocab=vocab_size, embed=embed, hidden=hidden, layers=layers, dropout=dropout,
                                 outer_dropout=dropout, heads=heads, window=context, backend=backend,
                                 **awd)  # fmt: skip
        embedding = self.backbone.embedding
        if tie and embedding.embedding_dim != hidden:
            raise ValueError(f"tie needs embed == hidden, got embed={embedding.embedding_dim} hidden={hidden}")
        self.head = nn.Linear(hidden, vocab_size)
        if tie:
            self.head.weight = embedding.weight
        accept_old_checkpoints(self)

    def forward(self, ids: torch.Tensor, state=None):
        h, state = self.backbone(ids, state)  # (B, T, H), the state to continue from
        return self.head(h), state  # (B, T, V)

    detach = staticmethod(detach)
