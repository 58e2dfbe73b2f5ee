"""Labelled sequences of unequal length: checks, labels, per-channel scaling, splits, and length-bucketed batches.

Legend: n sequences, B batch, T time (T_i of sequence i), C channels.

A time series is held as a float32 array (T_i, C) — time first, as the models read it (batch-first (B, T, C)).
From Python, series come in aeon's convention and are turned around here: a 3-D array (n, C, T), a 2-D array (n, T)
(univariate), or a list of (C, T_i) arrays (or 1-D arrays, univariate). A text is held as an int64 array (T_i,)
of token ids. ``names[i]`` is how an error names item i ("row 12 of data.csv", "series 3").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .errors import DataError


@dataclass
class SequenceSet:
    """Sequences, their class indices (None when unlabelled, e.g. for predict) and their names for messages."""

    x: list[np.ndarray]
    y: np.ndarray | None
    names: list[str]

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, index: Sequence[int]) -> SequenceSet:
        return SequenceSet(
            [self.x[i] for i in index], None if self.y is None else self.y[index], [self.names[i] for i in index]
        )

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(s) for s in self.x], dtype=np.int64)

    def batches(self, size: int):
        """For inference: (index, x, lengths) per batch, longest first so each batch pads little; callers write
        results back at ``index``."""
        for index in by_length(self.lengths, size):
            yield (index, *pad([self.x[i] for i in index]))


def series_from_arrays(X, where: str = "X") -> tuple[list[np.ndarray], list[str]]:
    """aeon-style input -> a list of float32 (T_i, C) arrays and their names. Refuses ragged channel counts."""
    if isinstance(X, np.ndarray) and X.dtype != object:
        if X.ndim == 2:
            X = X[:, None, :]  # (n, T) univariate -> (n, 1, T)
        if X.ndim != 3:
            raise DataError(f"{where}: expected an array (n, channels, length) or (n, length), got shape {X.shape}")
        items = list(X)
    elif isinstance(X, (list, tuple)) or (isinstance(X, np.ndarray) and X.ndim == 1):
        items = list(X)
    else:
        raise DataError(f"{where}: expected an array (n, channels, length) or a list of (channels, length) arrays")
    out, names = [], []
    for i, item in enumerate(items):
        name = f"series {i} of {where}"
        try:
            a = np.asarray(item, dtype=np.float32)
        except (ValueError, TypeError):
            raise DataError(f"{name}: not numeric, or its rows have different lengths") from None
        if a.ndim == 1:
            a = a[None, :]
        if a.ndim != 2:
            raise DataError(f"{name}: expected (channels, length), got shape {a.shape}")
        out.append(np.ascontiguousarray(a.T))  # (T_i, C)
        names.append(name)
    check_series(out, names)
    return out, names


def check_series(series: list[np.ndarray], names: list[str], channels: int | None = None) -> None:
    """Refuse what no model can read: no series, an empty one, channel counts that differ."""
    if not series:
        raise DataError("no sequences to read")
    want = series[0].shape[1] if channels is None else channels
    for s, name in zip(series, names, strict=True):
        if s.shape[0] == 0:
            raise DataError(f"{name}: empty sequence (length 0)")
        if s.shape[1] != want:
            raise DataError(f"{name}: {s.shape[1]} channels, expected {want} as the {'model' if channels else 'first'}")


def fix_missing(series: list[np.ndarray], names: list[str], how: str) -> list[np.ndarray]:
    """NaN or Inf: 'refuse' names the first one; 'impute' interpolates linearly within each channel.

    Imputation draws a straight line between the nearest finite values before and after a gap and holds the edge
    values flat at either end. A channel with no finite value at all is still refused: there is nothing to draw from.
    """
    if how not in ("refuse", "impute"):
        raise DataError(f"unknown missing-value policy {how!r}; expected refuse or impute")
    out = []
    for s, name in zip(series, names, strict=True):
        bad = ~np.isfinite(s)
        if not bad.any():
            out.append(s)
            continue
        t, c = np.argwhere(bad)[0]
        if how == "refuse":
            raise DataError(f"{name}: {s[t, c]} at time step {t}, channel {c} (pass --missing impute to interpolate)")
        s = s.copy()
        steps = np.arange(len(s))
        for c in range(s.shape[1]):
            ok = ~bad[:, c]
            if not ok.any():
                raise DataError(f"{name}: channel {c} has no finite value to impute from")
            s[~ok, c] = np.interp(steps[~ok], steps[ok], s[ok, c])
        out.append(s)
    return out


class Labels:
    """Labels of any type (str, int, float, bool) <-> class indices 0..K-1, in sorted order as scikit-learn."""

    def __init__(self, classes: Sequence):
        self.classes = np.asarray(classes)
        self._index = {self._key(c): i for i, c in enumerate(self.classes.tolist())}

    @staticmethod
    def _key(value):
        return value.item() if isinstance(value, np.generic) else value

    @classmethod
    def fit(cls, y: Sequence, where: str = "y") -> Labels:
        classes = np.unique(np.asarray(y))
        if len(classes) < 2:
            raise DataError(f"{where}: a classifier needs at least two classes, found only {classes.tolist()}")
        return cls(classes)

    def encode(self, y: Sequence, names: list[str]) -> np.ndarray:
        out = np.empty(len(y), dtype=np.int64)
        for i, (value, name) in enumerate(zip(np.asarray(y).tolist(), names, strict=True)):
            index = self._index.get(self._key(value))
            if index is None:
                known = ", ".join(map(str, self.classes.tolist()[:10]))
                raise DataError(f"{name}: label {value!r} was never seen in training (classes: {known})")
            out[i] = index
        return out

    def decode(self, index: np.ndarray) -> np.ndarray:
        return self.classes[index]


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices: ``fraction`` of each class, rounded, held out — at least one from every class
    with two or more members, and never a class's last member. Sorted, so the split is a pure function of its inputs.
    """
    if not 0 <= fraction < 1:
        raise DataError(f"the validation fraction must lie in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    val = []
    if fraction > 0:
        for k in np.unique(y):
            members = rng.permutation(np.flatnonzero(y == k))
            take = min(len(members) - 1, max(1, round(fraction * len(members))))
            val.extend(members[:take].tolist())
    val = np.array(sorted(val), dtype=np.int64)
    train = np.setdiff1d(np.arange(len(y)), val)
    return train, val


class Buckets:
    """Length-bucketed batches for training: epoch e is a pure function of (seed, e), so resuming reads the same.

    Each epoch shuffles the sequences, cuts the shuffled order into pools of ``pool`` batches, sorts each pool by
    length and cuts it into batches, then shuffles the batches. Batches hold sequences of similar length (little
    padding) yet differ from epoch to epoch. The last batch of a pool may be smaller.
    """

    def __init__(self, lengths: np.ndarray, batch: int, seed: int, pool: int = 50):
        self.lengths, self.batch, self.seed, self.pool = np.asarray(lengths), batch, seed, pool
        n = len(self.lengths)
        per_pool = batch * pool
        self.per_epoch = sum(math.ceil(min(per_pool, n - s) / batch) for s in range(0, n, per_pool))
        self._epoch, self._batches = -1, []

    def __call__(self, step: int) -> np.ndarray:
        epoch, k = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            rng = np.random.default_rng([self.seed, epoch])
            order = rng.permutation(len(self.lengths))
            batches = []
            for s in range(0, len(order), self.batch * self.pool):
                pool = order[s : s + self.batch * self.pool]
                pool = pool[np.argsort(-self.lengths[pool], kind="stable")]
                batches.extend(pool[i : i + self.batch] for i in range(0, len(pool), self.batch))
            self._batches = [batches[i] for i in rng.permutation(len(batches))]
            self._epoch = epoch
        return self._batches[k]


def by_length(lengths: np.ndarray, batch: int) -> list[np.ndarray]:
    """Batches for evaluation and prediction: longest first, so each batch pads little; callers put results back."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i : i + batch] for i in range(0, len(order), batch)]


def pad(items: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest: (B, T, C) float32 for series or (B, T) int64 for token ids, and lengths (B,)."""
    lengths = torch.tensor([len(a) for a in items], dtype=torch.int64)
    T = int(lengths.max())
    first = items[0]
    out = np.zeros((len(items), T, *first.shape[1:]), dtype=first.dtype)
    for i, a in enumerate(items):
        out[i, : len(a)] = a
    return torch.from_numpy(out), lengths
