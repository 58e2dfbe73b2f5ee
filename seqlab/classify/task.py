"""Sequence classification end to end: labelled texts or time series in, a run directory out, predictions from it.

    cfg = ClassifyConfig(data="train.csv")                 # or .tsv, .jsonl (text); long CSV, .npz, .ts (series)
    model, inputs, run = train_classifier(cfg)             # writes runs/classify-fcn-<time>/
    model, inputs, cfg = load(run)
    proba = predict_proba(model, inputs.prepare(read_table("new.csv")))

A run directory holds config.json (the config, the data file's SHA-256, the preprocessing: classes, per-channel mean
and standard deviation or the tokenizer), what seqlab.train writes (checkpoints, metrics.jsonl, loss.png), and, at the
end, report.txt and confusion.png for the validation split with the best checkpoint.

Defaults are one configuration for every data set (README: no tuning per data set), chosen on the UCR benchmark;
``resolve`` picks the training regime from the data's size (the small regime for UCR-sized sets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch.nn import functional as F

from .. import runs
from ..data import augment
from ..data.errors import DataError
from ..data.preprocess import SeriesPrep
from ..data.sequences import Buckets, Labels, SequenceSet, pad, stratified_split
from ..data.tables import Columns, Table, read_table
from ..data.tokenizers import Tokenizer, load_tokenizer, train_tokenizer
from ..layers import POOLINGS
from ..models import Classifier, Ensemble
from ..models.backbone import BACKBONES, CONVOLUTIONAL, check_heads
from ..train import STOPPED, Task, TrainConfig, pyplot, train


@dataclass
class ClassifyConfig(TrainConfig, Columns):
    """A classifier run; saved as config.json. The loop's fields are TrainConfig's, the column names Columns'."""

    RULES: ClassVar[dict[str, str]] = {"vocab_size": ">=1", "max_len": ">=1", "embed": ">=1", "hidden": ">=1",
                                       "layers": ">=1", "heads": ">=1", "dropout": "[0,1)", "batch": ">=1",
                                       "epochs": ">=1", "val_fraction": "[0,1)", "eval_every": ">=0",
                                       "ensemble": ">=1"}  # fmt: skip
    OLD_DEFAULTS: ClassVar[dict] = {"regime": "standard", "ensemble": 1, "augment": "none"}  # runs from before them

    data: str = ""  # the training file
    missing: str = "refuse"  # NaN/Inf in a series: refuse (name it) | impute (linear interpolation per channel)
    tokenizer: str = "char"  # text: char | word | bpe, trained on the training file's texts
    vocab_size: int = 8000  # word and bpe only
    max_len: int | None = None  # keep the first max_len steps of longer sequences; None keeps every step
    model: str = "fcn"  # rnn | lstm | gru | transformer | fcn | inception | lstm-fcn | gru-fcn
    embed: int = 64  # text only
    hidden: int = 64  # recurrent: units per direction; fcn: 64-128-64 filters; inception: width (4 x 16 filters)
    layers: int = 1
    bidirectional: bool = True  # a class can hinge on the start of a series as much as on its end (recurrent only)
    heads: int = 4  # transformer only
    pooling: str = "mean"  # last | mean | max | attention | concat (last+max+mean): FCN's global average pooling
    dropout: float = 0.1  # before the head (and between layers)
    backend: str = "auto"
    class_weight: str | dict = "none"  # none | balanced (n / (K n_k)) | {label: weight} (others weigh 1)
    regime: str = "auto"  # auto | small | standard (see resolve): auto is small for at most SMALL training sequences
    ensemble: int | None = None  # members whose probabilities are averaged; None: the regime's (small: up to 5)
    augment: str = "auto"  # auto | none | a comma list of jitter, scale, slice (series): auto is jitter,scale if small
    batch: int = 32
    epochs: int | None = None  # passes over the training split, unless --steps is given; None: the regime's
    val_fraction: float = 0.2  # stratified hold-out for early stopping and the best checkpoint
    lr: float | None = None  # AdamW's peak; None: the regime's (LR)
    warmup: int = 20
    weight_decay: float = 0.01
    eval_every: int = 0  # 0: once per epoch
    patience: int | None = 20  # evaluations without a better validation accuracy (ties: lower loss) before stopping


def check_config(cfg: ClassifyConfig) -> None:
    """Refuse a bad choice before anything is read or written."""
    choices = {
        "model": BACKBONES + CONVOLUTIONAL,
        "regime": ("auto", "small", "standard"),
        "pooling": POOLINGS,
        "tokenizer": ("char", "word", "bpe"),
        "missing": ("refuse", "impute"),
    }
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {getattr(cfg, name)!r}")
    check_heads(cfg.model, cfg.hidden, cfg.heads)
    if isinstance(cfg.class_weight, dict):
        for label, w in cfg.class_weight.items():
            if not (isinstance(w, (int, float)) and math.isfinite(w) and w >= 0):
                raise ValueError(f"class_weight of {label!r} must be a finite number >= 0, got {w!r}")
    elif cfg.class_weight not in ("none", "balanced"):
        raise ValueError(f"class_weight must be one of none, balanced or a dict; got {cfg.class_weight!r}")
    if cfg.augment != "auto":
        augment.parse(cfg.augment)


SMALL = 1000  # regime 'auto' trains a set of at most this many sequences as small
SMALL_ENSEMBLE = 5  # the most members the small regime trains, as InceptionTime's ensemble
SMALL_STEPS = 400  # gradient steps per member in the small regime, where the budget allows
MIN_STEPS = 100  # ... and at least these, whatever the budget
FIT_BUDGET = 7e6  # sequence steps a small-regime fit reads, all members together (about 25 s for the default here)
LR = {"small": 1e-2, "standard": 3e-3}  # the peak learning rate when none is given
STANDARD_EPOCHS = 300  # the standard regime's longest schedule, cut short by early stopping ...
STANDARD_BUDGET = 30e6  # ... and by this many sequence steps read (a few thousand texts: a few minutes)


def padded_length(lengths, batch: int) -> float:
    """The steps a sequence costs on average once batched: length-sorted batches of ``batch`` (as Buckets' are)
    are padded to their longest, so unequal lengths cost more than their mean."""
    s = np.sort(np.asarray(lengths))[::-1]
    return float(sum(len(s[i : i + batch]) * s[i] for i in range(0, len(s), batch)) / max(1, len(s)))


def resolve(cfg: ClassifyConfig, n_train: int, kind: str, mean_length: float) -> ClassifyConfig:
    """The regime's choices, made from the training set's size and its sequences' ``mean_length`` (padded: see
    ``padded_length``); config.json saves this result, so a resumed run trains exactly as it began.

    - standard: a stratified validation split (``val_fraction``) for early stopping and the best checkpoint;
      one model; no augmentation; lr 3e-3; STANDARD_EPOCHS epochs, or fewer where they would read more than
      STANDARD_BUDGET sequence steps.
    - small (auto: at most SMALL training sequences): every sequence trains (val_fraction 0, no early stopping; the
      model is the last checkpoint) on a fixed schedule (warm-up, then cosine), with jitter and scaling (series),
      lr 1e-2, and an ensemble whose probabilities are averaged. Its size and the schedule's length come from the
      data: SMALL_STEPS steps for each of up to SMALL_ENSEMBLE members while FIT_BUDGET allows (``small_plan``).
    Whatever was given explicitly (``ensemble``, ``augment``, ``lr``, ``epochs``, ``steps``) is kept.
    """
    small = cfg.regime == "small" or (cfg.regime == "auto" and n_train <= SMALL)
    regime = "small" if small else "standard"
    kinds = cfg.augment
    if kinds == "auto":
        kinds = "jitter,scale" if small and kind == "series" else "none"
    if kind == "text" and augment.parse(kinds):
        raise DataError(f"--augment {kinds}: augmentation (jitter, scale, slice) is for series, not text")
    cfg = replace(cfg, regime=regime, augment=kinds, lr=cfg.lr if cfg.lr is not None else LR[regime])
    if isinstance(cfg.class_weight, dict):  # as config.json will hold it: labels as text, weights as floats
        cfg = replace(cfg, class_weight={str(k): float(v) for k, v in cfg.class_weight.items()})
    if not small:
        per_epoch = max(1.0, n_train * (1 - cfg.val_fraction) * mean_length)
        epochs = max(1, min(STANDARD_EPOCHS, math.ceil(STANDARD_BUDGET / per_epoch)))
        return replace(cfg, ensemble=cfg.ensemble or 1, epochs=cfg.epochs or epochs)
    members, epochs = small_plan(cfg, n_train, mean_length)
    return replace(cfg, ensemble=members, epochs=cfg.epochs or epochs, val_fraction=0.0, patience=None)


def small_plan(cfg: ClassifyConfig, n_train: int, mean_length: float) -> tuple[int, int]:
    """(members, epochs) of a small-regime fit: as many members as FIT_BUDGET gives SMALL_STEPS steps each (1 to
    SMALL_ENSEMBLE, or ``cfg.ensemble``), and the epochs that make SMALL_STEPS steps, or fewer where the budget ends
    first (never under MIN_STEPS)."""
    per_step = min(cfg.batch, n_train) * mean_length  # sequence steps one member reads in a step
    members = cfg.ensemble or max(1, min(SMALL_ENSEMBLE, math.floor(FIT_BUDGET / (SMALL_STEPS * per_step))))
    steps = max(MIN_STEPS, min(SMALL_STEPS, FIT_BUDGET / (members * per_step)))
    return members, math.ceil(steps / math.ceil(n_train / cfg.batch))


# ------------------------------------------------------------------------------------------------ inputs
class Inputs:
    """Everything between a file's contents and the model's tensors, fitted on the training split and saved in the
    run: the kind (text or series), labels <-> classes, and the tokenizer or the series preprocessing
    (seqlab.data.preprocess: checks, missing values, per-channel standardisation)."""

    def __init__(self, kind: str, labels: Labels, cfg: ClassifyConfig, tokenizer: Tokenizer | None = None,
                 series: SeriesPrep | None = None):  # fmt: skip
        self.kind, self.labels, self.tokenizer, self.series = kind, labels, tokenizer, series
        self.max_len = cfg.max_len

    @property
    def channels(self) -> int | None:
        return None if self.series is None else self.series.channels

    @classmethod
    def fit(cls, table: Table, train_index: np.ndarray, cfg: ClassifyConfig) -> Inputs:
        labels = Labels.fit([table.labels[i] for i in train_index], "the training labels")
        if table.kind == "text":
            texts = [table.items[i] for i in train_index]
            return cls(
                "text", labels, cfg, tokenizer=train_tokenizer(cfg.tokenizer, lambda: iter(texts), cfg.vocab_size)
            )
        series = SeriesPrep.fit([table.items[i] for i in train_index], [table.names[i] for i in train_index],
                                cfg.missing)  # fmt: skip
        return cls("series", labels, cfg, series=series)

    @property
    def vocab_size(self) -> int | None:
        # One id more than the tokenizer's: characters never seen in training map there at prediction time.
        return None if self.tokenizer is None else self.tokenizer.vocab_size + 1

    def encode_text(self, text: str) -> np.ndarray:
        return np.array(self.tokenizer.encode_any(text), dtype=np.int64)

    def prepare(self, table: Table, labelled: bool | None = None) -> SequenceSet:
        """A table -> model-ready sequences (with class indices when it has labels and ``labelled`` is not False)."""
        if table.kind != self.kind:
            raise DataError(f"{table.names[0].split(' of ', 1)[-1]}: holds {table.kind}, the model reads {self.kind}")
        if self.kind == "text":
            x = [self.encode_text(t) for t in table.items]
            for ids, name in zip(x, table.names, strict=True):
                if len(ids) == 0:
                    raise DataError(f"{name}: no tokens in the text")
        else:
            x = self.series(table.items, table.names)
        if self.max_len is not None:
            x = [s[: self.max_len] for s in x]
        y = None
        if table.labels is not None and labelled is not False:
            y = self.labels.encode(table.labels, table.names)
        return SequenceSet(x, y, table.names)

    def to_json(self) -> dict:
        spec = {"kind": self.kind, "classes": self.labels.classes.tolist(), "channels": self.channels}
        if self.series is not None:
            spec.update(self.series.to_json())
        return spec

    @classmethod
    def from_json(cls, spec: dict, cfg: ClassifyConfig, run: Path) -> Inputs:
        tokenizer = load_tokenizer(run / "tokenizer.json") if spec["kind"] == "text" else None
        series = SeriesPrep.from_json(spec, cfg.missing) if spec["kind"] == "series" else None
        return cls(spec["kind"], Labels(spec["classes"]), cfg, tokenizer, series)


def model_from(cfg: ClassifyConfig, inputs: Inputs) -> Classifier | Ensemble:
    members = cfg.ensemble or 1
    return (Ensemble if members > 1 else Classifier)(
        *([members] if members > 1 else []),
        len(inputs.labels.classes),
        channels=inputs.channels if inputs.kind == "series" else None,
        vocab_size=inputs.vocab_size,
        embed=cfg.embed,
        model=cfg.model,
        hidden=cfg.hidden,
        layers=cfg.layers,
        bidirectional=cfg.bidirectional,
        pooling=cfg.pooling,
        dropout=cfg.dropout,
        backend=cfg.backend,
        heads=cfg.heads,
    )


# ------------------------------------------------------------------------------------------------ metrics
def metrics(y: np.ndarray, proba: np.ndarray, K: int) -> dict:
    """Accuracy, macro-F1, mean cross-entropy, the confusion matrix (rows: true class) and per-class scores."""
    pred = proba.argmax(1)
    confusion = np.zeros((K, K), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    tp = np.diag(confusion).astype(np.float64)
    support, predicted = confusion.sum(1), confusion.sum(0)
    precision = np.divide(tp, predicted, out=np.zeros(K), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(K), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(K), where=precision + recall > 0)
    present = support > 0  # macro-F1 over the classes that occur, as scikit-learn's labels=present
    loss = float(-np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, None)).mean())
    return {
        "accuracy": float((pred == y).mean()),
        "macro_f1": float(f1[present].mean()),
        "loss": loss,
        "confusion": confusion,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": support,
    }


def report_text(m: dict, classes: np.ndarray) -> str:
    width = max(8, *(len(str(c)) for c in classes))
    lines = [f"{'class':>{width}}  precision  recall     f1  support"]
    for k, c in enumerate(classes):
        lines.append(
            f"{c!s:>{width}}  {m['precision'][k]:9.3f}  {m['recall'][k]:6.3f}  {m['f1'][k]:5.3f}  {m['support'][k]:7d}"
        )
    lines.append(f"accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}, loss {m['loss']:.4f} (nats)")
    return "\n".join(lines)


def plot_confusion(path: Path, confusion: np.ndarray, classes: np.ndarray, title: str) -> bool:
    """A confusion-matrix PNG (rows true, columns predicted, counts in the cells). False without matplotlib."""
    plt = pyplot()
    if plt is None:
        return False
    K = len(classes)
    size = min(12, 2.5 + 0.45 * K)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(K), [str(c) for c in classes], rotation=45 if K > 4 else 0, ha="right" if K > 4 else "center")
    ax.set_yticks(range(K), [str(c) for c in classes])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    top = confusion.max() if confusion.size else 0
    if K <= 30:
        for i in range(K):
            for j in range(K):
                ax.text(j, i, str(confusion[i, j]), ha="center", va="center",
                        color="white" if confusion[i, j] > top / 2 else "black", fontsize=8)  # fmt: skip
    fig.tight_layout()
    runs.save_figure(fig, path)
    return True


# ------------------------------------------------------------------------------------------------ the task
@torch.no_grad()
def predict_proba(model: Classifier | Ensemble, data: SequenceSet, batch: int = 256) -> np.ndarray:
    """(n, K) class probabilities in the order of ``data``; batches sorted by length so that little is padded. An
    ensemble's members are averaged in float64, so a row's probabilities never depend on its place in a batch."""
    model.eval()
    out = np.zeros((len(data), model.classes), dtype=np.float64)
    for index, x, lengths in data.batches(batch):
        out[index] = torch.softmax(model.member_logits(x, lengths).double(), dim=2).mean(0).numpy()
    return out


class ClassifyTask(Task):
    """Length-bucketed minibatches, cross-entropy, and validation by accuracy, for seqlab.train.train."""

    loss_name = "loss (cross-entropy, nats)"

    def __init__(self, model: Classifier | Ensemble, train_set: SequenceSet, val_set: SequenceSet, cfg: ClassifyConfig,
                 K: int, classes: np.ndarray | None = None):  # fmt: skip
        self.model, self.train_set, self.val_set, self.cfg, self.K = model, train_set, val_set, cfg, K
        self.augment = augment.parse(cfg.augment) if cfg.augment != "auto" else ()
        self.buckets = Buckets(train_set.lengths, cfg.batch, cfg.seed)
        self.tokens_per_step = max(1, int(min(cfg.batch, len(train_set)) * train_set.lengths.mean()))
        self.weights = None
        if cfg.class_weight == "balanced":
            counts = np.bincount(train_set.y, minlength=K).astype(np.float64)
            self.weights = torch.tensor(len(train_set.y) / (K * np.maximum(counts, 1)), dtype=torch.float32)
        elif isinstance(cfg.class_weight, dict):  # keyed by the label as given, or as config.json holds it (text)
            given = {str(k): float(v) for k, v in cfg.class_weight.items()}
            self.weights = torch.tensor([given.get(str(c), 1.0) for c in classes], dtype=torch.float32)
        self.last: dict = {}

    def batch(self, step: int):
        index = self.buckets(step)
        items = [self.train_set.x[i] for i in index]
        if self.augment:
            items = augment.augment(items, self.augment, np.random.default_rng([self.cfg.seed, step]))
        x, lengths = pad(items)
        return x, lengths, torch.from_numpy(self.train_set.y[index])

    def loss(self, batch) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Each member's mean cross-entropy, averaged over the members (one for a single classifier); with class
        weights, a weighted mean, whose units are the batch's summed weights."""
        x, lengths, y = batch
        logits = self.model.member_logits(x, lengths)  # (M, B, K)
        M = logits.shape[0]
        loss = F.cross_entropy(logits.flatten(0, 1), y.repeat(M), weight=self.weights)
        return loss if self.weights is None else (loss, self.weights[y].sum())

    def evaluate(self) -> dict[str, float]:
        m = metrics(self.val_set.y, predict_proba(self.model, self.val_set), self.K)
        self.last = m
        return {"val_loss": m["loss"], "val_accuracy": m["accuracy"], "val_macro_f1": m["macro_f1"]}

    @staticmethod
    def objective(result: dict) -> tuple[float, ...]:
        return (-result["val_accuracy"], result["val_loss"])  # accuracy first; among equals, the surer model

    def report(self, step: int) -> str:
        return f"validation accuracy {self.last['accuracy']:.4f}, macro-F1 {self.last['macro_f1']:.4f}"


# ------------------------------------------------------------------------------------------------ runs
def read_config(run: Path) -> tuple[ClassifyConfig, dict]:
    return runs.read_config(run, "classify", ClassifyConfig)


def split(table: Table, cfg: ClassifyConfig) -> tuple[np.ndarray, np.ndarray]:
    if table.labels is None:
        raise DataError("no labels to train on")
    y = np.unique(np.asarray(table.labels), return_inverse=True)[1].reshape(-1)
    return stratified_split(y, cfg.val_fraction, cfg.seed)


def train_classifier(
    cfg: ClassifyConfig,
    table: Table | None = None,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    progress: bool = True,
    echo=print,
) -> tuple[Classifier, Inputs, Path]:
    """Train on ``cfg.data`` (or on ``table``, from Python) in a new run directory, or continue ``resume``.

    Returns the model with the best checkpoint's weights (in eval mode), its inputs, and the run directory.
    """
    if resume:
        run = runs.own(resume)
        cfg, saved = runs.resume_config(run, "classify", ClassifyConfig, cfg)
        runs.check_data(run, cfg.data, saved)
        table = read_table(cfg.data, cfg, labels="required")
        train_index, val_index = split(table, cfg)
        inputs = Inputs.from_json(saved["inputs"], cfg, run)
    else:
        check_config(cfg)
        if table is None:
            if not cfg.data:
                raise ValueError("give the training data (a file)")
            table = read_table(cfg.data, cfg, labels="required")
        lengths = [min(len(s), cfg.max_len or len(s)) for s in table.items]  # characters, for text: an upper bound
        cfg = resolve(cfg, len(table.items), table.kind, padded_length(lengths, cfg.batch))
        train_index, val_index = split(table, cfg)
        inputs = Inputs.fit(table, train_index, cfg)
    data = inputs.prepare(table)  # before anything is written: a bad sequence is named here
    train_set = data.subset(train_index)
    val_set = data.subset(val_index) if len(val_index) else train_set  # no hold-out: monitor the training split
    K = len(inputs.labels.classes)
    per_epoch = Buckets(train_set.lengths, cfg.batch, cfg.seed).per_epoch
    saved_cfg = cfg  # config.json keeps what was asked (epochs); the loop gets it in steps
    steps = cfg.steps or cfg.epochs * per_epoch
    # The small regime has nothing held out to select by: one evaluation, at the end, and the model is the last.
    every = cfg.eval_every or (steps if cfg.regime == "small" else per_epoch)
    cfg = replace(cfg, steps=steps, eval_every=every)
    run = run if resume else runs.create(out, "classify", cfg.model)
    with runs.writing(run, created=not resume):  # one writer; a failed start leaves no stub
        if not resume:
            if inputs.tokenizer is not None:
                inputs.tokenizer.save(run / "tokenizer.json")
            runs.write_config(run, "classify", saved_cfg, data_sha256=runs.data_sha256(cfg.data),
                              inputs=inputs.to_json())  # fmt: skip
            echo(
                f"run: {run}\n{inputs.kind}: {len(train_set)} training and {len(val_index)} validation sequences, "
                f"{K} classes, lengths {int(data.lengths.min())}..{int(data.lengths.max())}"
                + (f", {inputs.channels} channels" if inputs.kind == "series" else f", vocabulary {inputs.vocab_size}")
            )
        torch.manual_seed(cfg.seed)
        model = model_from(cfg, inputs)
        task = ClassifyTask(model, train_set, val_set, cfg, K, inputs.labels.classes)
        result = train(task, cfg, run, resume=bool(resume), progress=progress, echo=echo)
        model = load(run)[0]
        m = metrics(val_set.y, predict_proba(model, val_set), K)
        which = "validation" if len(val_index) else "training (no validation split)"
        runs.write_text(run / "report.txt", f"{which} split, best checkpoint (step {result['best']['step']})\n"
                        + report_text(m, inputs.labels.classes) + "\n")  # fmt: skip
        plot_confusion(
            run / "confusion.png", m["confusion"], inputs.labels.classes, f"{which}, {len(val_set)} sequences"
        )
    echo(
        f"stopped at step {result['step']} ({STOPPED[result['stopped']]}); best at step {result['best']['step']}: "
        f"{which} accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}; run written to {run}"
    )
    return model, inputs, run


def load(run: str | Path, which: str = "best") -> tuple[Classifier, Inputs, ClassifyConfig]:
    """The classifier of a run (best or last checkpoint) in eval mode on CPU, with its inputs."""

    def build(cfg: ClassifyConfig, saved: dict) -> Classifier:
        return model_from(cfg, Inputs.from_json(saved["inputs"], cfg, Path(run)))

    got = runs.load(run, "classify", ClassifyConfig, build, which)
    return got.model, Inputs.from_json(got.saved["inputs"], got.cfg, Path(run)), got.cfg


def evaluate(
    run: str | Path, data: str | Path, out: Path | None = None, which: str = "best", columns: Columns | None = None
) -> dict:
    """Metrics of a run's model on a labelled file; with ``out``, report.txt and confusion.png written there.
    ``columns`` names the file's columns when they differ from the training file's."""
    model, inputs, cfg = load(run, which)
    table = read_table(data, columns or cfg, labels="required")
    ds = inputs.prepare(table)
    m = metrics(ds.y, predict_proba(model, ds), len(inputs.labels.classes))
    m["report"] = report_text(m, inputs.labels.classes)
    if out is not None:
        out.mkdir(parents=True, exist_ok=False)
        runs.write_text(out / "report.txt", f"{data}, {len(ds)} sequences\n{m['report']}\n")
        plot_confusion(out / "confusion.png", m["confusion"], inputs.labels.classes, f"{Path(data).name}, {len(ds)}")
    return m


def write_predictions(path: Path, ids: list[str], proba: np.ndarray, classes: np.ndarray) -> None:
    """CSV: id, predicted label, one probability column per class; written whole to a temp file, then renamed."""
    import csv

    with runs.atomic_write(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "label", *[f"p_{c}" for c in classes.tolist()]])
        for i, p in zip(ids, proba, strict=True):
            w.writerow([i, classes[p.argmax()], *[f"{v:.6g}" for v in p]])
