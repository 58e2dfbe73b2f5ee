"""The GAN benchmark: TimeGAN on the paper's sines and on a real multivariate set of unequal lengths.

    seqlab gan bench                           # sines (5 channels, length 24) and JapaneseVowels -> table.md

JapaneseVowels (UCR/UEA via aeon; 12 channels, lengths 7-29, both splits: 640 sequences) is where the paper's metric
bug would show: every synthetic sequence carries the length it was generated with, and both post-hoc models read it
within that length. The paper reports, on sines, discriminative 0.011 ± 0.008 and predictive 0.093 ± 0.019.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from .gan import GANConfig, evaluate, train_gan

PAPER = {"sines": {"discriminative": "0.011 (0.008)", "predictive": "0.093 (0.019)"}}


def japanese_vowels(path: Path) -> str:
    """Both splits as one .npz (padded X, lengths) that the GAN reads like any user file."""
    from .classify_bench import load_ucr

    items = load_ucr("JapaneseVowels", "train").items + load_ucr("JapaneseVowels", "test").items
    lengths = np.array([len(s) for s in items])
    X = np.zeros((len(items), items[0].shape[1], lengths.max()), np.float32)
    for i, s in enumerate(items):
        X[i, :, : len(s)] = s.T
    np.savez(path, X=X, lengths=lengths)
    return str(path)


def run(out: Path, steps: int, repeats: int = 3, echo=print) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in ("sines", "JapaneseVowels"):
        data = "sines" if name == "sines" else japanese_vowels(out / "JapaneseVowels.npz")
        run_dir = out / name
        if not (run_dir / "done").exists():
            import shutil

            shutil.rmtree(run_dir, ignore_errors=True)
            train_gan(replace(GANConfig(), data=data, steps=steps, hidden=24 if name == "sines" else 48), run_dir,
                      echo=echo)  # fmt: skip
            (run_dir / "done").write_text("")
        result = evaluate(run_dir, repeats=repeats, n=2000 if name == "sines" else None, out=run_dir / "eval",
                          echo=echo)  # fmt: skip
        train_s = json.loads((run_dir / "config.json").read_text()).get("train_s", float("nan"))
        rows.append({"data": name, **result, "train_s": train_s, "steps": steps})
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    (out / "table.md").write_text(table(rows) + "\n")
    return rows


def table(rows: list[dict]) -> str:
    from .bench import machine

    lines = [
        f"TimeGAN as above, {rows[0]['steps']:,} steps per phase; scores: mean (std) over {rows[0]['repeats']} "
        f"repeats (lower is better); train s on {machine()}.",
        "",
        "| data | discriminative | predictive (train on synthetic, test on real) | predictive, real on real | "
        "paper: discriminative | paper: predictive | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        paper = PAPER.get(r["data"], {})
        lines.append(
            f"| {r['data']} | **{r['discriminative']:.3f}** ({r['discriminative_std']:.3f}) | "
            f"**{r['predictive']:.4f}** ({r['predictive_std']:.4f}) | {r['predictive_real_on_real']:.4f} | "
            f"{paper.get('discriminative', '')} | {paper.get('predictive', '')} | {r['train_s']:.0f} |"
        )
    return "\n".join(lines)
