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


def training() -> argparse.ArgumentParser:
    """The flags of every ``train`` command that runs seqlab's training loop."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


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
    fixed = [n for n in typed if n not in allowed] + (["out"] if getattr(args, "out", None) else [])
    if fixed:
        flags = ", ".join("--" + n.replace("_", "-") for n in fixed)
        raise ValueError(f"--resume continues with the run's own config; drop {flags} (only --minutes may change)")


def train_config(args, config_cls, allowed: tuple[str, ...] = ("minutes",), data: str = "DATA"):
    """The config of a ``train`` command: DATA for a new run, or --resume RUN with no other config flag changed."""
    resume = getattr(args, "resume", None)
    if not args.data and not resume:
        raise ValueError(f"give {data} or --resume RUN")
    if args.data and resume:
        raise ValueError("give DATA for a new run or --resume RUN, not both")
    if resume:
        refuse_changes_on_resume(args, config_cls, allowed)
    return config_from(args, config_cls, **({"data": args.data} if args.data else {}))


def column_overrides(args, cfg):
    """The column names to read a file by: the run's own, except those the user typed (a file laid out otherwise)."""
    return {n: getattr(args, n) if getattr(args, n, None) is not None else getattr(cfg, n) for n in args.column_flags}
