"""The model of the memory lab: one recurrent layer (or ``layers``) and a linear read-out, as in the papers it
reproduces; or, to compare, a causal Transformer (inputs projected to its width, ``blocks`` pre-norm blocks) and the
same read-out.

adding: x (B, T, 2) -> the read-out of the last state, (B,).
copy, parity, selective: ids (B, T) as one-hot vectors -> logits for every step, (B, T, classes).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .backbone import RECURRENT, accept_old_checkpoints, backbone


class MemoryModel(nn.Module):
    def __init__(self, cell: str, n_in: int, hidden: int, n_out: int, one_hot: bool = False,
                 forget_bias: float | None = 1.0, orthogonal: bool = False, backend: str = "auto",
                 blocks: int = 2, heads: int = 4, layers: int = 1, layer_norm: bool = False,
                 zoneout: float = 0.0):  # fmt: skip
        """orthogonal: W_hh starts as a random orthogonal matrix (all eigenvalues on the unit circle), the usual
        remedy for a vanilla RNN's vanishing gradients (Saxe et al. 2014; Le et al. 2015 for the identity).
        blocks, heads: the Transformer's (cell 'transformer'); layers: a recurrent stack's; layer_norm, zoneout:
        the LSTM and GRU variants (seqlab.LSTM)."""
        super().__init__()
        self.n_in, self.one_hot = n_in, one_hot
        self.head = nn.Linear(hidden, n_out)
        extra = {"forget_bias": forget_bias} if cell == "lstm" else {}
        extra.update({k: v for k, v in (("layer_norm", layer_norm), ("zoneout", zoneout)) if v})
        self.backbone = backbone(cell, channels=n_in, hidden=hidden, layers=blocks if cell == "transformer" else layers,
                                 heads=heads, backend=backend, **extra)  # fmt: skip
        if orthogonal:
            if cell not in RECURRENT:
                raise ValueError(f"orthogonal initialises a recurrent W_hh; {cell} has none")
            with torch.no_grad():
                for name, w in self.backbone.rnn.named_parameters():
                    if name.startswith("weight_hh"):
                        for g in w.split(hidden):  # each gate block on its own
                            nn.init.orthogonal_(g)
        accept_old_checkpoints(self)

    def forward(self, x: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        if self.one_hot:
            x = F.one_hot(x, self.n_in).float()  # (B, T, n_in)
        h, _ = self.backbone(x)  # (B, T, H); a Transformer is causal: step t sees steps <= t
        return self.head(h[:, -1] if last_only else h)
