"""``seqlab autoencode train | embed | score | bench``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .. import flags, runs
from ..data.tables import Columns
from .task import AutoencodeConfig

COLUMNS = tuple(f.name for f in dataclasses.fields(Columns))


def add_parser(sub, common) -> None:
    a = sub.add_parser("autoencode", help="sequence autoencoders: codes and anomaly scores")
    a_sub = a.add_subparsers(dest="autoencode_command", required=True)
    t = a_sub.add_parser("train", parents=[common, flags.training()],
                         help="train on normal series (the classifier's series formats)")  # fmt: skip
    flags.add_train_flags(t, "autoencode", resumable=False)
    flags.add_config_flags(t, AutoencodeConfig, skip=("data",))
    e = a_sub.add_parser("embed", parents=[common], help="write each sequence's code: .npy, or .csv with an id column")
    s = a_sub.add_parser("score", parents=[common],
                         help="per-step anomaly scores, flagged steps and intervals, per-sequence scores")  # fmt: skip
    for q in (e, s):
        q.add_argument("run")
        q.add_argument("data")
        q.add_argument("--out", required=True)
        q.add_argument("--force", action="store_true", help="replace --out if it exists")
        flags.add_config_flags(q, Columns)
        q.set_defaults(column_flags=COLUMNS)
    s.add_argument("--normal-label", help="with labels in DATA: the normal class; prints precision, recall, F1")
    s.add_argument("--plot", help="PNG to write: the score histogram, the worst sequences' step scores and intervals")
    s.add_argument("--step-labels", help="an .npy or .npz (array y) of 0/1 per step, one row per series (padded "
                   "rows are cut to each length): prints point-wise area under PR and range-based F1")  # fmt: skip
    b = a_sub.add_parser("bench", parents=[common], help="six synthetic anomaly kinds, KDD-TSAD 135 and GunPoint: "
                         "seqlab's detectors beside matrix profile, isolation forest and k-NN")  # fmt: skip
    b.add_argument("--out", help="benchmark folder (an existing one is continued)")
    b.add_argument("--seeds", type=flags.ranged(">=1"), default=3)


def run(args) -> None:
    {"train": train, "embed": embed, "score": score, "bench": bench}[args.autoencode_command](args)


def train(args) -> None:
    from .task import train_autoencoder

    if not args.data:
        raise ValueError("give DATA, the series to train on")
    cfg = flags.config_from(args, AutoencodeConfig, data=args.data)
    train_autoencoder(cfg, out=args.out, progress=not args.no_progress)


def columns_of(args, cfg=None) -> Columns:
    """The run's column names, except those the user typed; ``cfg``: the run's config when already read."""
    from .task import read_config

    return Columns(**flags.column_overrides(args, cfg or read_config(Path(args.run))[0]))


def embed(args) -> None:
    from .task import embed, write_codes

    out = runs.refuse_existing(args.out, args.force)
    codes, table = embed(args.run, args.data, columns_of(args))
    write_codes(out, codes, table.ids)
    print(f"{len(codes)} codes of size {codes.shape[1]} written to {out}")


def score(args) -> None:
    from .task import plot_scores, read_config, score, write_scores

    out = runs.refuse_existing(args.out, args.force)
    for beside in ("steps", "intervals"):  # written beside --out: never replaced without --force either
        runs.refuse_existing(out.with_name(f"{out.stem}-{beside}.csv"), args.force)
    if args.plot:
        runs.refuse_existing(args.plot, force=None, flag="--plot")
    cfg = read_config(Path(args.run))[0]
    step_labels = read_step_labels(args.step_labels) if args.step_labels else None
    result = score(args.run, args.data, columns_of(args, cfg), args.normal_label, step_labels)
    write_scores(out, result)
    if args.plot:
        plot_scores(Path(args.plot), result, cfg.score)
    flagged, spans = int(result["anomaly"].sum()), sum(len(i) for i in result["intervals"])
    print(
        f"{flagged} of {len(result['scores'])} sequences above the threshold {result['threshold']:.4g}, "
        f"{spans} flagged intervals; written to {out}, {out.stem}-steps.csv and {out.stem}-intervals.csv"
    )
    if "metrics" in result:
        m = result["metrics"]
        print(
            f"precision {m['precision']:.3f}, recall {m['recall']:.3f}, F1 {m['f1']:.3f}, "
            f"area under PR {m['auc_pr']:.3f}"
        )
    if "localisation" in result:
        m = result["localisation"]
        print(
            f"steps: point-wise area under PR {m['step_auc_pr']:.3f}; range-based precision "
            f"{m['range_precision']:.3f}, recall {m['range_recall']:.3f}, F1 {m['range_f1']:.3f}"
        )


def read_step_labels(path: str) -> list:
    """Per-step 0/1 labels: an .npy array, or an .npz's ``y``; (n, T), rows padded to the longest series, or (T,)
    for one series."""
    import zipfile

    import numpy as np

    from ..data.errors import DataError
    from ..data.tables import data_file, numpy_file

    file = data_file(path)
    numpy_file(file)
    try:
        y = np.load(file, allow_pickle=False)
        if isinstance(y, np.lib.npyio.NpzFile):
            with y as archive:
                y = archive["y"]
    except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not step labels (an .npy array, or an .npz with y): {e}") from None
    y = y[None] if y.ndim == 1 else y
    if y.ndim != 2:
        raise DataError(f"{path}: step labels must be (series, steps), got shape {y.shape}")
    return list(y)


def bench(args) -> None:
    from . import bench
    from .task import AutoencodeConfig

    out = Path(args.out) if args.out else runs.default_dir("autoencode-bench")
    rows = bench.run(out, args.seeds, echo=lambda s: print(s, flush=True))
    print(bench.table(rows, AutoencodeConfig(epochs=bench.EPOCHS)))
    print(f"written to {out}: table.md, results.csv, one run directory per task and seed")
