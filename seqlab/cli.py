"""The ``seqlab`` command. A user's mistake ends in one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import sys


def _csv(choices: tuple[str, ...]):
    def parse(text: str) -> list[str]:
        items = [s.strip() for s in text.split(",") if s.strip()]
        bad = [s for s in items if s not in choices]
        if not items or bad:
            raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {','.join(choices)}, got {text!r}")
        return items

    return parse


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="seqlab", description="Learn from sequences of any length.")
    parser.add_argument("--version", action="version", version=f"seqlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser(
        "bench",
        help="time seqlab's RNN/LSTM/GRU against torch.nn",
        description="Training step and inference of each cell and backend against torch.nn, in one process.",
    )
    b.add_argument("--quick", action="store_true", help="two shapes and a smaller variable-length case: under a minute")
    b.add_argument("--cells", type=_csv(("lstm", "gru", "rnn")), default=["lstm", "gru", "rnn"])
    b.add_argument(
        "--backends",
        type=_csv(("fused", "bptt", "reference")),
        default=["fused", "bptt"],
        help="seqlab backends to time (default fused,bptt; 'auto' is marked on the one it picks)",
    )
    b.add_argument("--repeats", type=int, default=None, help="timed repeats per variant (default 7)")
    b.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    b.add_argument("--json", metavar="FILE", help="also write the table as JSON")
    b.add_argument("--force", action="store_true", help="replace FILE if it exists")
    b.add_argument("--markdown", action="store_true", help="end with the summary as a Markdown table (README)")
    from .lm import LMConfig

    ins = sub.add_parser("inspect", help="gates and cell states of a character model over a text (PNG, HTML)")
    ins.add_argument("run")
    ins.add_argument("--text")
    ins.add_argument("--file", help="read the text from a file instead")
    ins.add_argument("--units", type=lambda t: [int(v) for v in t.split(",")], help="units to show (e.g. 3,17)")
    ins.add_argument("--layer", type=int, default=-1, help="which layer (default the last)")
    ins.add_argument("--out", help="folder to create (default RUN/inspect-<time>)")
    la = sub.add_parser("lab", help="memory experiments: the adding problem and the copy task across models")
    la.add_argument("task", choices=("adding", "copy", "gradients"))
    la.add_argument("--on", choices=("adding", "copy"), default="adding", help="gradients: the task to measure on")
    la.add_argument("--models", type=_csv(("rnn", "lstm", "gru", "transformer")), default=["rnn", "lstm", "gru"],
                    help="comma-separated; transformer: a causal 2-block Transformer of the same width")  # fmt: skip
    la.add_argument("--lengths", type=_ints, help="sequence lengths T (default adding 50,100,200; copy 100,200)")
    la.add_argument("--seeds", type=int, default=3)
    la.add_argument("--steps", type=int, default=4000, help="training steps per run (default 4000)")
    la.add_argument("--minutes", type=float, help="wall-clock budget per run")
    la.add_argument("--hidden", type=int, help="hidden units (default 128)")
    la.add_argument("--batch", type=int, help="batch size (default 50)")
    la.add_argument("--lr", type=float, help="Adam learning rate (default 1e-3)")
    la.add_argument("--eval-every", type=int, help="steps between test evaluations (default 250)")
    la.add_argument("--out", help="lab directory (an existing one is continued)")
    la.add_argument("--threads", type=int)

    lm = sub.add_parser("lm", help="language models: train on a text, sample, evaluate")
    lm_sub = lm.add_subparsers(dest="lm_command", required=True)
    t = lm_sub.add_parser("train", help="train on a file, a directory, or a built-in corpus (pydoc, stdlib)")
    t.add_argument("data", nargs="?", help="a file, a directory, or pydoc | stdlib")
    t.add_argument("--out", help="run directory to create (default runs/lm-<model>-<time>)")
    t.add_argument("--resume", metavar="RUN", help="continue RUN exactly where its last checkpoint left it")
    t.add_argument("--threads", type=int, help="torch threads")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_flags(t, LMConfig, skip=("data",))
    sm = lm_sub.add_parser("sample", help="stream generated text from a run")
    sm.add_argument("run")
    sm.add_argument("--checkpoint", choices=("best", "last"), default="best")
    sm.add_argument("--prompt", default="")
    sm.add_argument("--length", type=int, default=500, help="tokens to generate")
    sm.add_argument("--temperature", type=float, default=0.8)
    sm.add_argument("--top-k", type=int)
    sm.add_argument("--top-p", type=float)
    sm.add_argument("--greedy", action="store_true")
    sm.add_argument("--num-samples", type=int, default=1)
    sm.add_argument("--seed", type=int, help="same seed, same text (sample i uses seed + i)")
    sm.add_argument("--stop", help=r"stop before this string (\n and \t are understood)")
    sm.add_argument("--threads", type=int)
    bn = lm_sub.add_parser("bench", help="train the default model, then compare with xz and an n-gram (README)")
    bn.add_argument("data", nargs="?", default="pydoc")
    bn.add_argument("--minutes", type=float, default=10.0, help="training budget (default 10)")
    bn.add_argument("--out", help="run directory to create")
    bn.add_argument("--throughput-steps", type=int, default=20, help="steps per round of the loop-overhead check")
    bn.add_argument("--threads", type=int)
    add_config_flags(bn, LMConfig, skip=("data", "minutes"))
    cp = lm_sub.add_parser("compare", help="LSTM, GRU and Transformer at comparable size: bpc against CPU minutes")
    cp.add_argument("data", nargs="?", default="pydoc")
    cp.add_argument("--minutes", type=float, default=10.0, help="training budget per model (default 10)")
    cp.add_argument(
        "--models", type=_csv(("lstm", "gru", "rnn", "transformer")), default=["lstm", "gru", "transformer"]
    )
    cp.add_argument("--out", help="comparison folder (an existing one is continued)")
    cp.add_argument("--threads", type=int)
    sp = lm_sub.add_parser("speed", help="per-token generation time and state memory against position")
    sp.add_argument("--positions", type=int, default=4096)
    sp.add_argument("--out", help="folder for speed.csv and speed.png")
    sp.add_argument("--threads", type=int)
    ev = lm_sub.add_parser("eval", help="bits per character of a text under a run's model")
    ev.add_argument("run")
    ev.add_argument("file")
    ev.add_argument("--checkpoint", choices=("best", "last"), default="best")
    ev.add_argument("--encoding-errors", choices=("strict", "replace"), default="strict")
    ev.add_argument("--threads", type=int)
    add_classify_parser(sub)
    add_forecast_parser(sub)
    add_autoencode_parser(sub)
    add_gan_parser(sub)
    return parser


def add_gan_parser(sub) -> None:
    from .gan import GANConfig

    g = sub.add_parser("gan", help="sequence GANs (TimeGAN): train, sample, evaluate")
    g_sub = g.add_subparsers(dest="gan_command", required=True)
    t = g_sub.add_parser("train", help="train on sines (the TimeGAN paper's) or a file of series")
    t.add_argument("data", nargs="?", default="sines")
    t.add_argument("--out", help="run directory to create (default runs/gan-<time>)")
    t.add_argument("--threads", type=int)
    add_config_flags(t, GANConfig, skip=("data",))
    s = g_sub.add_parser("sample", help="write synthetic sequences: .npz with X (n, channels, length) and lengths")
    s.add_argument("run")
    s.add_argument("--n", type=int, default=1000)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--label", help="conditional runs: only this class (default: classes as often as in training)")
    s.add_argument("--checkpoint", default="best", choices=("best", "last"), help="default best (lowest quick score)")
    s.add_argument("--out", required=True)
    s.add_argument("--force", action="store_true")
    s.add_argument("--threads", type=int)
    e = g_sub.add_parser("eval", help="discriminative and predictive scores, PCA and t-SNE plots")
    e.add_argument("run")
    e.add_argument("--repeats", type=int, default=5)
    e.add_argument("--n", type=int, help="real and synthetic sequences per score (default: all the real ones)")
    e.add_argument("--out", help="folder for scores.json and pca-tsne.png (default RUN/eval-<time>)")
    e.add_argument("--disc-steps", type=int, default=2000, help="training steps of the post-hoc discriminator")
    e.add_argument("--pred-steps", type=int, default=5000, help="training steps of the post-hoc predictor")
    e.add_argument("--checkpoint", default="best", choices=("best", "last"), help="default best (lowest quick score)")
    e.add_argument("--threads", type=int)
    b = g_sub.add_parser("bench", help="sines and JapaneseVowels beside the paper's figures")
    b.add_argument("--steps", type=int, help="steps per phase (default: sines 10,000, JapaneseVowels 4,000)")
    b.add_argument("--only", help="one set: sines or JapaneseVowels (two processes can share one --out)")
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--out")
    b.add_argument("--threads", type=int)


def add_autoencode_parser(sub) -> None:
    import dataclasses

    from .autoencode import AutoencodeConfig
    from .data.tables import Columns

    columns = tuple(f.name for f in dataclasses.fields(Columns))
    a = sub.add_parser("autoencode", help="sequence autoencoders: codes and anomaly scores")
    a_sub = a.add_subparsers(dest="autoencode_command", required=True)
    t = a_sub.add_parser("train", help="train on series (the classifier's series formats; labels are ignored)")
    t.add_argument("data")
    t.add_argument("--out", help="run directory to create (default runs/autoencode-<model>-<time>)")
    t.add_argument("--threads", type=int)
    t.add_argument("--no-progress", action="store_true")
    add_config_flags(t, AutoencodeConfig, skip=("data",))
    e = a_sub.add_parser("embed", help="write each sequence's code: .npy, or .csv with an id column")
    s = a_sub.add_parser("score", help="per-sequence and per-step reconstruction errors, flagged by the threshold")
    for q in (e, s):
        q.add_argument("run")
        q.add_argument("data")
        q.add_argument("--out", required=True)
        q.add_argument("--force", action="store_true", help="replace --out if it exists")
        q.add_argument("--threads", type=int)
        add_config_flags(q, Columns)
        q.set_defaults(column_flags=columns)
    s.add_argument("--normal-label", help="with labels in DATA: the normal class; prints precision, recall, F1")
    s.add_argument("--plot", help="PNG to write: the score histogram and the worst sequences' errors")
    b = a_sub.add_parser(
        "bench", help="synthetic spikes and shifts, GunPoint one-class, codes -> logistic regression (ItalyPowerDemand)"
    )
    b.add_argument("--out", help="benchmark folder (an existing one is continued)")
    b.add_argument("--seeds", type=int, default=3)
    b.add_argument("--threads", type=int)


def add_forecast_parser(sub) -> None:
    import dataclasses

    from .forecast import ForecastConfig

    columns = ("time_column", "id_column", "targets", "covariates")
    f = sub.add_parser("forecast", help="forecast time series: train, predict, evaluate")
    f_sub = f.add_subparsers(dest="forecast_command", required=True)
    t = f_sub.add_parser(
        "train",
        help="train on a file of series",
        description="DATA: .csv/.tsv (one row per step; --time-column, --id-column, --targets, --covariates), "
        ".npy (T,) or (T, C), or .npz with y (T, C) or (n, T, C) and optional covariates.",
    )
    t.add_argument("data", nargs="?")
    t.add_argument("--out", help="run directory to create (default runs/forecast-<model>-<time>)")
    t.add_argument("--resume", metavar="RUN", help="continue RUN exactly where its last checkpoint left it")
    t.add_argument("--threads", type=int)
    t.add_argument("--no-progress", action="store_true")
    add_config_flags(t, ForecastConfig, skip=("data",))
    p = f_sub.add_parser("predict", help="forecast the next --horizon steps of every series, as CSV")
    p.add_argument("run")
    p.add_argument("data")
    p.add_argument("--out", required=True, help="the CSV to write: id, step, y0.. (and 80%% intervals)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.add_argument("--threads", type=int)
    e = f_sub.add_parser("eval", help="MAE, RMSE, sMAPE and MASE on each series' last --horizon steps")
    e.add_argument("run")
    e.add_argument("data")
    e.add_argument("--plot", help="PNG to write: history, forecast, truth and seasonal naive")
    e.add_argument("--checkpoint", choices=("best", "last"), default="best")
    e.add_argument("--threads", type=int)
    others = tuple(fl.name for fl in dataclasses.fields(ForecastConfig) if fl.name not in columns)
    for q in (p, e):
        add_config_flags(q, ForecastConfig, skip=others)  # only the column names: a file may be laid out differently
    b = f_sub.add_parser("bench", help="statsmodels/pmdarima series: MASE beside seasonal naive, SARIMA and ETS")
    b.add_argument("--out", help="benchmark folder (an existing one is continued)")
    b.add_argument("--seeds", type=int, default=3)
    b.add_argument("--threads", type=int)


def add_classify_parser(sub) -> None:
    from .classify import ClassifyConfig
    from .data.tables import Columns

    columns = tuple(f.name for f in __import__("dataclasses").fields(Columns))
    c = sub.add_parser("classify", help="sequence classification: labelled texts or time series")
    c_sub = c.add_subparsers(dest="classify_command", required=True)
    t = c_sub.add_parser(
        "train",
        help="train on a labelled file",
        description="DATA: .csv/.tsv/.jsonl with text and label columns; a long-format .csv (id, [time], channels..., "
        "label); .npz with X (n, channels, length), y and optional lengths; or a UCR/UEA .ts file (needs aeon).",
    )
    t.add_argument("data", nargs="?", help="the training file")
    t.add_argument("--out", help="run directory to create (default runs/classify-<model>-<time>)")
    t.add_argument("--resume", metavar="RUN", help="continue RUN exactly where its last checkpoint left it")
    t.add_argument("--test", metavar="FILE", help="after training, score the best checkpoint on this labelled file")
    t.add_argument("--threads", type=int, help="torch threads")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_flags(t, ClassifyConfig, skip=("data",))
    for name, text in (("eval", "accuracy, macro-F1, a per-class report and a confusion matrix on a labelled file"),
                       ("predict", "labels and class probabilities for a file, as CSV")):  # fmt: skip
        p = c_sub.add_parser(name, help=text)
        p.add_argument("run")
        p.add_argument("data")
        p.add_argument("--checkpoint", choices=("best", "last"), default="best")
        if name == "eval":
            p.add_argument("--out", help="folder to create for report.txt and confusion.png")
        else:
            p.add_argument("--out", required=True, help="the CSV to write: id, label, p_<class>...")
            p.add_argument("--force", action="store_true", help="replace --out if it exists")
        p.add_argument("--threads", type=int)
        add_config_flags(p, Columns)
        p.set_defaults(column_flags=columns)
    bn = c_sub.add_parser("bench", help="UCR/UEA data sets that aeon ships, several seeds, beside published figures")
    bn.add_argument("--datasets", type=_csv(("JapaneseVowels", "GunPoint", "ItalyPowerDemand")),
                    default=["JapaneseVowels", "GunPoint", "ItalyPowerDemand"])  # fmt: skip
    bn.add_argument("--seeds", type=int, default=3)
    bn.add_argument("--out", help="benchmark folder (an existing one is continued)")
    bn.add_argument("--threads", type=int)
    add_config_flags(bn, ClassifyConfig, skip=("data", "seed", *columns))


def add_config_flags(parser: argparse.ArgumentParser, config_cls, skip: tuple[str, ...] = ()) -> None:
    """One flag per field of a flat config dataclass (--seq-len for seq_len), typed by its default; unset flags
    stay None, so only what the user typed overrides the config."""
    import dataclasses

    for f in dataclasses.fields(config_cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=f"(default {default})")
        else:
            kind = float if "float" in str(f.type) else int if "int" in str(f.type) else str
            parser.add_argument(flag, type=kind, default=None, metavar=f.name.upper(), help=f"(default {default})")


def refuse_changes_on_resume(args, config_cls, allowed: tuple[str, ...] = ("minutes",)) -> None:
    """--resume continues with the run's own config: any other config flag the user typed (or --out) is refused."""
    import dataclasses

    typed = [f.name for f in dataclasses.fields(config_cls) if getattr(args, f.name, None) is not None]
    fixed = [n for n in typed if n not in allowed] + (["out"] if getattr(args, "out", None) else [])
    if fixed:
        flags = ", ".join("--" + n.replace("_", "-") for n in fixed)
        raise ValueError(f"--resume continues with the run's own config; drop {flags} (only --minutes may change)")


def train_config(args, config_cls, allowed: tuple[str, ...] = ("minutes",), data: str = "DATA"):
    """The config of a ``train`` command: DATA for a new run, or --resume RUN with no other config flag changed."""
    if not args.data and not args.resume:
        raise ValueError(f"give {data} or --resume RUN")
    if args.data and args.resume:
        raise ValueError("give DATA for a new run or --resume RUN, not both")
    if args.resume:
        refuse_changes_on_resume(args, config_cls, allowed)
    return config_from(args, config_cls, **({"data": args.data} if args.data else {}))


def config_from(args, config_cls, **fixed):
    import dataclasses

    values = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(config_cls)}
    values.update(fixed)
    return config_cls(**{k: v for k, v in values.items() if v is not None})


def cmd_lm(args) -> None:

    from . import lm

    if args.lm_command == "train":
        # train_lm checks --steps on resume itself
        cfg = train_config(args, lm.LMConfig, ("minutes", "steps"), "DATA (a file, a directory, pydoc or stdlib)")
        lm.train_lm(cfg, out=args.out, resume=args.resume, progress=not args.no_progress)
    elif args.lm_command == "sample":
        model, tokenizer, _ = lm.load(args.run, args.checkpoint)
        for i in range(args.num_samples):
            if i:
                print("\n" + "-" * 40)
            seed = None if args.seed is None else args.seed + i
            sys.stdout.write(args.prompt)  # the continuation reads on from the prompt, as in char-rnn
            stop = args.stop.replace("\\n", "\n").replace("\\t", "\t") if args.stop else None
            for piece in lm.generate(
                model,
                tokenizer,
                args.prompt,
                args.length,
                args.temperature,
                args.top_k,
                args.top_p,
                args.greedy,
                seed,
                stop,
            ):
                sys.stdout.write(piece)
                sys.stdout.flush()
        print()
    elif args.lm_command == "bench":
        from . import lm_bench

        cfg = config_from(args, lm.LMConfig, data=args.data, minutes=args.minutes)
        lm_bench.run(cfg, args.out, args.throughput_steps)
    elif args.lm_command in ("compare", "speed"):
        import time
        from pathlib import Path

        from . import lm_compare

        out = Path(args.out or f"runs/lm-{args.lm_command}-{time.strftime('%Y%m%d-%H%M%S')}")
        say = lambda s: print(s, flush=True)  # noqa: E731
        if args.lm_command == "compare":
            rows = lm_compare.compare(args.data, args.minutes, args.models, out, echo=say)
            print(lm_compare.table(rows, args.data, args.minutes))
            print(f"written to {out}: table.md, results.csv, curves.png, one run directory per model")
        else:
            if args.positions < 1:
                raise ValueError(f"--positions must be at least 1, got {args.positions}")
            lm_compare.speed(args.positions, out, echo=say)
            print(f"written to {out}: speed.csv, speed.png")
    elif args.lm_command == "eval":
        from pathlib import Path

        from .data.text import read_text

        model, tokenizer, _ = lm.load(args.run, args.checkpoint)
        result = lm.evaluate_text(model, tokenizer, read_text(Path(args.file), args.encoding_errors))
        print(
            f"{args.file}: {result['bpc']:.4f} bits per character, {result['nats_per_token']:.4f} nats per token, "
            f"perplexity {result['ppl']:.3f} ({result['chars']:,} characters, {result['tokens']:,} tokens)"
        )


def cmd_classify(args) -> None:
    import time
    from pathlib import Path

    from . import classify
    from .data.tables import Columns, read_table

    if args.classify_command == "train":
        cfg = train_config(args, classify.ClassifyConfig)
        _, _, run = classify.train_classifier(cfg, out=args.out, resume=args.resume, progress=not args.no_progress)
        if args.test:
            m = classify.evaluate(run, args.test, run / f"test-{Path(args.test).stem}")
            print(f"test {args.test}:\n{m['report']}\nwritten to {run}/test-{Path(args.test).stem}")
    elif args.classify_command in ("eval", "predict"):
        model, inputs, cfg = classify.load(args.run, args.checkpoint)
        columns = Columns(**{n: getattr(args, n) if getattr(args, n) is not None else getattr(cfg, n)
                             for n in args.column_flags})  # fmt: skip
        if args.classify_command == "eval":
            out = (
                Path(args.out)
                if args.out
                else Path(args.run) / f"eval-{Path(args.data).stem}-{time.strftime('%H%M%S')}"
            )
            if out.exists():
                raise FileExistsError(f"{out} exists; choose another --out")
            m = classify.evaluate(args.run, args.data, out, args.checkpoint, columns)
            print(f"{args.data}:\n{m['report']}\nwritten to {out}: report.txt, confusion.png")
        else:
            out = Path(args.out)
            if out.exists() and not args.force:
                raise FileExistsError(f"{out} exists; pass --force to replace it")
            table = read_table(args.data, columns)
            proba = classify.predict_proba(model, inputs.prepare(table, labelled=False))
            classify.write_predictions(out, table.ids, proba, inputs.labels.classes)
            print(f"{len(table.ids)} predictions written to {out}")
    elif args.classify_command == "bench":
        from . import classify_bench

        cfg = config_from(args, classify.ClassifyConfig)
        out = Path(args.out or f"runs/classify-bench-{time.strftime('%Y%m%d-%H%M%S')}")
        print(f"classify bench: {', '.join(args.datasets)}, {args.seeds} seeds -> {out}", flush=True)
        rows = classify_bench.run(args.datasets, args.seeds, out, cfg, echo=lambda s: print(s, flush=True))
        print(classify_bench.table(rows, cfg))
        print(f"written to {out}: table.md, results.csv, one run directory per data set and seed")


def cmd_forecast(args) -> None:
    import json
    from dataclasses import replace
    from pathlib import Path

    from . import forecast

    if args.forecast_command == "train":
        cfg = train_config(args, forecast.ForecastConfig)
        forecast.train_forecaster(cfg, out=args.out, resume=args.resume, progress=not args.no_progress)
        return
    if args.forecast_command == "bench":
        import time

        from . import forecast_bench

        out = Path(args.out or f"runs/forecast-bench-{time.strftime('%Y%m%d-%H%M%S')}")
        rows = forecast_bench.run(out, args.seeds, echo=lambda s: print(s, flush=True))
        print(forecast_bench.table(rows))
        print(f"written to {out}: table.md, results.csv, one run directory per series and seed")
        return
    _, cfg, _ = forecast.load(args.run, args.checkpoint)
    cols = {n: getattr(args, n) for n in ("time_column", "id_column", "targets", "covariates")}
    cfg = replace(cfg, **{k: v for k, v in cols.items() if v is not None})
    if args.forecast_command == "eval":
        plot = Path(args.plot) if args.plot else None
        if plot is not None and plot.exists():
            raise FileExistsError(f"{plot} exists; choose another --plot")
        data = forecast.load_data(args.data, cfg)
        result = forecast.evaluate(args.run, data=data, which=args.checkpoint, plot=plot)
        print(json.dumps(result, indent=1))
    else:
        out = Path(args.out)
        if out.exists() and not args.force:
            raise FileExistsError(f"{out} exists; pass --force to replace it")
        data, mu, sigma = forecast.predict(args.run, args.data, args.checkpoint, cfg)
        forecast.write_forecasts(out, data, mu, sigma)
        print(f"{len(data.ids)} forecasts of {mu.shape[1]} steps written to {out}")


def cmd_autoencode(args) -> None:
    import time
    from pathlib import Path

    import numpy as np

    from . import autoencode
    from .data.tables import Columns

    if args.autoencode_command == "train":
        autoencode.train_autoencoder(config_from(args, autoencode.AutoencodeConfig, data=args.data), out=args.out,
                                     progress=not args.no_progress)  # fmt: skip
        return
    if args.autoencode_command == "bench":
        from . import autoencode_bench

        out = Path(args.out or f"runs/autoencode-bench-{time.strftime('%Y%m%d-%H%M%S')}")
        rows = autoencode_bench.run(out, args.seeds, echo=lambda s: print(s, flush=True))
        print(autoencode_bench.table(rows, autoencode.AutoencodeConfig()))
        print(f"written to {out}: table.md, results.csv, one run directory per task and seed")
        return
    out = Path(args.out)
    if out.exists() and not args.force:
        raise FileExistsError(f"{out} exists; pass --force to replace it")
    _, cfg, _ = autoencode.load(args.run)
    columns = Columns(**{n: getattr(args, n) if getattr(args, n) is not None else getattr(cfg, n)
                         for n in args.column_flags})  # fmt: skip
    if args.autoencode_command == "embed":
        codes, table = autoencode.embed(args.run, args.data, columns)
        tmp = out.with_name(f".{out.name}.tmp{out.suffix}")
        if out.suffix == ".npy":
            np.save(tmp, codes)
        else:
            with open(tmp, "w") as f:
                f.write("id," + ",".join(f"z{k}" for k in range(codes.shape[1])) + "\n")
                f.writelines(
                    f"{i}," + ",".join(f"{v:.6g}" for v in row) + "\n" for i, row in zip(table.ids, codes, strict=True)
                )
        tmp.replace(out)
        print(f"{len(codes)} codes of size {codes.shape[1]} written to {out}")
        return
    if args.plot and Path(args.plot).exists():
        raise FileExistsError(f"{args.plot} exists; choose another --plot")
    result = autoencode.score(args.run, args.data, columns, args.normal_label)
    autoencode.write_scores(out, result)
    if args.plot:
        autoencode.plot_scores(Path(args.plot), result, cfg.score)
    flagged = int(result["anomaly"].sum())
    print(
        f"{flagged} of {len(result['scores'])} sequences above the threshold {result['threshold']:.4g}; "
        f"written to {out} and {out.with_name(out.stem + '-steps.csv')}"
    )
    if "metrics" in result:
        m = result["metrics"]
        print(
            f"precision {m['precision']:.3f}, recall {m['recall']:.3f}, F1 {m['f1']:.3f}, "
            f"area under PR {m['auc_pr']:.3f}"
        )


def cmd_gan(args) -> None:
    import json
    import time
    from pathlib import Path

    import numpy as np

    from . import gan

    if args.gan_command == "train":
        gan.train_gan(
            config_from(args, gan.GANConfig, data=args.data), out=args.out, echo=lambda s: print(s, flush=True)
        )
    elif args.gan_command == "sample":
        out = Path(args.out)
        if out.exists() and not args.force:
            raise FileExistsError(f"{out} exists; pass --force to replace it")
        if args.n < 1:
            raise ValueError(f"--n must be at least 1, got {args.n}")
        seqs, lengths, labels = gan.sample(args.run, args.n, args.seed, label=args.label, which=args.checkpoint)
        X = np.zeros((len(seqs), seqs[0].shape[1], int(lengths.max())), np.float32)
        for i, s in enumerate(seqs):
            X[i, :, : len(s)] = s.T
        tmp = out.with_name(f".{out.stem}.tmp.npz")
        np.savez(tmp, X=X, lengths=lengths, **({"y": labels} if labels is not None else {}))
        tmp.replace(out)
        print(f"{len(seqs)} sequences written to {out} (X {X.shape}, lengths {lengths.min()}..{lengths.max()}"
              + (", with their classes in y)" if labels is not None else ")"))  # fmt: skip
    elif args.gan_command == "eval":
        out = Path(args.out or Path(args.run) / f"eval-{time.strftime('%Y%m%d-%H%M%S')}")
        if out.exists():
            raise FileExistsError(f"{out} exists; choose another --out")
        result = gan.evaluate(args.run, args.repeats, args.n, out, (args.disc_steps, args.pred_steps),
                              args.checkpoint, echo=lambda s: print(s, flush=True))  # fmt: skip
        print(json.dumps(result, indent=1))
        print(f"written to {out}: scores.json, pca-tsne.png")
    else:
        from . import gan_bench

        out = Path(args.out or f"runs/gan-bench-{time.strftime('%Y%m%d-%H%M%S')}")
        rows = gan_bench.run(out, args.steps, args.repeats, args.only, echo=lambda s: print(s, flush=True))
        print(gan_bench.table(rows))
        print(f"written to {out}: table.md, results.json, one run directory per data set")


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def cmd_lab(args) -> None:
    import time
    from pathlib import Path

    from . import lab

    out = Path(args.out or f"runs/lab-{args.task}-{time.strftime('%Y%m%d-%H%M%S')}")
    if args.task == "gradients":
        T = (args.lengths or [100])[0]
        print(f"lab gradients: {args.on} task, T={T}, models {','.join(args.models)} -> {out}", flush=True)
        lab.run_gradients(args.on, T, args.models, args.steps, out, echo=lambda s: print(s, flush=True))
        print(f"written to {out}: gradients.csv, gradients.png, and one training run per model")
        return
    overrides = {k: getattr(args, k) for k in ("hidden", "batch", "lr", "eval_every") if getattr(args, k) is not None}
    if "lr" in overrides:
        overrides["min_lr"] = overrides["lr"]  # the protocol's learning rate is constant
    lengths = args.lengths or ([50, 100, 200] if args.task == "adding" else [100, 200])
    print(
        f"lab {args.task}: models {','.join(args.models)}, lengths {lengths}, {args.seeds} seeds -> {out}", flush=True
    )
    lab.run_lab(args.task, args.models, lengths, args.seeds, args.steps, args.minutes, out,
                echo=lambda s: print(s, flush=True), **overrides)  # fmt: skip
    print(f"written to {out}: table.md, results.csv, curves.csv, loss.png, and one run directory per line")


def cmd_inspect(args) -> None:
    import time
    from pathlib import Path

    from .data.text import read_text
    from .inspect import inspect

    if (args.text is None) == (args.file is None):
        raise ValueError("give the text to inspect with --text or --file (one of them)")
    text = args.text if args.text is not None else read_text(Path(args.file))
    out = Path(args.out or Path(args.run) / f"inspect-{time.strftime('%Y%m%d-%H%M%S')}")
    if out.exists():
        raise FileExistsError(f"{out} exists; choose another --out")
    result = inspect(args.run, text, args.units, args.layer, out)
    print(f"layer {result['layer']}, units {', '.join(map(str, result['units']))}")
    for prop, best in result["tracking"].items():
        print(f"  {prop}: " + ", ".join(f"unit {b['unit']} (r = {b['r']:+.2f})" for b in best))
    print(f"written to {out}: gates.png, gates.html (hover a character), units.json")


def cmd_bench(args) -> None:
    import os

    from . import bench

    if args.repeats is not None and args.repeats < 1:
        raise ValueError(f"--repeats must be at least 1, got {args.repeats}")
    if args.json and os.path.exists(args.json) and not args.force:
        raise FileExistsError(f"{args.json} exists; pass --force to replace it")
    print(f"# seqlab bench on {bench.machine()}", flush=True)
    result = bench.run(args.quick, args.cells, args.backends, args.repeats, log=lambda s: print(s, flush=True))
    if args.markdown:
        print(bench.markdown(result))
    if args.json:
        bench.write_json(result, args.json, args.force)
        print(f"# wrote {args.json}")


def main(argv: list[str] | None = None) -> int:
    from .train import TrainingError

    args = build_parser().parse_args(argv)
    try:
        threads = getattr(args, "threads", None)  # every command that computes takes --threads
        if threads is not None:
            if threads < 1:
                raise ValueError(f"--threads must be at least 1, got {threads}")
            import torch

            torch.set_num_threads(threads)
        commands = {
            "bench": cmd_bench,
            "lm": cmd_lm,
            "lab": cmd_lab,
            "inspect": cmd_inspect,
            "classify": cmd_classify,
            "forecast": cmd_forecast,
            "autoencode": cmd_autoencode,
            "gan": cmd_gan,
        }
        commands[args.command](args)
    except (ValueError, OSError, TrainingError) as e:
        print(f"seqlab {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = " (continue with --resume RUN)" if args.command in ("lm", "classify", "forecast") else ""
        print(f"seqlab: interrupted{hint}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
