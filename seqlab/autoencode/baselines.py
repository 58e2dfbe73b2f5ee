"""The practitioner's baselines for anomaly detection: sliding-window detectors fitted on normal series only.

Legend: C channels, T time steps, w window width, N = T - w + 1 windows, D = w·C features of one window.

Every detector sees series as float arrays (C, T), channels first, lengths free to differ. ``fit`` takes a list of
normal series; ``score`` gives one score per window, higher = more anomalous, and hands each step the mean of the
scores of the windows that contain it (TimeEval's reverse windowing, ``to_points``):

    point[t] = mean{ window[i] : i ≤ t < i + w }

sklearn and stumpy are imported inside the functions that use them, so importing this module costs nothing.
"""

from __future__ import annotations

import abc
import warnings

import numpy as np

TRAIN_CAP = 20_000  # training windows kept for k-NN and isolation forest, drawn at random with the detector's seed


def windows(x: np.ndarray, w: int) -> np.ndarray:
    """(C, T) -> (N, D) float64: row i is x[:, i : i + w] flattened channel by channel (feature c·w + j = x[c, i + j]).

    A view of x from ``sliding_window_view``; the reshape copies only when C > 1 (the rows are then not strided).
    """
    x = np.asarray(x, dtype=np.float64)
    C, T = x.shape
    v = np.lib.stride_tricks.sliding_window_view(x, w, axis=1)  # (C, N, w), no copy
    return v.transpose(1, 0, 2).reshape(T - w + 1, C * w)


def to_points(window_scores: np.ndarray, T: int, w: int) -> np.ndarray:
    """(N,) window scores -> (T,): step t gets the mean over the windows max(0, t - w + 1) .. min(t, N - 1). O(T)."""
    s = np.asarray(window_scores, dtype=np.float64)
    N = T - w + 1
    if s.shape != (N,):
        raise ValueError(f"expected {N} window scores for T={T}, w={w}, got shape {s.shape}")
    cs = np.concatenate(([0.0], np.cumsum(s)))  # (N + 1,)
    t = np.arange(T)
    lo, hi = np.maximum(t - w + 1, 0), np.minimum(t, N - 1) + 1
    return (cs[hi] - cs[lo]) / (hi - lo)


def period(series: list[np.ndarray], low: int = 4, high: int = 256) -> int:
    """Dominant period of the normal data: the lag in [low, high] of the highest local maximum of the autocorrelation
    of the first channel (the "highest autocorrelation" window heuristic of TimeEval's benchmarks).

        ρ(k) = Σ_t (x_t - x̄)(x_{t+k} - x̄) / Σ_t (x_t - x̄)²      for k ≤ T // 2, the biased estimator

    ρ is averaged over the series at each lag among those at least 2k long (so the longest decides the long lags);
    constant series carry no information and are skipped. Falls back to low·4 (clipped to [low, high]) when ρ has no
    local maximum in range.
    """
    longest = max(np.shape(x)[-1] for x in series)
    L = min(high + 1, longest // 2)  # one lag past high, so a maximum at high itself can be seen
    acfs = np.full((len(series), L + 1), np.nan)
    for i, x in enumerate(series):
        v = np.asarray(x, dtype=np.float64).reshape(-1, np.shape(x)[-1])[0]
        v = v - v.mean()
        power = np.abs(np.fft.rfft(v, 2 * len(v))) ** 2  # zero padding to 2T: the circular correlation is the linear
        r = np.fft.irfft(power, 2 * len(v))[: min(L, len(v) // 2) + 1]
        if r[0] > 0:
            acfs[i, : len(r)] = r / r[0]
    if np.isnan(acfs[:, 0]).all():
        return int(np.clip(4 * low, low, high))
    seen = np.isfinite(acfs).sum(axis=0)
    rho = np.where(seen > 0, np.nansum(acfs, axis=0) / np.maximum(seen, 1), np.nan)  # nan lags are never a peak
    k = np.arange(max(low, 1), min(high, L - 1) + 1)
    peak = k[(rho[k] > rho[k - 1]) & (rho[k] > rho[k + 1])]
    if len(peak) == 0:
        return int(np.clip(4 * low, low, high))
    return int(peak[np.argmax(rho[peak])])


def _check(x: np.ndarray, width: int, channels: int | None = None) -> np.ndarray:
    """One series as float64 (C, T), checked: 2-D, finite, at least ``width`` long, ``channels`` channels if given."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"a series must be (channels, time), got shape {x.shape}")
    if x.shape[1] < width:
        raise ValueError(f"a series of length {x.shape[1]} is shorter than the window width {width}")
    if channels is not None and x.shape[0] != channels:
        raise ValueError(f"fitted on {channels} channels, got a series with {x.shape[0]}")
    if not np.isfinite(x).all():
        raise ValueError("a series holds nan or inf")
    return x


class WindowDetector(abc.ABC):
    """Abstract: ``fit`` on normal series, ``score`` one series step by step. Subclasses define ``_fit`` and
    ``_window_scores`` ((C, T) -> (N,)); the checks and reverse windowing live here, once."""

    def __init__(self, width: int, seed: int = 0):
        if width < 1:
            raise ValueError(f"width must be at least 1, got {width}")
        self.width, self.seed = width, seed
        self.channels: int | None = None

    def fit(self, series: list[np.ndarray]) -> WindowDetector:
        if len(series) == 0:
            raise ValueError("fit needs at least one normal series")
        xs = [_check(x, self.width) for x in series]
        if len({x.shape[0] for x in xs}) > 1:
            raise ValueError(f"the normal series differ in channels: {sorted({x.shape[0] for x in xs})}")
        self.channels = xs[0].shape[0]
        self._fit(xs)
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        """(C, T) -> (T,) anomaly score per step, higher = more anomalous."""
        if self.channels is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted")
        x = _check(x, self.width, self.channels)
        return to_points(self._window_scores(x), x.shape[1], self.width)

    @abc.abstractmethod
    def _fit(self, series: list[np.ndarray]) -> None: ...

    @abc.abstractmethod
    def _window_scores(self, x: np.ndarray) -> np.ndarray: ...


def _training_windows(series: list[np.ndarray], w: int, seed: int) -> np.ndarray:
    """(M, D) windows of all normal series, at most TRAIN_CAP of them drawn without replacement (indices are drawn
    first, so the full window matrix is never built)."""
    counts = np.array([x.shape[1] - w + 1 for x in series])
    total = int(counts.sum())
    pick = np.arange(total)
    if total > TRAIN_CAP:
        pick = np.sort(np.random.default_rng(seed).choice(total, TRAIN_CAP, replace=False))
    offsets = np.concatenate(([0], np.cumsum(counts)))
    which = np.searchsorted(offsets, pick, side="right") - 1  # the series each picked window comes from
    return np.concatenate([windows(x, w)[pick[which == i] - offsets[i]] for i, x in enumerate(series)])


class KNN(WindowDetector):
    """Distance from each window to its k-th nearest normal window (k = 5, the PyOD and TimeEval default; fewer when
    there are fewer training windows). At most 20,000 training windows, drawn at random with ``seed``."""

    k = 5  # the k-th neighbour's distance, PyOD's method="largest"

    def _fit(self, series: list[np.ndarray]) -> None:
        from sklearn.neighbors import NearestNeighbors

        train = _training_windows(series, self.width, self.seed)
        self._k = min(self.k, len(train))
        self._nn = NearestNeighbors(n_neighbors=self._k).fit(train)

    def _window_scores(self, x: np.ndarray) -> np.ndarray:
        distance, _ = self._nn.kneighbors(windows(x, self.width))  # (N, k), ascending
        return distance[:, -1]


class IsolationForest(WindowDetector):
    """sklearn's isolation forest (100 trees, ``random_state=seed``) on the normal windows (at most 20,000, drawn at
    random with ``seed``); score = -score_samples, the mean path length turned so that short = high."""

    def _fit(self, series: list[np.ndarray]) -> None:
        from sklearn.ensemble import IsolationForest as Forest

        self._forest = Forest(n_estimators=100, random_state=self.seed).fit(
            _training_windows(series, self.width, self.seed)
        )

    def _window_scores(self, x: np.ndarray) -> np.ndarray:
        return -self._forest.score_samples(windows(x, self.width))


class MatrixProfile(WindowDetector):
    """AB-join matrix profile against the normal data: per channel, the z-normalised Euclidean distance from each test
    subsequence to its nearest normal subsequence, summed over channels.

        d(a, b) = ‖(a - ā)/σ_a - (b - b̄)/σ_b‖ = √(2w (1 - corr(a, b)))

    computed by ``stumpy.stump`` with T_B = the normal series of that channel joined with nan between them: stumpy
    never matches a window that spans a nan, so no subsequence crosses two series. stumpy scores a constant window
    against a non-constant one as √w and two constant ones as 0, so flat stretches stay finite. Any non-finite window
    score left (none is expected) is replaced by the largest finite one of that series, 0 if there is none.

    The first call in a process compiles stumpy's parallel kernel with numba: about 40 s on two cores, a few when
    numba's on-disk cache is on (see ``stumpy.cache``).
    """

    def _fit(self, series: list[np.ndarray]) -> None:
        gap = np.full((self.channels, 1), np.nan)
        joined = np.concatenate([part for x in series for part in (x, gap)][:-1], axis=1)  # (C, ΣT + gaps)
        self._normal = np.ascontiguousarray(joined)

    def _window_scores(self, x: np.ndarray) -> np.ndarray:
        import stumpy

        with warnings.catch_warnings():  # its hint to use ignore_trivial on near-zero distances is for self-joins
            warnings.filterwarnings("ignore", message="A large number of values in `P` are smaller", module="stumpy")
            profile = sum(
                stumpy.stump(T_A=a, m=self.width, T_B=b, ignore_trivial=False)[:, 0].astype(np.float64)
                for a, b in zip(np.ascontiguousarray(x), self._normal, strict=True)
            )  # (N,)
        finite = np.isfinite(profile)
        if not finite.all():
            profile[~finite] = profile[finite].max() if finite.any() else 0.0
        return profile


BASELINES = {"matrix profile": MatrixProfile, "isolation forest": IsolationForest, "k-NN": KNN}
