"""Self-attention: pre-norm Transformer blocks with rotary positions, causal (with a key/value cache) or bidirectional.

Legend: B batch, T time (queries), S keys, D width, nh heads, hs head size (D / nh), W window.

A block is  x + Attention(LayerNorm(x))  then  x + MLP(LayerNorm(x))  (pre-norm, as GPT-2 and nanoGPT), the MLP
D -> 4D -> D with GELU. Attention is torch's ``scaled_dot_product_attention``.

Positions are rotary (RoPE, Su et al. 2021): queries and keys are rotated by an angle proportional to their
position, so q·k depends only on the distance between them. We picked it over learned or sinusoidal absolute
positions because
- a key is rotated once, when it is computed, and stays valid in the cache forever: a sliding cache never needs
  re-encoding (with learned absolute positions, nanoGPT re-runs the whole cropped context for every new token);
- the model sees distances, not absolute places, so running past the training length only asks for distances it
  was trained on — provided each query looks back at most W steps, which is what the causal model does:
- **sliding window.** A causal stack attends from each position to the W positions ending at it (itself included),
  W = ``window`` (the LM's training context). Training windows are W long, so there the mask is the plain causal
  one; a full forward pass over a longer text uses the banded mask, and cached generation keeps the last W - 1 keys
  per layer. Cached and uncached runs are therefore the same computation, token for token, at any length, and
  generation past the training context slides the window with constant memory instead of failing. (Stacked, L
  layers hear back L (W - 1) steps, as in Longformer's and Mistral's sliding-window attention.)
The bidirectional stack (classification) masks padded keys from ``lengths``; a padded row equals the sequence alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .pooling import valid_mask


def rotate(x: Tensor, pos: Tensor, base: float = 10000.0) -> Tensor:
    """RoPE on (B, nh, T, hs) at integer positions (T,): pairs (x_i, x_{i+hs/2}) turn by pos·base^(-2i/hs).

    Angles are computed in float64, so positions in the millions (long generations) keep their precision.
    """
    hs = x.shape[-1]
    inv_freq = base ** (-torch.arange(0, hs // 2, dtype=torch.float64, device=x.device) * 2 / hs)  # (hs/2,)
    angles = pos.to(torch.float64)[:, None] * inv_freq  # (T, hs/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., : hs // 2], x[..., hs // 2 :]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


@dataclass
class KVCache:
    """Per layer, the keys (already rotated) and values of the last W - 1 positions, and those positions (S,)."""

    k: list[Tensor]  # (B, nh, S, hs) per layer
    v: list[Tensor]
    pos: Tensor  # (S,) int64, the absolute position of each cached key

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.k, *self.v))

    def detach(self) -> KVCache:
        return KVCache([t.detach() for t in self.k], [t.detach() for t in self.v], self.pos)


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if width % heads or (width // heads) % 2:
            raise ValueError(f"width {width} must split into {heads} heads of an even size (rotary pairs)")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: Tensor, pos: Tensor, mask: Tensor | None, causal: bool, past=None):
        """x (B, T, D), positions (T,); mask (B or 1, 1, T, S) bool, True = may attend; causal: the plain causal mask
        (when no explicit mask is needed); past: this layer's cached (k, v). Returns (B, T, D) and the new (k, v)."""
        B, T, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=2)
        q, k, v = (t.view(B, T, self.heads, D // self.heads).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        q, k = rotate(q, pos), rotate(k, pos)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)  # (B, nh, S, hs)
        drop = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop, is_causal=causal and mask is None)
        return self.proj(y.transpose(1, 2).reshape(B, T, D)), (k, v)


class Block(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, pos: Tensor, mask: Tensor | None, causal: bool, past=None):
        a, kv = self.attn(self.ln1(x), pos, mask, causal, past)
        x = x + self.drop(a)
        return x + self.drop(self.mlp(self.ln2(x))), kv


class Transformer(nn.Module):
    """A stack of pre-norm blocks and a final LayerNorm over (B, T, D) inputs.

    Arguments: width D, layers, heads; dropout (attention weights, residual branches); causal; window W (causal
    only: how far back a position sees, itself included; None for unlimited).

    ``forward(x, cache=None, lengths=None) -> (h, cache)`` mirrors the recurrent layers' ``(output, state)``: a
    causal stack returns a KVCache to continue from when it is not training (the next call's positions follow on),
    and None while training; a bidirectional one takes ``lengths`` and returns None.
    """

    def __init__(self, width: int, layers: int, heads: int, dropout: float = 0.0, causal: bool = True,
                 window: int | None = None):  # fmt: skip
        super().__init__()
        self.width, self.causal, self.window = width, causal, window
        self.blocks = nn.ModuleList(Block(width, heads, dropout) for _ in range(layers))
        self.ln = nn.LayerNorm(width)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2's initialisation: N(0, 0.02) weights, zero biases, residual projections scaled by 1/sqrt(2 layers)."""
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif ".ln" in name or name.startswith("ln"):
                nn.init.ones_(p)
            else:
                std = 0.02 / math.sqrt(2 * len(self.blocks)) if name.endswith(("proj.weight", "mlp.2.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, x: Tensor, cache: KVCache | None = None, lengths: Tensor | None = None):
        T = x.shape[1]
        pos = torch.arange(T, device=x.device)
        if cache is not None:  # on from the last cached position (an empty cache: from 0); a tensor, so a trace
            # of one step serves every position (seqlab.export's step model)
            pos = pos + (torch.cat([cache.pos.new_full((1,), -1), cache.pos]).max() + 1).to(x.device)
        mask, causal = None, self.causal
        if not self.causal:
            if cache is not None:
                raise ValueError("a bidirectional Transformer takes no cache")
            if lengths is not None:
                mask = valid_mask(lengths.to(x.device), T)[:, None, None, :]  # (B, 1, 1, S): padded keys unseen
        else:
            if lengths is not None:
                raise ValueError("a causal Transformer takes no lengths (padding is on the right, so it cannot leak)")
            key_pos = pos if cache is None else torch.cat([cache.pos.to(x.device), pos])
            longer = self.window is not None and x.shape[1] > self.window
            if cache is not None or longer:
                mask = self.band(pos, key_pos)[None, None]  # (1, 1, T, S)
        past = [None] * len(self.blocks) if cache is None else list(zip(cache.k, cache.v, strict=True))
        ks, vs = [], []
        for block, kv in zip(self.blocks, past, strict=True):
            x, (k, v) = block(x, pos, mask, causal, kv)
            ks.append(k)
            vs.append(v)
        x = self.ln(x)
        if not self.causal or self.training:
            return x, None
        if self.window is None:
            return x, KVCache(ks, vs, key_pos)
        keep = self.window - 1  # the next query sees W - 1 of these; a shorter cache is kept whole by the slice
        if keep == 0:  # a window of 1: each position sees itself alone
            return x, KVCache([k[:, :, :0] for k in ks], [v[:, :, :0] for v in vs], key_pos[:0])
        return x, KVCache([k[:, :, -keep:] for k in ks], [v[:, :, -keep:] for v in vs], key_pos[-keep:])

    def band(self, q_pos: Tensor, k_pos: Tensor) -> Tensor:
        """(T, S) bool: query i may see key j when 0 <= pos_i - pos_j < W (causal, within the window)."""
        d = q_pos[:, None] - k_pos[None, :]
        allowed = d >= 0
        if self.window is not None:
            allowed = allowed & (d < self.window)  # not &=: ONNX has no in-place and
        return allowed
