"""Augmentation of training series, for small training sets (Um et al. 2017; Le Guennec et al. 2016):

- ``jitter``: Gaussian noise of standard deviation ``JITTER`` on every value (series are standardised per channel,
  so that is 3% of a channel's spread);
- ``scale``: each series' channels multiplied by factors drawn from N(1, ``SCALE``²);
- ``slice``: a random window of ``SLICE`` of the series' length (at least one step), as window slicing.

    items = augment(items, ("jitter", "scale", "slice"), np.random.default_rng([seed, step]))

Each item is a (T, C) float array; new arrays are returned and the inputs are never changed. The generator is the
caller's, so a training batch stays a pure function of its step (resuming reads what the first run read).
"""

from __future__ import annotations

import math

import numpy as np

AUGMENTATIONS = ("jitter", "scale", "slice")
JITTER, SCALE, SLICE = 0.03, 0.1, 0.9


def augment(items: list[np.ndarray], kinds: tuple[str, ...], rng: np.random.Generator) -> list[np.ndarray]:
    out = []
    for s in items:
        if "slice" in kinds:
            keep = max(1, math.ceil(SLICE * len(s)))
            start = int(rng.integers(0, len(s) - keep + 1))
            s = s[start : start + keep]
        if "scale" in kinds:
            s = s * rng.normal(1.0, SCALE, size=(1, s.shape[1])).astype(s.dtype)
        if "jitter" in kinds:
            s = s + rng.normal(0.0, JITTER, size=s.shape).astype(s.dtype)
        out.append(s)
    return out


def parse(text: str) -> tuple[str, ...]:
    """'jitter,scale' -> ('jitter', 'scale'); 'none' -> (). Refuses an unknown name."""
    if text == "none":
        return ()
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    for k in kinds:
        if k not in AUGMENTATIONS:
            raise ValueError(f"augment must be none or a comma list of {', '.join(AUGMENTATIONS)}; got {k!r}")
    return kinds
