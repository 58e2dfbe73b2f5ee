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
(10·sqrt(MSE) reconstruction, 100·sqrt supervised and 100 moment terms, the moments per time step as in its code,
γ = 1, the discriminator stepped only while its loss exceeds 0.15, two generator steps per discriminator step).
Changed: every network runs within each sequence's own length (the paper pads and lets padding leak into its
losses), and a generated sequence carries the length it was drawn with (from the training lengths), which the
evaluation uses — the paper's metrics took the generated sequences' lengths from the real data. The discriminator
here is unidirectional, as in the paper's code.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..layers import valid_mask
from .backbone import accept_old_checkpoints, backbone


class Net(nn.Module):
    """A recurrent stack and a linear map per step, optionally squashed by a sigmoid."""

    def __init__(self, cell: str, n_in: int, hidden: int, n_out: int, layers: int, sigmoid: bool = True):
        super().__init__()
        self.backbone = backbone(cell, channels=n_in, hidden=hidden, layers=max(1, layers))
        self.out, self.sigmoid = nn.Linear(hidden, n_out), sigmoid

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        h, _ = self.backbone(x, lengths=lengths)
        y = self.out(h)
        return torch.sigmoid(y) if self.sigmoid else y


class TimeGAN(nn.Module):
    """The five networks. With ``classes`` > 0 it is conditional: the generator reads its noise and the discriminator
    its latents with the one-hot class appended at every step (a conditional GAN's usual placement); the
    autoencoder and the supervisor stay shared by all classes."""

    def __init__(self, channels: int, hidden: int = 24, layers: int = 3, noise: int | None = None, cell: str = "gru",
                 classes: int = 0):  # fmt: skip
        super().__init__()
        self.C, self.H, self.Z, self.K = channels, hidden, noise or channels, classes
        self.embedder = Net(cell, channels, hidden, hidden, layers)
        self.recovery = Net(cell, hidden, hidden, channels, layers)
        self.generator = Net(cell, self.Z + classes, hidden, hidden, layers)
        self.supervisor = Net(cell, hidden, hidden, hidden, layers - 1)
        self.discriminator = Net(cell, hidden + classes, hidden, 1, layers, sigmoid=False)
        accept_old_checkpoints(self)

    def noise(self, B: int, T: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.rand(B, T, self.Z, generator=generator)  # U(0, 1) per step, as the paper

    def condition(self, x: Tensor, labels: Tensor | None) -> Tensor:
        """x (B, T, F) with the one-hot class of each row appended at every step; x itself when unconditional."""
        if not self.K:
            return x
        if labels is None:
            raise ValueError("a conditional TimeGAN needs a class label per sequence")
        onehot = F.one_hot(labels, self.K).to(x.dtype)
        return torch.cat([x, onehot[:, None].expand(-1, x.shape[1], -1)], 2)

    def generate(self, z: Tensor, lengths: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Noise -> the generator's latents e_hat and, through the supervisor, h_hat (both (B, T, H))."""
        e_hat = self.generator(self.condition(z, labels), lengths)
        return e_hat, self.supervisor(e_hat, lengths)

    def discriminate(self, h: Tensor, lengths: Tensor, labels: Tensor | None = None) -> Tensor:
        """Per-step real/fake logits (B, T)."""
        return self.discriminator(self.condition(h, labels), lengths)[:, :, 0]

    @torch.no_grad()
    def sample(self, lengths: Tensor, labels: Tensor | None = None, generator: torch.Generator | None = None):
        """Synthetic sequences (B, T, C) in [0, 1] of the given lengths (zero past each) and classes."""
        z = self.noise(len(lengths), int(lengths.max()), generator)
        x = self.recovery(self.generate(z, lengths, labels)[1], lengths)
        return x * valid_mask(lengths, x.shape[1])[:, :, None]


def masked_mse(a: Tensor, b: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error over valid steps (mask (B, T, 1)) and channels."""
    return ((a - b) ** 2 * mask).sum() / (mask.sum() * a.shape[2]).clamp_min(1)


def moment_loss(x_hat: Tensor, x: Tensor, mask: Tensor) -> Tensor:
    """The paper's two-moment loss: per time step and channel, the batch mean and standard deviation of synthetic
    against real data, |Δσ| + |Δμ| averaged. Moments at step t are over the rows valid at t (both batches share the
    lengths), and each step counts by how many rows it holds. (B, T, C) data, mask (B, T, 1)."""
    n = mask.sum(0)  # (T, 1)

    def stats(v: Tensor) -> tuple[Tensor, Tensor]:
        mean = (v * mask).sum(0) / n.clamp_min(1)
        var = ((v - mean) ** 2 * mask).sum(0) / n.clamp_min(1)
        return mean, (var + 1e-6).sqrt()

    (mu_hat, sd_hat), (mu, sd) = stats(x_hat), stats(x)
    gap = (sd_hat - sd).abs() + (mu_hat - mu).abs()  # (T, C)
    return (gap * n).sum() / (n.sum() * x.shape[2]).clamp_min(1)
