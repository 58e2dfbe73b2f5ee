"""``seqlab gan train | sample | eval | bench``."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .. import flags, runs
from .task import GANConfig

SAY = lambda s: print(s, flush=True)  # noqa: E731


def add_parser(sub, common) -> None:
    g = sub.add_parser("gan", help="sequence GANs (TimeGAN): train, sample, evaluate")
    g_sub = g.add_subparsers(dest="gan_command", required=True)
    t = g_sub.add_parser("train", parents=[common], help="train on sines (the TimeGAN paper's) or a file of series")
    flags.add_train_flags(t, "gan", "sines, or a file of series", resumable=False, default_data="sines")
    flags.add_config_flags(t, GANConfig, skip=("data",))
    s = g_sub.add_parser("sample", parents=[common],
                         help="write synthetic sequences: .npz with X (n, channels, length) and lengths")  # fmt: skip
    s.add_argument("run")
    s.add_argument("--n", type=flags.ranged(">=1"), default=1000)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--label", help="conditional runs: only this class (default: classes as often as in training)")
    s.add_argument("--checkpoint", default="best", choices=runs.CHECKPOINTS, help="default best (lowest quick score)")
    s.add_argument("--out", required=True)
    s.add_argument("--force", action="store_true")
    e = g_sub.add_parser("eval", parents=[common], help="discriminative and predictive scores, PCA and t-SNE plots")
    e.add_argument("run")
    e.add_argument("--repeats", type=flags.ranged(">=1"), default=5)
    e.add_argument(
        "--n", type=flags.ranged(">=2"), help="real and synthetic sequences per score (default: all the real ones)"
    )
    e.add_argument("--out", help="folder for scores.json and pca-tsne.png (default RUN/eval-<time>)")
    e.add_argument(
        "--disc-steps", type=flags.ranged(">=1"), default=2000, help="training steps of the post-hoc discriminator"
    )
    e.add_argument(
        "--pred-steps", type=flags.ranged(">=1"), default=5000, help="training steps of the post-hoc predictor"
    )
    e.add_argument("--checkpoint", default="best", choices=runs.CHECKPOINTS, help="default best (lowest quick score)")
    b = g_sub.add_parser("bench", parents=[common], help="sines and JapaneseVowels beside the paper's figures")
    b.add_argument(
        "--steps", type=flags.ranged(">=1"), help="steps per phase (default: sines 10,000, JapaneseVowels 4,000)"
    )
    b.add_argument("--only", help="one set: sines or JapaneseVowels (two processes can share one --out)")
    b.add_argument("--repeats", type=flags.ranged(">=1"), default=3)
    b.add_argument("--out")


def run(args) -> None:
    {"train": train, "sample": sample, "eval": evaluate, "bench": bench}[args.gan_command](args)


def train(args) -> None:
    from .task import train_gan

    train_gan(flags.config_from(args, GANConfig, data=args.data), out=args.out, echo=SAY)


def sample(args) -> None:
    from .task import sample, write_samples

    out = runs.refuse_existing(args.out, args.force)
    if args.n < 1:
        raise ValueError(f"--n must be at least 1, got {args.n}")
    seqs, lengths, labels = sample(args.run, args.n, args.seed, label=args.label, which=args.checkpoint)
    X = write_samples(out, seqs, lengths, labels)
    print(f"{len(seqs)} sequences written to {out} (X {X.shape}, lengths {lengths.min()}..{lengths.max()}"
          + (", with their classes in y)" if labels is not None else ")"))  # fmt: skip


def evaluate(args) -> None:
    from .task import evaluate

    out = runs.refuse_existing(args.out or Path(args.run) / f"eval-{time.strftime('%Y%m%d-%H%M%S')}", force=None)
    result = evaluate(args.run, args.repeats, args.n, out, (args.disc_steps, args.pred_steps), args.checkpoint,
                      echo=SAY)  # fmt: skip
    print(json.dumps(result, indent=1))
    print(f"written to {out}: scores.json, pca-tsne.png")


def bench(args) -> None:
    from . import bench

    out = Path(args.out) if args.out else runs.default_dir("gan-bench")
    rows = bench.run(out, args.steps, args.repeats, args.only, echo=SAY)
    print(bench.table(rows))
    print(f"written to {out}: table.md, results.json, one run directory per data set")
