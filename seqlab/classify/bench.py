"""The classification benchmark: UCR/UEA archive splits that aeon ships, one configuration for all, several seeds.

    seqlab classify bench                      # JapaneseVowels, GunPoint, ItalyPowerDemand; 3 seeds; -> table.md

Each (data set, seed) is an ordinary run directory trained on the archive's training split (its own stratified
validation split inside it, for early stopping) and scored once on the archive's test split with the best checkpoint.
The published figures beside ours are the means (and standard deviations) over 10 runs from Ismail Fawaz et al.,
"Deep learning for time series classification: a review" (2019), results/ of their dl-4-tsc repository.
"""

from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import runs
from ..data.archives import load_ucr
from .task import ClassifyConfig, load, metrics, plot_confusion, predict_proba, train_classifier

quiet = lambda s: None  # noqa: E731

# accuracy % (std) over 10 runs: MLP, FCN, ResNet (Ismail Fawaz et al. 2019)
PUBLISHED = {
    "JapaneseVowels": {"MLP": "97.6 (0.2)", "FCN": "99.3 (0.2)", "ResNet": "99.2 (0.3)"},
    "GunPoint": {"MLP": "92.7 (1.1)", "FCN": "100.0 (0.0)", "ResNet": "99.1 (0.7)"},
    "ItalyPowerDemand": {"MLP": "95.4 (0.2)", "FCN": "96.1 (0.3)", "ResNet": "96.3 (0.4)"},
}
TARGETS = {"JapaneseVowels": 0.97, "GunPoint": 0.95, "ItalyPowerDemand": 0.95}  # the bar for the mean


def run(
    names: list[str], seeds: int, out: Path, cfg: ClassifyConfig | None = None, echo=print, progress: bool = False
) -> list[dict]:
    """Train and test every (data set, seed); writes results.csv and table.md in ``out``. Finished runs are reused."""
    cfg = cfg or ClassifyConfig()
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        train_table, test_table = load_ucr(name, "train"), load_ucr(name, "test")
        for seed in range(seeds):
            run_dir = out / f"{name}-seed{seed}"
            seconds = runs.once(run_dir, train_classifier, replace(cfg, seed=seed), train_table, out=run_dir,
                                progress=progress, echo=quiet)["seconds"]  # fmt: skip
            model, inputs, _ = load(run_dir)
            test = inputs.prepare(test_table)
            m = metrics(test.y, predict_proba(model, test), len(inputs.labels.classes))
            plot_confusion(run_dir / "test-confusion.png", m["confusion"], inputs.labels.classes,
                           f"{name} test split, {len(test)} series, seed {seed}")  # fmt: skip
            row = {"data": name, "seed": seed, "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "seconds": seconds}
            rows.append(row)
            echo(
                f"{name} seed {seed}: test accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}, {seconds:.0f} s"
            )
    runs.write_csv(out / "results.csv", rows)
    runs.write_text(out / "table.md", table(rows, cfg) + "\n")
    return rows


def describe(cfg: ClassifyConfig) -> str:
    direction = "bidirectional " if cfg.bidirectional else ""
    return (
        f"{cfg.layers}-layer {direction}{cfg.model.upper()} of {cfg.hidden}, {cfg.pooling} pooling, "
        f"dropout {cfg.dropout}, "
        f"AdamW lr {cfg.lr}, batch {cfg.batch}, up to {cfg.epochs} epochs, early stopping after {cfg.patience} epochs "
        f"on a {cfg.val_fraction:.0%} stratified validation split"
    )


def table(rows: list[dict], cfg: ClassifyConfig) -> str:

    seeds = len({r["seed"] for r in rows})
    lines = [
        f"seqlab: {describe(cfg)}. Test accuracy %, mean (standard deviation) over {seeds} "
        f"seeds; train s: wall-clock seconds per run on {runs.machine()}. Published: mean (std) of 10 runs.",
        "",
        "| data set | seqlab | min..max | train s | target | MLP | FCN | ResNet |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(r["data"] for r in rows):
        acc = [100 * r["accuracy"] for r in rows if r["data"] == name]
        secs = [r["seconds"] for r in rows if r["data"] == name]
        sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
        pub = PUBLISHED.get(name, {})
        target = f">= {100 * TARGETS[name]:.0f}" if name in TARGETS else ""
        lines.append(
            f"| {name} | **{np.mean(acc):.1f}** ({sd:.1f}) | {min(acc):.1f}..{max(acc):.1f} | {np.mean(secs):.0f} "
            f"| {target} | {pub.get('MLP', '')} | {pub.get('FCN', '')} | {pub.get('ResNet', '')} |"
        )
    return "\n".join(lines)
