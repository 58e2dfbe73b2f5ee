"""The anomaly benchmark: seqlab's detectors beside the practitioner's baselines, on the same splits.

    seqlab autoencode bench                    # -> table.md, results.csv (about 25 minutes on 2 cores)

Methods: seqlab's two detectors (``forecast``, LSTM-AD; ``reconstruct``, EncDec-AD; the task's defaults but 60
epochs) and, fitted on the same normal training series, matrix profile (stumpy's AB-join against the normal data),
isolation forest and k-NN on sliding windows (scikit-learn), with the window the data's dominant period. Every method's
thresholds are set alike: the share ``false_alarm`` (1%) of held-out normal steps, and of held-out sequences.

Data, each method trained on normal series only:
1. Synthetic (``family``): two channels, a sawtooth and a sine locked to the same random period (15-25 steps), noise
   0.1, lengths 100-200. Train on 400 normal series (80 of them held out); for each kind, test 100 normal series and
   100 with one anomaly on one channel: a spike (1-3 steps, 4-6 sd), a level shift (1.5-2.5 sd), a reversed
   stretch, a frequency change (x0.5 or x2), a noise burst (0.5-1 sd) or a flat line, each 20-40 steps long.
2. KDD-TSAD 135 (aeon; the SIGKDD 2021 competition's "internal bleeding" heart-rate series): train on its 1,200
   normal steps, score the 7,501-step test series with one labelled anomaly of 12 steps.
3. GunPoint one-class (UCR, via aeon): class 1 is normal; sequence labels only.
4. Codes as features (``reconstruct`` only): ItalyPowerDemand's codes -> logistic regression, test accuracy.

Scores: point-wise area under the precision-recall curve of the step scores (``step_auc_pr``), the range-based
F1 of the flagged steps (Tatbul et al. 2018, as TimeEval reports it; ``range_f1``), and the area under PR of the
sequence scores, max over each sequence's steps (``auc_pr``).
"""

from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import runs
from ..data.archives import load_ucr
from ..data.preprocess import SeriesPrep
from ..data.sequences import series_from_arrays
from ..data.tables import Table
from .baselines import BASELINES, period
from .task import (
    AutoencodeConfig,
    detection,
    embed,
    localisation,
    score,
    sequence_scores,
    split,
    thresholds,
    train_autoencoder,
)

KINDS = ("spike", "shift", "reversed", "frequency", "noise", "flat")
DETECTORS = ("forecast", "reconstruct")
METHODS = (*(f"seqlab {d}" for d in DETECTORS), *BASELINES)
METRICS = ("step_auc_pr", "range_f1", "auc_pr")
EPOCHS = 60  # seqlab's runs here: every detector trains 60 epochs (early stopping may end it sooner)


def family(n: int, seed: int, kind: str = "normal") -> tuple[list[np.ndarray], list[np.ndarray]]:
    """n series (2, T_i) float32 of the synthetic family and their step labels (T_i,) bool: ``kind`` is 'normal'
    or one of KINDS."""
    rng = np.random.default_rng(seed)
    out = [_one(rng, kind) for _ in range(n)]
    return [x for x, _ in out], [y for _, y in out]


def _one(rng: np.random.Generator, kind: str) -> tuple[np.ndarray, np.ndarray]:
    T, period_ = int(rng.integers(100, 201)), rng.uniform(15, 25)
    c, L = int(rng.integers(0, 2)), int(rng.integers(1, 4)) if kind == "spike" else int(rng.integers(20, 41))
    a = int(rng.integers(10, T - L - 5))
    step = np.full((2, T), 2 * np.pi / period_)
    if kind == "frequency":
        step[c, a : a + L] *= rng.choice([0.5, 2.0])
    phase = np.cumsum(step, axis=1) + rng.uniform(0, 2 * np.pi)
    x = np.stack([2 * ((phase[0] / (2 * np.pi)) % 1.0) - 1, np.sin(phase[1] + rng.uniform(0, 2 * np.pi))])
    x += 0.1 * rng.standard_normal(x.shape)
    sd, seg = x[c].std(), slice(a, a + L)
    if kind in ("spike", "shift"):
        x[c, seg] += rng.choice([-1, 1]) * (rng.uniform(4, 6) if kind == "spike" else rng.uniform(1.5, 2.5)) * sd
    elif kind == "reversed":
        x[c, seg] = x[c, seg][::-1].copy()
    elif kind == "noise":
        x[c, seg] += rng.uniform(0.5, 1.0) * sd * rng.standard_normal(L)
    elif kind == "flat":
        x[c, seg] = x[c, a]
    label = np.zeros(T, dtype=bool)
    if kind != "normal":
        label[seg] = True
    return x.astype(np.float32), label


def table_of(X: list, labels: list | None = None, name: str = "X") -> Table:
    series, names = series_from_arrays(X, name)
    return Table("series", series, labels, names, [str(i) for i in range(len(series))])


class Case:
    """One data set: normal training series, and test sets (name -> series, step labels or None, sequence labels
    or None); every method is fitted once on ``train`` and scored on every test set."""

    def __init__(self, name: str, train: Table, tests: dict[str, tuple]):
        self.name, self.train, self.tests = name, train, tests


def cases(seed: int) -> list[Case]:
    X, _ = family(400, 10 + seed)
    tests = {}
    for k, kind in enumerate(KINDS):
        normal, _ = family(100, 1000 + 10 * seed + k)
        odd, labels = family(100, 2000 + 10 * seed + k, kind)
        tests[kind] = (table_of(normal + odd), [np.zeros(x.shape[1], bool) for x in normal] + labels,
                       np.r_[np.zeros(100), np.ones(100)])  # fmt: skip
    out = [Case("synthetic", table_of(X), tests)]
    from aeon.datasets import load_kdd_tsad_135

    kdd_train, kdd_test = load_kdd_tsad_135("train")[0], load_kdd_tsad_135("test")
    out.append(Case("KDD-TSAD 135", table_of([kdd_train[None]]),
                    {"KDD-TSAD 135": (table_of([kdd_test[0][None]]), [kdd_test[1].astype(bool)], None)}))  # fmt: skip
    gp_train, gp_test = load_ucr("GunPoint", "train"), load_ucr("GunPoint", "test")
    keep = [i for i, y in enumerate(gp_train.labels) if y == "1"]
    normal_train = Table("series", [gp_train.items[i] for i in keep], None, [gp_train.names[i] for i in keep],
                         [gp_train.ids[i] for i in keep])  # fmt: skip
    y = np.array([int(v != "1") for v in gp_test.labels])
    out.append(Case("GunPoint", normal_train, {"GunPoint, class 1 normal": (gp_test, None, y)}))
    return out


def measure(steps: list[np.ndarray], step_threshold: float, threshold: float, step_labels, y) -> dict:
    """The bench's scores of one method on one test set."""
    got = {}
    if step_labels is not None:
        loc = localisation(step_labels, steps, step_threshold)
        got |= {"step_auc_pr": loc["step_auc_pr"], "range_f1": loc["range_f1"]}
    if y is not None:
        got["auc_pr"] = detection(y, sequence_scores(steps, "max"), threshold)["auc_pr"]
    return got


def baseline_rows(case: Case, cfg: AutoencodeConfig, seed: int) -> list[dict]:
    """Matrix profile, isolation forest and k-NN fitted on the same training series as seqlab (the same held-out
    split sets their thresholds), on series standardised as seqlab's are."""
    parts = split(case.train, replace(cfg, seed=seed))
    prep = SeriesPrep.fit(parts.train, parts.train_names)
    train, held = [x.T for x in prep(parts.train, parts.train_names)], [x.T for x in prep(parts.held, parts.held_names)]
    width = period(train)
    rows = []
    for method, cls in BASELINES.items():
        detector = cls(width, seed).fit(train)
        normal = [detector.score(x)[f:] for x, f in zip(held, parts.held_from, strict=True)]
        step_threshold, threshold = thresholds(normal, "max", cfg.false_alarm)
        for test, (table, step_labels, y) in case.tests.items():
            steps = [detector.score(x.T) for x in prep(table.items, table.names)]
            rows.append({"test": test, "method": method, "seed": seed,
                         **measure(steps, step_threshold, threshold, step_labels, y)})  # fmt: skip
    return rows


def seqlab_rows(case: Case, cfg: AutoencodeConfig, seed: int, out: Path) -> list[dict]:
    rows = []
    for detector in DETECTORS:
        run_dir = out / f"{case.name.replace(' ', '-')}-{detector}-seed{seed}"
        runs.once(run_dir, train_autoencoder, replace(cfg, detector=detector, seed=seed), case.train, run_dir,
                  progress=False, echo=lambda s: None)  # fmt: skip
        for test, (table, step_labels, y) in case.tests.items():
            r = score(run_dir, table)
            rows.append({"test": test, "method": f"seqlab {detector}", "seed": seed,
                         **measure(r["steps"], r["step_threshold"], r["threshold"], step_labels, y)})  # fmt: skip
    return rows


def run(out: Path, seeds: int = 3, cfg: AutoencodeConfig | None = None, echo=print) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    cfg = cfg or AutoencodeConfig(epochs=EPOCHS)
    ipd_train, ipd_test = load_ucr("ItalyPowerDemand", "train"), load_ucr("ItalyPowerDemand", "test")
    rows = []
    for seed in range(seeds):
        for case in cases(seed):
            got = seqlab_rows(case, cfg, seed, out) + baseline_rows(case, cfg, seed)
            for r in got:
                echo(f"seed {seed}, {r['test']}, {r['method']}: " + ", ".join(f"{k} {r[k]:.3f}" for k in METRICS
                                                                            if k in r))  # fmt: skip
            rows += got
        run_dir = out / f"italypower-codes-seed{seed}"
        unlabelled = Table("series", ipd_train.items, None, ipd_train.names, ipd_train.ids)
        runs.once(run_dir, train_autoencoder, replace(cfg, detector="reconstruct", seed=seed), unlabelled, run_dir,
                  progress=False, echo=lambda s: None)  # fmt: skip
        rows.append({"test": "ItalyPowerDemand codes -> logistic regression", "method": "seqlab reconstruct",
                     "seed": seed, "accuracy": codes_accuracy(run_dir, ipd_train, ipd_test)})  # fmt: skip
    runs.write_csv(out / "results.csv", [{k: r.get(k, "") for k in ("test", "method", "seed", *METRICS,
                                                                      "accuracy")} for r in rows])  # fmt: skip
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


def _cell(rows: list[dict], test: str, method: str, key: str) -> str:
    if test == "mean over kinds":  # per seed, the mean over the synthetic kinds; then mean (sd) over seeds
        per_seed = {}
        for r in rows:
            if r["test"] in KINDS and r["method"] == method and key in r:
                per_seed.setdefault(r["seed"], []).append(r[key])
        vals = [float(np.mean(v)) for v in per_seed.values()]
    else:
        vals = [r[key] for r in rows if r["test"] == test and r["method"] == method and key in r]
    if not vals:
        return ""
    return f"{np.mean(vals):.3f} ({statistics.stdev(vals) if len(vals) > 1 else 0.0:.3f})"


def table(rows: list[dict], cfg: AutoencodeConfig) -> str:
    """One table per score: the tests as rows (the synthetic kinds, their mean, the real sets), methods as columns;
    then the codes' accuracy and the issue's goals, met or not."""
    tests = [t for t in dict.fromkeys(r["test"] for r in rows) if not t.startswith("ItalyPower")]
    tests.insert(len(KINDS), "mean over kinds")
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    seeds = len({r["seed"] for r in rows})
    lines = [f"{cfg.model.upper()} of {cfg.hidden}; thresholds at a false-alarm rate of {cfg.false_alarm:g} on "
             f"held-out normal data; mean (sd) over {seeds} seeds on {runs.machine()}."]  # fmt: skip
    names = {"step_auc_pr": "Point-wise area under PR", "range_f1": "Range-based F1 (at each method's threshold)",
             "auc_pr": "Sequence area under PR (a sequence's score: its highest step score)"}  # fmt: skip
    for key in METRICS:
        lines += ["", f"{names[key]}:", "", "| test | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
        for test in tests:
            cells = [_cell(rows, test, m, key) for m in methods]
            if any(cells):
                lines.append(f"| {test} | " + " | ".join(cells) + " |")
    codes = [r["accuracy"] for r in rows if "accuracy" in r]
    if codes:
        lines += ["", f"ItalyPowerDemand codes -> logistic regression: accuracy {np.mean(codes):.3f} "
                  f"({statistics.stdev(codes) if len(codes) > 1 else 0.0:.3f})."]  # fmt: skip
    return "\n".join([*lines, "", *goals(rows)])


def goals(rows: list[dict]) -> list[str]:
    """The issue's goals against these rows: the best seqlab detector against the best baseline on the mean over
    kinds, and area under PR at least 0.90 on every synthetic kind (point-wise and per sequence)."""

    def mean(method: str, key: str, tests=KINDS) -> float:
        return float(np.mean([r[key] for r in rows if r["method"] == method and r["test"] in tests and key in r]))

    out = []
    for key in ("step_auc_pr", "auc_pr"):
        ours = max((mean(m, key), m) for m in METHODS if m.startswith("seqlab"))
        theirs = max((mean(m, key), m) for m in BASELINES)
        verdict = "met" if ours[0] >= theirs[0] else "missed"
        out.append(f"- {key}, mean over kinds: {ours[1]} {ours[0]:.3f} against {theirs[1]} {theirs[0]:.3f}: {verdict}.")
        low = [f"{k} {mean(ours[1], key, (k,)):.3f}" for k in KINDS if mean(ours[1], key, (k,)) < 0.9]
        out.append(f"- {key} >= 0.90 on every kind ({ours[1]}): " + (f"missed on {', '.join(low)}." if low else "met."))
    return out
