"""Convolutions over sequences of unequal length: the FCN block (Wang et al. 2017) and InceptionTime's modules
(Ismail Fawaz et al. 2020), masked so that padding never changes a result.

Legend: B batch, C channels, T time (padded), L a sequence's own length.

Every module here takes ``(x, mask)``: x (B, C, T) and mask (B, 1, T), 1.0 on a sequence's valid steps and 0.0
past its length, and returns (B, C', T) that is zero past each length. What the published versions lack and these
keep:

- A convolution reads zeros past a sequence's end: x is masked before every convolution, so a "same"-padded
  convolution at step t < L sees exactly what it sees when the sequence is run alone (its own zero padding).
- Max pooling reads -inf past the end, as a lone sequence's pooling does at its edge.
- Batch normalisation's statistics are taken over valid steps only (``MaskedBatchNorm``), so the padding of a batch
  does not shift them. In evaluation it uses the running statistics, so a prediction never depends on batch mates.
  Trained by several processes (a torch.distributed group, as seqlab.train sets up), they are the statistics of
  the whole global batch, summed across the processes with gradients (PyTorch's SyncBatchNorm runs on GPUs only),
  so N processes train the one-process model.

A row's output therefore equals the same row run alone, to rounding (tests/test_convolution.py).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class MaskedBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d over (B, C, T) whose training statistics count valid steps only; zero past each length."""

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:  # type: ignore[override]
        if not self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0,
                                self.eps) * mask  # fmt: skip
        sums = across_processes(torch.cat([(x * mask).sum((0, 2)), mask.sum().reshape(1)]))
        n = sums[-1]
        mean = sums[:-1] / n  # (C,)
        centred = (x - mean[:, None]) * mask
        var = across_processes(centred.pow(2).sum((0, 2))) / n  # biased, as BatchNorm normalises by
        with torch.no_grad():
            self.num_batches_tracked += 1
            unbiased = var * (n / (n - 1).clamp(min=1))
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(unbiased, self.momentum)
        scale = self.weight * torch.rsqrt(var + self.eps)
        return (centred * scale[:, None] + self.bias[:, None]) * mask


def across_processes(t: Tensor) -> Tensor:
    """``t`` summed over the processes of a torch.distributed group, differentiably (the gradient of a sum is the
    sum of the gradients); ``t`` itself in a single process."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return t
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(t)


class ConvBlock(nn.Module):
    """Convolution ("same" length, stride 1) -> masked batch norm -> ReLU: one block of FCN. An even kernel is
    padded (k-1)//2 on the left and the rest on the right, as ``padding="same"`` does."""

    def __init__(self, channels: int, filters: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, filters, kernel, bias=False)
        self.pad = ((kernel - 1) // 2, kernel - 1 - (kernel - 1) // 2)
        self.norm = MaskedBatchNorm(filters)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return torch.relu(self.norm(self.conv(F.pad(x * mask, self.pad)), mask))


class FCN(nn.Module):
    """Wang et al.'s fully convolutional network without its pooling: blocks of ``filters`` and ``kernels``
    (128-256-128 filters of 8-5-3 in the paper). ``width`` = the last block's filters."""

    def __init__(self, channels: int, filters: tuple[int, ...] = (128, 256, 128), kernels: tuple[int, ...] = (8, 5, 3)):
        super().__init__()
        if len(filters) != len(kernels):
            raise ValueError(f"one kernel size per block: {len(filters)} filter counts, {len(kernels)} kernels")
        sizes = (channels, *filters)
        self.blocks = nn.ModuleList(ConvBlock(sizes[i], sizes[i + 1], kernels[i]) for i in range(len(filters)))
        self.width = filters[-1]

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x, mask)
        return x


class Inception(nn.Module):
    """One InceptionTime module: a 1x1 bottleneck (when the input has more than one channel), three convolutions of
    decreasing kernel size on it, and a 3-wide max pooling followed by a 1x1 convolution on the input; their
    4 * ``filters`` outputs are concatenated, normalised and rectified."""

    def __init__(self, channels: int, filters: int, kernels: tuple[int, ...], bottleneck: int):
        super().__init__()
        self.bottleneck = nn.Conv1d(channels, bottleneck, 1, bias=False) if channels > 1 else None
        inner = bottleneck if channels > 1 else channels
        self.convs = nn.ModuleList(nn.Conv1d(inner, filters, k, padding="same", bias=False) for k in kernels)
        self.pool_conv = nn.Conv1d(channels, filters, 1, bias=False)
        self.norm = MaskedBatchNorm(filters * (len(kernels) + 1))
        self.width = filters * (len(kernels) + 1)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x * mask
        inner = self.bottleneck(x) * mask if self.bottleneck is not None else x
        pooled = F.max_pool1d(x.masked_fill(mask == 0, -torch.inf), 3, stride=1, padding=1)
        pooled = pooled.masked_fill(mask == 0, 0.0)  # (-inf past each end would poison the 1x1 convolution)
        out = torch.cat([*(conv(inner) for conv in self.convs), self.pool_conv(pooled)], dim=1)
        return torch.relu(self.norm(out, mask))


class InceptionNet(nn.Module):
    """InceptionTime's network without its pooling: ``depth`` Inception modules with a residual connection (1x1
    convolution and batch norm) around every three. Kernels 40 -> (39, 19, 9) as in the reference code."""

    def __init__(self, channels: int, filters: int = 32, depth: int = 6, kernel: int = 40, bottleneck: int = 32):
        super().__init__()
        kernels = tuple(kernel // 2**i - 1 for i in range(3))
        self.blocks = nn.ModuleList()
        self.shortcuts = nn.ModuleList()
        width, residual_in = channels, channels
        for d in range(depth):
            self.blocks.append(Inception(width, filters, kernels, bottleneck))
            width = self.blocks[-1].width
            if d % 3 == 2:
                self.shortcuts.append(nn.ModuleDict({"conv": nn.Conv1d(residual_in, width, 1, bias=False),
                                                     "norm": MaskedBatchNorm(width)}))  # fmt: skip
                residual_in = width
        self.width = width

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        residual = x
        for d, module in enumerate(self.blocks):
            x = module(x, mask)
            if d % 3 == 2:
                short = self.shortcuts[d // 3]
                x = torch.relu(x + short["norm"](short["conv"](residual * mask), mask))
                residual = x
        return x
