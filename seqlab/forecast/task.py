"""Forecasting end to end: series in, a run directory out, forecasts and their scores from it.

    cfg = ForecastConfig(data="sales.csv", time_column="month", horizon=12, season=12)
    model, run = train_forecaster(cfg)
    metrics = evaluate(run, "sales.csv")        # MAE, RMSE, sMAPE, MASE on the test tail, beside seasonal naive

Per series, the last ``horizon`` steps are the test tail and the ``horizon`` before them the validation tail; the
model trains on windows of ``context + horizon`` steps drawn from the rest. Every window is scaled by its own
context's mean and standard deviation (see ``normalize``), so series of any level share one model and a trend carries
past the levels seen in training; nothing from a tail informs its own forecast.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch.nn import functional as F

from .. import runs
from ..data.errors import DataError
from ..data.timeseries import SeriesSet, check, fill_missing, read_series, window_starts
from ..models.backbone import BACKBONES, check_heads
from ..models.forecaster import OUTPUTS, Forecaster
from ..train import STOPPED, Task, TrainConfig, pyplot, train

Z = {0.8: 1.2816, 0.95: 1.9600}  # two-sided normal quantiles of the plotted intervals
FLAT_STD = 1e-6  # a context whose standard deviation is below this is flat: centred, not divided by ~0


@dataclass
class ForecastConfig(TrainConfig):
    """A forecasting run; saved as config.json. The loop's fields are TrainConfig's."""

    RULES: ClassVar[dict[str, str]] = {"context": ">=1", "horizon": ">=1", "season": ">=1", "hidden": ">=1",
                                       "layers": ">=1", "heads": ">=1", "dropout": "[0,1)", "batch": ">=1"}  # fmt: skip

    data: str = ""
    time_column: str | None = None  # CSV: labels for plots and output (rows stay in file order)
    id_column: str | None = None  # CSV: several series in one file
    targets: str | None = None  # CSV: comma-separated target columns (default: the other numeric columns)
    covariates: str | None = None  # CSV: comma-separated known covariates (needed for the horizon too)
    missing: str = "refuse"  # refuse | impute (linear interpolation per channel)
    fill_gaps: bool = False  # CSV with a time column: insert missing time steps as missing values (else refused)
    context: int = 48  # L: history steps the model reads
    horizon: int = 12  # H: steps forecast, and the length of the validation and test tails
    season: int = 1  # m: the seasonal-naive baseline and MASE's scale (12 for monthly data with a yearly cycle)
    output: str = "direct"  # direct (all H at once: no compounding errors, no exposure bias) | autoregressive
    scheduled_sampling: float = 0.0  # autoregressive: final probability of feeding back its own forecast in training
    gaussian: bool = False  # also predict a standard deviation (Gaussian likelihood) and draw intervals
    model: str = "lstm"  # rnn | lstm | gru | transformer
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


def check_config(cfg: ForecastConfig) -> None:
    if cfg.model not in BACKBONES:
        raise ValueError(f"model must be one of {', '.join(BACKBONES)}; got {cfg.model!r}")
    check_heads(cfg.model, cfg.hidden, cfg.heads)
    if cfg.output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(OUTPUTS)}; got {cfg.output!r}")
    if not 0 <= cfg.scheduled_sampling <= 1:
        raise ValueError(f"scheduled-sampling is a probability in [0, 1], got {cfg.scheduled_sampling}")
    if cfg.scheduled_sampling and cfg.output != "autoregressive":
        raise ValueError("--scheduled-sampling needs --output autoregressive (the direct head feeds nothing back)")
    for name in ("context", "horizon", "season", "hidden", "layers", "batch"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(cfg, name)}")


def model_from(cfg: ForecastConfig, channels: int, covariates: int) -> Forecaster:
    return Forecaster(channels, covariates, cfg.horizon, cfg.model, cfg.hidden, cfg.layers, cfg.output,
                      cfg.gaussian, cfg.dropout, cfg.heads, cfg.backend)  # fmt: skip


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


@torch.no_grad()
def forecast(model: Forecaster, data: SeriesSet, ends: list[int], cfg: ForecastConfig):
    """Forecasts (n, H, C) in the data's units for each series i from step ends[i] on, and sigma (n, H, C) or None."""
    model.eval()
    C, L = data.channels, cfg.context
    windows = torch.from_numpy(np.stack([history_at(data, i, e, cfg) for i, e in enumerate(ends)]))
    z, mean, std = normalize(windows, L)
    mu, log_std = model(z[:, :L], z[:, L:, C:] if data.n_covariates else None)
    out = (mu * std[..., :C] + mean[..., :C]).double().numpy()
    sigma = None if log_std is None else (log_std.exp() * std[..., :C]).double().numpy()
    return out, sigma


# ------------------------------------------------------------------------------------------------ metrics
def seasonal_naive(history: np.ndarray, horizon: int, m: int) -> np.ndarray:
    """y_hat(T + h) = y(T + h - m * ceil(h / m)): the last season repeated (m = 1: the last value)."""
    m = min(m, len(history))
    last = history[-m:]
    return np.stack([last[(h % m)] for h in range(horizon)])


def scores(truth: np.ndarray, pred: np.ndarray, insample: list[np.ndarray], m: int) -> dict[str, float]:
    """MAE, RMSE, sMAPE (%) and MASE over series, steps and channels. MASE divides each series' MAE by the
    in-sample MAE of its seasonal-naive forecast (Hyndman & Koehler 2006): below 1 beats seasonal naive there."""
    err = pred - truth  # (n, H, C)
    denom = np.abs(truth) + np.abs(pred)
    smape = np.where(denom > 0, 200 * np.abs(err) / np.where(denom > 0, denom, 1), 0.0)
    mase = []
    for i, hist in enumerate(insample):
        lag = min(m, len(hist) - 1)
        scale = np.abs(hist[lag:] - hist[:-lag]).mean(0) if lag >= 1 else np.ones(hist.shape[1])
        mase.append((np.abs(err[i]).mean(0) / np.where(scale > 0, scale, 1.0)).mean())
    return {
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "smape": float(smape.mean()),
        "mase": float(np.mean(mase)),
    }


# ------------------------------------------------------------------------------------------------ the task
class ForecastTask(Task):
    """Random windows from the training parts (a pure function of the step), validation on the validation tails."""

    loss_name = "loss (MSE, or Gaussian NLL, in context-normalised units)"

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
        self.last: dict = {}
        self.step = 0

    def feed_back(self, step: int) -> float:
        """Scheduled sampling's probability at ``step``: rising linearly from 0 to --scheduled-sampling over the
        first half of --steps (over 1,000 steps when only --minutes is given), then held."""
        ramp = self.cfg.steps // 2 if self.cfg.steps else 1000
        return self.cfg.scheduled_sampling * min(1.0, step / max(ramp, 1))

    def batch(self, step: int):
        self.step = step  # the loop calls loss(batch(step)): the schedule reads it there
        rng = np.random.default_rng([self.cfg.seed, step])
        pick = rng.integers(0, len(self.starts), self.cfg.batch)
        span = self.cfg.context + self.cfg.horizon
        return torch.from_numpy(np.stack([self.series[i][s : s + span] for i, s in (self.starts[k] for k in pick)]))

    def _loss(self, mean: torch.Tensor, log_std: torch.Tensor | None, y: torch.Tensor) -> torch.Tensor:
        if log_std is None:
            return F.mse_loss(mean, y)
        return F.gaussian_nll_loss(mean, y, (2 * log_std).exp(), full=True)

    def loss(self, window: torch.Tensor) -> torch.Tensor:
        """window (B, L + H, C + K) in the data's units; the loss is in the context-normalised units."""
        C, L = self.data.channels, self.cfg.context
        z, _, _ = normalize(window, L)
        if self.cfg.output == "autoregressive":
            mean, log_std = self.model.teacher_forced(z, L, self.feed_back(self.step))
            return self._loss(mean, log_std, z[:, 1:, :C])
        mean, log_std = self.model(z[:, :L], z[:, L:, C:] if self.data.n_covariates else None)
        return self._loss(mean, log_std, z[:, L:, :C])

    def evaluate(self) -> dict[str, float]:
        H, L, C = self.cfg.horizon, self.cfg.context, self.data.channels
        mu, _ = forecast(self.model, self.data, self.train_ends, self.cfg)
        truth = np.stack([t[e : e + H] for t, e in zip(self.data.targets, self.train_ends, strict=True)])
        insample = [t[:e] for t, e in zip(self.data.targets, self.train_ends, strict=True)]
        s = scores(truth, mu, insample, self.cfg.season)
        context = np.stack([t[max(0, e - L) : e] for t, e in zip(self.data.targets, self.train_ends, strict=True)])
        std = context.std(1, keepdims=True)[..., :C]
        val_loss = float((((mu - truth) / np.where(std > FLAT_STD, std, 1.0)) ** 2).mean())  # the training loss's units
        self.last = s
        return {"val_loss": val_loss, "val_mae": s["mae"], "val_mase": s["mase"], "val_smape": s["smape"]}

    def report(self, step: int) -> str:
        return f"validation MASE {self.last['mase']:.3f}, sMAPE {self.last['smape']:.2f}%"


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
        run = Path(resume)
        cfg, saved = runs.resume_config(run, "forecast", ForecastConfig, cfg)
        if not saved.get("data_sha256"):
            raise ValueError(f"{run}: trained from Python data, which the run does not hold; it cannot be resumed")
        runs.check_data(cfg.data, saved["data_sha256"])
        data = fill_missing(load_data(cfg.data, cfg), cfg.missing)
    else:
        check_config(cfg)
        if data is None:
            if not cfg.data:
                raise ValueError("give the series to train on (a file)")
            data = load_data(cfg.data, cfg)
        data = fill_missing(check(data), cfg.missing)
    torch.manual_seed(cfg.seed)
    model = model_from(cfg, data.channels, data.n_covariates)
    task = ForecastTask(model, data, cfg)  # checks the lengths before anything is written
    run = Path(resume) if resume else runs.create(out, "forecast", cfg.model)
    with runs.writing(run, created=not resume):  # one writer; a failed start leaves no stub
        if not resume:
            data_sha256 = runs.file_sha256(cfg.data) if cfg.data and Path(cfg.data).is_file() else None
            runs.write_config(run, "forecast", cfg, channels=data.channels, covariates=data.n_covariates,
                              series=len(data.targets), data_sha256=data_sha256)  # fmt: skip
            windows = f"{len(task.starts):,} training windows of {cfg.context} + {cfg.horizon} steps"
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
    return model, run


def load(run: str | Path, which: str = "best") -> tuple[Forecaster, ForecastConfig, dict]:
    got = runs.load(run, "forecast", ForecastConfig,
                    lambda cfg, saved: model_from(cfg, saved["channels"], saved["covariates"]), which)  # fmt: skip
    return got.model, got.cfg, got.saved


def evaluate(run: str | Path, path: str | Path | None = None, data: SeriesSet | None = None, which: str = "best",
             plot: Path | None = None) -> dict:  # fmt: skip
    """Scores on the test tail (the last H steps of each series), the model beside seasonal naive in the same call."""
    model, cfg, saved = load(run, which)
    data = fill_missing(check(data if data is not None else load_data(str(path), cfg), saved["channels"],
                              saved["covariates"]), cfg.missing)  # fmt: skip
    H = cfg.horizon
    for i, t in enumerate(data.targets):
        if len(t) < H + 2:
            raise DataError(f"{data.name(i)}: {len(t)} steps; evaluation needs more than the horizon ({H}) + 1")
    ends = [len(t) - H for t in data.targets]
    for i, e in enumerate(ends):
        if e <= cfg.season:  # seasonal naive and MASE's scale need one season of history and one step more
            raise DataError(f"{data.name(i)}: {e} steps before the test tail, not more than one season "
                            f"({cfg.season}); seasonal naive and MASE need more")  # fmt: skip
    mu, sigma = forecast(model, data, ends, cfg)
    truth = np.stack([t[e:] for t, e in zip(data.targets, ends, strict=True)])
    insample = [t[:e] for t, e in zip(data.targets, ends, strict=True)]
    naive = np.stack([seasonal_naive(h, H, cfg.season) for h in insample])
    result = {
        "model": scores(truth, mu, insample, cfg.season),
        "seasonal_naive": scores(truth, naive, insample, cfg.season),
    }
    if sigma is not None:
        inside = np.abs(truth - mu) <= Z[0.8] * sigma
        result["coverage_80"] = float(inside.mean())
    if plot is not None:
        plot_forecasts(plot, data, ends, mu, sigma, naive, cfg)
    return result


def predict(run: str | Path, path: str | Path, which: str = "best", cfg: ForecastConfig | None = None):
    """Forecasts (n, H, C) of the H steps after each series' last observed target, sigma or None, and the data.
    With covariates, the file's last H rows per series are the future: their covariates are read and their target
    cells may be empty. ``cfg`` overrides the run's column names for a file laid out differently."""
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
    mu, sigma = forecast(model, data, ends, cfg)
    return data, mu, sigma


def write_forecasts(path: Path, data: SeriesSet, mu: np.ndarray, sigma: np.ndarray | None) -> None:
    """CSV: id, step (1..H), one column per target channel (and its 80% interval with a Gaussian head)."""
    C = mu.shape[2]
    with runs.atomic_write(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        head = ["id", "step", *[f"y{c}" for c in range(C)]]
        if sigma is not None:
            head += [f"y{c}_{side}80" for c in range(C) for side in ("lo", "hi")]
        w.writerow(head)
        for i, sid in enumerate(data.ids):
            for h in range(mu.shape[1]):
                row = [sid, h + 1, *[f"{v:.6g}" for v in mu[i, h]]]
                if sigma is not None:
                    for c in range(C):
                        row += [
                            f"{mu[i, h, c] - Z[0.8] * sigma[i, h, c]:.6g}",
                            f"{mu[i, h, c] + Z[0.8] * sigma[i, h, c]:.6g}",
                        ]
                w.writerow(row)


def plot_forecasts(path: Path, data: SeriesSet, ends: list[int], mu: np.ndarray, sigma: np.ndarray | None,
                   naive: np.ndarray | None, cfg: ForecastConfig, series: int = 4) -> None:  # fmt: skip
    """History (the last 4 contexts), forecast, truth (and seasonal naive, intervals) for up to 4 series, channel 0."""
    plt = pyplot()
    if plt is None:
        return
    n = min(series, len(data.targets))
    fig, axes = plt.subplots(n, 1, figsize=(9, 2.8 * n), squeeze=False)
    H = mu.shape[1]
    for i, ax in enumerate(axes[:, 0]):
        e, t = ends[i], data.targets[i][:, 0]
        lo = max(0, e - 4 * cfg.context)
        ax.plot(range(lo, min(len(t), e + H)), t[lo : e + H], color="black", lw=1, label="history and truth")
        xs = range(e, e + H)
        ax.plot(xs, mu[i, :, 0], color="tab:red", lw=1.6, label=f"forecast ({cfg.model}, {cfg.output})")
        if naive is not None:
            ax.plot(xs, naive[i, :, 0], color="tab:gray", ls="--", lw=1, label=f"seasonal naive (m={cfg.season})")
        if sigma is not None:
            for q, alpha in ((0.95, 0.15), (0.8, 0.3)):
                ax.fill_between(xs, mu[i, :, 0] - Z[q] * sigma[i, :, 0], mu[i, :, 0] + Z[q] * sigma[i, :, 0],
                                color="tab:red", alpha=alpha, lw=0, label=f"{q:.0%} interval")  # fmt: skip
        ax.axvline(e - 0.5, color="gray", lw=0.8)
        ax.set_title(data.name(i), fontsize=9)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    runs.save_figure(fig, path)
