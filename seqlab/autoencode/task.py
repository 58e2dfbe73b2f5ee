"""Sequence autoencoders end to end: train on (normal) series, write codes, score reconstruction errors.

    model, run = train_autoencoder(AutoencodeConfig(data="normal.npz"))
    codes = embed(run, "series.npz")                 # (n, code) for downstream models
    result = score(run, "new.npz")                   # per-sequence and per-step errors, anomaly flags

Inputs are the classifier's series formats (long CSV, .npz with lengths, .ts); labels, when a file has them, are
ignored for training and used by ``score`` to report precision and recall against ``normal_label``. Channels are
standardised with statistics of the training split. A stratified-free random ``val_fraction`` is held out: for
early stopping and to set the anomaly threshold — the ``quantile`` of the held-out (normal) sequences' scores.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from .. import runs
from ..data.errors import DataError
from ..data.preprocess import SeriesPrep, series_of
from ..data.sequences import Buckets, SequenceSet, pad
from ..data.tables import Columns, Table, read_table
from ..models.autoencoder import SequenceAutoencoder
from ..models.backbone import RECURRENT, check_name
from ..train import Task, TrainConfig, pyplot, train

SCORES = ("mean", "max")


@dataclass
class AutoencodeConfig(TrainConfig, Columns):
    """An autoencoder run; saved as config.json. The loop's fields are TrainConfig's, the column names Columns'."""

    RULES: ClassVar[dict[str, str]] = {"hidden": ">=1", "layers": ">=1", "code": ">=1", "batch": ">=1",
                                       "epochs": ">=1", "val_fraction": "[0,1)", "quantile": "(0,1)",
                                       "eval_every": ">=0"}  # fmt: skip

    data: str = ""
    missing: str = "refuse"  # refuse | impute
    model: str = "gru"  # rnn | lstm | gru
    hidden: int = 64
    layers: int = 1
    code: int = 16  # Z: the size of the code (the bottleneck)
    bidirectional: bool = True  # encoder only; the decoder runs forward
    backend: str = "auto"
    batch: int = 32
    epochs: int = 200
    val_fraction: float = 0.2  # held out: early stopping and the threshold
    score: str = "max"  # a sequence's score from its per-step errors: max catches a spike, mean a broad drift
    quantile: float = 0.99  # the threshold: this quantile of the held-out sequences' scores
    lr: float = 3e-3
    warmup: int = 20
    eval_every: int = 0  # 0: once per epoch
    patience: int | None = 20


def check_config(cfg: AutoencodeConfig) -> None:
    check_name(cfg.model, RECURRENT)
    if cfg.score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(SCORES)}; got {cfg.score!r}")
    if not 0 < cfg.quantile < 1:
        raise ValueError(f"quantile must lie in (0, 1), got {cfg.quantile}")
    for name in ("hidden", "layers", "code", "batch", "epochs"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(cfg, name)}")


def model_from(cfg: AutoencodeConfig, channels: int) -> SequenceAutoencoder:
    return SequenceAutoencoder(channels, cfg.model, cfg.hidden, cfg.layers, cfg.code, cfg.bidirectional, cfg.backend)


def prepare(table: Table, prep: SeriesPrep) -> SequenceSet:
    table = series_of(table, "the autoencoder")
    return SequenceSet(prep(table.items, table.names), None, table.names)


@torch.no_grad()
def errors(model: SequenceAutoencoder, data: SequenceSet, batch: int = 256) -> list[np.ndarray]:
    """Per sequence, the free-running reconstruction's squared error per step, averaged over channels: (T_i,)."""
    model.eval()
    out: list[np.ndarray] = [np.empty(0)] * len(data)
    for index, x, lengths in data.batches(batch):
        recon = model(x, lengths, teacher=False)
        err = ((recon - x) ** 2).mean(2).numpy()  # (B, T)
        for row, i in enumerate(index):
            out[i] = err[row, : int(lengths[row])]
    return out


def sequence_scores(step_errors: list[np.ndarray], how: str) -> np.ndarray:
    return np.array([e.max() if how == "max" else e.mean() for e in step_errors])


@torch.no_grad()
def codes_of(model: SequenceAutoencoder, data: SequenceSet, batch: int = 256) -> np.ndarray:
    model.eval()
    out = np.zeros((len(data), model.to_code.out_features), dtype=np.float32)
    for index, x, lengths in data.batches(batch):
        out[index] = model.encode(x, lengths).numpy()
    return out


def average_precision(y: np.ndarray, s: np.ndarray) -> float:
    """Area under the precision-recall curve as average precision: the mean precision at each positive's rank."""
    order = np.argsort(-s, kind="stable")
    hits = y[order].astype(bool)
    if not hits.any():
        return float("nan")
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


def detection(y: np.ndarray, s: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall, F1 of ``s > threshold`` against y (1 = anomaly), and the area under the PR curve."""
    flag = s > threshold
    tp, fp, fn = int((flag & (y == 1)).sum()), int((flag & (y == 0)).sum()), int((~flag & (y == 1)).sum())
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "auc_pr": average_precision(y, s)}


class AutoencodeTask(Task):
    """Length-bucketed minibatches, teacher-forced reconstruction, validation by free-running reconstruction."""

    loss_name = "loss (mean squared reconstruction error, standardised units)"

    def __init__(self, model: SequenceAutoencoder, train_set: SequenceSet, val_set: SequenceSet, cfg: AutoencodeConfig):
        self.model, self.train_set, self.val_set, self.cfg = model, train_set, val_set, cfg
        self.buckets = Buckets(train_set.lengths, cfg.batch, cfg.seed)
        self.tokens_per_step = max(1, int(min(cfg.batch, len(train_set)) * train_set.lengths.mean()))

    def batch(self, step: int):
        return pad([self.train_set.x[i] for i in self.buckets(step)])

    def loss(self, batch) -> torch.Tensor:
        x, lengths = batch
        recon = self.model(x, lengths, teacher=True)
        return ((recon - x) ** 2).sum() / (lengths.sum() * x.shape[2])  # mean over valid steps and channels

    def evaluate(self) -> dict[str, float]:
        e = errors(self.model, self.val_set)
        return {"val_loss": float(np.concatenate(e).mean())}  # free-running, as scoring will run


def read_config(run: Path) -> tuple[AutoencodeConfig, dict]:
    return runs.read_config(run, "autoencode", AutoencodeConfig)


def train_autoencoder(cfg: AutoencodeConfig, table: Table | None = None, out: str | Path | None = None,
                      progress: bool = True, echo=print) -> tuple[SequenceAutoencoder, Path]:  # fmt: skip
    """Train in a new run directory; sets the threshold on the held-out split and writes it with the run."""
    check_config(cfg)
    if table is None:
        if not cfg.data:
            raise ValueError("give the series to train on (a file)")
        table = read_table(cfg.data, cfg)
    table = series_of(table, "the autoencoder")
    n = len(table.items)
    order = np.random.default_rng(cfg.seed).permutation(n)
    n_val = max(1, round(cfg.val_fraction * n)) if n > 1 else 0
    val_index, train_index = np.sort(order[:n_val]), np.sort(order[n_val:])
    prep = SeriesPrep.fit([table.items[i] for i in train_index], [table.names[i] for i in train_index], cfg.missing)
    data = prepare(table, prep)
    train_set, val_set = data.subset(train_index), data.subset(val_index) if n_val else data.subset(train_index)
    run = runs.create(out, "autoencode", cfg.model, resumable=False)
    per_epoch = Buckets(train_set.lengths, cfg.batch, cfg.seed).per_epoch
    loop = replace(cfg, steps=cfg.steps or cfg.epochs * per_epoch, eval_every=cfg.eval_every or per_epoch)
    with runs.writing(run, created=True):  # one writer; a failed start leaves no stub
        torch.manual_seed(cfg.seed)
        model = model_from(cfg, prep.channels)
        echo(f"run: {run}\n{len(train_set)} training and {len(val_index)} held-out series, {prep.channels} channels")
        runs.write_config(run, "autoencode", cfg, **prep.to_json())
        train(AutoencodeTask(model, train_set, val_set, loop), loop, run, progress=progress, echo=echo)
        model = load(run)[0]
        held_out = sequence_scores(errors(model, val_set), cfg.score)
        threshold = float(np.quantile(held_out, cfg.quantile))
        runs.update_config(run, threshold=threshold)
    echo(f"threshold {threshold:.4g} ({cfg.quantile:.0%} of {len(held_out)} held-out {cfg.score} errors); "
         f"run written to {run}")  # fmt: skip
    return model, run


def load(run: str | Path, which: str = "best") -> tuple[SequenceAutoencoder, AutoencodeConfig, dict]:
    got = runs.load(run, "autoencode", AutoencodeConfig, lambda cfg, saved: model_from(cfg, saved["channels"]), which)
    return got.model, got.cfg, got.saved


def _data(run, table: Table | str | Path, columns: Columns | None = None):
    model, cfg, saved = load(run)
    if not isinstance(table, Table):
        table = read_table(table, columns or cfg)
    return model, cfg, saved, table, prepare(table, SeriesPrep.from_json(saved, cfg.missing))


def embed(run, table: Table | str | Path, columns: Columns | None = None) -> tuple[np.ndarray, Table]:
    model, _, _, table, data = _data(run, table, columns)
    return codes_of(model, data), table


def score(run, table: Table | str | Path, columns: Columns | None = None, normal_label=None) -> dict:
    """Per-step errors, per-sequence scores and flags (score > the run's threshold); with labels in the table and
    ``normal_label``, precision, recall, F1 and the area under the PR curve."""
    model, cfg, saved, table, data = _data(run, table, columns)
    step_errors = errors(model, data)
    s = sequence_scores(step_errors, cfg.score)
    result = {"table": table, "steps": step_errors, "scores": s, "threshold": saved["threshold"],
              "anomaly": s > saved["threshold"]}  # fmt: skip
    if normal_label is not None:
        if table.labels is None:
            raise DataError(f"{table.names[0].split(' of ', 1)[-1]}: no labels to compare --normal-label with")
        present = sorted({str(v) for v in table.labels})
        if str(normal_label) not in present:
            raise DataError(f"--normal-label {normal_label!r} is not a label of the data ({', '.join(present[:10])})")
        y = np.array([0 if str(v) == str(normal_label) else 1 for v in table.labels])
        result["metrics"] = detection(y, s, saved["threshold"])
    return result


def write_scores(out: Path, result: dict) -> None:
    """out (CSV): id, score, anomaly; beside it <stem>-steps.csv: id, t, error."""
    table = result["table"]
    with runs.atomic_write(out) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "score", "anomaly"])
        for i, sid in enumerate(table.ids):
            w.writerow([sid, f"{result['scores'][i]:.6g}", int(result["anomaly"][i])])
    with runs.atomic_write(out.with_name(f"{out.stem}-steps.csv")) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "t", "error"])
        for sid, e in zip(table.ids, result["steps"], strict=True):
            w.writerows([sid, t, f"{v:.6g}"] for t, v in enumerate(e))


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
    """Histogram of sequence scores with the threshold, and the per-step errors of the highest-scoring sequences."""
    plt = pyplot()
    if plt is None:
        return
    s, thr = result["scores"], result["threshold"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    a.hist(np.log10(s + 1e-12), bins=40, color="tab:blue", alpha=0.8)
    a.axvline(np.log10(thr + 1e-12), color="tab:red", label=f"threshold {thr:.3g}")
    a.set_xlabel(f"log10 sequence score ({cfg_score} per-step error)")
    a.set_ylabel("sequences")
    a.legend()
    for i in np.argsort(-s)[:3]:
        b.plot(result["steps"][i], lw=1, label=result["table"].ids[i])
    b.set_xlabel("step")
    b.set_ylabel("squared reconstruction error")
    b.set_title("highest-scoring sequences")
    b.legend(fontsize=8)
    fig.tight_layout()
    runs.save_figure(fig, path)
