"""``seqlab classify train | eval | predict | bench``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .. import flags, runs
from ..data.tables import Columns
from .baselines import BASELINES
from .bench import DATASETS, MODELS
from .task import ClassifyConfig

COLUMNS = tuple(f.name for f in dataclasses.fields(Columns))
BENCH_METHODS = (*MODELS, *BASELINES)


def add_parser(sub, common) -> None:
    c = sub.add_parser("classify", help="sequence classification: labelled texts or time series")
    c_sub = c.add_subparsers(dest="classify_command", required=True)
    t = c_sub.add_parser(
        "train",
        parents=[common, flags.training()],
        help="train on a labelled file",
        description="DATA: .csv/.tsv/.jsonl with text and label columns; a long-format .csv (id, [time], channels..., "
        "label); .npz with X (n, channels, length), y and optional lengths; or a UCR/UEA .ts file (needs aeon).",
    )
    flags.add_train_flags(t, "classify")
    t.add_argument("--test", metavar="FILE", help="after training, score the best checkpoint on this labelled file")
    flags.add_config_flags(t, ClassifyConfig, skip=("data",))
    for name, text in (("eval", "accuracy, macro-F1, a per-class report and a confusion matrix on a labelled file"),
                       ("predict", "labels and class probabilities for a file, as CSV")):  # fmt: skip
        p = c_sub.add_parser(name, parents=[common], help=text)
        p.add_argument("run")
        p.add_argument("data")
        p.add_argument("--checkpoint", choices=runs.CHECKPOINTS, default="best")
        if name == "eval":
            p.add_argument("--out", help="folder to create for report.txt and confusion.png")
        else:
            p.add_argument("--out", required=True, help="the CSV to write: id, label, p_<class>...")
            p.add_argument("--force", action="store_true", help="replace --out if it exists")
        flags.add_config_flags(p, Columns)
        p.set_defaults(column_flags=COLUMNS)
    bench_help = "UCR/UEA data sets that aeon ships, several seeds, beside MiniRocket, MultiRocket-Hydra and 1-NN DTW"
    bn = c_sub.add_parser("bench", parents=[common], help=bench_help)
    bn.add_argument("--datasets", type=flags.comma_list(DATASETS), default=list(DATASETS))
    bn.add_argument(
        "--methods",
        type=flags.comma_list(BENCH_METHODS),
        default=list(BENCH_METHODS),
        help="seqlab's models (default, LSTM, LSTM-FCN, Inception) and aeon's baselines to run",
    )
    bn.add_argument("--seeds", type=flags.ranged(">=1"), default=3)
    bn.add_argument("--out", help="benchmark folder (an existing one is continued)")
    flags.add_config_flags(bn, ClassifyConfig, skip=("data", "seed", *COLUMNS))


def run(args) -> None:
    {"train": train, "eval": evaluate, "predict": predict, "bench": bench}[args.classify_command](args)


def train(args) -> None:
    from .task import evaluate, train_classifier

    cfg = flags.train_config(args, ClassifyConfig)
    _, _, run_dir = train_classifier(cfg, out=args.out, resume=args.resume, progress=not args.no_progress)
    if args.test:
        out = run_dir / f"test-{Path(args.test).stem}"
        m = evaluate(run_dir, args.test, out)
        print(f"test {args.test}:\n{m['report']}\nwritten to {out}")


def evaluate(args) -> None:
    import time

    from .task import evaluate, read_config

    out = Path(args.out) if args.out else Path(args.run) / f"eval-{Path(args.data).stem}-{time.strftime('%H%M%S')}"
    runs.refuse_existing(out, force=None)
    columns = Columns(**flags.column_overrides(args, read_config(Path(args.run))[0]))
    m = evaluate(args.run, args.data, out, args.checkpoint, columns)
    print(f"{args.data}:\n{m['report']}\nwritten to {out}: report.txt, confusion.png")


def predict(args) -> None:
    from ..data.tables import read_table
    from .task import load, predict_proba, write_predictions

    out = runs.refuse_existing(args.out, args.force)
    model, inputs, cfg = load(args.run, args.checkpoint)
    table = read_table(args.data, Columns(**flags.column_overrides(args, cfg)))
    proba = predict_proba(model, inputs.prepare(table, labelled=False))
    write_predictions(out, table.ids, proba, inputs.labels.classes)
    print(f"{len(table.ids)} predictions written to {out}")


def bench(args) -> None:
    from . import bench

    cfg = flags.config_from(args, ClassifyConfig)
    out = Path(args.out) if args.out else runs.default_dir("classify-bench")
    print(f"classify bench: {', '.join(args.datasets)}, {args.seeds} seeds -> {out}", flush=True)
    rows = bench.run(args.datasets, args.seeds, out, cfg, echo=lambda s: print(s, flush=True), methods=args.methods)
    print(bench.table(rows, cfg))
    print(f"written to {out}: table.md, results.csv, one run directory per data set, model and seed")
