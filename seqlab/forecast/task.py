"""Forecasting end to end: series in, a run directory out, forecasts and their scores from it.

    cfg = ForecastConfig(data="sales.csv", time_column="month", horizon=12, season=12)
    model, run = train_forecaster(cfg)
    metrics = evaluate(run, "sales.csv")        # MAE, RMSE, sMAPE, MASE, OWA on the test tail, beside seasonal naive
    metrics = evaluate(run, "newer.csv", folds=3)   # three rolling origins, one horizon apart

Per series, the last ``horizon`` steps are the test tail and the ``horizon`` before them the validation tail; the
model trains on the rest. Two kinds of model:
- window models (rnn | lstm | gru | transformer, models/forecaster.py) train on windows of ``context + horizon``
  steps. Every window is scaled by its own context's mean and standard deviation (see ``normalize``), so series of
  any level share one model and a trend carries past the levels seen in training; nothing from a tail informs its
  own forecast.
- ``esrnn`` (models/esrnn.py, Smyl 2020) reads whole series: per-series Holt-Winters level and season, learned with
  the global recurrent network, quantiles by the pinball loss. One positive target channel, no covariates; a series
  with a zero or negative value is refused (no silent shift).
``ensemble`` K > 1 holds K such models, seeds seed..seed+K-1, in one run directory and one checkpoint (see
models.forecaster.Ensemble); forecasts are their median, and the scores list each member's MASE (the spread).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import NormalDist
from typing import ClassVar

import numpy as np
import torch
from torch.nn import functional as F

from .. import runs
from ..data.errors import DataError
from ..data.timeseries import SeriesSet, check, fill_missing, read_series, window_starts
from ..models.backbone import BACKBONES, check_heads
from ..models.esrnn import CELLS, ESRNN, parse_dilations, pinball
from ..models.forecaster import OUTPUTS, Ensemble, Forecaster, Snapshots, members, trained
from ..train import STOPPED, Task, TrainConfig, cycle_ends, pyplot, train
from .metrics import interval_level, naive2, owa, pinball_terms, quantile_scores, scores, seasonal_naive

PATHS = 200  # sample paths an autoregressive Gaussian model draws for its quantiles
FLAT_STD = 1e-6  # a context whose standard deviation is below this is flat: centred, not divided by ~0


@dataclass
class ForecastConfig(TrainConfig):
    """A forecasting run; saved as config.json. The loop's fields are TrainConfig's."""

    RULES: ClassVar[dict[str, str]] = {"context": ">=1", "horizon": ">=1", "season": ">=1", "hidden": ">=1",
                                       "layers": ">=1", "heads": ">=1", "dropout": "[0,1)", "batch": ">=1",
                                       "ensemble": ">=1", "snapshots": ">=1"}  # fmt: skip
    OLD_DEFAULTS: ClassVar[dict] = {"loss": "old", "dilations": "none"}  # runs from before them

    data: str = ""
    time_column: str | None = None  # CSV: labels for plots and output (rows stay in file order)
    id_column: str | None = None  # CSV: several series in one file
    targets: str | None = None  # CSV: comma-separated target columns (default: the other numeric columns)
    covariates: str | None = None  # CSV: comma-separated known covariates (needed for the horizon too)
    missing: str = "refuse"  # refuse | impute (linear interpolation per channel)
    fill_gaps: bool = False  # CSV with a time column: insert missing time steps as missing values (else refused)
    context: int | None = None  # L: history steps the model reads (default: 48, esrnn max(season, horizon))
    horizon: int = 12  # H: steps forecast, and the length of the validation and test tails
    season: int = 1  # m: the seasonal-naive baseline and MASE's scale (12 for monthly data with a yearly cycle)
    output: str = "direct"  # direct (all H at once: no compounding errors, no exposure bias) | autoregressive
    scheduled_sampling: float = 0.0  # autoregressive: final probability of feeding back its own forecast in training
    loss: str = "auto"  # quantile (pinball on --quantiles) | gaussian | mse (point only); auto: quantile for
    # direct and esrnn, gaussian for autoregressive (its quantiles come from sample paths)
    gaussian: bool = False  # the same as --loss gaussian: a mean and a standard deviation per value
    model: str = "auto"  # rnn | lstm | gru | transformer (a window model) | esrnn (Smyl's hybrid, see models/esrnn.py)
    # auto: esrnn where it applies (one positive target, no covariates, quantiles), else lstm; see choose_model
    cell: str = "lstm"  # esrnn: its recurrent network, lstm | gru
    dilations: str = "auto"  # esrnn: Smyl's dilated blocks, e.g. 1,2;2,6 (auto: his per season m; none: --layers)
    quantiles: str = "0.1,0.5,0.9"  # the quantiles forecast (and fitted, by the pinball loss); 0.5 is the point
    ensemble: int = 1  # K members (seeds seed..seed+K-1) trained side by side in this run, combined by the median
    snapshots: int = 1  # S > 1: S cosine cycles; the weights at each cycle's end join the median (Huang et al. 2017);
    # no early stopping then (--patience is set aside: the last cycle must run)
    hidden: int = 64
    layers: int = 2
    heads: int = 4  # transformer only
    dropout: float = 0.1
    backend: str = "auto"
    batch: int = 64
    steps: int | None = 3000
    lr: float = 2e-3
    warmup: int = 50
    eval_every: int = 100
    patience: int | None = 10  # evaluations without a lower validation loss


MODELS = ("auto", *BACKBONES, "esrnn")
WINDOW_CONTEXT = 48  # the window models' default context
LOSSES = ("auto", "quantile", "gaussian", "mse")


def loss_kind(cfg: ForecastConfig) -> str:
    """What the model's head fits: quantile | gaussian | mse (see --loss; an old run's is mse or --gaussian)."""
    if cfg.loss == "old":
        return "gaussian" if cfg.gaussian else "mse"
    if cfg.loss != "auto":
        return cfg.loss
    if cfg.gaussian or (cfg.output == "autoregressive" and cfg.model != "esrnn"):
        return "gaussian"
    return "quantile"


def quantile_levels(cfg: ForecastConfig) -> tuple[float, ...]:
    """--quantiles as sorted floats, refused unless each lies in (0, 1) and 0.5 (the point forecast) is one."""
    try:
        q = tuple(sorted({float(v) for v in cfg.quantiles.split(",") if v.strip()}))
    except ValueError:
        q = ()
    if not q or not all(0 < v < 1 for v in q) or 0.5 not in q:
        raise ValueError(f"--quantiles must be comma-separated levels in (0, 1) including 0.5; got {cfg.quantiles!r}")
    return q


def check_config(cfg: ForecastConfig) -> None:
    if cfg.model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}; got {cfg.model!r}")
    if cfg.loss not in LOSSES:
        raise ValueError(f"--loss must be one of {', '.join(LOSSES)}; got {cfg.loss!r}")
    if cfg.gaussian and cfg.loss not in ("auto", "gaussian"):
        raise ValueError(f"--gaussian is --loss gaussian; it contradicts --loss {cfg.loss}")
    if loss_kind(cfg) == "quantile":
        quantile_levels(cfg)
        if cfg.output == "autoregressive":
            raise ValueError("--output autoregressive forecasts quantiles by sampling paths: use --loss gaussian "
                             "(its default there), or --output direct for a quantile head")  # fmt: skip
    if cfg.model == "esrnn":
        if cfg.cell not in CELLS:
            raise ValueError(f"--cell must be one of {', '.join(CELLS)} (esrnn's recurrent network); got {cfg.cell!r}")
        if cfg.output != "direct" or loss_kind(cfg) != "quantile":
            raise ValueError("esrnn forecasts all H steps at once as quantiles: drop --output, --gaussian and --loss")
        parse_dilations(cfg.dilations, cfg.season)
    elif cfg.dilations not in ("auto", "none"):
        raise ValueError("--dilations shape esrnn's stack; the window models' is --layers")
    check_heads(cfg.model, cfg.hidden, cfg.heads)
    if cfg.output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(OUTPUTS)}; got {cfg.output!r}")
    if not 0 <= cfg.scheduled_sampling <= 1:
        raise ValueError(f"scheduled-sampling is a probability in [0, 1], got {cfg.scheduled_sampling}")
    if cfg.snapshots > 1 and cfg.steps is None:
        raise ValueError("--snapshots S cuts --steps into S learning-rate cycles: give --steps")
    if cfg.scheduled_sampling and cfg.output != "autoregressive":
        raise ValueError("--scheduled-sampling needs --output autoregressive (the direct head feeds nothing back)")
    for name in ("context", "horizon", "season", "hidden", "layers", "batch"):
        if getattr(cfg, name) is not None and getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(cfg, name)}")


def model_from(cfg: ForecastConfig, channels: int, covariates: int, series: int = 1) -> Forecaster | ESRNN | Ensemble:
    """The run's model; with --ensemble K, K of them, member k initialised from seed + k (member 0 is the model a
    run without --ensemble gets, and its checkpoint keys are the plain model's)."""

    def one():
        if cfg.model == "esrnn":
            return ESRNN(series, cfg.horizon, cfg.season, cfg.context, cfg.cell, cfg.hidden, cfg.layers, cfg.dropout,
                         quantile_levels(cfg), cfg.backend, parse_dilations(cfg.dilations, cfg.season))  # fmt: skip
        kind = loss_kind(cfg)
        return Forecaster(channels, covariates, cfg.horizon, cfg.model, cfg.hidden, cfg.layers, cfg.output,
                          kind == "gaussian", cfg.dropout, cfg.heads, cfg.backend,
                          quantile_levels(cfg) if kind == "quantile" else ())  # fmt: skip

    if cfg.ensemble == 1:
        model = one()
    else:
        nets = []
        for k in range(cfg.ensemble):
            torch.manual_seed(cfg.seed + k)
            nets.append(one())
        model = Ensemble(nets)
    return Snapshots(model, cfg.snapshots) if cfg.snapshots > 1 else model


def load_data(path: str, cfg: ForecastConfig) -> SeriesSet:
    return read_series(path, cfg.time_column, cfg.id_column, cfg.targets, cfg.covariates, fill_gaps=cfg.fill_gaps)


# ------------------------------------------------------------------------------------------------ windows
def stacked(data: SeriesSet, i: int) -> np.ndarray:
    """(T_i, C + K): targets and covariates side by side."""
    return data.targets[i] if data.covariates is None else np.concatenate([data.targets[i], data.covariates[i]], 1)


def normalize(window: torch.Tensor, L: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scale a window (B, S, C + K) by the mean and standard deviation of its first L steps (the context), per
    window and channel — instance normalisation (RevIN, Kim et al. 2022). A trending series then looks alike at
    every level, and nothing after the context informs its own scale. Returns z, mean and std, each (B, 1, C + K)."""
    mean = window[:, :L].mean(1, keepdim=True)
    std = window[:, :L].std(1, keepdim=True, unbiased=False)
    std = torch.where(std > FLAT_STD, std, torch.ones_like(std))  # a flat context is centred, not blown up
    return (window - mean) / std, mean, std


def history_at(data: SeriesSet, i: int, end: int, cfg: ForecastConfig) -> np.ndarray:
    """Series i's last L steps before ``end`` and H steps after it (covariates there; targets unknown, zeroed),
    (L + H, C + K); a history shorter than L is padded on the left with its first step."""
    full = stacked(data, i)
    hist = full[max(0, end - cfg.context) : end]
    if len(hist) < cfg.context:
        hist = np.concatenate([np.repeat(hist[:1], cfg.context - len(hist), 0), hist])
    future = np.zeros((cfg.horizon, full.shape[1]), np.float32)
    known = full[end : end + cfg.horizon]
    future[: len(known), data.channels :] = known[:, data.channels :]
    return np.concatenate([hist, future]).astype(np.float32)


@dataclass
class Forecasts:
    """Forecasts at some origins, in the data's units: the point forecast (n, H, C) (an ensemble's median), the
    quantiles (n, H, C, Q) at ``levels`` or None (a point-only model), and each member's point forecast. ``lo`` and
    ``hi`` are the outer quantiles, the interval of ``level`` %."""

    mean: np.ndarray
    quantiles: np.ndarray | None
    levels: tuple[float, ...]
    members: list[np.ndarray]

    @property
    def lo(self) -> np.ndarray | None:  # None without an interval (no quantiles, or the median alone)
        return None if self.quantiles is None or len(self.levels) < 2 else self.quantiles[..., 0]

    @property
    def hi(self) -> np.ndarray | None:
        return None if self.lo is None else self.quantiles[..., -1]

    @property
    def level(self) -> int:
        return interval_level(self.levels)


@torch.no_grad()
def window_forecast(model: Forecaster, data: SeriesSet, ends: list[int], cfg: ForecastConfig):
    """A window model's point forecasts (n, H, C) from steps ends[i] on, and its quantiles (n, H, C, Q) at
    --quantiles or None (a point-only model)."""
    model.eval()
    C, L = data.channels, cfg.context
    windows = torch.from_numpy(np.stack([history_at(data, i, e, cfg) for i, e in enumerate(ends)]))
    z, mean, std = normalize(windows, L)
    future = z[:, L:, C:] if data.n_covariates else None
    mu, log_std = model(z[:, :L], future)
    scale = lambda x: (x * std[..., :C, None] + mean[..., :C, None]).double().numpy()  # noqa: E731  (..., Q)
    levels = quantile_levels(cfg) if loss_kind(cfg) != "mse" else ()
    if model.quantiles:  # (n, H, C, Q) sorted; the point forecast is the median
        q = scale(mu)
        return q[..., model.quantiles.index(0.5)], q
    point = scale(mu[..., None])[..., 0]
    if log_std is None:
        return point, None
    if cfg.output == "direct":  # each step's own Gaussian
        z_q = torch.tensor([NormalDist().inv_cdf(v) for v in levels], dtype=mu.dtype)
        return point, scale(mu[..., None] + log_std.exp()[..., None] * z_q)
    paths = model.sample_paths(z[:, :L], future, PATHS, torch.Generator().manual_seed(cfg.seed))  # (P, n, H, C)
    q = torch.quantile(paths, torch.tensor(levels, dtype=paths.dtype), dim=0)  # (Q, n, H, C)
    return point, scale(q.permute(1, 2, 3, 0))


@torch.no_grad()
def quantile_forecast(model: ESRNN, data: SeriesSet, ends: list[int]) -> np.ndarray:
    """ES-RNN's quantile forecasts (n, H, 1, Q) from steps ends[i] on: series i is the model's series i."""
    model.eval()
    y = np.ones((len(ends), max(ends)), np.float32)
    for i, e in enumerate(ends):
        y[i, :e] = data.targets[i][:e, 0]
    q = model.forecast(torch.from_numpy(y), torch.tensor(ends), torch.arange(len(ends)))  # (n, H, Q)
    return q.double().numpy()[:, :, None, :]


def forecast(model, data: SeriesSet, ends: list[int], cfg: ForecastConfig) -> Forecasts:
    """Every member's forecasts from steps ends[i] on, combined by the median (of the point forecasts, and of each
    quantile: the median of sorted quantiles stays sorted)."""
    means, qs = [], []
    for net in members(model):
        if cfg.model == "esrnn":
            q = quantile_forecast(net, data, ends)
            mu = q[..., quantile_levels(cfg).index(0.5)]
        else:
            mu, q = window_forecast(net, data, ends, cfg)
        means.append(mu)
        if q is not None:
            qs.append(q)
    levels = quantile_levels(cfg) if qs else ()
    return Forecasts(np.median(np.stack(means), 0), np.median(np.stack(qs), 0) if qs else None, levels, means)


# ------------------------------------------------------------------------------------------------ the task
def keep_snapshots(model, cfg: ForecastConfig, step: int) -> None:
    """Before ``step``: take the snapshots of the cycles that have ended (the loop's schedule has ``cfg.snapshots``
    cycles, Task.cycles); the last cycle's is the live model itself."""
    if isinstance(model, Snapshots):
        model.keep(sum(end <= step for end in cycle_ends(cfg.warmup, cfg.steps, cfg.snapshots)[:-1]))


class ForecastTask(Task):
    """Random windows from the training parts (a pure function of the step), validation on the validation tails."""

    loss_name = "loss (pinball, Gaussian NLL or MSE, in context-normalised units)"

    def __init__(self, model: Forecaster, data: SeriesSet, cfg: ForecastConfig):
        self.model, self.data, self.cfg = model, data, cfg
        span, H = cfg.context + cfg.horizon, cfg.horizon
        self.train_ends = [len(s) - 2 * H for s in data.targets]  # training part: steps [0, train_end)
        short = [i for i, e in enumerate(self.train_ends) if e < span]
        if short:
            i = short[0]
            raise DataError(
                f"{data.name(i)}: {len(data.targets[i])} steps is too short for context {cfg.context} + horizon {H} "
                f"of training plus two tails of {H}; needs at least {span + 2 * H} (lower --context or --horizon)"
            )
        self.series = [stacked(data, i)[: self.train_ends[i]].astype(np.float32) for i in range(len(data.targets))]
        self.starts = window_starts(self.train_ends, span)
        self.tokens_per_step = cfg.batch * span
        self.cycles = cfg.snapshots
        self.last: dict = {}
        self.step = 0

    def feed_back(self, step: int) -> float:
        """Scheduled sampling's probability at ``step``: rising linearly from 0 to --scheduled-sampling over the
        first half of --steps (over 1,000 steps when only --minutes is given), then held."""
        ramp = self.cfg.steps // 2 if self.cfg.steps else 1000
        return self.cfg.scheduled_sampling * min(1.0, step / max(ramp, 1))

    def batch(self, step: int):
        self.step = step  # the loop calls loss(batch(step)): the schedule reads it there
        keep_snapshots(self.model, self.cfg, step)
        rng = np.random.default_rng([self.cfg.seed, step])
        pick = rng.integers(0, len(self.starts), self.cfg.batch)
        span = self.cfg.context + self.cfg.horizon
        return torch.from_numpy(np.stack([self.series[i][s : s + span] for i, s in (self.starts[k] for k in pick)]))

    def _loss(self, mean: torch.Tensor, log_std: torch.Tensor | None, y: torch.Tensor) -> torch.Tensor:
        if mean.dim() > y.dim():  # quantiles (..., Q)
            return pinball(mean, y, torch.ones_like(y), quantile_levels(self.cfg))
        if log_std is None:
            return F.mse_loss(mean, y)
        return F.gaussian_nll_loss(mean, y, (2 * log_std).exp(), full=True)

    def loss(self, window: torch.Tensor) -> torch.Tensor:
        """window (B, L + H, C + K) in the data's units; the loss is in the context-normalised units (an
        ensemble's: the sum of its members')."""
        C, L = self.data.channels, self.cfg.context
        z, _, _ = normalize(window, L)
        total = 0.0
        for net in trained(self.model):
            if self.cfg.output == "autoregressive":
                mean, log_std = net.teacher_forced(z, L, self.feed_back(self.step))
                total = total + self._loss(mean, log_std, z[:, 1:, :C])
            else:
                mean, log_std = net(z[:, :L], z[:, L:, C:] if self.data.n_covariates else None)
                total = total + self._loss(mean, log_std, z[:, L:, :C])
        return total

    def evaluate(self) -> dict[str, float]:
        H, L, C = self.cfg.horizon, self.cfg.context, self.data.channels
        fc = forecast(self.model, self.data, self.train_ends, self.cfg)
        mu = fc.mean
        truth = np.stack([t[e : e + H] for t, e in zip(self.data.targets, self.train_ends, strict=True)])
        insample = [t[:e] for t, e in zip(self.data.targets, self.train_ends, strict=True)]
        s = scores(truth, mu, insample, self.cfg.season)
        context = np.stack([t[max(0, e - L) : e] for t, e in zip(self.data.targets, self.train_ends, strict=True)])
        std = context.std(1, keepdims=True)[..., :C]
        std = np.where(std > FLAT_STD, std, 1.0)
        if loss_kind(self.cfg) == "quantile":  # the training loss's units: pinball of the context-scaled values
            val_loss = float(pinball_terms((truth[..., None] - fc.quantiles) / std[..., None], fc.levels).mean())
        else:  # the squared error of the mean, scaled alike
            val_loss = float((((mu - truth) / std) ** 2).mean())
        self.last = s
        return {"val_loss": val_loss, "val_mae": s["mae"], "val_mase": s["mase"], "val_smape": s["smape"]}

    def report(self, step: int) -> str:
        return f"validation MASE {self.last['mase']:.3f}, sMAPE {self.last['smape']:.2f}%"


def check_esrnn_data(data: SeriesSet, cfg: ForecastConfig) -> None:
    """ES-RNN reads one positive target channel: refuse anything else with one line (no silent shift; see README)."""
    if data.channels != 1 or data.n_covariates:
        raise DataError(f"{data.source}: esrnn forecasts one target channel without covariates; this data has "
                        f"{data.channels} channels and {data.n_covariates} covariates (use --model lstm)")  # fmt: skip
    for i, t in enumerate(data.targets):
        bad = np.flatnonzero(~(t[:, 0] > 0))
        if len(bad):
            raise DataError(f"{data.name(i)}: value {t[bad[0], 0]:g} at step {bad[0]}; esrnn's multiplicative "
                            "Holt-Winters needs positive values (shift the series, or use --model lstm)")  # fmt: skip


class ESRNNTask(Task):
    """ES-RNN on whole series: each step takes a batch of series (a pure function of the step), runs the smoothing
    and the network over each training part, and fits every origin in it at once (models/esrnn.py); validation is
    the forecast from the end of each training part."""

    loss_name = "pinball loss of log(y / (level x season))"

    def __init__(self, model, data: SeriesSet, cfg: ForecastConfig):
        check_esrnn_data(data, cfg)
        self.model, self.data, self.cfg = model, data, cfg
        check_esrnn_lengths(data, cfg)
        H = cfg.horizon
        self.train_ends = [len(s) - 2 * H for s in data.targets]
        y = np.ones((len(data.targets), max(self.train_ends)), np.float32)
        for i, e in enumerate(self.train_ends):
            y[i, :e] = data.targets[i][:e, 0]
        self.y, self.lengths = torch.from_numpy(y), torch.tensor(self.train_ends)
        self.quantiles = quantile_levels(cfg)
        self.tokens_per_step = min(cfg.batch, len(y)) * y.shape[1]
        self.cycles = cfg.snapshots
        self.last: dict = {}

    def batch(self, step: int) -> torch.Tensor:
        """The ids of min(batch, N) distinct series."""
        keep_snapshots(self.model, self.cfg, step)
        rng = np.random.default_rng([self.cfg.seed, step])
        n = len(self.train_ends)
        return torch.from_numpy(np.sort(rng.choice(n, min(self.cfg.batch, n), replace=False)))

    def loss(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The members' pinball losses summed, each a mean over the known (origin, step) pairs, and their count."""
        y, lengths = self.y[ids], self.lengths[ids]
        y = y[:, : int(lengths.max())]
        total = 0.0
        for net in trained(self.model):
            out, log_l, log_season = net(y, lengths, ids)
            target, known = net.targets(y, lengths, log_l, log_season)
            total = total + pinball(out, target, known, self.quantiles)
        return total, known.sum()

    def evaluate(self) -> dict[str, float]:
        H = self.cfg.horizon
        truth = np.stack([t[e : e + H] for t, e in zip(self.data.targets, self.train_ends, strict=True)])
        fc = forecast(self.model, self.data, self.train_ends, self.cfg)
        diff = np.log(truth)[..., None] - np.log(fc.quantiles)  # the training loss's units, of the combined forecast
        val_loss = float(pinball_terms(diff, fc.levels).mean())
        mu = fc.mean
        insample = [t[:e] for t, e in zip(self.data.targets, self.train_ends, strict=True)]
        self.last = s = scores(truth, mu, insample, self.cfg.season)
        return {"val_loss": val_loss, "val_mae": s["mae"], "val_mase": s["mase"], "val_smape": s["smape"]}

    def report(self, step: int) -> str:
        return f"validation MASE {self.last['mase']:.3f}, sMAPE {self.last['smape']:.2f}%"


def choose_model(cfg: ForecastConfig, data: SeriesSet, echo=print) -> ForecastConfig:
    """Resolve --model auto and the default --context for ``data``. auto is esrnn, which won the rolling-origin bench
    (README), where it applies: one positive target channel, no covariates, a direct quantile forecast and series of
    at least one season + 1 + two horizons; else the lstm (the documented fallback, said in one line)."""
    model = cfg.model
    if model == "auto":
        why = None
        if cfg.output != "direct" or loss_kind(cfg) != "quantile":
            why = "esrnn forecasts quantiles directly; --output, --loss or --gaussian asked otherwise"
        else:
            try:
                check_esrnn_data(data, cfg)
                check_esrnn_lengths(data, cfg)
            except DataError as e:
                why = str(e)
        model = "lstm" if why else "esrnn"
        echo(f"--model auto: {model} ({why or 'one positive target channel, no covariates'})")
    context = cfg.context or (max(cfg.season, cfg.horizon) if model == "esrnn" else WINDOW_CONTEXT)
    return replace(cfg, model=model, context=context)


def check_esrnn_lengths(data: SeriesSet, cfg: ForecastConfig) -> None:
    H, m = cfg.horizon, cfg.season
    for i, t in enumerate(data.targets):
        if len(t) - 2 * H < m + 1:
            raise DataError(f"{data.name(i)}: {len(t)} steps is too short for esrnn with season {m} and horizon {H}: "
                            f"needs at least {m + 1 + 2 * H} (one season and a step to train on, then validation and "
                            f"test tails of {H})")  # fmt: skip


def check_series(data: SeriesSet, cfg: ForecastConfig) -> None:
    """What no model can learn from: a constant series (zero scale, and MASE's scale is zero), a horizon longer
    than the history it would be forecast from, and less than a season before the test tail (no seasonal naive)."""
    for i, t in enumerate(data.targets):
        finite = t[np.isfinite(t).all(1)]
        if len(finite) and (finite.max(0) == finite.min(0)).all():
            raise DataError(f"{data.name(i)}: constant series (every value {finite[0, 0]:g}); nothing to forecast, "
                            "and MASE's scale would be zero")  # fmt: skip
        if cfg.horizon >= len(t) - cfg.horizon:
            raise DataError(f"{data.name(i)}: {len(t)} steps is too short for horizon {cfg.horizon}: the history "
                            f"before the test tail ({len(t) - cfg.horizon} steps) must be longer")  # fmt: skip
        if len(t) - cfg.horizon <= cfg.season and cfg.model != "esrnn":  # esrnn's own, stricter check says more
            raise DataError(f"{data.name(i)}: {len(t) - cfg.horizon} steps before the test tail, not more than one "
                            f"season ({cfg.season}); seasonal naive and MASE's scale need more (a shorter --season "
                            "or a longer series)")  # fmt: skip


def task_for(model, data: SeriesSet, cfg: ForecastConfig) -> Task:
    return ESRNNTask(model, data, cfg) if cfg.model == "esrnn" else ForecastTask(model, data, cfg)


# ------------------------------------------------------------------------------------------------ runs
def read_config(run: Path) -> tuple[ForecastConfig, dict]:
    return runs.read_config(run, "forecast", ForecastConfig)


def train_forecaster(
    cfg: ForecastConfig,
    data: SeriesSet | None = None,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    progress: bool = True,
    echo=print,
) -> tuple[Forecaster, Path]:
    """Train on ``cfg.data`` (or ``data`` from Python) in a new run directory, or continue ``resume``."""
    if resume:
        run = runs.own(resume)
        cfg, saved = runs.resume_config(run, "forecast", ForecastConfig, cfg)
        runs.check_data(run, cfg.data, saved)
        data = fill_missing(load_data(cfg.data, cfg), cfg.missing)
    else:
        check_config(cfg)
        if data is None:
            if not cfg.data:
                raise ValueError("give the series to train on (a file)")
            data = load_data(cfg.data, cfg)
        data = fill_missing(check(data), cfg.missing)
        cfg = choose_model(cfg, data, echo)
        if cfg.snapshots > 1:
            cfg = replace(cfg, patience=None)
        check_config(cfg)
        check_series(data, cfg)
    torch.manual_seed(cfg.seed)
    model = model_from(cfg, data.channels, data.n_covariates, len(data.targets))
    task = task_for(model, data, cfg)  # checks the lengths before anything is written
    run = run if resume else runs.create(out, "forecast", cfg.model)
    with runs.writing(run, created=not resume):  # one writer; a failed start leaves no stub
        if not resume:
            runs.write_config(run, "forecast", cfg, channels=data.channels, covariates=data.n_covariates,
                              series=len(data.targets), data_sha256=runs.data_sha256(cfg.data))  # fmt: skip
            windows = (f"{len(task.starts):,} training windows of {cfg.context} + {cfg.horizon} steps"
                       if cfg.model != "esrnn" else f"every origin of each training part (window {cfg.context}, "
                       f"horizon {cfg.horizon})")  # fmt: skip
            if cfg.ensemble > 1:
                windows += f"; an ensemble of {cfg.ensemble} (seeds {cfg.seed}..{cfg.seed + cfg.ensemble - 1})"
            if cfg.snapshots > 1:
                windows += (
                    f"; {cfg.snapshots} snapshots, one at the end of each of {cfg.snapshots} cycles (no early stop)"
                )
            echo(f"run: {run}\n{len(data.targets)} series, {data.channels} target channels, {data.n_covariates} "
                 f"covariates, {windows}")  # fmt: skip
        result = train(task, cfg, run, resume=bool(resume), progress=progress, echo=echo)
        model = load(run)[0]
        test = evaluate(run, data=data, plot=run / "forecast.png")
        runs.write_json(run / "scores.json", test)
    m, naive = test["model"], test["seasonal_naive"]
    echo(f"stopped at step {result['step']} ({STOPPED[result['stopped']]}); best at step {result['best']['step']}. "
         f"Test tail: MASE {m['mase']:.3f} (seasonal naive {naive['mase']:.3f}), sMAPE {m['smape']:.2f}% "
         f"({naive['smape']:.2f}%); run written to {run}")  # fmt: skip
    if "member_mase" in m:
        spread = m["member_mase"]
        echo(f"ensemble of {len(spread)}: median forecast MASE {m['mase']:.3f}; members {min(spread):.3f}-"
             f"{max(spread):.3f} (std {np.std(spread):.3f})")  # fmt: skip
    return model, run


def load(run: str | Path, which: str = "best") -> tuple[Forecaster, ForecastConfig, dict]:
    got = runs.load(run, "forecast", ForecastConfig,
                    lambda cfg, saved: model_from(cfg, saved["channels"], saved["covariates"], saved.get("series", 1)),
                    which)  # fmt: skip
    return got.model, got.cfg, got.saved


def evaluate(run: str | Path, path: str | Path | None = None, data: SeriesSet | None = None, which: str = "best",
             plot: Path | None = None, folds: int = 1) -> dict:  # fmt: skip
    """Scores on rolling origins, the model beside seasonal naive in the same call. ``folds`` = 1: the test tail (the
    last H steps of each series), the single holdout training kept out. ``folds`` = F: F origins H apart, the last
    at the test tail; each fold forecasts its H steps from everything before its origin, with the same trained
    model (so the earlier folds lie in the data the run trained or early-stopped on, unless ``data`` is newer).

    Returns {"model": scores, "seasonal_naive": scores} (and quantile scores: see fold_scores), each score dict with
    MAE, RMSE, sMAPE, MASE and OWA (against Naive2 on the same origins); with F > 1 these are means over the folds,
    and "folds" lists each fold's."""
    if folds < 1:
        raise ValueError(f"--folds must be at least 1, got {folds}")
    model, cfg, saved = load(run, which)
    data = fill_missing(check(data if data is not None else load_data(str(path), cfg), saved["channels"],
                              saved["covariates"]), cfg.missing)  # fmt: skip
    if cfg.model == "esrnn":
        check_esrnn_data(data, cfg)
        if len(data.targets) != saved.get("series", 1):
            raise DataError(f"{data.source}: {len(data.targets)} series; the esrnn run learned the smoothing of "
                            f"{saved.get('series', 1)}, matched by position")  # fmt: skip
    H = cfg.horizon
    for i, t in enumerate(data.targets):
        e = len(t) - folds * H
        if e <= cfg.season:  # seasonal naive and MASE's scale need one season of history and one step more
            raise DataError(f"{data.name(i)}: {e} steps before the first of {folds} folds of {H}, not more than one "
                            f"season ({cfg.season}); seasonal naive and MASE need more (fewer --folds)")  # fmt: skip
    results = []
    for k in range(folds):
        ends = [len(t) - (folds - k) * H for t in data.targets]
        fc = forecast(model, data, ends, cfg)
        results.append(fold_scores(data, ends, fc, cfg))
        if plot is not None and k == folds - 1:
            naive = np.stack([seasonal_naive(t[:e], H, cfg.season) for t, e in zip(data.targets, ends, strict=True)])
            plot_forecasts(plot, data, ends, fc, naive, cfg)
    if folds == 1:
        return results[0]
    mean = {k: {m: float(np.mean([r[k][m] for r in results])) for m in results[0][k]}
            for k in results[0] if isinstance(results[0][k], dict)}  # fmt: skip
    extra = {
        k: float(np.mean([r[k] for r in results])) for k in results[0] if k.startswith(("coverage", "msis", "sql"))
    }
    return {**mean, **extra, "folds": results}


def fold_scores(data: SeriesSet, ends: list[int], fc: Forecasts, cfg: ForecastConfig) -> dict:
    """One origin per series: the model's and seasonal naive's scores with OWA against Naive2, and where the model
    has quantiles their coverage, interval score and calibration (metrics.quantile_scores)."""
    H, m = cfg.horizon, cfg.season
    truth = np.stack([t[e : e + H] for t, e in zip(data.targets, ends, strict=True)]).astype(np.float64)
    insample = [t[:e].astype(np.float64) for t, e in zip(data.targets, ends, strict=True)]
    naive = np.stack([seasonal_naive(h, H, m) for h in insample])
    n2 = np.stack([np.stack([naive2(h[:, c], H, m) for c in range(h.shape[1])], 1) for h in insample])
    base = scores(truth, n2, insample, m)
    result = {}
    for name, pred in (("model", fc.mean), ("seasonal_naive", naive)):
        s = scores(truth, pred, insample, m)
        result[name] = {**s, "owa": owa(s, base)}
    if len(fc.members) > 1:  # an ensemble: each member's MASE, for the spread
        result["model"]["member_mase"] = [scores(truth, mu, insample, m)["mase"] for mu in fc.members]
    if fc.lo is not None:
        result.update(quantile_scores(truth, fc.quantiles, fc.levels, insample, m))
    return result


def predict(run: str | Path, path: str | Path, which: str = "best", cfg: ForecastConfig | None = None):
    """Forecasts of the H steps after each series' last observed target (a Forecasts: point forecast (n, H, C),
    quantiles or None), and the data. With covariates, the file's last H rows per series are the future: their
    covariates are read and their target cells may be empty. ``cfg`` overrides the run's column names for a file
    laid out differently."""
    model, run_cfg, saved = load(run, which)
    cfg = cfg or run_cfg
    data = check(load_data(str(path), cfg), saved["channels"], saved["covariates"])
    H = cfg.horizon
    if data.n_covariates:
        ends = [len(t) - H for t in data.targets]
        known = replace(data, targets=[t[:e] for t, e in zip(data.targets, ends, strict=True)],
                        covariates=[c[:e] for c, e in zip(data.covariates, ends, strict=True)])  # fmt: skip
        fill_missing(known, cfg.missing)  # only the observed part must be complete
        data = replace(data, targets=[np.where(np.isfinite(t), t, 0.0) for t in data.targets])
    else:
        data = fill_missing(data, cfg.missing)
        ends = [len(t) for t in data.targets]
    if cfg.model == "esrnn":
        check_esrnn_data(data, cfg)
        if len(data.targets) != saved.get("series", 1):
            raise DataError(f"{data.source}: {len(data.targets)} series; the esrnn run learned the smoothing of "
                            f"{saved.get('series', 1)}, matched by position")  # fmt: skip
    fc = forecast(model, data, ends, cfg)
    if not np.isfinite(fc.mean).all() or (fc.quantiles is not None and not np.isfinite(fc.quantiles).all()):
        raise ValueError(f"{run}: the model's forecasts are not finite; nothing written")
    return data, fc


def quantile_name(level: float) -> str:
    """0.1 -> "q10", 0.025 -> "q2.5": a quantile's column suffix."""
    return f"q{100 * level:g}"


def write_forecasts(path: Path, data: SeriesSet, fc: Forecasts) -> None:
    """CSV: id, step (1..H), the point forecast per target channel (y0, y1, ..), then each channel's quantiles
    (y0_q10, y0_q50, y0_q90, ..) where the model has them."""
    mu = fc.mean
    C = mu.shape[2]
    with runs.atomic_write(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        head = ["id", "step", *[f"y{c}" for c in range(C)]]
        if fc.quantiles is not None:
            head += [f"y{c}_{quantile_name(v)}" for c in range(C) for v in fc.levels]
        w.writerow(head)
        for i, sid in enumerate(data.ids):
            for h in range(mu.shape[1]):
                row = [sid, h + 1, *[f"{v:.6g}" for v in mu[i, h]]]
                if fc.quantiles is not None:
                    row += [f"{v:.6g}" for v in fc.quantiles[i, h].reshape(-1)]
                w.writerow(row)


def plot_forecasts(path: Path, data: SeriesSet, ends: list[int], fc: Forecasts, naive: np.ndarray | None,
                   cfg: ForecastConfig, series: int = 4) -> None:  # fmt: skip
    """History (the last 4 contexts), forecast, truth (and seasonal naive, interval) for up to 4 series, channel 0."""
    plt = pyplot()
    if plt is None:
        return
    n = min(series, len(data.targets))
    fig, axes = plt.subplots(n, 1, figsize=(9, 2.8 * n), squeeze=False)
    mu = fc.mean
    H = mu.shape[1]
    for i, ax in enumerate(axes[:, 0]):
        e, t = ends[i], data.targets[i][:, 0]
        lo = max(0, e - 4 * cfg.context)
        ax.plot(range(lo, min(len(t), e + H)), t[lo : e + H], color="black", lw=1, label="history and truth")
        xs = range(e, e + H)
        what = cfg.model if cfg.model == "esrnn" else f"{cfg.model}, {cfg.output}"
        ax.plot(xs, mu[i, :, 0], color="tab:red", lw=1.6, label=f"forecast ({what})")
        if naive is not None:
            ax.plot(xs, naive[i, :, 0], color="tab:gray", ls="--", lw=1, label=f"seasonal naive (m={cfg.season})")
        if fc.lo is not None:
            ax.fill_between(xs, fc.lo[i, :, 0], fc.hi[i, :, 0], color="tab:red", alpha=0.25, lw=0,
                            label=f"{fc.level}% interval")  # fmt: skip
        ax.axvline(e - 0.5, color="gray", lw=0.8)
        ax.set_title(data.name(i), fontsize=9)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    runs.save_figure(fig, path)
