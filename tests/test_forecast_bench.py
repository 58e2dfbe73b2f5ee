"""The rolling-origin benchmark's pieces: M4's Naive2, seasonality test and OWA on known cases, the folds, the M1
loader, the statistical baselines, and a tiny bench end to end."""

import csv

import numpy as np
import pytest

from seqlab.data.archives import COLLECTIONS, load_collection, read_tsf
from seqlab.data.errors import DataError
from seqlab.forecast import ForecastConfig
from seqlab.forecast import bench as forecast_bench
from seqlab.forecast.metrics import is_seasonal, naive2, owa, seasonal_indices, smape


def test_m1_yearly_loads_from_aeon_and_a_tsf_is_parsed(tmp_path):
    ys = load_collection("m1-yearly")
    assert len(ys) == 181 and COLLECTIONS["m1-yearly"][:2] == (1, 6)
    assert min(map(len, ys)) == 15 and max(map(len, ys)) == 58 and min(y.min() for y in ys) > 0
    assert ys[0][:3].tolist() == [3600, 7700, 12300]
    (tmp_path / "a.tsf").write_text("# x\n@frequency yearly\n@data\nA:2000-01-01 00-00-00:1,2,3\nB:x:4,5\n")
    assert [y.tolist() for y in read_tsf(tmp_path / "a.tsf")] == [[1, 2, 3], [4, 5]]
    (tmp_path / "b.tsf").write_text("@data\nA:x:1,?,3\n")
    with pytest.raises(DataError, match="missing values"):
        read_tsf(tmp_path / "b.tsf")


def test_naive2_deseasonalises_only_a_seasonal_positive_series():
    t = np.arange(48)
    season = np.array([0.8, 1.0, 1.2, 1.0])
    y = 10 * season[t % 4]  # a pure multiplicative season, flat level
    assert is_seasonal(y, 4)
    np.testing.assert_allclose(seasonal_indices(y, 4), season, rtol=1e-12)
    np.testing.assert_allclose(naive2(y, 6, 4), 10 * season[np.arange(48, 54) % 4], rtol=1e-12)  # perfect
    rng = np.random.default_rng(0)
    noise = 5 + rng.standard_normal(48)
    assert not is_seasonal(noise, 4) and np.array_equal(naive2(noise, 3, 4), np.full(3, noise[-1]))
    assert np.array_equal(naive2(y, 2, 1), [y[-1], y[-1]])  # m = 1: the last value


def test_owa_and_smape_on_known_cases():
    assert owa({"smape": 10, "mase": 2}, {"smape": 20, "mase": 1}) == pytest.approx(0.5 * (0.5 + 2))
    assert smape(np.array([1.0, 0.0]), np.array([3.0, 0.0])).tolist() == [100.0, 0.0]


def test_folds_are_one_horizon_apart_and_skip_histories_too_short():
    ys = [np.ones(30), np.ones(15)]
    ends = forecast_bench.fold_ends(ys, m=1, H=6, folds=3)
    assert ends == [{0: 12}, {0: 18}, {0: 24, 1: 9}]  # 15 - 18 and 15 - 12 leave too little before the origin


def test_statistical_baselines_forecast_the_horizon():
    from seqlab.data.archives import load_series

    air = load_series("airpassengers")
    for method in forecast_bench.STATISTICAL:
        mean, band = forecast_bench.statistical(method, air[:-12], 12, 12)
        assert mean.shape == (12,) and np.isfinite(mean).all(), method
        assert np.abs(mean - air[-12:]).mean() < 100, method
        if band is not None:
            assert (band[0] <= mean + 1e-9).all() and (mean <= band[1] + 1e-9).all()
    comb = forecast_bench.comb(air[:-12], 12, 12)
    assert np.abs(comb - air[-12:]).mean() < 60  # seasonally adjusted, so it follows the season


def test_a_tiny_bench_writes_its_table_and_results(tmp_path):
    cfg = ForecastConfig(steps=15, eval_every=15, hidden=8, layers=1)
    rows = forecast_bench.run(tmp_path, seeds=2, names=["airpassengers"], cfg=cfg, echo=lambda s: None, folds=2,
                              models=("esrnn",))  # fmt: skip
    methods = [r["method"] for r in rows]
    assert methods[:2] == ["Naive2", "seasonal naive"] and "AutoETS" in methods and "Comb" in methods
    assert methods[-3:] == ["seqlab esrnn", "seqlab esrnn", "seqlab esrnn ensemble"]
    assert all(r["pairs"] == 2 for r in rows) and rows[0]["owa"] == pytest.approx(1.0)
    table = (tmp_path / "table.md").read_text()
    assert "| airpassengers | 12, 12 | 2 | seqlab esrnn ensemble (median of 2) |" in table
    with open(tmp_path / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    again = forecast_bench.run(tmp_path, seeds=2, names=["airpassengers"], cfg=cfg, echo=lambda s: None, folds=2,
                               models=("esrnn",))  # fmt: skip
    assert [r["mase"] for r in again] == [r["mase"] for r in rows]  # finished runs are reused, not retrained
