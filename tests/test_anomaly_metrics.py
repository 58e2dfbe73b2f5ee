"""Anomaly-detection scores (seqlab.autoencode.metrics) and the window baselines (seqlab.autoencode.baselines).

Oracles: hand-computed cases and a per-range loop written from Tatbul et al.'s paper for ``range_scores`` (it
also matched prts 1.0.0.3, the reference implementation TimeEval wraps, which pins numpy < 2);
sklearn for ``average_precision``; naive loops for ``smooth``, ``to_points``, ``windows``
and a brute-force nearest z-normalised subsequence for the matrix profile.
"""

from __future__ import annotations

import numpy as np
import pytest

from seqlab.autoencode.baselines import (
    BASELINES,
    KNN,
    MatrixProfile,
    _training_windows,
    period,
    to_points,
    windows,
)
from seqlab.autoencode.metrics import average_precision, intervals, range_scores, smooth

W = 20  # window width of the baseline tests: one period of the sine family


@pytest.fixture(scope="module", autouse=True)
def _stumpy_cache(request, tmp_path_factory):
    """stumpy does not cache its numba kernels: the first stump call in a process compiles for ~40 s on two cores.
    Turn numba's on-disk cache on for stumpy's functions, in pytest's cache folder, so later runs take seconds."""
    numba = pytest.importorskip("numba")
    stumpy_cache = pytest.importorskip("stumpy.cache")
    cache = getattr(request.config, "cache", None)
    numba.config.CACHE_DIR = str(cache.mkdir("numba") if cache is not None else tmp_path_factory.mktemp("numba"))
    import importlib

    for module, name in stumpy_cache.get_njit_funcs():
        getattr(importlib.import_module(f"stumpy.{module}"), name).enable_caching()


# ---------------------------------------------------------------------------------------------------- metrics


def test_intervals_edge_cases():
    assert intervals(np.zeros(0, bool)) == []
    assert intervals(np.zeros(5, bool)) == []
    assert intervals(np.ones(5, bool)) == [(0, 5)]
    assert intervals(np.array([1, 1, 0, 1, 0, 0, 1, 1, 1], bool)) == [(0, 2), (3, 4), (6, 9)]
    assert intervals(np.array([0, 1, 0], bool)) == [(1, 2)]
    with pytest.raises(ValueError, match="1-D"):
        intervals(np.zeros((2, 3), bool))


@pytest.mark.parametrize("T", [1, 2, 5, 37])
@pytest.mark.parametrize("width", [1, 2, 3, 4, 7, 50])
def test_smooth_equals_a_naive_window_mean(T, width):
    s = np.random.default_rng(T * width).normal(size=T) + 1e6  # an offset the cumsum must not lose digits to
    naive = [s[max(0, t - width // 2) : min(T, t + (width - 1) // 2 + 1)].mean() for t in range(T)]
    np.testing.assert_allclose(smooth(s, width), naive, rtol=0, atol=1e-8)
    assert smooth(s, width).dtype == np.float64


def test_smooth_matches_pandas_centred_rolling_and_width_one_is_identity():
    pd = pytest.importorskip("pandas")
    s = np.random.default_rng(0).normal(size=30)
    for width in (2, 5, 6):
        want = pd.Series(s).rolling(width, center=True, min_periods=1).mean().to_numpy()
        np.testing.assert_allclose(smooth(s, width), want, atol=1e-12)
    np.testing.assert_array_equal(smooth(s, 1), s)
    with pytest.raises(ValueError, match="width"):
        smooth(s, 0)


def test_average_precision_equals_sklearn_with_ties():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    for i in range(100):
        n = int(rng.integers(2, 60))
        y = rng.random(n) < rng.uniform(0.05, 0.6)
        if not y.any():
            y[rng.integers(n)] = True
        s = rng.integers(0, 1 + i % 6, n) if i % 2 else rng.normal(size=n)  # few distinct values: many ties
        assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert average_precision([1, 0], [0.5, 0.5]) == 0.5  # a tie enters whole: precision 1/2, whatever the order
    assert average_precision([0, 1, 1], [0.1, 0.9, 0.8]) == 1.0
    assert np.isnan(average_precision([0, 0, 0], [0.1, 0.2, 0.3]))


def _flags(*steps: int) -> np.ndarray:
    return np.array(steps, dtype=bool)


def test_range_scores_hand_computed():
    half = range_scores([_flags(0, 1, 1, 1, 1, 0)], [_flags(0, 1, 1, 0, 0, 0)])
    assert half == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3})
    # One real range of 6 met by two predictions of 2 steps each: γ = 1/2 on ω = 2/6 + 2/6.
    split = range_scores([_flags(0, 1, 1, 1, 1, 1, 1, 0)], [_flags(0, 1, 1, 0, 0, 1, 1, 0)])
    assert split["recall"] == pytest.approx(0.5 * (2 / 6 + 2 / 6))
    assert split["precision"] == pytest.approx(1.0)
    # One prediction of 10 meets two real ranges of 2: precision γ = 1/2 on 4/10; each real range is covered once.
    wide = range_scores([_flags(0, 0, 1, 1, 0, 0, 1, 1, 0, 0)], [np.ones(10, bool)])
    assert wide["precision"] == pytest.approx(0.5 * 0.4)
    assert wide["recall"] == pytest.approx(1.0)
    # Existence weight: a real range of 10 touched at one step.
    touch = range_scores([np.ones(10, bool)], [_flags(1, *[0] * 9)], alpha=0.3)
    assert touch["recall"] == pytest.approx(0.3 + 0.7 * 0.1)
    assert touch["precision"] == pytest.approx(1.0)


def test_range_scores_conventions():
    nothing_predicted = range_scores([_flags(0, 1, 1, 0)], [_flags(0, 0, 0, 0)])
    assert nothing_predicted == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    nothing_real = range_scores([_flags(0, 0, 0, 0)], [_flags(0, 1, 0, 0)])
    assert nothing_real["precision"] == 0.0 and np.isnan(nothing_real["recall"]) and np.isnan(nothing_real["f1"])
    with pytest.raises(ValueError, match="1-D of one length"):
        range_scores([_flags(0, 1)], [_flags(0, 1, 0)])
    with pytest.raises(ValueError, match="series"):
        range_scores([_flags(0, 1)], [])


def test_range_scores_pool_ranges_over_series_and_never_join_them():
    true = [_flags(0, 1, 1), _flags(1, 1, 0)]
    pred = [_flags(0, 1, 0), _flags(0, 1, 0)]
    # Apart: two real ranges each half covered. Joined, it would be one range met twice: γ = 1/2 on 2/4.
    assert range_scores(true, pred)["recall"] == pytest.approx(0.5)
    assert range_scores([np.concatenate(true)], [np.concatenate(pred)])["recall"] == pytest.approx(0.25)
    # Pooled, not averaged per series: 3 false alarms in the first series, 1 hit in the second -> 1/4, not 1/2.
    pooled = range_scores([_flags(0, 0, 0, 0, 0), _flags(1, 1, 0)], [_flags(1, 0, 1, 0, 1), _flags(1, 1, 0)])
    assert pooled["precision"] == pytest.approx(0.25)
    assert pooled["recall"] == pytest.approx(1.0)


def _random_runs(rng: np.random.Generator, T: int) -> np.ndarray:
    """Flags from a two-state Markov chain with random switching rates; at least one True."""
    stay = rng.uniform(0.5, 0.98, size=2)  # P(keep the state) for False, True
    f = np.zeros(T, bool)
    f[0] = rng.random() < 0.3
    for t in range(1, T):
        f[t] = f[t - 1] if rng.random() < stay[int(f[t - 1])] else not f[t - 1]
    if not f.any():
        f[rng.integers(T)] = True
    return f


def _naive_range_scores(true: np.ndarray, pred: np.ndarray, alpha: float) -> tuple[float, float]:
    """Tatbul et al. 2018 per range, written from the paper: flat bias, reciprocal cardinality, existence weight
    alpha for recall and 0 for precision."""

    def runs(f):
        edges = np.flatnonzero(np.diff(np.r_[0, f.astype(int), 0]))
        return list(zip(edges[::2], edges[1::2], strict=True))

    def score(a_ranges, b_ranges, weight):
        out = []
        for a0, a1 in a_ranges:
            hit = [o for b0, b1 in b_ranges if (o := min(a1, b1) - max(a0, b0)) > 0]
            gamma = 1.0 / len(hit) if len(hit) > 1 else 1.0
            out.append(weight * bool(hit) + (1 - weight) * gamma * sum(hit) / (a1 - a0))
        return float(np.mean(out))

    R, P = runs(true), runs(pred)
    return score(P, R, 0.0), score(R, P, alpha)


def test_range_scores_equal_the_papers_definition_on_random_series():
    """The oracle is a per-range loop from the paper; range_scores also matched prts 1.0.0.3, the reference
    implementation that TimeEval wraps, on these cases (prts pins numpy < 2, so it is not a test dependency)."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        T = int(rng.integers(50, 301))
        true, pred = _random_runs(rng, T), _random_runs(rng, T)
        alpha = float(rng.choice([0.0, 0.5, rng.random()]))
        got = range_scores([true], [pred], alpha=alpha)
        p, r = _naive_range_scores(true, pred, alpha)
        assert got["precision"] == pytest.approx(p, abs=1e-12)
        assert got["recall"] == pytest.approx(r, abs=1e-12)
        assert got["f1"] == pytest.approx(2 * p * r / (p + r) if p + r else 0.0, abs=1e-12)


# ---------------------------------------------------------------------------------------------------- baselines


def test_windows_layout_and_view():
    x = np.arange(2 * 7, dtype=np.float64).reshape(2, 7)
    v = windows(x, 3)
    assert v.shape == (5, 6)
    for i in range(5):
        np.testing.assert_array_equal(v[i], np.concatenate([x[0, i : i + 3], x[1, i : i + 3]]))
    one = x[:1]
    assert np.shares_memory(windows(one, 3), one)  # one channel: no copy


@pytest.mark.parametrize(("T", "w"), [(1, 1), (5, 1), (5, 5), (10, 3), (31, 8)])
def test_to_points_equals_a_naive_loop(T, w):
    s = np.random.default_rng(T + w).normal(size=T - w + 1)
    naive = [np.mean([s[i] for i in range(T - w + 1) if i <= t < i + w]) for t in range(T)]
    np.testing.assert_allclose(to_points(s, T, w), naive, atol=1e-12)
    with pytest.raises(ValueError, match="window scores"):
        to_points(s[:-1], T, w)


def _sines(rng: np.random.Generator, T: int, p: float = W) -> np.ndarray:
    """(2, T): a sine and a half-amplitude cosine of period p, random phase, light noise."""
    t = np.arange(T) + rng.uniform(0, p)
    x = np.stack([np.sin(2 * np.pi * t / p), 0.5 * np.cos(2 * np.pi * t / p)])
    return x + 0.05 * rng.normal(size=x.shape)


def test_period_of_sines():
    rng = np.random.default_rng(0)
    assert 19 <= period([_sines(rng, T) for T in (200, 150, 260)]) <= 21
    assert 36 <= period([_sines(rng, 400, p=37.0)[0]]) <= 38  # 1-D series count as one channel
    assert period([np.linspace(0, 1, 300)[None]]) == 16  # a ramp: no peak, the fallback low·4
    assert period([np.ones((1, 100))], low=8, high=20) == 20  # constant: fallback, clipped to high
    assert period([_sines(rng, 1000, p=300.0)], high=256) == 16  # the true period is out of range


def _normal_family(rng: np.random.Generator) -> list[np.ndarray]:
    return [_sines(rng, T) for T in (200, 180, 230, 210)]  # unequal lengths


@pytest.fixture(scope="module")
def fitted() -> dict[str, object]:
    normal = _normal_family(np.random.default_rng(1))
    return {name: cls(W, seed=0).fit(normal) for name, cls in BASELINES.items()}


def _spike(x: np.ndarray) -> tuple[np.ndarray, slice]:
    x = x.copy()
    x[1, 100:103] += 3.0
    return x, slice(100, 103)


def _flat(x: np.ndarray) -> tuple[np.ndarray, slice]:
    x = x.copy()
    x[:, 90:140] = x[:, 89:90]  # a stuck sensor: both channels hold their last value for 50 steps
    return x, slice(90, 140)


@pytest.mark.parametrize("name", list(BASELINES))
@pytest.mark.parametrize("inject", [_spike, _flat])
def test_baselines_put_their_highest_score_inside_the_anomaly(fitted, name, inject):
    x, where = inject(_sines(np.random.default_rng(2), 200))
    s = fitted[name].score(x)
    assert s.shape == (200,) and np.isfinite(s).all()
    assert where.start <= int(np.argmax(s)) < where.stop, (name, int(np.argmax(s)))
    clean = fitted[name].score(_sines(np.random.default_rng(2), 200))
    # Against the same series without the anomaly, measured from its median (isolation forest scores sit near 0.5).
    level = np.median(clean)
    assert s.max() - level > 2 * (clean.max() - level)


@pytest.mark.parametrize("name", list(BASELINES))
def test_baselines_stay_finite_on_flat_data_and_take_any_length(name):
    rng = np.random.default_rng(3)
    normal = _normal_family(rng)
    normal[0][:, 50:120] = 0.25  # a flat stretch in the normal data too
    det = BASELINES[name](W).fit(normal)
    for x in (np.full((2, 60), 0.25), np.zeros((2, W)), _sines(rng, 333)):
        s = det.score(x)
        assert s.shape == (x.shape[1],) and np.isfinite(s).all()


@pytest.mark.parametrize("name", list(BASELINES))
def test_short_or_malformed_series_raise(name):
    det = BASELINES[name](W).fit(_normal_family(np.random.default_rng(4)))
    with pytest.raises(ValueError, match=r"length 10 is shorter than the window width 20"):
        det.score(np.zeros((2, 10)))
    with pytest.raises(ValueError, match=r"length 19 is shorter than the window width 20"):
        BASELINES[name](W).fit([np.zeros((2, 50)), np.zeros((2, 19))])
    with pytest.raises(ValueError, match="channels"):
        det.score(np.zeros((3, 50)))
    with pytest.raises(ValueError, match="nan"):
        det.score(np.full((2, 50), np.nan))


def _znorm_distance(a: np.ndarray, b: np.ndarray) -> float:
    za, zb = (a - a.mean()) / a.std(), (b - b.mean()) / b.std()
    return float(np.linalg.norm(za - zb))


def test_matrix_profile_is_the_nearest_normal_subsequence_within_one_series():
    rng = np.random.default_rng(5)
    w = 8
    normal = [rng.normal(size=(2, 30)), rng.normal(size=(2, 25))]
    x = rng.normal(size=(2, 40))
    x[:, 10:18] = np.concatenate([normal[0][:, -4:], normal[1][:, :4]], axis=1)  # only matches across the join
    want = [
        sum(
            min(_znorm_distance(x[c, i : i + w], s[c, j : j + w]) for s in normal for j in range(s.shape[1] - w + 1))
            for c in range(2)
        )
        for i in range(40 - w + 1)
    ]
    got = MatrixProfile(w).fit(normal)._window_scores(x)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert got[10] > 1.0  # the window made of the two series' ends finds no match


def test_training_windows_are_capped_at_random_with_the_seed(monkeypatch):
    from seqlab.autoencode import baselines

    series = [np.arange(2 * T, dtype=np.float64).reshape(2, T) + 1000 * i for i, T in enumerate((60, 45))]
    every = np.concatenate([windows(x, 5) for x in series])
    assert np.array_equal(_training_windows(series, 5, seed=0), every)
    monkeypatch.setattr(baselines, "TRAIN_CAP", 30)
    a, b, c = (_training_windows(series, 5, seed=s) for s in (0, 0, 1))
    assert a.shape == (30, 10) and np.array_equal(a, b) and not np.array_equal(a, c)
    assert all((every == row).all(axis=1).any() for row in a)  # each one a real window of one series
    assert len(np.unique(a, axis=0)) == 30  # drawn without replacement
    assert KNN(5, seed=0).fit(series)._nn.n_samples_fit_ == 30
