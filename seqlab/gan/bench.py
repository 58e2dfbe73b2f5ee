"""The GAN benchmark: TimeGAN on the paper's sines and on a real multivariate set of unequal lengths.

    seqlab gan bench                           # sines (5 channels, length 24) and JapaneseVowels -> table.md
    seqlab gan bench --only sines --out B & seqlab gan bench --only JapaneseVowels --out B   # side by side

JapaneseVowels (UCR/UEA via aeon; 12 channels, lengths 7-29, both splits: 640 sequences, 9 speakers) is where the
paper's metric bug would show: every synthetic sequence carries the length it was generated with, and both post-hoc
models read it within that length. Its GAN is conditional on the speaker, and a classifier trained on the synthetic
sequences is tested on held-out real ones. The paper reports, on sines, discriminative 0.011 ± 0.008 and
predictive 0.093 ± 0.019.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import runs
from ..data.archives import load_ucr
from .task import GANConfig, evaluate, train_gan

PAPER = {"sines": {"discriminative": "0.011 (0.008)", "predictive": "0.093 (0.019)"}}


def japanese_vowels(path: Path) -> str:
    """Both splits as one .npz (padded X, lengths, the speaker in y) that the GAN reads like any user file."""

    train, test = load_ucr("JapaneseVowels", "train"), load_ucr("JapaneseVowels", "test")
    items = train.items + test.items
    lengths = np.array([len(s) for s in items])
    X = np.zeros((len(items), items[0].shape[1], lengths.max()), np.float32)
    for i, s in enumerate(items):
        X[i, :, : len(s)] = s.T
    with runs.atomic_write(path) as tmp:
        np.savez(tmp, X=X, lengths=lengths, y=np.array([str(v) for v in train.labels + test.labels]))
    return str(path)


SETS = ("sines", "JapaneseVowels")
STEPS = {"sines": 10000, "JapaneseVowels": 4000}  # per phase; the paper's code runs 50,000 (hours here, one core)


def run(out: Path, steps: int | None = None, repeats: int = 3, only: str | None = None, echo=print) -> list[dict]:
    """Train (unless the run is done) and evaluate each set, or ``only`` one; the rows of every set evaluated in
    ``out`` so far, so the two sets can run as two processes side by side."""
    if only is not None and only not in SETS:
        raise ValueError(f"--only must be one of {', '.join(SETS)}; got {only!r}")
    out.mkdir(parents=True, exist_ok=True)
    for name in SETS if only is None else (only,):
        data = "sines" if name == "sines" else japanese_vowels(out / "JapaneseVowels.npz")
        run_dir = out / name
        n_steps = steps or STEPS[name]
        cfg = replace(GANConfig(), data=data, steps=n_steps)
        if name == "JapaneseVowels":  # conditional on the speaker (9 classes), width 4 x 12 channels
            cfg = replace(cfg, hidden=48, conditional=True)
        runs.once(run_dir, train_gan, cfg, run_dir, echo=echo)
        result = evaluate(run_dir, repeats=repeats, n=2000 if name == "sines" else None, out=run_dir / "eval",
                          echo=echo)  # fmt: skip
        train_s = json.loads((run_dir / "config.json").read_text()).get("train_s", float("nan"))
        row = {"data": name, **result, "train_s": train_s, "steps": n_steps}
        runs.write_json(run_dir / "result.json", row)
    rows = [json.loads((out / n / "result.json").read_text()) for n in SETS if (out / n / "result.json").exists()]
    runs.write_json(out / "results.json", rows)
    runs.write_text(out / "table.md", table(rows) + "\n")
    return rows


def table(rows: list[dict]) -> str:

    lines = [
        f"TimeGAN as above; scores: mean (std) over {rows[0]['repeats']} repeats (lower is better; class accuracy: "
        f"higher); train s on {runs.machine()}.",
        "",
        "| data | steps per phase | discriminative | predictive (train on synthetic, test on real) | "
        "predictive, real on real | class accuracy, trained on synthetic / on real | paper: discriminative | "
        "paper: predictive | train s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        paper = PAPER.get(r["data"], {})
        classes = ""
        if "class_accuracy_synthetic" in r:
            classes = (f"{r['class_accuracy_synthetic']:.3f} ({r['class_accuracy_synthetic_std']:.3f}) / "
                       f"{r['class_accuracy_real']:.3f}")  # fmt: skip
        lines.append(
            f"| {r['data']} | {r['steps']:,} | **{r['discriminative']:.3f}** ({r['discriminative_std']:.3f}) | "
            f"**{r['predictive']:.4f}** ({r['predictive_std']:.4f}) | {r['predictive_real_on_real']:.4f} | "
            f"{classes} | {paper.get('discriminative', '')} | {paper.get('predictive', '')} | {r['train_s']:.0f} |"
        )
    return "\n".join(lines)
