"""The one backbone factory: every task model gets its sequence encoder here, by name, and never asks which kind it
got.

Legend: B batch, T time, C input channels, V vocabulary, E embedding, H hidden, D directions.

    backbone(name, channels=C | vocab=V, hidden=H, ...) -> module
    module(x, state=None, lengths=None) -> (output (B, T, width), state)

``x`` is (B, T, C) floats, or (B, T) token ids when the backbone was built with ``vocab``: the input map (an
embedding, or for attention a projection to its width) belongs to the backbone, because how inputs must arrive
depends on the backbone (attention works at its own width H; a recurrent stack reads any width).

``state`` carries a sequence on from where an earlier call stopped: the recurrent state, or the key/value cache of
a causal Transformer. A causal Transformer returns a cache only outside training (a training forward carries
nothing, and returns None); a caller that continues a sequence step by step therefore re-reads it whole where no
state came back (``continue_from``). ``lengths`` runs each row within its own length (bidirectional attention
masks padded keys; recurrent stacks stop each row at its length).

``dropout`` is the stack's own (between recurrent layers; inside attention blocks). ``outer_dropout`` is the one
dropout a per-step model (the language model) puts around the stack, each family where its literature does: on a
recurrent stack's output (AWD-LSTM's output dropout, char-rnn's), on a Transformer's input embedding (GPT-2's).

A new backbone is one class here with this interface and one entry in ``backbone``.

State-dict keys: a backbone held at ``model.backbone`` names its tensors ``backbone.embedding.*``,
``backbone.rnn.*`` (torch.nn's names below that), ``backbone.project.*``, ``backbone.transformer.*``. Checkpoints
written before the factory existed held them one level up (``rnn.*``, ``embedding.*``; ``encoder.weight_ih_l0`` for
a recurrent layer held directly); a task model calls ``accept_old_checkpoints(self)`` and they are renamed on load,
so every old run still loads and resumes.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..layers import KVCache, Transformer, layer_class, valid_mask
from ..layers.convolution import FCN, InceptionNet
from ..layers.dropout import LockedDropout, embedding_dropout

RECURRENT = ("rnn", "lstm", "gru")
SCANNED = ("mingru", "minlstm")
"""Recurrences whose gates read the input only, trained by a parallel scan (seqlab.layers.minimal)."""
BACKBONES = (*RECURRENT, *SCANNED, "transformer")
"""The backbones that can run causally and carry state: every task takes them."""
CONVOLUTIONAL = ("fcn", "inception", "lstm-fcn", "gru-fcn")
"""Backbones that read a whole sequence at once (no state, never causal): for classification."""


def backbone(
    name: str,
    *,
    channels: int | None = None,
    vocab: int | None = None,
    embed: int = 64,
    hidden: int = 128,
    layers: int = 1,
    dropout: float = 0.0,
    outer_dropout: float = 0.0,
    bidirectional: bool = False,
    causal: bool = True,
    heads: int = 4,
    window: int | None = None,
    backend: str = "auto",
    locked: bool = False,
    embed_dropout: float = 0.0,
    **cell_options,
) -> RecurrentBackbone | AttentionBackbone | ConvolutionalBackbone:
    """Build the backbone ``name`` (rnn | lstm | gru | mingru | minlstm | transformer | fcn | inception | lstm-fcn |
    gru-fcn) for inputs of ``channels`` floats or ``vocab`` token ids.

    Recurrent: ``embed`` (E, tokens only), ``bidirectional``, ``backend`` and ``cell_options`` (e.g. forget_bias,
    weight_drop) go to the seqlab.layers class. rnn, lstm and gru also take the AWD-LSTM dropouts: ``locked`` makes
    every dropout variational (one mask per sequence: between layers, and ``outer_dropout`` on the stack's input
    as well as its output) and ``embed_dropout`` drops whole tokens from the embedding. Transformer: width
    ``hidden``, ``heads``; ``causal`` (each step sees only the past; else bidirectional over ``lengths``) and
    ``window`` (how far back a causal step sees). Convolutional
    (``causal=False`` only): FCN of hidden-2*hidden-hidden filters, InceptionTime of width ``hidden``; lstm-fcn and
    gru-fcn run a recurrent stack (``hidden``, ``layers``, ``bidirectional``) beside the FCN."""
    check_name(name, BACKBONES + CONVOLUTIONAL)
    awd = {"locked": locked, "embed_dropout": embed_dropout, "weight_drop": cell_options.get("weight_drop", 0)}
    if name not in RECURRENT and (asked := [k for k, v in awd.items() if v]):
        raise ValueError(f"{', '.join(asked)}: for the recurrent layers rnn, lstm, gru; {name} has no W_hh or step "
                         f"dropout to vary")  # fmt: skip
    lstm_only = [k for k in ("layer_norm", "zoneout", "recurrent_dropout") if cell_options.get(k)]
    if lstm_only and name not in ("lstm", "gru"):
        raise ValueError(f"{', '.join(lstm_only)}: variants of the LSTM and GRU (seqlab.LSTM, GRU), not of {name}")
    if (channels is None) == (vocab is None):
        raise ValueError("give channels (series) or vocab (token ids), one of them")
    if name in CONVOLUTIONAL:
        if causal:
            raise ValueError(f"{name} reads the whole sequence at once; it cannot be causal (use it to classify)")
        return ConvolutionalBackbone(name, channels, vocab, embed, hidden, layers, dropout, outer_dropout,
                                     bidirectional, backend)  # fmt: skip
    if name in RECURRENT or name in SCANNED:
        return RecurrentBackbone(name, channels, vocab, embed, hidden, layers, dropout, outer_dropout, bidirectional,
                                 backend, locked, embed_dropout, **cell_options)  # fmt: skip
    if not causal and window is not None:  # the transformer
        raise ValueError("a window limits how far back a causal Transformer sees; a bidirectional one has none")
    return AttentionBackbone(channels, vocab, hidden, layers, heads, dropout, outer_dropout, causal, window)


def check_name(name: str, allowed: tuple[str, ...] = BACKBONES, what: str = "model") -> None:
    """Refuse an unknown backbone name before anything is read or written."""
    if name not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}; got {name!r}")


def check_heads(name: str, hidden: int, heads: int) -> None:
    """A Transformer's width must split into heads of an even size (rotary positions turn pairs)."""
    if name == "transformer" and (hidden % heads or (hidden // heads) % 2):
        raise ValueError(f"--hidden {hidden} must split into {heads} heads of an even size (rotary positions)")


def detach(state):
    """Cut the graph between windows (truncated BPTT); the values carry on. Any backbone's state, or None."""
    if state is None:
        return None
    if isinstance(state, KVCache):
        return state.detach()
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def continue_from(net: nn.Module, seq: Tensor, step: Tensor, state):
    """Feed ``step`` (B, 1, F) after ``seq`` (B, S, F), whose ``state`` the last call returned: continue from the
    state where there is one, else re-read the grown sequence (a training Transformer keeps no cache). Returns the
    output at the new step (B, 1, width), the grown sequence and the new state."""
    seq = torch.cat([seq, step], dim=1)
    if state is None:
        h, state = net(seq)
        return h[:, -1:], seq, state
    h, state = net(step, state)
    return h, seq, state


def accept_old_checkpoints(model: nn.Module) -> None:
    """Let ``model`` (the module a checkpoint is loaded into) load state dicts written before the factory: its
    backbones' tensors are renamed from their old places (see the module docstring) before loading."""
    model.register_load_state_dict_pre_hook(_rename_old_keys)


def _rename_old_keys(root: nn.Module, state: dict, prefix: str, *args) -> None:
    for path, m in root.named_modules():
        if isinstance(m, (RecurrentBackbone, AttentionBackbone)):
            at = prefix + path + "."
            parent = prefix + (path.rsplit(".", 1)[0] + "." if "." in path else "")
            for key in [k for k in state if not k.startswith(at)]:
                for old in m.OLD_SIBLINGS:  # "rnn.weight_ih_l0" beside the model's head -> "backbone.rnn..."
                    if key.startswith(parent + old + "."):
                        state[at + key[len(parent) :]] = state.pop(key)
            if isinstance(m, RecurrentBackbone):  # a layer held directly here: encoder.weight_ih_l0
                own = {n for n, _ in m.rnn.named_parameters()}
                for key in [k for k in state if k.startswith(at) and k[len(at) :] in own]:
                    state[at + "rnn." + key[len(at) :]] = state.pop(key)


class RecurrentBackbone(nn.Module):
    """(token ids -> embedding ->) a seqlab.layers RNN/LSTM/GRU stack, batch first. width = D * H."""

    OLD_SIBLINGS = ("rnn", "embedding")

    def __init__(self, cell: str, channels: int | None, vocab: int | None, embed: int, hidden: int, layers: int,
                 dropout: float, outer_dropout: float, bidirectional: bool, backend: str, locked: bool = False,
                 embed_dropout: float = 0.0, **cell_options):  # fmt: skip
        super().__init__()
        self.cell, self.layers, self.hidden = cell, layers, hidden
        self.embedding = nn.Embedding(vocab, embed) if vocab is not None else None
        self.embed_dropout = embed_dropout
        n_in = embed if vocab is not None else channels
        between = dropout if layers > 1 else 0.0
        if locked:
            cell_options["locked_dropout"] = True
        self.rnn = layer_class(cell)(n_in, hidden, layers, batch_first=True, dropout=between,
                                     bidirectional=bidirectional, backend=backend, **cell_options)  # fmt: skip
        self.drop = LockedDropout(outer_dropout) if locked else nn.Dropout(outer_dropout)
        self.drop_in = LockedDropout(outer_dropout) if locked else None  # AWD-LSTM's dropout on the stack's input
        self.directions = 2 if bidirectional else 1
        self.width = self.directions * hidden
        self.backward = slice(hidden, 2 * hidden) if bidirectional else None  # the features that run backward

    def forward(self, x: Tensor, state=None, lengths: Tensor | None = None):
        if self.embedding is not None:
            x = embedding_dropout(self.embedding, x, self.embed_dropout, self.training)  # (B, T, E)
        if self.drop_in is not None:
            x = self.drop_in(x)
        h, state = self.rnn(x, state, lengths=lengths)  # (B, T, D*H), zero past each length
        return self.drop(h), state

    def state_from(self, h0: Tensor):
        """The initial state whose hidden part is h0 (layers, B, H): an LSTM's cell state starts at zero."""
        return (h0, torch.zeros_like(h0)) if self.cell == "lstm" else h0


class AttentionBackbone(nn.Module):
    """(embedding to H, or a projection of C channels to H, then outer dropout ->) pre-norm Transformer blocks.

    The embedding starts at N(0, 0.02), GPT-2's scale, which the residual stream's LayerNorms expect."""

    OLD_SIBLINGS = ("transformer", "project", "embedding")

    def __init__(self, channels: int | None, vocab: int | None, hidden: int, layers: int, heads: int, dropout: float,
                 outer_dropout: float, causal: bool, window: int | None):  # fmt: skip
        super().__init__()
        self.embedding = nn.Embedding(vocab, hidden) if vocab is not None else None
        if self.embedding is not None:
            nn.init.normal_(self.embedding.weight, 0.0, 0.02)
        self.project = nn.Linear(channels, hidden) if channels is not None else None
        self.drop = nn.Dropout(outer_dropout)
        self.transformer = Transformer(hidden, layers, heads, dropout, causal=causal, window=window)
        self.directions, self.width, self.backward = 1, hidden, None

    def forward(self, x: Tensor, state: KVCache | None = None, lengths: Tensor | None = None):
        x = self.embedding(x) if self.embedding is not None else self.project(x)  # (B, T, H)
        return self.transformer(self.drop(x), state, lengths)  # (B, T, H), KVCache or None


class ConvolutionalBackbone(nn.Module):
    """(token ids -> embedding ->) masked convolutions over the whole sequence (seqlab.layers.convolution), and for
    lstm-fcn / gru-fcn a recurrent stack beside them (Karim et al. 2017, without the "dimension shuffle", which
    reads a series' steps as channels and so cannot take unequal lengths). Output (B, T, width), zero past each
    length: [recurrent features (D*H) | convolutional features]. It carries no state."""

    def __init__(self, name: str, channels: int | None, vocab: int | None, embed: int, hidden: int, layers: int,
                 dropout: float, outer_dropout: float, bidirectional: bool, backend: str):  # fmt: skip
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed) if vocab is not None else None
        n_in = embed if vocab is not None else channels
        if name == "inception":
            self.conv: nn.Module = InceptionNet(n_in, filters=max(1, hidden // 4))
        else:
            self.conv = FCN(n_in, (hidden, 2 * hidden, hidden))
        self.rnn = None
        self.directions, self.backward, recurrent = 1, None, 0
        if name.endswith("-fcn"):
            between = dropout if layers > 1 else 0.0
            self.rnn = layer_class(name.split("-")[0])(n_in, hidden, layers, batch_first=True, dropout=between,
                                                       bidirectional=bidirectional, backend=backend)  # fmt: skip
            self.directions = 2 if bidirectional else 1
            recurrent = self.directions * hidden
            self.backward = slice(hidden, 2 * hidden) if bidirectional else None
        self.drop = nn.Dropout(outer_dropout)
        self.width = recurrent + self.conv.width

    def forward(self, x: Tensor, state=None, lengths: Tensor | None = None):
        if state is not None:
            raise ValueError("a convolutional backbone reads whole sequences; it carries no state")
        if self.embedding is not None:
            x = self.embedding(x)  # (B, T, E)
        B, T = x.shape[:2]
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long)
        mask = valid_mask(lengths.to(x.device), T)[:, None, :].to(x.dtype)  # (B, 1, T)
        out = self.conv(x.transpose(1, 2), mask).transpose(1, 2)  # (B, T, conv width)
        if self.rnn is not None:
            h, _ = self.rnn(x, lengths=lengths)  # (B, T, D*H), zero past each length
            out = torch.cat([self.drop(h), out], dim=2)
        return out, None
