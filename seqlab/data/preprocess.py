"""Series preprocessing, once for every task that reads labelled-table series (classify, autoencode, gan): fitted on
the training series, saved with the run, applied to every file the run later reads.

    prep = SeriesPrep.fit(train_series, train_names, missing="refuse", scaling="standard")
    x = prep(series, names)          # check -> missing values -> per-channel scaling
    meta |= prep.to_json()           # {"channels", "mean", "std"} or {"channels", "lo", "hi"}
    prep = SeriesPrep.from_json(meta, missing)

Order: a series is checked first (none empty, the run's channel count), then its missing values are refused (named)
or interpolated, then each channel is scaled by statistics of the training series' valid steps:
- ``standard``: mean 0, standard deviation 1 (classify, autoencode); a constant channel is centred, not scaled;
- ``minmax``: to [0, 1] (the GAN: TimeGAN's recovery network ends in a sigmoid); a constant channel maps to 0.
Forecasting scales each window by its own context instead (RevIN, seqlab.forecast), so it has no fitted scaling.
"""

from __future__ import annotations

import numpy as np

from .errors import DataError
from .sequences import check_series, fix_missing
from .tables import Table

SCALINGS = ("standard", "minmax")
MIN_STD = 1e-8  # below this a channel is constant: centred, not divided by ~0


class Standardizer:
    """Per-channel mean and standard deviation over every valid step of the training series; applied to all."""

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)

    @classmethod
    def fit(cls, series: list[np.ndarray]) -> Standardizer:
        steps = np.concatenate(series, axis=0).astype(np.float64)  # (sum T_i, C)
        std = steps.std(axis=0)
        return cls(steps.mean(axis=0), np.where(std > MIN_STD, std, 1.0))

    def __call__(self, series: list[np.ndarray]) -> list[np.ndarray]:
        return [(s - self.mean) / self.std for s in series]

    def inverse(self, series: list[np.ndarray]) -> list[np.ndarray]:
        return [s * self.std + self.mean for s in series]

    def to_json(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}


class MinMax:
    """Per-channel minimum and maximum over the training series' steps: each channel to [0, 1]."""

    def __init__(self, lo, hi):
        self.lo, self.hi = np.asarray(lo, np.float32), np.asarray(hi, np.float32)

    @classmethod
    def fit(cls, series: list[np.ndarray]) -> MinMax:
        steps = np.concatenate(series)
        return cls(steps.min(0), steps.max(0))

    @property
    def span(self) -> np.ndarray:
        return np.where(self.hi > self.lo, self.hi - self.lo, 1.0)

    def __call__(self, series: list[np.ndarray]) -> list[np.ndarray]:
        return [(s - self.lo) / self.span for s in series]

    def inverse(self, series: list[np.ndarray]) -> list[np.ndarray]:
        return [s * self.span + self.lo for s in series]

    def to_json(self) -> dict:
        return {"lo": self.lo.tolist(), "hi": self.hi.tolist()}


class SeriesPrep:
    """Check, missing values and scaling of a task's series (the module docstring), fitted on training series."""

    def __init__(self, scale: Standardizer | MinMax, channels: int, missing: str = "refuse"):
        self.scale, self.channels, self.missing = scale, channels, missing

    @classmethod
    def fit(cls, series: list[np.ndarray], names: list[str], missing: str = "refuse",
            scaling: str = "standard") -> SeriesPrep:  # fmt: skip
        if scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {', '.join(SCALINGS)}; got {scaling!r}")
        check_series(series, names)
        series = fix_missing(series, names, missing)
        scale = Standardizer.fit(series) if scaling == "standard" else MinMax.fit(series)
        return cls(scale, series[0].shape[1], missing)

    def __call__(self, series: list[np.ndarray], names: list[str]) -> list[np.ndarray]:
        check_series(series, names, self.channels)
        return self.scale(fix_missing(series, names, self.missing))

    def inverse(self, series: list[np.ndarray]) -> list[np.ndarray]:
        """Scaled series back in the data's units (e.g. generated ones)."""
        return self.scale.inverse(series)

    def to_json(self) -> dict:
        return {"channels": self.channels, **self.scale.to_json()}

    @classmethod
    def from_json(cls, spec: dict, missing: str = "refuse") -> SeriesPrep:
        scale = Standardizer(spec["mean"], spec["std"]) if "mean" in spec else MinMax(spec["lo"], spec["hi"])
        return cls(scale, spec["channels"], missing)


def series_of(table: Table, reader: str) -> Table:
    """The table itself when it holds series; a text table is refused, naming its file and the task."""
    if table.kind != "series":
        source = table.names[0].split(" of ", 1)[-1] if table.names else "the data"
        raise DataError(f"{source}: holds text; {reader} reads series")
    return table
