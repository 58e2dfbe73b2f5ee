"""The forecasting benchmark, on rolling origins: two collections (M1 yearly from aeon; 13 quarterly series from
statsmodels and pmdarima) and three single series (statsmodels, pmdarima); seqlab's models beside seasonal naive,
Naive2, the M4 Comb benchmark and statsforecast's AutoETS, AutoARIMA and AutoTheta, all fitted on exactly the same
folds in the same run.

    seqlab forecast bench                              # -> table.md, results.csv, one run directory per fold and seed
    seqlab forecast bench --data m1-yearly --folds 3 --seeds 3 --models esrnn

Folds: F origins H apart, the last H steps of each series being the last fold's truth. Every method forecasts each
fold's H steps from everything before its origin (seqlab's runs hold out the H steps before the origin for early
stopping and train on the rest). A series takes part in a fold only where its history before the origin leaves seqlab
a training part of at least m + 1 steps (short M1 series join only the later folds), the same (series, fold) pairs
for every method. Scores are pooled over those pairs: mean MASE, mean sMAPE, and OWA from those means against
Naive2's (M4's definition); coverage of the 80% interval where a method has one.

seqlab's rows: each seed is its own run per fold (a global model over the collection's series); "ensemble" is the
median of the seeds' forecasts (the same runs, no extra training), so its spread is the seeds' spread. ESRNN needs
positive data: on a series with zeros (sunspots) it runs on y + 1 - min(y) and its forecasts are shifted back.
"""

from __future__ import annotations

import statistics
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import runs
from ..data.archives import COLLECTIONS, SERIES, load_collection, load_series
from ..data.timeseries import series_set
from .metrics import deseasonalize, naive2, owa, seasonal_naive, smape
from .task import ForecastConfig, forecast, load, train_forecaster

DATASETS = (*COLLECTIONS, *SERIES)
STATISTICAL = ("Naive2", "seasonal naive", "Comb", "AutoETS", "AutoARIMA", "AutoTheta", "HW (statsmodels)")
MODELS = ("esrnn", "lstm")
# seqlab's schedules here (the default is 3000 steps): an esrnn step fits every origin of up to 64 whole series, an
# lstm step 64 windows; these keep each run under a minute or so on one thread, and the bench near 30 minutes
BENCH_STEPS = {"esrnn": 500, "lstm": 1000}


def dataset(name: str) -> tuple[list[np.ndarray], int, int]:
    """A collection or a single series: (series, season m, horizon H)."""
    if name in COLLECTIONS:
        m, H, _ = COLLECTIONS[name]
        return load_collection(name), m, H
    m, H, _ = SERIES[name]
    return [load_series(name)], m, H


# ------------------------------------------------------------------------------------------------ statistics
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


def comb(history: np.ndarray, m: int, horizon: int) -> np.ndarray:
    """M4's Comb benchmark: the mean of SES, Holt and damped Holt (statsforecast) on the seasonally adjusted series
    (classical multiplicative decomposition where the 90% autocorrelation test finds seasonality), reseasonalised.
    Where a history is too short for statsforecast to fit a trend (its "tiny datasets"), SES stands in for it."""
    from statsforecast.models import AutoETS, Holt, SimpleExponentialSmoothingOptimized

    adjusted, ahead = deseasonalize(history, m, horizon)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ses = SimpleExponentialSmoothingOptimized().forecast(y=adjusted, h=horizon)["mean"]
        means = [ses]
        for fit in (Holt(), AutoETS(model="AAN", damped=True)):
            try:
                means.append(fit.forecast(y=adjusted, h=horizon)["mean"])
            except NotImplementedError:  # statsforecast's "tiny datasets": too few points for a trend; SES stands in
                means.append(ses)
    return np.mean(means, 0) * ahead


def statistical(method: str, history: np.ndarray, m: int, horizon: int):
    """One method's forecast (H,) from ``history`` (T,), and its 80% interval (lo, hi) or None."""
    if method == "seasonal naive":
        return seasonal_naive(history, horizon, m), None
    if method == "Naive2":
        return naive2(history, horizon, m), None
    if method == "Comb":
        return comb(history, m, horizon), None
    if method == "HW (statsmodels)":
        return ets(history, m, horizon), None
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta

    model = {"AutoETS": AutoETS, "AutoARIMA": AutoARIMA, "AutoTheta": AutoTheta}[method](season_length=m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = model.forecast(y=history, h=horizon, level=[80])
    return np.asarray(r["mean"]), (np.asarray(r["lo-80"]), np.asarray(r["hi-80"]))


# ------------------------------------------------------------------------------------------------ folds
def fold_ends(ys: list[np.ndarray], m: int, H: int, folds: int) -> list[dict[int, int]]:
    """Per fold k, {series i: its origin e} for the series that take part (e - H >= m + 1: see the docstring)."""
    out = []
    for k in range(folds):
        ends = {i: len(y) - (folds - k) * H for i, y in enumerate(ys)}
        out.append({i: e for i, e in ends.items() if e - H >= m + 1 and e > H})
    return out


def pooled(truth: list[np.ndarray], pred: list[np.ndarray], history: list[np.ndarray], m: int, band=None) -> dict:
    """Mean MASE and sMAPE over (series, fold) pairs, and the 80% coverage when ``band`` (lo, hi lists) is given."""
    from .metrics import mase_scale

    mase = [np.abs(p - t).mean() / mase_scale(h[:, None], m)[0] for t, p, h in zip(truth, pred, history, strict=True)]
    result = {"mase": float(np.mean(mase)), "smape": float(np.mean([smape(t, p).mean() for t, p in
                                                                     zip(truth, pred, strict=True)]))}  # fmt: skip
    if band is not None:
        inside = [((t >= lo) & (t <= hi)).mean() for t, lo, hi in zip(truth, *band, strict=True)]
        result["coverage_80"] = float(np.mean(inside))
    return result


def seqlab_config(model: str, m: int, H: int, seed: int, base: ForecastConfig | None) -> ForecastConfig:
    """The config seqlab's runs get here: the defaults, BENCH_STEPS with an evaluation every 50, and a context of
    3 seasons (lstm, as the bench always had) or max(m, H) (esrnn: Smyl's input windows are about a season or a
    horizon long)."""
    cfg = base or ForecastConfig(steps=BENCH_STEPS[model], eval_every=50)
    context = max(m, H) if model == "esrnn" else 3 * m
    return replace(cfg, model=model, context=context, horizon=H, season=m, seed=seed)


def run(out: Path, seeds: int = 3, names: list[str] | None = None, cfg: ForecastConfig | None = None,
        echo=print, folds: int = 3, models: tuple[str, ...] = ("esrnn",)) -> list[dict]:  # fmt: skip
    """Every data set: the statistical methods on every (series, fold), seqlab's ``models`` per fold and seed.
    Writes results.csv and table.md (after each data set, so an interrupted bench keeps what it finished); finished
    runs are reused."""
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for name in names or list(DATASETS):
        ys, m, H = dataset(name)
        ends = fold_ends(ys, m, H, folds)
        pairs = [(k, i, e) for k, fold in enumerate(ends) for i, e in fold.items()]
        truth = [ys[i][e : e + H] for _, i, e in pairs]
        history = [ys[i][:e] for _, i, e in pairs]
        n2 = None
        for method in STATISTICAL:
            if method == "HW (statsmodels)" and m == 1:
                continue  # the README's earlier ETS baseline, for the seasonal single series
            t0 = time.monotonic()
            got = [statistical(method, h, m, H) for h in history]
            band = None if got[0][1] is None else ([g[1][0] for g in got], [g[1][1] for g in got])
            s = pooled(truth, [g[0] for g in got], history, m, band)
            n2 = s if method == "Naive2" else n2
            rows.append(row(name, method, "", s, n2, len(pairs), time.monotonic() - t0))
            echo(f"{name} {method}: MASE {s['mase']:.3f}, sMAPE {s['smape']:.2f}%, {time.monotonic() - t0:.0f} s")
        for model in models:
            if model == "lstm" and any(e - H < 3 * m + H for fold in ends for e in fold.values()):
                echo(f"{name}: lstm skipped (its 3-season window does not fit the short series' training parts)")
                continue
            per_seed = []
            for seed in range(seeds):
                preds, seconds = seqlab_folds(out, name, ys, ends, m, H, model, seed, cfg)
                per_seed.append(preds)
                s = pooled(truth, [preds[(k, i)][0] for k, i, _ in pairs], history, m, seqlab_band(preds, pairs))
                rows.append(row(name, f"seqlab {model}", seed, s, n2, len(pairs), seconds))
                echo(f"{name} seqlab {model} seed {seed}: MASE {s['mase']:.3f}, sMAPE {s['smape']:.2f}%, "
                     f"{seconds:.0f} s")  # fmt: skip
            median = {}  # per (fold, series): the median over seeds of the forecast and of each interval end
            for key in per_seed[0]:
                got = [p[key] for p in per_seed]
                median[key] = tuple(None if got[0][j] is None else np.median([g[j] for g in got], 0) for j in range(3))
            s = pooled(truth, [median[(k, i)][0] for k, i, _ in pairs], history, m, seqlab_band(median, pairs))
            rows.append(row(name, f"seqlab {model} ensemble", f"median of {seeds}", s, n2, len(pairs), 0.0))
            echo(f"{name} seqlab {model} ensemble of {seeds}: MASE {s['mase']:.3f}, sMAPE {s['smape']:.2f}%")
        runs.write_csv(out / "results.csv", rows)
        runs.write_text(out / "table.md", table(rows, folds, seeds) + "\n")
    return rows


def seqlab_band(preds: dict, pairs: list) -> tuple[list, list] | None:
    if preds[pairs[0][:2]][1] is None:
        return None
    return [preds[(k, i)][1] for k, i, _ in pairs], [preds[(k, i)][2] for k, i, _ in pairs]


def row(name: str, method: str, seed, s: dict, n2: dict, pairs: int, seconds: float) -> dict:
    return {"data": name, "method": method, "seed": seed, "mase": s["mase"], "smape": s["smape"],
            "owa": owa(s, n2), "coverage_80": s.get("coverage_80", ""), "pairs": pairs,
            "seconds": round(seconds, 1)}  # fmt: skip


def seqlab_folds(out: Path, name: str, ys: list[np.ndarray], ends: list[dict[int, int]], m: int, H: int, model: str,
                 seed: int, base: ForecastConfig | None) -> tuple[dict, float]:  # fmt: skip
    """One seed of one model: a run per fold on the series' data up to each origin + H (the run's own test tail is
    the fold); returns {(fold, series): (forecast, lo, hi) (H,) each, lo and hi None without an interval} and the
    training seconds summed over folds."""
    preds, seconds = {}, 0.0
    cfg = seqlab_config(model, m, H, seed, base)
    for k, fold in enumerate(ends):
        idx = sorted(fold)
        parts = [ys[i][: fold[i] + H] for i in idx]
        shift = [1.0 - min(p.min(), 1.0) if model == "esrnn" and p.min() <= 0 else 0.0 for p in parts]
        data = series_set([(p + c).astype(np.float32) for p, c in zip(parts, shift, strict=True)])
        run_dir = out / f"{name}-{model}-fold{k}-seed{seed}"
        seconds += runs.once(run_dir, train_forecaster, cfg, data, run_dir, progress=False,
                             echo=lambda s: None)["seconds"]  # fmt: skip
        net, run_cfg, _ = load(run_dir)
        fc = forecast(net, data, [fold[i] for i in idx], run_cfg)
        for j, i in enumerate(idx):
            band = [None, None] if fc.lo is None else [fc.lo[j, :, 0] - shift[j], fc.hi[j, :, 0] - shift[j]]
            preds[(k, i)] = (fc.mean[j, :, 0] - shift[j], *band)
    return preds, seconds


def table(rows: list[dict], folds: int, seeds: int) -> str:
    lines = [
        f"Rolling origin: {folds} folds of one horizon each; mean MASE, mean sMAPE (%) and OWA (vs Naive2) over the "
        f"(series, fold) pairs; coverage of the 80% interval. seqlab: mean (std) over {seeds} seeds, each trained "
        f"at most {BENCH_STEPS['esrnn']} (esrnn) or {BENCH_STEPS['lstm']} (lstm) steps per fold, and the ensemble "
        f"(median of the seeds' forecasts). seconds: fitting "
        f"all folds (seqlab: training, per seed). {runs.machine()}.",
        "",
        "| data | m, H | pairs | method | MASE | sMAPE | OWA | coverage 80 | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(r["data"] for r in rows):
        mine = [r for r in rows if r["data"] == name]
        _, m, H = (None, *COLLECTIONS[name][:2]) if name in COLLECTIONS else (None, *SERIES[name][:2])
        for method in dict.fromkeys(r["method"] for r in mine):
            rs = [r for r in mine if r["method"] == method]
            cov = f"{np.mean([r['coverage_80'] for r in rs]):.2f}" if rs[0]["coverage_80"] != "" else ""
            if len(rs) == 1:
                cells = f"{rs[0]['mase']:.3f} | {rs[0]['smape']:.2f} | {rs[0]['owa']:.3f}"
                label = method if not method.endswith("ensemble") else f"{method} ({rs[0]['seed']})"
            else:
                mean = {k: np.mean([r[k] for r in rs]) for k in ("mase", "smape", "owa")}
                sd = {k: statistics.stdev([r[k] for r in rs]) for k in ("mase", "smape", "owa")}
                cells = (f"{mean['mase']:.3f} ({sd['mase']:.3f}) | {mean['smape']:.2f} ({sd['smape']:.2f}) | "
                         f"{mean['owa']:.3f} ({sd['owa']:.3f})")  # fmt: skip
                label = method
            seconds = np.mean([r["seconds"] for r in rs])
            lines.append(f"| {name} | {m}, {H} | {rs[0]['pairs']} | {label} | {cells} | {cov} | {seconds:.0f} |")
    return "\n".join(lines)
