"""``seqlab lm train | sample | eval | bench | compare | speed`` and ``seqlab inspect``."""

from __future__ import annotations

import sys
from pathlib import Path

from .. import flags, runs
from .task import LMConfig

MODELS = ("lstm", "gru", "rnn", "mingru", "minlstm", "transformer")
COMPARED = ["lstm", "gru", "mingru", "minlstm", "transformer"]  # compare's and speed's default


def add_parser(sub, common) -> None:
    lm = sub.add_parser("lm", help="language models: train on a text, sample, evaluate")
    lm_sub = lm.add_subparsers(dest="lm_command", required=True)
    t = lm_sub.add_parser("train", parents=[common, flags.training()],
                          help="train on a file, a directory, or a built-in corpus (pydoc, stdlib)")  # fmt: skip
    flags.add_train_flags(t, "lm", "a file, a directory, or pydoc | stdlib")
    flags.add_config_flags(t, LMConfig, skip=("data",))
    t.add_argument("--recipe", choices=sorted(RECIPES), help="a preset of regularisers (awd: "
                   + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in RECIPES["awd"].items())
                   + "); the flags it sets cannot be given with it")  # fmt: skip
    sm = lm_sub.add_parser("sample", parents=[common], help="stream generated text from a run")
    sm.add_argument("run")
    sm.add_argument("--checkpoint", choices=runs.CHECKPOINTS, default="best")
    sm.add_argument("--prompt", default="")
    sm.add_argument("--length", type=flags.ranged(">=1"), default=500, help="tokens to generate")
    sm.add_argument("--temperature", type=float, default=0.8)  # checked, NaN too, by generate
    sm.add_argument("--top-k", type=int)
    sm.add_argument("--top-p", type=float)
    sm.add_argument("--greedy", action="store_true")
    sm.add_argument("--num-samples", type=flags.ranged(">=1"), default=1)
    sm.add_argument("--seed", type=int, help="same seed, same text (sample i uses seed + i)")
    sm.add_argument("--stop", help=r"stop before this string (\n and \t are understood)")
    bn = lm_sub.add_parser("bench", parents=[common],
                           help="train the default model, then compare with xz and an n-gram (README)")  # fmt: skip
    bn.add_argument("data", nargs="?", default="pydoc")
    bn.add_argument("--minutes", type=flags.ranged(">0", float), default=10.0, help="training budget (default 10)")
    bn.add_argument("--out", help="run directory to create")
    bn.add_argument(
        "--throughput-steps", type=flags.ranged(">=0"), default=20, help="steps per round of the loop-overhead check"
    )
    flags.add_config_flags(bn, LMConfig, skip=("data", "minutes"))
    cp = lm_sub.add_parser("compare", parents=[common],
                           help="recurrent and attention models of one size: bpc against CPU minutes")  # fmt: skip
    cp.add_argument("data", nargs="?", default="pydoc")
    cp.add_argument(
        "--minutes", type=flags.ranged(">0", float), default=10.0, help="training budget per model (default 10)"
    )
    cp.add_argument("--models", type=flags.comma_list(MODELS), default=COMPARED)
    cp.add_argument("--out", help="comparison folder (an existing one is continued)")
    sp = lm_sub.add_parser(
        "speed", parents=[common], help="per-token generation time and state memory against position"
    )
    sp.add_argument("--positions", type=flags.ranged(">=1"), default=4096)
    sp.add_argument("--models", type=flags.comma_list(MODELS), default=COMPARED)
    sp.add_argument("--out", help="folder for speed.csv and speed.png")
    ev = lm_sub.add_parser("eval", parents=[common], help="bits per character of a text under a run's model")
    ev.add_argument("run")
    ev.add_argument("file")
    ev.add_argument("--checkpoint", choices=runs.CHECKPOINTS, default="best")
    ev.add_argument("--encoding-errors", choices=("strict", "replace"), default="strict")


def run(args) -> None:
    {"train": train, "sample": sample, "bench": bench, "compare": compare, "speed": speed, "eval": evaluate}[
        args.lm_command
    ](args)


def train(args) -> None:
    from .task import train_lm

    # train_lm checks --steps on resume itself
    apply_recipe(args)
    cfg = flags.train_config(args, LMConfig, ("minutes", "steps"), "DATA (a file, a directory, pydoc or stdlib)")
    train_lm(cfg, out=args.out, resume=args.resume, progress=not args.no_progress)


# AWD-LSTM's character-level settings (Merity et al. 2018, "An Analysis of Neural Language Modeling at Multiple
# Scales", PTB characters: weight-drop 0.5, between-layer dropout 0.25, no embedding dropout at the character level),
# on seqlab's own model size and schedule. One locked rate stands for AWD's three (input 0.1, between 0.25, output
# 0.1): the between-layer one, where most of its units are.
RECIPES = {"awd": {"weight_drop": 0.5, "locked_dropout": 0.25, "dropout": 0.0, "embed_dropout": 0.0}}


def apply_recipe(args) -> None:
    """--recipe NAME: its settings become the flags' values; a flag it sets, given too, is refused in one line."""
    recipe = getattr(args, "recipe", None)
    if recipe is None:
        return
    if args.resume:
        raise ValueError(f"--recipe {recipe} sets up a new run; --resume continues with the run's own config")
    settings = RECIPES[recipe]
    if clash := [k for k in settings if getattr(args, k, None) is not None]:
        named = ", ".join(f"--{k.replace('_', '-')}" for k in clash)
        raise ValueError(f"--recipe {recipe} sets {named} itself; drop {named} or the recipe")
    for k, v in settings.items():
        setattr(args, k, v)


def sample(args) -> None:
    from .task import generate, load

    model, tokenizer, _ = load(args.run, args.checkpoint)
    stop = args.stop.replace("\\n", "\n").replace("\\t", "\t") if args.stop else None
    for i in range(args.num_samples):
        if i:
            print("\n" + "-" * 40)
        seed = None if args.seed is None else args.seed + i
        sys.stdout.write(args.prompt)  # the continuation reads on from the prompt, as in char-rnn
        pieces = generate(model, tokenizer, args.prompt, args.length, args.temperature, args.top_k, args.top_p,
                          args.greedy, seed, stop)  # fmt: skip
        for piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
    print()


def bench(args) -> None:
    from . import bench

    cfg = flags.config_from(args, LMConfig, data=args.data, minutes=args.minutes)
    bench.run(cfg, args.out, args.throughput_steps)


def compare(args) -> None:
    from . import compare

    out = Path(args.out) if args.out else runs.default_dir("lm-compare")
    rows = compare.compare(args.data, args.minutes, args.models, out, echo=lambda s: print(s, flush=True))
    print(compare.table(rows, args.data, args.minutes))
    print(f"written to {out}: table.md, results.csv, curves.png, one run directory per model")


def speed(args) -> None:
    from . import compare

    if args.positions < 1:
        raise ValueError(f"--positions must be at least 1, got {args.positions}")
    out = Path(args.out) if args.out else runs.default_dir("lm-speed")
    compare.speed(args.positions, out, tuple(args.models), echo=lambda s: print(s, flush=True))
    print(f"written to {out}: speed.csv, speed.png")


def evaluate(args) -> None:
    from ..data.text import read_text
    from .task import evaluate_text, load

    model, tokenizer, _ = load(args.run, args.checkpoint)
    result = evaluate_text(model, tokenizer, read_text(Path(args.file), args.encoding_errors))
    print(
        f"{args.file}: {result['bpc']:.4f} bits per character, {result['nats_per_token']:.4f} nats per token, "
        f"perplexity {result['ppl']:.3f} ({result['chars']:,} characters, {result['tokens']:,} tokens)"
    )
