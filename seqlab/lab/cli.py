"""``seqlab lab adding | copy | gradients``."""

from __future__ import annotations

from .. import flags, runs
from .task import MODELS, LabConfig

DEFAULT_LENGTHS = {"adding": [50, 100, 200], "copy": [100, 200]}


def add_parser(sub, common) -> None:
    la = sub.add_parser("lab", parents=[common, flags.processes()],
                        help="memory experiments: the adding problem and the copy task across models")  # fmt: skip
    la.set_defaults(config_class=LabConfig)  # --nproc's check reads the default batch there
    la.add_argument("task", choices=("adding", "copy", "gradients"))
    la.add_argument("--on", choices=("adding", "copy"), default="adding", help="gradients: the task to measure on")
    la.add_argument("--models", type=flags.comma_list(MODELS), default=["rnn", "lstm", "gru"],
                    help="comma-separated; transformer: a causal 2-block Transformer of the same width")  # fmt: skip
    la.add_argument("--lengths", type=flags.positive_ints,
                    help="sequence lengths T (default adding 50,100,200; copy 100,200)")  # fmt: skip
    la.add_argument("--seeds", type=flags.ranged(">=1"), default=3)
    la.add_argument("--steps", type=flags.ranged(">=1"), default=4000, help="training steps per run (default 4000)")
    la.add_argument("--minutes", type=flags.ranged(">0", float), help="wall-clock budget per run")
    la.add_argument("--hidden", type=flags.ranged(">=1"), help="hidden units (default 128)")
    la.add_argument("--batch", type=flags.ranged(">=1"), help="batch size (default 50)")
    la.add_argument("--lr", type=flags.ranged(">0", float), help="Adam learning rate (default 1e-3)")
    la.add_argument("--eval-every", type=flags.ranged(">=1"), help="steps between test evaluations (default 250)")
    la.add_argument("--out", help="lab directory (an existing one is continued)")


def run(args) -> None:
    from .gradients import run_gradients
    from .task import run_lab

    out = runs.own(args.out or runs.default_dir(f"lab-{args.task}"))  # under torchrun: rank 0's is yours
    say = lambda s: print(s, flush=True)  # noqa: E731
    if args.task == "gradients":
        T = (args.lengths or [100])[0]
        say(f"lab gradients: {args.on} task, T={T}, models {','.join(args.models)} -> {out}")
        run_gradients(args.on, T, args.models, args.steps, out, echo=say)
        print(f"written to {out}: gradients.csv, gradients.png, and one training run per model")
        return
    overrides = {k: getattr(args, k) for k in ("hidden", "batch", "lr", "eval_every") if getattr(args, k) is not None}
    if "lr" in overrides:
        overrides["min_lr"] = overrides["lr"]  # the protocol's learning rate is constant
    lengths = args.lengths or DEFAULT_LENGTHS[args.task]
    say(f"lab {args.task}: models {','.join(args.models)}, lengths {lengths}, {args.seeds} seeds -> {out}")
    run_lab(args.task, args.models, lengths, args.seeds, args.steps, args.minutes, out, echo=say, **overrides)
    print(f"written to {out}: table.md, results.csv, curves.csv, loss.png, and one run directory per line")
