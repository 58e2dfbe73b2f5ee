"""The forecasting benchmark: real series that install with statsmodels and pmdarima, our default model beside
seasonal naive, a seasonal ARIMA and exponential smoothing fitted on the same split.

    seqlab forecast bench                      # airpassengers, co2, sunspots; 3 seeds -> table.md

Each series' last H steps are the test tail. seqlab's model holds out the H before them for early stopping and trains
on the rest; the statistical models are fitted on everything before the test tail. MASE's scale is each series'
in-sample seasonal-naive error, so MASE < 1 beats seasonal naive on the training data's own terms.
"""

from __future__ import annotations

import statistics
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import runs
from ..data.archives import SERIES, load_series
from ..data.timeseries import series_set
from .task import ForecastConfig, evaluate, scores, seasonal_naive, train_forecaster


def sarima(history: np.ndarray, m: int, horizon: int) -> np.ndarray:
    """SARIMA(1,1,1)(0,1,1)_m, the airline model's family, by maximum likelihood (statsmodels)."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = SARIMAX(history, order=(1, 1, 1), seasonal_order=(0, 1, 1, m)).fit(disp=False)
    return np.asarray(fit.forecast(horizon))


def ets(history: np.ndarray, m: int, horizon: int) -> np.ndarray:
    """Holt-Winters exponential smoothing: damped additive trend, multiplicative season for positive series."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    seasonal = "mul" if history.min() > 0 else "add"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ExponentialSmoothing(history, trend="add", damped_trend=True, seasonal=seasonal,
                                   seasonal_periods=m).fit()  # fmt: skip
    return np.asarray(fit.forecast(horizon))


def run(out: Path, seeds: int = 3, names: list[str] | None = None, cfg: ForecastConfig | None = None,
        echo=print) -> list[dict]:  # fmt: skip
    """Every series: the statistical baselines once, seqlab's default model per seed. Writes results.csv and
    table.md; finished runs are reused."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names or list(SERIES):
        m, H, _ = SERIES[name]
        y = load_series(name)
        history, truth = y[:-H], y[-H:]
        for method, pred in (("seasonal naive", seasonal_naive(history[:, None], H, m)[:, 0]),
                             ("SARIMA", sarima(history, m, H)), ("ETS", ets(history, m, H))):  # fmt: skip
            s = scores(truth[None, :, None], pred[None, :, None], [history[:, None]], m)
            rows.append({"series": name, "method": method, "seed": "", **s, "seconds": ""})
        base = cfg or ForecastConfig()
        for seed in range(seeds):
            run_dir = out / f"{name}-seed{seed}"
            c = replace(base, context=3 * m, horizon=H, season=m, seed=seed)
            seconds = runs.once(run_dir, train_forecaster, c, series_set(y.astype(np.float32)), run_dir,
                                progress=False, echo=lambda s: None)["seconds"]  # fmt: skip
            s = evaluate(run_dir, data=series_set(y.astype(np.float32)), plot=run_dir / "forecast.png")["model"]
            rows.append({"series": name, "method": f"seqlab {base.model} ({base.output})", "seed": seed, **s,
                         "seconds": seconds})  # fmt: skip
            echo(f"{name} seed {seed}: MASE {s['mase']:.3f}, sMAPE {s['smape']:.2f}%, {seconds:.0f} s")
        for r in rows[-seeds - 3 : -seeds]:
            echo(f"{name} {r['method']}: MASE {r['mase']:.3f}, sMAPE {r['smape']:.2f}%")
    runs.write_csv(out / "results.csv", rows)
    runs.write_text(out / "table.md", table(rows) + "\n")
    return rows


def table(rows: list[dict]) -> str:

    lines = [
        f"Test tail MASE (sMAPE %); seqlab: mean (std) over seeds, train s per run on {runs.machine()}.",
        "",
        "| series | m, H | seasonal naive | SARIMA | ETS | seqlab | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(r["series"] for r in rows):
        mine = {r["method"]: r for r in rows if r["series"] == name and r["seed"] == ""}
        ours = [r for r in rows if r["series"] == name and r["seed"] != ""]
        mase = [r["mase"] for r in ours]
        sd = statistics.stdev(mase) if len(mase) > 1 else 0.0
        cell = lambda r: f"{r['mase']:.3f} ({r['smape']:.1f})"  # noqa: E731
        m, H, _ = SERIES[name]
        lines.append(
            f"| {name} | {m}, {H} | {cell(mine['seasonal naive'])} | {cell(mine['SARIMA'])} | {cell(mine['ETS'])} "
            f"| **{np.mean(mase):.3f}** ({sd:.3f}; sMAPE {np.mean([r['smape'] for r in ours]):.1f}) "
            f"| {np.mean([r['seconds'] for r in ours]):.0f} |"
        )
    return "\n".join(lines)
