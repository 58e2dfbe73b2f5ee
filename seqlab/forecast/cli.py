"""``seqlab forecast train | predict | eval | bench``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from .. import flags, runs
from .bench import DATASETS
from .task import ForecastConfig

COLUMNS = ("time_column", "id_column", "targets", "covariates")


def add_parser(sub, common) -> None:
    f = sub.add_parser("forecast", help="forecast time series: train, predict, evaluate")
    f_sub = f.add_subparsers(dest="forecast_command", required=True)
    t = f_sub.add_parser(
        "train",
        parents=[common, flags.training()],
        help="train on a file of series",
        description="DATA: .csv/.tsv (one row per step; --time-column, --id-column, --targets, --covariates), "
        ".npy (T,) or (T, C), or .npz with y (T, C) or (n, T, C) and optional covariates.",
    )
    flags.add_train_flags(t, "forecast")
    flags.add_config_flags(t, ForecastConfig, skip=("data",))
    p = f_sub.add_parser("predict", parents=[common], help="forecast the next --horizon steps of every series, as CSV")
    p.add_argument("run")
    p.add_argument("data")
    p.add_argument(
        "--out",
        required=True,
        help="the CSV to write: id, step, y0.. (the point forecast), y0_q10, y0_q50, y0_q90.. (the quantiles)",
    )
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--checkpoint", choices=runs.CHECKPOINTS, default="best")
    e = f_sub.add_parser(
        "eval",
        parents=[common],
        help="MAE, RMSE, sMAPE, MASE and OWA on each series' last --horizon steps (or --folds rolling origins)",
    )
    e.add_argument("run")
    e.add_argument("data")
    e.add_argument("--plot", help="PNG to write: history, forecast, truth and seasonal naive")
    e.add_argument("--checkpoint", choices=runs.CHECKPOINTS, default="best")
    e.add_argument("--folds", type=flags.ranged(">=1"), default=1,
                   help="rolling origins H apart, the last at the test tail (default 1: the test tail alone; the "
                   "earlier folds lie in the run's training data unless DATA is newer)")  # fmt: skip
    others = tuple(fl.name for fl in dataclasses.fields(ForecastConfig) if fl.name not in COLUMNS)
    for q in (p, e):
        flags.add_config_flags(
            q, ForecastConfig, skip=others
        )  # only the column names: a file may be laid out differently
        q.set_defaults(column_flags=COLUMNS)
    b = f_sub.add_parser("bench", parents=[common],
                         help="rolling origin on M1 yearly, 13 quarterly series and three single series: seqlab "
                         "beside seasonal naive, Naive2, Comb, AutoETS, AutoARIMA, AutoTheta")  # fmt: skip
    b.add_argument("--out", help="benchmark folder (an existing one is continued)")
    b.add_argument("--seeds", type=flags.ranged(">=1"), default=3)
    b.add_argument("--folds", type=flags.ranged(">=1"), default=3, help="rolling origins, one horizon apart")
    b.add_argument(
        "--data",
        type=flags.comma_list(DATASETS),
        help="comma-separated data sets (default all)",
    )
    b.add_argument(
        "--models",
        type=flags.comma_list(("esrnn", "lstm")),
        default=["esrnn"],
        help="seqlab models to train (default esrnn; lstm where its 3-season window fits every training part)",
    )


def run(args) -> None:
    {"train": train, "predict": predict, "eval": evaluate, "bench": bench}[args.forecast_command](args)


def train(args) -> None:
    from .task import train_forecaster

    cfg = flags.train_config(args, ForecastConfig)
    train_forecaster(cfg, out=args.out, resume=args.resume, progress=not args.no_progress)


def run_config(args) -> ForecastConfig:
    """The run's config with the column names the user typed for this file."""
    from .task import read_config

    cfg = read_config(Path(args.run))[0]
    return dataclasses.replace(cfg, **flags.column_overrides(args, cfg))


def evaluate(args) -> None:
    from .task import evaluate, load_data

    plot = runs.refuse_existing(args.plot, force=None, flag="--plot") if args.plot else None
    cfg = run_config(args)
    result = evaluate(args.run, data=load_data(args.data, cfg), which=args.checkpoint, plot=plot, folds=args.folds)
    print(json.dumps(result, indent=1))


def predict(args) -> None:
    from .task import predict, write_forecasts

    out = runs.refuse_existing(args.out, args.force)
    data, fc = predict(args.run, args.data, args.checkpoint, run_config(args))
    write_forecasts(out, data, fc)
    print(f"{len(data.ids)} forecasts of {fc.mean.shape[1]} steps written to {out}")


def bench(args) -> None:
    from . import bench

    out = Path(args.out) if args.out else runs.default_dir("forecast-bench")
    rows = bench.run(out, args.seeds, args.data, echo=lambda s: print(s, flush=True), folds=args.folds,
                     models=tuple(args.models))  # fmt: skip
    print(bench.table(rows, args.folds, args.seeds))
    print(f"written to {out}: table.md, results.csv, one run directory per data set, model, fold and seed")
