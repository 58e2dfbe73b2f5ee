"""The autoencoder benchmark: anomaly detection where the anomalies are known, and codes as features.

    seqlab autoencode bench                    # -> table.md (~7 minutes on one thread)

1. synthetic: normal series are two noisy sines (2 channels, random frequencies in a band, lengths 50-100);
   anomalies are the same series with an injected spike (3 steps, 4-6 standard deviations) or a level shift (one
   channel, +2 from a random step on). Train on normal series only; test 200 normal + 100 spikes + 100 shifts.
2. GunPoint (UCR, via aeon): class 1 is normal. Train on the training split's class-1 series; test on the test split.
3. codes as features: an autoencoder trained on ItalyPowerDemand's training split (labels unused), its codes fed to
   a logistic regression (scikit-learn), scored on the 1029-series test split. (On GunPoint the codes carried no
   class information: 0.48-0.55 with 1000 epochs and a wider code; the class there hinges on a subtle shape.)
The threshold is always the run's own: the 99% quantile of held-out normal training series' scores.
"""

from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import runs
from ..data.archives import load_ucr
from ..data.sequences import series_from_arrays
from ..data.tables import Table
from .task import AutoencodeConfig, detection, embed, score, train_autoencoder


def synthetic(n: int, seed: int, kind: str = "normal") -> list[np.ndarray]:
    """n series (2, T_i) aeon-style: normal, 'spike' or 'shift'."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        T = int(rng.integers(50, 101))
        t = np.arange(T)
        x = np.stack([np.sin(2 * np.pi * t / rng.uniform(15, 25) + rng.uniform(0, 6)) for _ in range(2)])
        x += 0.1 * rng.standard_normal(x.shape)
        if kind == "spike":
            at, c = int(rng.integers(5, T - 8)), int(rng.integers(0, 2))
            x[c, at : at + 3] += rng.choice([-1, 1]) * rng.uniform(4, 6) * x[c].std()
        elif kind == "shift":
            at, c = int(rng.integers(10, T - 10)), int(rng.integers(0, 2))
            x[c, at:] += 2.0
        out.append(x.astype(np.float32))
    return out


def table_of(X: list, labels: list | None = None, name: str = "X") -> Table:
    series, names = series_from_arrays(X, name)
    return Table("series", series, labels, names, [str(i) for i in range(len(series))])


def run(out: Path, seeds: int = 3, cfg: AutoencodeConfig | None = None, echo=print) -> list[dict]:

    out.mkdir(parents=True, exist_ok=True)
    cfg = cfg or AutoencodeConfig()
    gp_train, gp_test = load_ucr("GunPoint", "train"), load_ucr("GunPoint", "test")
    ipd_train, ipd_test = load_ucr("ItalyPowerDemand", "train"), load_ucr("ItalyPowerDemand", "test")
    keep = [i for i, y in enumerate(gp_train.labels) if y == "1"]
    normal_train = Table("series", [gp_train.items[i] for i in keep], None, [gp_train.names[i] for i in keep],
                         [gp_train.ids[i] for i in keep])  # fmt: skip
    rows = []

    def trained(name: str, table: Table, seed: int) -> Path:
        run_dir = out / f"{name}-seed{seed}"
        runs.once(run_dir, train_autoencoder, replace(cfg, seed=seed), table, run_dir, progress=False,
                  echo=lambda s: None)  # fmt: skip
        return run_dir

    for seed in range(seeds):
        # 1. synthetic anomalies
        run_dir = trained("synthetic", table_of(synthetic(600, 10 + seed)), seed)
        test = synthetic(200, 1000 + seed) + synthetic(100, 2000 + seed, "spike") + synthetic(100, 3000 + seed, "shift")
        labels = ["normal"] * 200 + ["spike"] * 100 + ["shift"] * 100
        r = score(run_dir, table_of(test, labels), normal_label="normal")
        rows.append({"task": "synthetic spikes + shifts", "seed": seed, **r["metrics"]})
        for kind in ("spike", "shift"):
            keep = [i for i, y in enumerate(labels) if y in ("normal", kind)]
            y = np.array([int(labels[i] != "normal") for i in keep])
            only = detection(y, r["scores"][keep], r["threshold"])
            rows.append({"task": f"synthetic {kind}s only", "seed": seed, **only})
        # 2. GunPoint, class 1 normal
        run_dir = trained("gunpoint-normal", normal_train, seed)
        r = score(run_dir, gp_test, normal_label="1")
        rows.append({"task": "GunPoint, class 1 normal", "seed": seed, **r["metrics"]})
        # 3. codes -> logistic regression
        run_dir = trained("italypower-codes", Table("series", ipd_train.items, None, ipd_train.names, ipd_train.ids),
                          seed)  # fmt: skip
        rows.append({"task": "ItalyPowerDemand codes -> logistic regression", "seed": seed,
                     "accuracy": codes_accuracy(run_dir, ipd_train, ipd_test)})  # fmt: skip
        for r in rows[-5:]:
            shown = ", ".join(f"{k} {v:.3f}" for k, v in r.items() if k not in ("task", "seed"))
            echo(f"seed {seed}, {r['task']}: {shown}")
    columns = ("task", "seed", "precision", "recall", "f1", "auc_pr", "accuracy")
    runs.write_csv(out / "results.csv", [{k: r.get(k, "") for k in columns} for r in rows])
    runs.write_text(out / "table.md", table(rows, cfg) + "\n")
    runs.write_json(out / "config.json", cfg.__dict__)
    return rows


def codes_accuracy(run_dir: Path, train: Table, test: Table) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    codes_train, _ = embed(run_dir, train)
    codes_test, _ = embed(run_dir, test)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(codes_train, train.labels)
    return float(clf.score(codes_test, test.labels))


def table(rows: list[dict], cfg: AutoencodeConfig) -> str:

    direction = "bidirectional " if cfg.bidirectional else ""
    lines = [
        f"{direction}{cfg.model.upper()} encoder of {cfg.hidden}, code {cfg.code}, {cfg.score} per-step error as the "
        f"score, threshold at the {cfg.quantile:.0%} quantile of held-out normal series; mean (std) over seeds on "
        f"{runs.machine()}.",
        "",
        "| task | precision | recall | F1 | area under PR | accuracy |",
        "|---|---|---|---|---|---|",
    ]

    def cell(mine: list[dict], key: str) -> str:
        vals = [r[key] for r in mine if key in r]
        if not vals:
            return ""
        sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
        return f"{np.mean(vals):.3f} ({sd:.3f})"

    for task in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == task]
        lines.append("| " + " | ".join([task, *(cell(mine, k) for k in ("precision", "recall", "f1", "auc_pr",
                                                                       "accuracy"))]) + " |")  # fmt: skip
    return "\n".join(lines)
