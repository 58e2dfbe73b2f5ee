"""``seqlab lab adding | copy | parity | selective | gradients``."""

from __future__ import annotations

from .. import flags, runs
from .task import MODELS, TASKS, LabConfig

DEFAULT_LENGTHS = {"adding": [50, 100, 200], "copy": [100, 200], "parity": [64, 256], "selective": [100, 400]}
CLASSIC, EVERY = ["rnn", "lstm", "gru"], list(MODELS)  # the new tasks are there to compare every family


def add_parser(sub, common) -> None:
    la = sub.add_parser("lab", parents=[common, flags.processes()],
                        help="memory experiments: adding, copy, parity, selective copying across models")  # fmt: skip
    la.set_defaults(config_class=LabConfig)  # --nproc's check reads the default batch there
    la.add_argument("task", choices=(*TASKS, "gradients"))
    la.add_argument("--on", choices=TASKS, default="adding", help="gradients: the task to measure on")
    la.add_argument("--models", type=flags.comma_list(MODELS),
                    help="comma-separated (default rnn,lstm,gru; parity and selective: all six); transformer: a "
                         "causal 2-block Transformer of the same width")  # fmt: skip
    la.add_argument("--lengths", type=flags.positive_ints,
                    help="sequence lengths T (default adding 50,100,200; copy 100,200; parity 64,256; "
                         "selective 100,400)")  # fmt: skip
    la.add_argument("--seeds", type=flags.ranged(">=1"), default=3)
    la.add_argument("--steps", type=flags.ranged(">=1"), default=4000, help="training steps per run (default 4000)")
    la.add_argument("--minutes", type=flags.ranged(">0", float), help="wall-clock budget per run")
    la.add_argument("--hidden", type=flags.ranged(">=1"), help="hidden units (default 128)")
    la.add_argument("--layers", type=flags.ranged(">=1"),
                    help="recurrent layers (default 1; the transformer keeps its 2 blocks)")  # fmt: skip
    la.add_argument("--batch", type=flags.ranged(">=1"), help="batch size (default 50)")
    la.add_argument("--lr", type=flags.ranged(">0", float), help="Adam learning rate (default 1e-3)")
    la.add_argument("--eval-every", type=flags.ranged(">=1"), help="steps between test evaluations (default 250)")
    la.add_argument("--out", help="lab directory (an existing one is continued)")


def run(args) -> None:
    from .gradients import run_gradients
    from .task import run_lab

    out = runs.own(args.out or runs.default_dir(f"lab-{args.task}"))  # under torchrun: rank 0's is yours
    say = lambda s: print(s, flush=True)  # noqa: E731
    models = args.models or (EVERY if args.task in ("parity", "selective") else CLASSIC)
    if args.task == "gradients":
        T = (args.lengths or [100])[0]
        say(f"lab gradients: {args.on} task, T={T}, models {','.join(models)} -> {out}")
        run_gradients(args.on, T, models, args.steps, out, echo=say)
        print(f"written to {out}: gradients.csv, gradients.png, and one training run per model")
        return
    overrides = {
        k: getattr(args, k) for k in ("hidden", "layers", "batch", "lr", "eval_every") if getattr(args, k) is not None
    }
    if "lr" in overrides:
        overrides["min_lr"] = overrides["lr"]  # the protocol's learning rate is constant
    lengths = args.lengths or DEFAULT_LENGTHS[args.task]
    say(f"lab {args.task}: models {','.join(models)}, lengths {lengths}, {args.seeds} seeds -> {out}")
    run_lab(args.task, models, lengths, args.seeds, args.steps, args.minutes, out, echo=say, **overrides)
    print(f"written to {out}: table.md, results.csv, curves.csv, loss.png, and one run directory per line")
