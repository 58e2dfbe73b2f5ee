"""Sequence GANs end to end: TimeGAN trained on series, sampled, and evaluated the way the paper meant to.

    model, run = train_gan(GANConfig(data="sines"))
    x, lengths, _ = sample(run, 1000, seed=0)      # in the data's units, each with its own length
    result = evaluate(run)                          # discriminative and predictive scores, PCA / t-SNE plots

    model, run = train_gan(GANConfig(data="vowels.npz", conditional=True))
    x, lengths, y = sample(run, 100, label=3)       # class 3's sequences, lengths drawn from class 3's

Data: the TimeGAN paper's sines (``sines``: 5 channels, length 24, frequency and phase drawn per channel) or any
file the classifier reads as series (labels used only by a conditional run). Channels are min-max scaled to [0, 1]
with the training data's range, as in the paper, and generated sequences are scaled back.

Training is its own loop, visible below: TimeGAN alternates four optimisers over three phases, which does not fit
the one-loss loop of seqlab.train. Checkpoints are the same safetensors files: ``last`` at the end of each phase and
every ``eval_every`` joint steps, where a quick discriminative score is also taken, and ``best``, the joint-phase
checkpoint with the lowest quick score, which sampling and evaluation use by default (GAN training oscillates).
Resume is not supported: a GAN run restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from .. import runs
from ..data.errors import DataError
from ..data.preprocess import SeriesPrep, series_of
from ..data.sequences import Labels
from ..data.tables import Columns, read_table
from ..models.backbone import RECURRENT, SCANNED, check_name
from ..models.timegan import TimeGAN
from ..train import Checked, check_precision
from .loop import Loop, generate
from .metrics import class_scores, discriminative_score, plot_embeddings, predictive_score


@dataclass
class GANConfig(Columns, Checked):
    """A TimeGAN run; saved as config.json. The column names are Columns' (for files of series)."""

    RULES: ClassVar[dict[str, str]] = {"n": ">=1", "hidden": ">=1", "batch": ">=1", "steps": ">=1", "lr": ">0",
                                       "gamma": ">=0", "eval_every": ">=1"}  # fmt: skip

    data: str = "sines"  # sines | a file of series
    n: int = 10000  # sines only: how many sequences (the paper's 10,000)
    missing: str = "refuse"
    cell: str = "gru"  # the paper's GRU; rnn | lstm | gru | mingru | minlstm
    hidden: int = 24  # the paper's sines setting (4 x channels, at least 24)
    layers: int = 3
    batch: int = 128
    steps: int = 10000  # per phase: autoencoder, supervisor, joint (~1 hour on sines; the reference code runs 50,000)
    lr: float = 1e-3  # Adam, the paper's
    gamma: float = 1.0
    conditional: bool = False  # generate per class: the file's labels condition the generator and discriminator
    eval_every: int = 500  # joint steps between checkpoints and loss reports
    seed: int = 0
    precision: str = "32"  # 32 | bf16: every forward under autocast, weights and checkpoints float32 (seqlab.train)


def sines(n: int, T: int = 24, C: int = 5, seed: int = 0) -> list[np.ndarray]:
    """The TimeGAN paper's sines as (C, T) arrays: per channel x_t = (sin(f t + p) + 1) / 2 with f ~ U(0, 0.1) and
    p ~ U(0, 0.1) — in its units (values in [0.5, 1]), where its scores were computed."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    return [np.stack([(np.sin(rng.uniform(0, 0.1) * t + rng.uniform(0, 0.1)) + 1) / 2 for _ in range(C)])
            .astype(np.float32) for _ in range(n)]  # fmt: skip


def load_series(cfg: GANConfig) -> tuple[list[np.ndarray], list[str], list | None, str]:
    """(T_i, C) arrays as read, their names, their labels when the run is conditional (else None), and a name."""
    if cfg.data == "sines":
        if cfg.conditional:
            raise DataError("sines have no class labels; --conditional needs a file with a label per sequence")
        series = [s.T.copy() for s in sines(cfg.n, seed=cfg.seed)]
        return series, [f"sine {i}" for i in range(len(series))], None, "sines"
    table = series_of(read_table(cfg.data, cfg, labels="required" if cfg.conditional else "optional"), "the GAN")
    return table.items, table.names, table.labels if cfg.conditional else None, cfg.data


def check_config(cfg: GANConfig) -> None:
    check_name(cfg.cell, RECURRENT + SCANNED, "cell")
    if cfg.layers < 2:
        raise ValueError("layers must be at least 2 (the supervisor has one layer fewer)")
    check_precision(cfg.precision)


def model_from(cfg: GANConfig, channels: int, classes: int) -> TimeGAN:
    return TimeGAN(channels, cfg.hidden, cfg.layers, cell=cfg.cell, classes=classes)


def train_gan(cfg: GANConfig, out: str | Path | None = None, echo=print) -> tuple[TimeGAN, Path]:
    """Train TimeGAN's three phases (seqlab.gan.loop) in a new run directory; returns the model and the run."""
    check_config(cfg)
    series, names, values, name = load_series(cfg)
    if len(series) < 2:
        raise DataError(f"{name}: needs at least two sequences")
    labels = Labels.fit(values, name) if values is not None else None
    y_all = labels.encode(values, [name] * len(values)) if labels is not None else None
    prep = SeriesPrep.fit(series, names, cfg.missing, scaling="minmax")  # [0, 1], as the paper
    data = prep(series, names)
    lengths_all = np.array([len(s) for s in data])
    C = prep.channels
    run = runs.create(out, "gan", resumable=False)
    with runs.writing(run, created=True):  # one writer; a failed start leaves no stub
        extra = {**prep.to_json(), "lengths": lengths_all.tolist()}
        if labels is not None:  # sampling draws (class, length) pairs from these
            extra |= {"classes": labels.classes.tolist(), "labels": y_all.tolist()}
        runs.write_config(run, "gan", cfg, **extra)
        lengths = f"lengths {lengths_all.min()}..{lengths_all.max()}"
        echo(f"run: {run}\n{name}: {len(data)} sequences, {C} channels, {lengths}"
             + (f", {len(labels.classes)} classes (conditional)" if labels is not None else ""))  # fmt: skip
        torch.manual_seed(cfg.seed)
        model = model_from(cfg, C, len(labels.classes) if labels is not None else 0)
        train_s = Loop(model, data, y_all, cfg, run, echo)()
        runs.update_config(run, train_s=train_s)
    return model.eval(), run


def read_run(run: str | Path) -> tuple[GANConfig, dict]:
    return runs.read_config(run, "gan", GANConfig)


def load(run: str | Path, which: str = "best") -> tuple[TimeGAN, GANConfig, dict]:
    """The run's model from its ``best`` checkpoint (the lowest quick discriminative score during the joint phase;
    ``last`` when there is none yet) or its ``last``."""
    got = runs.load(run, "gan", GANConfig, lambda cfg, saved: model_from(cfg, saved["channels"],
                    len(saved.get("classes") or [])), which, fall_back=True)  # fmt: skip
    return got.model, got.cfg, got.saved


def sample(run: str | Path, n: int, seed: int = 0, scaled: bool = False, label=None, which: str = "best"):
    """n synthetic sequences (T_i, C), their lengths and, for a conditional run, their labels (else None).

    Each sequence takes the length — and, conditional, the class — of a training sequence drawn at random, so lengths
    follow each class's own distribution; ``label`` keeps to one class. In the data's units unless ``scaled`` (then
    in [0, 1], as the model sees them). ``which``: the best or last checkpoint."""
    model, _, saved = load(run, which)
    gen = torch.Generator().manual_seed(seed)
    classes = saved.get("classes")
    pool = np.arange(len(saved["lengths"]))
    if label is not None:
        if not classes:
            raise ValueError("--label needs a conditional run (trained with --conditional)")
        names = [str(c) for c in classes]
        if str(label) not in names:
            raise ValueError(f"label {label!r} is not one of the run's classes: {', '.join(names[:20])}")
        pool = pool[np.asarray(saved["labels"]) == names.index(str(label))]
    pick = pool[torch.randint(0, len(pool), (n,), generator=gen).numpy()]
    lengths = np.asarray(saved["lengths"])[pick]
    y = np.asarray(saved["labels"])[pick] if classes else None
    out = generate(model, lengths, gen, y)
    if not scaled:
        out = SeriesPrep.from_json(saved).inverse(out)
    return out, lengths, (np.asarray(classes)[y] if classes else None)


def evaluate(run: str | Path, repeats: int = 5, n: int | None = None, out: Path | None = None,
             steps: tuple[int, int] = (2000, 5000), which: str = "best", echo=print) -> dict:  # fmt: skip
    """Discriminative and predictive scores over ``repeats`` runs (mean and std) with fresh synthetic samples per
    repeat; PCA and t-SNE plots with ``out``. The scores are in the units the paper computed them in: the sines'
    own, a file's data min-max scaled to [0, 1] (the paper's loader scales real data first). The predictive score is
    an absolute error, so the units matter: the sines span half the unit interval."""
    cfg, saved = read_run(run)
    real, names, values, _ = load_series(cfg)
    scaled = cfg.data != "sines"
    if scaled:
        real = SeriesPrep.from_json(saved, cfg.missing)(real, names)
    n = n or len(real)
    disc, pred, tstr = [], [], []
    for r in range(repeats):
        fake, _, fake_labels = sample(run, n, seed=1000 + r, scaled=scaled, which=which)
        disc.append(discriminative_score(real[:n], fake, steps[0], seed=r))
        pred.append(predictive_score(real[:n], fake, steps[1], seed=r))
        line = f"repeat {r}: discriminative {disc[-1]:.3f}, predictive {pred[-1]:.4f}"
        if fake_labels is not None:
            tstr.append(class_scores(real, values, saved["classes"], fake, fake_labels, steps[0], seed=r))
            line += f", classes: trained on synthetic {tstr[-1][0]:.3f}, on real {tstr[-1][1]:.3f}"
        echo(line)
    real_pred = [predictive_score(real[:n], real[:n], steps[1], seed=r) for r in range(min(repeats, 2))]
    result = {
        "discriminative": float(np.mean(disc)),
        "discriminative_std": float(np.std(disc)),
        "predictive": float(np.mean(pred)),
        "predictive_std": float(np.std(pred)),
        "predictive_real_on_real": float(np.mean(real_pred)),
        "repeats": repeats,
        "checkpoint": which,
    }
    if tstr:
        on_synthetic, on_real = np.array(tstr).T
        result |= {"class_accuracy_synthetic": float(on_synthetic.mean()), "class_accuracy_synthetic_std":
                   float(on_synthetic.std()), "class_accuracy_real": float(on_real.mean())}  # fmt: skip
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        fake, _, _ = sample(run, min(n, 1000), seed=7, scaled=scaled, which=which)
        plot_embeddings(out / "pca-tsne.png", real[: len(fake)], fake)
        runs.write_json(out / "scores.json", result)
    return result


def write_samples(out: Path, seqs: list[np.ndarray], lengths: np.ndarray, labels) -> np.ndarray:
    """.npz with X (n, channels, longest) zero-padded, lengths, and y for a conditional run; returns X."""
    X = np.zeros((len(seqs), seqs[0].shape[1], int(lengths.max())), np.float32)
    for i, s in enumerate(seqs):
        X[i, :, : len(s)] = s.T
    with runs.atomic_write(out) as tmp:
        np.savez(tmp, X=X, lengths=lengths, **({"y": labels} if labels is not None else {}))
    return X
