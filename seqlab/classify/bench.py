"""The classification benchmark: UCR/UEA archive splits that aeon ships, seqlab's models beside the classifiers a
practitioner already has, fitted on the same splits in the same run.

    seqlab classify bench          # GunPoint, ItalyPowerDemand, JapaneseVowels, OSULeaf, ACSF1, docstrings -> table.md

Each (data set, model, seed) of seqlab's is an ordinary run directory trained on the archive's training split with
the configuration given (the defaults unless flags say otherwise; ``MODELS`` swaps the backbone) and scored
once on the test split. The baselines are aeon's MiniRocket, MultiRocket-Hydra and 1-NN DTW (baselines.py), each
warmed up once on a few series first, so that numba's compilation is not counted as fitting. The text set
(``docstrings``: standard-library docstrings labelled by package, seqlab.data.archives) puts seqlab's default beside
TF-IDF + logistic regression. Fit seconds are wall
clock on this machine with the threads the command was given; predict seconds score the whole test split.
A finished piece is never redone: a cut-short bench continues where it stopped.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import runs
from ..data.archives import load_docstrings, load_ucr
from ..train import cores
from .baselines import BASELINES, TEXT_BASELINE, fit_predict, tfidf_lr
from .task import LR, SMALL_ENSEMBLE, ClassifyConfig, load, metrics, predict_proba, train_classifier

quiet = lambda s: None  # noqa: E731

DATASETS = ("GunPoint", "ItalyPowerDemand", "JapaneseVowels", "OSULeaf", "ACSF1", "PickupGestureWiimoteZ", "docstrings")
TEXT = {"docstrings": load_docstrings}  # text sets: seqlab's default beside TF-IDF + LR, no series baseline
MODELS = {"default": {}, "LSTM": {"model": "lstm", "ensemble": 1}, "LSTM-FCN": {"model": "lstm-fcn", "ensemble": 1},
          "Inception": {"model": "inception", "ensemble": 1}}  # fmt: skip
"""seqlab's rows: the configuration as given, and one model of each other backbone with the rest unchanged (one
model, not an ensemble: they compare backbones, at a fifth of the time an ensemble would take)."""
DETERMINISTIC = ("1-NN DTW", TEXT_BASELINE)  # one fit serves every seed


def ours(name: str, method: str, seed: int, train_table, test_table, out: Path, cfg: ClassifyConfig) -> dict:
    run_cfg = replace(cfg, seed=seed, **MODELS[method])
    run_dir = out / f"{name}-{method}-seed{seed}"
    fit_s = runs.once(run_dir, train_classifier, run_cfg, train_table, out=run_dir, progress=False,
                      echo=quiet)["seconds"]  # fmt: skip
    model, inputs, _ = load(run_dir)
    test = inputs.prepare(test_table)
    start = time.perf_counter()
    m = metrics(test.y, predict_proba(model, test), len(inputs.labels.classes))
    return {"accuracy": m["accuracy"], "fit_s": fit_s, "predict_s": time.perf_counter() - start}


def baseline(name: str, method: str, seed: int, train_table, test_table, out: Path, threads: int) -> dict:
    path = out / "baselines" / f"{name}-{''.join(c if c.isalnum() else '_' for c in method)}-seed{seed}.json"
    if path.is_file():
        return json.loads(path.read_text())
    if method == TEXT_BASELINE:
        pred, fit_s, predict_s = tfidf_lr(train_table.items, train_table.labels, test_table.items)
    else:
        labels = np.asarray(train_table.labels)  # warm-up (numba compiles) on one series of each of two classes
        two = [int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)[:2]] * 2
        fit_predict(method, [train_table.items[i] for i in two], labels[two], test_table.items[:2], seed, threads)
        pred, fit_s, predict_s = fit_predict(method, train_table.items, train_table.labels, test_table.items, seed,
                                             threads)  # fmt: skip
    row = {"accuracy": float(np.mean(pred == np.asarray(test_table.labels))), "fit_s": fit_s, "predict_s": predict_s}
    path.parent.mkdir(parents=True, exist_ok=True)
    runs.write_json(path, row)
    return row


def run(names: list[str], seeds: int, out: Path, cfg: ClassifyConfig | None = None, echo=print,
        methods: list[str] | None = None) -> list[dict]:  # fmt: skip
    """Every (data set, method, seed); writes results.csv and table.md in ``out`` and returns the rows."""
    cfg = cfg or ClassifyConfig()
    methods = methods or [*MODELS, *BASELINES]
    out.mkdir(parents=True, exist_ok=True)
    threads = cores()
    rows = []
    for name in names:
        train_table, test_table = splits(name, "train"), splits(name, "test")
        for method in applicable(name, methods):
            for seed in range(1 if method in DETERMINISTIC else seeds):
                if method in MODELS:
                    row = ours(name, method, seed, train_table, test_table, out, cfg)
                else:
                    row = baseline(name, method, seed, train_table, test_table, out, threads)
                rows.append({"data": name, "method": method, "seed": seed, **row})
                echo(f"{name} {method} seed {seed}: test accuracy {row['accuracy']:.4f}, fit {row['fit_s']:.1f} s, "
                     f"predict {row['predict_s']:.2f} s")  # fmt: skip
    runs.write_csv(out / "results.csv", rows)
    runs.write_text(out / "table.md", table(rows, cfg) + "\n")
    return rows


def splits(name: str, split: str):
    return TEXT[name](split) if name in TEXT else load_ucr(name, split)


def applicable(name: str, methods: list[str]) -> list[str]:
    """The methods that read this set: seqlab's default only and TF-IDF + LR for text (its other rows compare
    series backbones), seqlab's and aeon's for series."""
    if name in TEXT:
        return [m for m in methods if m == "default"] + [TEXT_BASELINE]
    return [m for m in methods if m != TEXT_BASELINE]


def describe(cfg: ClassifyConfig) -> str:
    """The configuration the default rows ran, in words; what the regime chooses is said as its rule."""
    lr = cfg.lr if cfg.lr is not None else f"{LR['small']} (small) / {LR['standard']} (standard)"
    members = cfg.ensemble or f"up to {SMALL_ENSEMBLE} members as the data's size allows"
    augment = "jitter and scaling" if cfg.augment == "auto" else cfg.augment
    return (
        f"default: {cfg.model} of {cfg.hidden}, {cfg.pooling} pooling, dropout {cfg.dropout}, AdamW lr {lr}, "
        f"batch {cfg.batch}, regime {cfg.regime} (the series sets are small: every series trains on a fixed cosine "
        f"schedule, augmentation {augment}, an ensemble of {members}; the text set is standard: a 20% validation "
        "split and early stopping). LSTM, LSTM-FCN and Inception: one model of that backbone, the rest the same"
    )


def _cell(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    values = [scale * v for v in values]
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{np.mean(values):.{digits}f} ({sd:.{digits}f})"


def table(rows: list[dict], cfg: ClassifyConfig) -> str:
    """Accuracy % mean (std over seeds), then fit and predict seconds, one row per data set; the default's gap to
    the baseline (MiniRocket for series, TF-IDF + LR for text), the goal being no more than 1 point below."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    names = list(dict.fromkeys(r["data"] for r in rows))
    seeds = max(r["seed"] for r in rows) + 1

    def pick(name, method, key):
        return [r[key] for r in rows if r["data"] == name and r["method"] == method]

    lines = [
        f"Test accuracy %, mean (standard deviation) over {seeds} seeds (1-NN DTW is deterministic: one fit); "
        f"{runs.machine()}. {describe(cfg)}.",
        "",
        "| data set | " + " | ".join(methods) + " | default - baseline |",
        "|---" * (len(methods) + 2) + "|",
    ]
    for name in names:
        cells = [_cell(pick(name, m, "accuracy")) if pick(name, m, "accuracy") else "" for m in methods]
        gap, base = "", TEXT_BASELINE if name in TEXT else "MiniRocket"
        if pick(name, "default", "accuracy") and pick(name, base, "accuracy"):
            ours_, theirs = np.mean(pick(name, "default", "accuracy")), np.mean(pick(name, base, "accuracy"))
            gap = f"{100 * (ours_ - theirs):+.1f}"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {gap} |")
    lines += ["", "Seconds to fit / to predict the test split, mean over seeds:", "",
              "| data set | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]  # fmt: skip
    for name in names:
        cells = [f"{np.mean(pick(name, m, 'fit_s')):.1f} / {np.mean(pick(name, m, 'predict_s')):.2f}"
                 if pick(name, m, "fit_s") else "" for m in methods]  # fmt: skip
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
