"""TimeGAN (Yoon, Jarrett & van der Schaar, NeurIPS 2019): a GAN for real-valued multivariate sequences that learns
in the latent space of an autoencoder, with a supervised next-step loss that teaches the generator the data's
temporal dynamics.

Legend: B batch, T time, C channels, H latent/hidden, Z noise per step.

Five recurrent networks, each a stack of our GRU (or LSTM/RNN) layers and a linear map, on valid steps only:
    embedder       x (B, T, C) -> h (B, T, H)      sigmoid: latents in (0, 1)
    recovery       h -> x_tilde (B, T, C)          sigmoid: data are min-max scaled to [0, 1], as in the paper
    generator      z (B, T, Z) -> e_hat (B, T, H)
    supervisor     h -> h_hat_next (B, T, H)      predicts the next step's latent (one layer fewer, as the paper)
    discriminator  h -> logits (B, T)              one real/fake logit per step
Kept from the paper: all five networks, its three phases (autoencoder, supervisor, joint), its losses and weights
(10·sqrt(MSE) reconstruction, 100·sqrt supervised and 100 moment terms, γ = 1, the discriminator stepped only while
its loss exceeds 0.15, two generator steps per discriminator step). Changed: every network runs within each
sequence's own length (the paper pads and lets padding leak into its losses), and a generated sequence carries the
length it was drawn with (from the training lengths), which the evaluation uses — the paper's metrics took the
generated sequences' lengths from the real data. The discriminator here is unidirectional, as in the paper's code.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..layers import layer_class, valid_mask


class Net(nn.Module):
    """A recurrent stack and a linear map per step, optionally squashed by a sigmoid."""

    def __init__(self, cell: str, n_in: int, hidden: int, n_out: int, layers: int, sigmoid: bool = True):
        super().__init__()
        self.rnn = layer_class(cell)(n_in, hidden, max(1, layers), batch_first=True)
        self.out, self.sigmoid = nn.Linear(hidden, n_out), sigmoid

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        h, _ = self.rnn(x, lengths=lengths)
        y = self.out(h)
        return torch.sigmoid(y) if self.sigmoid else y


class TimeGAN(nn.Module):
    def __init__(self, channels: int, hidden: int = 24, layers: int = 3, noise: int | None = None, cell: str = "gru"):
        super().__init__()
        self.C, self.H, self.Z = channels, hidden, noise or channels
        self.embedder = Net(cell, channels, hidden, hidden, layers)
        self.recovery = Net(cell, hidden, hidden, channels, layers)
        self.generator = Net(cell, self.Z, hidden, hidden, layers)
        self.supervisor = Net(cell, hidden, hidden, hidden, layers - 1)
        self.discriminator = Net(cell, hidden, hidden, 1, layers, sigmoid=False)

    def noise(self, B: int, T: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.rand(B, T, self.Z, generator=generator)  # U(0, 1) per step, as the paper

    @torch.no_grad()
    def sample(self, lengths: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Synthetic sequences (B, T, C) in [0, 1] of the given lengths (zero past each)."""
        z = self.noise(len(lengths), int(lengths.max()), generator)
        x = self.recovery(self.supervisor(self.generator(z, lengths), lengths), lengths)
        return x * valid_mask(lengths, x.shape[1])[:, :, None]


def masked_mse(a: Tensor, b: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error over valid steps (mask (B, T, 1)) and channels."""
    return ((a - b) ** 2 * mask).sum() / (mask.sum() * a.shape[2]).clamp_min(1)


def moments(x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and standard deviation over every valid step of the batch."""
    n = mask.sum().clamp_min(1)
    mean = (x * mask).sum((0, 1)) / n
    var = (((x - mean) ** 2) * mask).sum((0, 1)) / n
    return mean, (var + 1e-6).sqrt()
