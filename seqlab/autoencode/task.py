"""Sequence autoencoders and anomaly detectors end to end: train on normal series, score new ones step by step.

    model, run = train_autoencoder(AutoencodeConfig(data="normal.npz"))
    result = score(run, "new.npz")                   # per-step scores, flagged steps and intervals, per sequence
    codes = embed(run, "series.npz")                 # (n, code), with detector="reconstruct"

Inputs are the classifier's series formats (long CSV, .npz with lengths, .ts); labels, when a file has them, are
not used for training (a series labelled ``anomaly_label`` is refused there) and are used by ``score`` to report
precision and recall against ``normal_label``. Channels are standardised with statistics of the training split.

Two detectors, each in its best published form:
- ``forecast`` (LSTM-AD, Malhotra et al. 2015): a causal stack predicts the next ``ahead`` steps from the ones before
  them; a step's errors are x_t - x̂_{t|t-k-1} for k < ahead, the step as predicted 1 .. ahead steps earlier (ahead·C
  numbers; the first steps, which lack some of them, score 0). It reads a series of any length chunk by chunk with
  its state carried.
- ``reconstruct`` (EncDec-AD, Malhotra et al. 2016): the autoencoder rebuilds each window of ``window`` steps from
  its code, free running; e_t = x_t - x̂_t.
Either way the errors are normalised by their distribution on held-out normal data: a Gaussian N(μ, Σ) over a
step's ahead·C errors (forecast) or C (reconstruct), a_t = (e_t - μ)ᵀ Σ⁻¹ (e_t - μ), and the step's score is the
centred moving average of log(1 + a_t) over ``smooth`` steps (the log keeps one huge error from swamping its
neighbours' average; ``smooth`` 0 = the dominant period of the training data, the window heuristic of TimeEval's
benchmarks, at most 64 steps, and 8 when the data has no period).
The thresholds flag a stated share of held-out normal data, ``false_alarm``: of its steps (the per-step threshold)
and of its sequences (the sequence threshold on a sequence's ``score``: max or mean of its step
scores). The held-out data is ``val_fraction`` of the training series, or with fewer than 5 series the last
``val_fraction`` of each series' steps (read after the steps before them, as in a stream).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from .. import runs
from ..checkpoint import CheckpointError
from ..data.errors import DataError
from ..data.preprocess import SeriesPrep, series_of
from ..data.sequences import Buckets, SequenceSet, pad
from ..data.tables import Columns, Table, read_table
from ..layers import valid_mask
from ..models.autoencoder import NextStep, SequenceAutoencoder, aligned
from ..models.backbone import RECURRENT, SCANNED, check_name
from ..train import Task, TrainConfig, pyplot, train
from .baselines import period
from .metrics import average_precision, intervals, range_scores, smooth

SCORES = ("mean", "max")
DETECTORS = ("forecast", "reconstruct")
MAX_SMOOTH = 64
ROWS_PER_DIMENSION = 10  # held-out steps per dimension of the errors' Gaussian, at least
FEW = 5  # with fewer training series, the held-out normal data is the end of each series, not whole series


@dataclass
class AutoencodeConfig(TrainConfig, Columns):
    """An autoencoder run; saved as config.json. The loop's fields are TrainConfig's, the column names Columns'."""

    RULES: ClassVar[dict[str, str]] = {"hidden": ">=1", "layers": ">=1", "code": ">=1", "batch": ">=1",
                                       "epochs": ">=1", "val_fraction": "[0,1)", "false_alarm": "(0,1)",
                                       "eval_every": ">=0", "window": ">=2", "smooth": ">=0",
                                       "ahead": ">=1"}  # fmt: skip
    # runs from before the detectors: whole sequences rebuilt, squared errors unsmoothed
    OLD_DEFAULTS: ClassVar[dict] = {"detector": "reconstruct", "smooth": 1, "window": 1 << 30, "ahead": 1}

    data: str = ""
    missing: str = "refuse"  # refuse | impute
    detector: str = "forecast"  # forecast (LSTM-AD) | reconstruct (EncDec-AD; embed needs it): the module docstring
    model: str = "gru"  # rnn | lstm | gru | mingru | minlstm
    hidden: int = 64
    layers: int = 1
    code: int = 16  # reconstruct: Z, the size of the code (the bottleneck)
    bidirectional: bool = True  # reconstruct: the encoder (the decoder runs forward)
    backend: str = "auto"
    ahead: int = 8  # forecast: each step is predicted this many times, 1 .. ahead steps before it (LSTM-AD's l)
    # longer series train as windows of this many steps (stride window/4); a forecaster scores in chunks of it with its
    # state carried, an autoencoder rebuilds one window at a time (embed encodes whole series, as long as trained)
    window: int = 256
    smooth: int = 0  # step scores: centred moving average over this many steps (1: none; 0: the data's period)
    batch: int = 32
    epochs: int = 200
    val_fraction: float = 0.2  # held out: early stopping, the errors' Gaussian and the thresholds
    score: str = "max"  # a sequence's score from its step scores: max catches a short event, mean a broad drift
    false_alarm: float = 0.01  # the thresholds flag this share of held-out normal steps, and of sequences
    anomaly_label: str | None = None  # a training series with this label is refused: train on normal series only
    lr: float = 3e-3
    warmup: int = 20
    eval_every: int = 0  # 0: once per epoch
    patience: int | None = 20


def check_config(cfg: AutoencodeConfig) -> None:
    check_name(cfg.model, RECURRENT + SCANNED)
    check_name(cfg.detector, DETECTORS, "detector")
    if cfg.score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(SCORES)}; got {cfg.score!r}")
    if not 0 < cfg.false_alarm < 1:
        raise ValueError(f"false_alarm must lie in (0, 1), got {cfg.false_alarm}")
    for name in ("hidden", "layers", "code", "batch", "epochs"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(cfg, name)}")
    if cfg.smooth < 0:
        raise ValueError(f"smooth must be at least 0, got {cfg.smooth}")
    if cfg.window < 2:
        raise ValueError(f"window must be at least 2, got {cfg.window}")


def model_from(cfg: AutoencodeConfig, channels: int) -> SequenceAutoencoder | NextStep:
    if cfg.detector == "forecast":
        return NextStep(channels, cfg.model, cfg.hidden, cfg.layers, cfg.backend, cfg.ahead)
    return SequenceAutoencoder(channels, cfg.model, cfg.hidden, cfg.layers, cfg.code, cfg.bidirectional, cfg.backend)


def prepare(table: Table, prep: SeriesPrep) -> SequenceSet:
    table = series_of(table, "the autoencoder")
    return SequenceSet(prep(table.items, table.names), None, table.names)


def windows(series: list[np.ndarray], window: int, stride: int) -> list[np.ndarray]:
    """Each series as pieces of at most ``window`` steps, one starting every ``stride`` steps; with stride < window
    the last piece ends at the series' end (training), with stride == window the pieces tile it (scoring)."""
    out = []
    for x in series:
        starts = list(range(0, max(len(x) - window, 0) + 1, stride)) if stride < window else []
        if stride < window and starts[-1] + window < len(x):
            starts.append(len(x) - window)
        out += [x[s : s + window] for s in starts] if starts else [x[s : s + window] for s in range(0, len(x), window)]
    return out


def fit_loss(model: SequenceAutoencoder | NextStep, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The training loss, mean squared error over valid steps and channels: of every k-ahead prediction of a
    forecaster, or of an autoencoder's teacher-forced reconstruction; and how many errors it averages (the batch's
    units, seqlab.train.Task.loss)."""
    if isinstance(model, NextStep):
        e = aligned(model(x, lengths)[0], x)  # (B, T, ahead, C)
        keep = valid_mask(lengths, x.shape[1])[:, :, None, None] & e.isfinite()
        return (e[keep] ** 2).mean(), int(keep.sum())
    units = int(lengths.sum()) * x.shape[2]
    return ((model(x, lengths, teacher=True) - x) ** 2).sum() / units, units


@torch.no_grad()
def errors(model: SequenceAutoencoder | NextStep, data: SequenceSet, window: int, batch: int = 256) -> list:
    """Per sequence, the detector's signed errors at each step, (T_i, D): a forecaster reads each sequence whole,
    ``window`` steps at a time with its state carried, and e_t holds x_t - x̂_{t|t-k-1} for k < ahead (D = ahead·C;
    NaN where there is no such prediction: the first steps); an autoencoder rebuilds each window of ``window`` steps
    free running, and e_t = x_t - x̂_t (D = C)."""
    model.eval()
    out: list[np.ndarray] = [np.empty((0, 0))] * len(data)
    for index, x, lengths in data.batches(batch):
        if isinstance(model, NextStep):
            err = _forecast_errors(model, x, lengths, window)
        else:  # every window of the batch's rows, rebuilt in one padded batch
            xp, lp = pad(windows([x[i, : int(n)].numpy() for i, n in enumerate(lengths)], window, window))
            ep = (model(xp, lp, teacher=False) - xp).numpy()
            flat = np.concatenate([ep[k, : int(n)] for k, n in enumerate(lp)])
            err = np.split(flat, np.cumsum(lengths.numpy())[:-1])
        for row, i in enumerate(index):
            out[i] = np.asarray(err[row][: int(lengths[row])], dtype=np.float64)
    return out


def _forecast_errors(model: NextStep, x: torch.Tensor, lengths: torch.Tensor, window: int) -> list:
    """The aligned k-ahead errors of a padded batch, (B, T, ahead·C), read chunk by chunk (each row within its own
    length); step 0, predicted from nothing, is NaN."""
    state, prev, parts = None, None, []
    for s in range(0, x.shape[1], window):
        chunk, n = x[:, s : s + window], (lengths - s).clamp(0, window)
        k = int((n > 0).sum())  # rows still running: a prefix, since a batch comes longest first
        pred, state = model(chunk[:k], n[:k], _first(state, k), None if prev is None else prev[:k])
        parts.append(torch.cat([pred, pred.new_zeros(x.shape[0] - k, *pred.shape[1:])]))
        prev = chunk[torch.arange(k), n[:k] - 1][:, None]  # each row's last step so far
    err = aligned(torch.cat(parts, dim=1), x).flatten(2).numpy().astype(np.float64)
    err[:, 0] = np.nan
    return list(err)


def _first(state, k: int):
    """The state of the first k rows: (L·D, B, H) tensors, or an LSTM's pair of them."""
    if state is None:
        return None
    return tuple(s[:, :k] for s in state) if isinstance(state, tuple) else state[:, :k]


def too_little(rows: int, D: int) -> str:
    return (
        f"too little held-out normal data for the errors' {D}-dimensional Gaussian: {rows} steps with every "
        f"prediction, {ROWS_PER_DIMENSION * D} needed; give longer or more series, or a smaller --ahead"
    )


class Normal:
    """The Gaussian of a step's normal errors (D of them): a_t = (e_t - μ)ᵀ Σ⁻¹ (e_t - μ) (EncDec-AD's score; the
    negative log-likelihood up to constants)."""

    def __init__(self, mean, precision):
        self.mean, self.precision = np.asarray(mean, np.float64), np.asarray(precision, np.float64)

    @classmethod
    def fit(cls, errors: list[np.ndarray]) -> Normal:
        e = np.concatenate(errors)
        e = e[np.isfinite(e).all(1)]
        if len(e) < ROWS_PER_DIMENSION * e.shape[1]:
            raise DataError(too_little(len(e), e.shape[1]))
        cov = np.atleast_2d(np.cov(e.T))
        cov += np.eye(len(cov)) * max(1e-6 * np.trace(cov) / len(cov), 1e-12)  # a dead channel stays invertible
        return cls(e.mean(0), np.linalg.inv(cov))

    def __call__(self, e: np.ndarray) -> np.ndarray:
        d = e - self.mean
        return np.nan_to_num(np.einsum("tc,cd,td->t", d, self.precision, d), nan=0.0)  # no prediction: 0

    def to_json(self) -> dict:
        return {"mean": self.mean.tolist(), "precision": self.precision.tolist()}


def step_scores(errors: list[np.ndarray], normal: Normal | None, width: int) -> list[np.ndarray]:
    """Per sequence, log(1 + a_t) smoothed over ``width`` steps; without a Gaussian (runs from before it), the squared
    error averaged over channels, as those runs scored."""
    if normal is None:
        return [(e**2).mean(1) for e in errors]
    return [smooth(np.log1p(normal(e)), width) for e in errors]


def sequence_scores(steps: list[np.ndarray], how: str) -> np.ndarray:
    return np.array([s.max() if how == "max" else s.mean() for s in steps])


def thresholds(normal_steps: list[np.ndarray], how: str, false_alarm: float) -> tuple[float, float]:
    """(step threshold, sequence threshold) that flag ``false_alarm`` of held-out normal steps, and of sequences
    scored by ``how``."""
    step = float(np.quantile(np.concatenate(normal_steps), 1 - false_alarm))
    return step, float(np.quantile(sequence_scores(normal_steps, how), 1 - false_alarm))


@torch.no_grad()
def codes_of(model: SequenceAutoencoder, data: SequenceSet, batch: int = 256) -> np.ndarray:
    model.eval()
    out = np.zeros((len(data), model.to_code.out_features), dtype=np.float32)
    for index, x, lengths in data.batches(batch):
        out[index] = model.encode(x, lengths).numpy()
    return out


def detection(y: np.ndarray, s: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall, F1 of ``s > threshold`` against y (1 = anomaly), and the area under the PR curve."""
    flag = s > threshold
    tp, fp, fn = int((flag & (y == 1)).sum()), int((flag & (y == 0)).sum()), int((~flag & (y == 1)).sum())
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "auc_pr": average_precision(y, s)}


def localisation(labels: list[np.ndarray], steps: list[np.ndarray], threshold: float) -> dict[str, float]:
    """Per-step labels (bool, one array per sequence) against step scores: point-wise area under the PR curve, and
    the range-based precision, recall and F1 (Tatbul et al. 2018, as TimeEval reports them) of the flagged steps."""
    rng = range_scores(labels, [s > threshold for s in steps])
    return {"step_auc_pr": average_precision(np.concatenate(labels), np.concatenate(steps)),
            **{f"range_{k}": v for k, v in rng.items()}}  # fmt: skip


def held_errors(model, held: SequenceSet, held_from: list, window: int) -> list[np.ndarray]:
    """The errors of the held-out steps: each held series scored whole, its held-out steps kept."""
    return [e[f:] for e, f in zip(errors(model, held, window), held_from, strict=True)]


class AutoencodeTask(Task):
    """Length-bucketed minibatches of training windows; the detector's teacher-forced prediction error as the loss;
    validation by the errors that scoring will use (free running for an autoencoder)."""

    loss_name = "loss (mean squared prediction or reconstruction error, standardised units)"

    def __init__(self, model, train_set: SequenceSet, val_set: SequenceSet, val_from: list, cfg: AutoencodeConfig):
        self.model, self.train_set, self.val_set, self.val_from, self.cfg = model, train_set, val_set, val_from, cfg
        self.buckets = Buckets(train_set.lengths, cfg.batch, cfg.seed)
        self.tokens_per_step = max(1, int(min(cfg.batch, len(train_set)) * train_set.lengths.mean()))

    def batch(self, step: int):
        return pad([self.train_set.x[i] for i in self.buckets(step)])

    def loss(self, batch) -> torch.Tensor:
        return fit_loss(self.model, *batch)

    def evaluate(self) -> dict[str, float]:
        e = np.concatenate(held_errors(self.model, self.val_set, self.val_from, self.cfg.window))
        return {"val_loss": float(np.nanmean(e**2))}


def read_config(run: Path) -> tuple[AutoencodeConfig, dict]:
    return runs.read_config(run, "autoencode", AutoencodeConfig)


@dataclass
class Split:
    """Training series and held-out normal data: ``held`` series of which the steps from ``held_from[i]`` on are held
    out (0: the whole series); the steps before it give a forecaster its past, as they would in a stream."""

    train: list
    train_names: list
    held: list
    held_names: list
    held_from: list


def split(table: Table, cfg: AutoencodeConfig) -> Split:
    """Whole series held out, or with fewer than FEW series the last val_fraction of each one's steps (val_fraction
    0: the training series themselves)."""
    items, names = table.items, table.names
    if cfg.val_fraction == 0:
        return Split(items, names, items, names, [0] * len(items))
    if len(items) < FEW:
        cut = [len(x) - max(1, round(cfg.val_fraction * len(x))) for x in items]
        if min(cut) < 2:
            raise DataError(f"{names[int(np.argmin(cut))]}: too short to hold out its end for validation; give more "
                            "series or --val-fraction 0")  # fmt: skip
        return Split([x[:c] for x, c in zip(items, cut, strict=True)], names, items, names, cut)
    order = np.random.default_rng(cfg.seed).permutation(len(items))
    n_val = min(max(1, round(cfg.val_fraction * len(items))), len(items) - 1)
    val, trn = np.sort(order[:n_val]), np.sort(order[n_val:])
    return Split([items[i] for i in trn], [names[i] for i in trn], [items[i] for i in val], [names[i] for i in val],
                 [0] * n_val)  # fmt: skip


def check_training(table: Table, cfg: AutoencodeConfig) -> None:
    """No series labelled as an anomaly, and a smoothing window no longer than the shortest series."""
    source = table.names[0].split(" of ", 1)[-1]
    if cfg.anomaly_label is not None and table.labels is not None:
        bad = [i for i, v in enumerate(table.labels) if str(v) == str(cfg.anomaly_label)]
        if bad:
            raise DataError(f"{source}: {len(bad)} training series are labelled {cfg.anomaly_label!r}, the anomaly "
                            f"label (the first: {table.names[bad[0]]}); train on normal series only")  # fmt: skip
    shortest = min(len(x) for x in table.items)
    if cfg.smooth > shortest:
        raise DataError(f"{source}: --smooth {cfg.smooth} is longer than the shortest series ({shortest} steps)")


def smoothing(series: list[np.ndarray], shortest: int) -> int:
    """``smooth`` 0 resolved: the training series' dominant period, at most MAX_SMOOTH and the shortest series."""
    return max(1, min(period([x.T for x in series], low=2, high=MAX_SMOOTH), shortest))


def train_autoencoder(cfg: AutoencodeConfig, table: Table | None = None, out: str | Path | None = None,
                      progress: bool = True, echo=print) -> tuple[SequenceAutoencoder | NextStep, Path]:  # fmt: skip
    """Train in a new run directory; fits the errors' Gaussian and the thresholds on the held-out normal data and
    writes them with the run."""
    check_config(cfg)
    if table is None:
        if not cfg.data:
            raise ValueError("give the series to train on (a file)")
        table = read_table(cfg.data, cfg)
    table = series_of(table, "the autoencoder")
    check_training(table, cfg)
    parts = split(table, cfg)
    prep = SeriesPrep.fit(parts.train, parts.train_names, cfg.missing)
    scaled = prep(parts.train, parts.train_names)
    if cfg.smooth == 0:
        cfg = replace(cfg, smooth=smoothing(scaled, min(len(x) for x in table.items)))
    pieces = windows(scaled, cfg.window, max(1, cfg.window // 4))
    train_set = SequenceSet(pieces, None, [f"window {i}" for i in range(len(pieces))])
    val_set = SequenceSet(prep(parts.held, parts.held_names), None, parts.held_names)
    first, D = (cfg.ahead, cfg.ahead * prep.channels) if cfg.detector == "forecast" else (0, prep.channels)
    rows = sum(max(0, len(x) - max(f, first)) for x, f in zip(parts.held, parts.held_from, strict=True))
    if rows < ROWS_PER_DIMENSION * D:  # refused before a run exists, as Normal.fit would after training
        raise DataError(too_little(rows, D))
    run = runs.create(out, "autoencode", cfg.model, resumable=False)
    per_epoch = Buckets(train_set.lengths, cfg.batch, cfg.seed).per_epoch
    loop = replace(cfg, steps=cfg.steps or cfg.epochs * per_epoch, eval_every=cfg.eval_every or per_epoch)
    with runs.writing(run, created=True):  # one writer; a failed start leaves no stub
        torch.manual_seed(cfg.seed)
        model = model_from(cfg, prep.channels)
        echo(f"run: {run}\n{len(train_set)} training windows from {len(parts.train)} series, {len(val_set)} held-out "
             f"series, {prep.channels} channels; detector: {cfg.detector}")  # fmt: skip
        runs.write_config(run, "autoencode", cfg, **prep.to_json())
        train(AutoencodeTask(model, train_set, val_set, parts.held_from, loop), loop, run, progress=progress,
              echo=echo)  # fmt: skip
        model = load(run)[0]
        e = held_errors(model, val_set, parts.held_from, cfg.window)
        normal = Normal.fit(e)
        steps = step_scores(e, normal, cfg.smooth)
        step_threshold, threshold = thresholds(steps, cfg.score, cfg.false_alarm)
        runs.update_config(run, normal=normal.to_json(), threshold=threshold, step_threshold=step_threshold)
    echo(f"thresholds: step {step_threshold:.4g}, sequence {threshold:.4g} (a false-alarm rate of {cfg.false_alarm:g} "
         f"on {len(val_set)} held-out normal series); run written to {run}")  # fmt: skip
    return model, run


def load(run: str | Path, which: str = "best") -> tuple[SequenceAutoencoder | NextStep, AutoencodeConfig, dict]:
    got = runs.load(run, "autoencode", AutoencodeConfig, lambda cfg, saved: model_from(cfg, saved["channels"]), which)
    return got.model, got.cfg, got.saved


def _data(run, table: Table | str | Path, columns: Columns | None = None):
    model, cfg, saved = load(run)
    if not isinstance(table, Table):
        table = read_table(table, columns or cfg)
    return model, cfg, saved, table, prepare(table, SeriesPrep.from_json(saved, cfg.missing))


def embed(run, table: Table | str | Path, columns: Columns | None = None) -> tuple[np.ndarray, Table]:
    model, cfg, _, table, data = _data(run, table, columns)
    if not isinstance(model, SequenceAutoencoder):
        raise ValueError(f"{run}: a {cfg.detector} detector has no codes; train with --detector reconstruct to embed")
    return codes_of(model, data), table


def score(run, table: Table | str | Path, columns: Columns | None = None, normal_label=None,
          step_labels: list[np.ndarray] | None = None) -> dict:  # fmt: skip
    """Per-step scores, flags and flagged intervals, per-sequence scores and flags. With labels in the table and
    ``normal_label``: precision, recall, F1 and area under the PR curve of the sequences (``metrics``). With
    ``step_labels`` (one bool array per sequence): point-wise area under PR and range-based precision, recall and F1
    (``localisation``)."""
    model, cfg, saved, table, data = _data(run, table, columns)
    if "threshold" not in saved:
        raise CheckpointError(f"{run}: training did not finish, so the run has no thresholds; train it again")
    normal = Normal(**saved["normal"]) if "normal" in saved else None
    steps = step_scores(errors(model, data, cfg.window), normal, cfg.smooth)
    s = sequence_scores(steps, cfg.score)
    step_threshold = saved.get("step_threshold", saved["threshold"])
    flags = [v > step_threshold for v in steps]
    result = {"table": table, "steps": steps, "scores": s, "threshold": saved["threshold"],
              "anomaly": s > saved["threshold"], "step_threshold": step_threshold, "flags": flags,
              "intervals": [intervals(f) for f in flags]}  # fmt: skip
    if normal_label is not None:
        if table.labels is None:
            raise DataError(f"{table.names[0].split(' of ', 1)[-1]}: no labels to compare --normal-label with")
        present = sorted({str(v) for v in table.labels})
        if str(normal_label) not in present:
            raise DataError(f"--normal-label {normal_label!r} is not a label of the data ({', '.join(present[:10])})")
        y = np.array([0 if str(v) == str(normal_label) else 1 for v in table.labels])
        result["metrics"] = detection(y, s, saved["threshold"])
    if step_labels is not None:
        result["localisation"] = localisation(check_step_labels(step_labels, steps, table.ids), steps, step_threshold)
    return result


def check_step_labels(labels, steps: list[np.ndarray], ids: list[str]) -> list[np.ndarray]:
    """Per-step labels as one bool array per sequence: rows of a padded (n, T) array are cut to each length."""
    if len(labels) != len(steps):
        raise DataError(f"step labels for {len(labels)} series; the data has {len(steps)}")
    out = []
    for i, (y, s) in enumerate(zip(labels, steps, strict=True)):
        y = np.asarray(y)
        if y.ndim != 1 or len(y) < len(s):
            raise DataError(f"step labels of series {ids[i]!r}: shape {y.shape}, expected at least {len(s)} steps")
        if not np.isin(y[: len(s)], (0, 1)).all():
            raise DataError(f"step labels of series {ids[i]!r}: values other than 0 and 1")
        out.append(y[: len(s)].astype(bool))
    return out


def write_scores(out: Path, result: dict) -> None:
    """out (CSV): id, score, anomaly, intervals; beside it <stem>-steps.csv (id, t, score, anomaly) and
    <stem>-intervals.csv (id, start, end, peak: the flagged intervals, end exclusive, and their highest score)."""
    table = result["table"]
    with runs.atomic_write(out) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "score", "anomaly", "intervals"])
        for i, sid in enumerate(table.ids):
            w.writerow([sid, f"{result['scores'][i]:.6g}", int(result["anomaly"][i]), len(result["intervals"][i])])
    with runs.atomic_write(out.with_name(f"{out.stem}-steps.csv")) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "t", "score", "anomaly"])
        for sid, s, flag in zip(table.ids, result["steps"], result["flags"], strict=True):
            w.writerows([sid, t, f"{v:.6g}", int(a)] for t, (v, a) in enumerate(zip(s, flag, strict=True)))
    with runs.atomic_write(out.with_name(f"{out.stem}-intervals.csv")) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "start", "end", "peak"])
        for sid, s, spans in zip(table.ids, result["steps"], result["intervals"], strict=True):
            w.writerows([sid, a, b, f"{s[a:b].max():.6g}"] for a, b in spans)


def write_codes(out: Path, codes: np.ndarray, ids: list[str]) -> None:
    """Codes as .npy (n, Z), or any other suffix as CSV with an id column."""
    with runs.atomic_write(out) as tmp:
        if out.suffix == ".npy":
            np.save(tmp, codes)
            return
        with open(tmp, "w") as f:
            f.write("id," + ",".join(f"z{k}" for k in range(codes.shape[1])) + "\n")
            f.writelines(f"{i}," + ",".join(f"{v:.6g}" for v in row) + "\n" for i, row in zip(ids, codes, strict=True))


def plot_scores(path: Path, result: dict, cfg_score: str) -> None:
    """Histogram of sequence scores with the threshold, and the step scores of the highest-scoring sequences with
    the per-step threshold and their flagged intervals shaded."""
    plt = pyplot()
    if plt is None:
        return
    s, thr = result["scores"], result["threshold"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    a.hist(np.log10(s + 1e-12), bins=40, color="tab:blue", alpha=0.8)
    a.axvline(np.log10(thr + 1e-12), color="tab:red", label=f"threshold {thr:.3g}")
    a.set_xlabel(f"log10 sequence score ({cfg_score} of its step scores)")
    a.set_ylabel("sequences")
    a.legend()
    for k, i in enumerate(np.argsort(-s)[:3]):
        line = b.plot(result["steps"][i], lw=1, label=result["table"].ids[i])[0]
        for start, end in result["intervals"][i]:
            b.axvspan(start, end, color=line.get_color(), alpha=0.15, lw=0, label="flagged" if k == 0 else None)
    b.axhline(result["step_threshold"], color="tab:red", lw=1, label="step threshold")
    b.set_yscale("symlog")
    b.set_xlabel("step")
    b.set_ylabel("step score")
    b.set_title("highest-scoring sequences")
    b.legend(fontsize=8)
    fig.tight_layout()
    runs.save_figure(fig, path)
