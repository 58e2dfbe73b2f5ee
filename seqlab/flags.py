"""Command-line flags that several commands share, declared once: the flags common to every command, one flag per
field of a task's config dataclass, comma-separated lists, and the rule of ``train DATA`` against ``--resume RUN``.
"""

from __future__ import annotations

import argparse
import dataclasses


def common() -> argparse.ArgumentParser:
    """The flags every command that computes takes (a parent parser, so they follow the subcommand as they always
    have: ``seqlab lm train notes.txt --threads 1``)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--threads", type=int, help="torch threads (default: the cores this process may use)")
    return parser


def processes() -> argparse.ArgumentParser:
    """--nproc, for every command that trains on seqlab's training loop."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--nproc", type=ranged(">=1"), default=1,
                        help="train in N processes on this machine (torchrun; --batch stays the global batch; "
                             "default 1)")  # fmt: skip
    return parser


def training() -> argparse.ArgumentParser:
    """The flags of every ``train`` command that runs seqlab's training loop."""
    parser = argparse.ArgumentParser(add_help=False, parents=[processes()])
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def without_nproc(argv: list[str]) -> list[str]:
    """The command line a launched process runs: ARGV without --nproc N (or --nproc=N)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def check_processes(args) -> None:
    """Refuse, before any process starts, N processes that cannot share the global batch (--batch, the resumed
    run's, or the default) in equal shards."""
    from .runs import read_config

    n, batch, config_class = args.nproc, getattr(args, "batch", None), getattr(args, "config_class", None)
    if batch is None and getattr(args, "resume", None):  # a missing or foreign run is named here, before a start
        batch = read_config(args.resume, args.command, config_class)[0].batch
    if batch is None and config_class is not None:
        batch = getattr(config_class, "batch", None)
    if batch is not None and (batch < n or batch % n):
        raise ValueError(f"--nproc {n}: the global batch of {batch} cannot be split into {n} equal shards; give a "
                         f"--batch that is a multiple of {n}")  # fmt: skip


def ranged(rule: str, kind=int):
    """An argparse type: a finite number of ``kind`` within ``rule`` (a key of seqlab.train.RULES: ">=1", ...)."""
    from .train import out_of_range

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        problem = out_of_range(value, rule)
        if problem is not None:
            raise argparse.ArgumentTypeError(f"{problem}, got {text}")
        return value

    return parse


def comma_list(choices: tuple[str, ...]):
    """An argparse type: a comma-separated subset of ``choices``."""

    def parse(text: str) -> list[str]:
        items = [s.strip() for s in text.split(",") if s.strip()]
        bad = [s for s in items if s not in choices]
        if not items or bad:
            raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {','.join(choices)}, got {text!r}")
        return items

    return parse


def positive_ints(text: str) -> list[int]:
    """An argparse type: comma-separated positive integers."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def add_config_flags(parser: argparse.ArgumentParser, config_cls, skip: tuple[str, ...] = ()) -> None:
    """One flag per field of a flat config dataclass (--seq-len for seq_len), typed by its default; unset flags
    stay None, so only what the user typed overrides the config."""
    parser.set_defaults(config_class=config_cls)
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


def add_train_flags(parser: argparse.ArgumentParser, task: str, data_help: str = "the training file",
                    resumable: bool = True, default_data: str | None = None) -> None:  # fmt: skip
    """DATA, --out and (where the task resumes) --resume, the same for every ``train`` command."""
    parser.add_argument("data", nargs="?", default=default_data, help=data_help)
    parser.add_argument("--out", help=f"run directory to create (default runs/{task}-<model>-<time>)")
    if resumable:
        parser.add_argument("--resume", metavar="RUN", help="continue RUN exactly where its last checkpoint left it")


def config_from(args, config_cls, **fixed):
    """The config the user typed: every config flag given on the command line, over the dataclass's defaults."""
    values = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(config_cls)}
    values.update(fixed)
    return config_cls(**{k: v for k, v in values.items() if v is not None})


def refuse_changes_on_resume(args, config_cls, allowed: tuple[str, ...] = ("minutes",)) -> None:
    """--resume continues with the run's own config: any other config flag the user typed (or --out) is refused."""
    typed = [f.name for f in dataclasses.fields(config_cls) if getattr(args, f.name, None) is not None]
    fixed = [n for n in typed if n not in (*allowed, "precision")] + (["out"] if getattr(args, "out", None) else [])
    if fixed:
        flags = ", ".join("--" + n.replace("_", "-") for n in fixed)
        raise ValueError(
            f"--resume continues with the run's own config; drop {flags} (only --minutes and --precision may change)"
        )


def train_config(args, config_cls, allowed: tuple[str, ...] = ("minutes",), data: str = "DATA"):
    """The config of a ``train`` command: DATA for a new run, or --resume RUN with no other config flag changed.

    When torchrun restarts the processes after one failed (``--max-restarts``), ``--out RUN`` that has a checkpoint
    by now is resumed from it: the restarted command is the first one, and the run continues, not starts over."""
    if restarted(args):
        args.resume, args.data, args.out = args.out, None, None
        return config_from(args, config_cls)
    resume = getattr(args, "resume", None)
    if not args.data and not resume:
        raise ValueError(f"give {data} or --resume RUN")
    if args.data and resume:
        raise ValueError("give DATA for a new run or --resume RUN, not both")
    if resume:
        refuse_changes_on_resume(args, config_cls, allowed)
    cfg = config_from(args, config_cls, **({"data": args.data} if args.data else {}))
    if hasattr(cfg, "precision"):
        from .train import check_precision

        check_precision(cfg.precision)  # before anything is written or any process starts
    return cfg


def restarted(args) -> bool:
    """A process that torchrun restarted, of a run (--out) that has a checkpoint to continue from."""
    import os
    from pathlib import Path

    again = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0
    out = getattr(args, "out", None)
    return again and hasattr(args, "resume") and bool(out) and (Path(out) / "checkpoints" / "last.safetensors").exists()


def column_overrides(args, cfg):
    """The column names to read a file by: the run's own, except those the user typed (a file laid out otherwise)."""
    return {n: getattr(args, n) if getattr(args, n, None) is not None else getattr(cfg, n) for n in args.column_flags}
