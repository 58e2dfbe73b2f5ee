"""The ``seqlab`` command: the top parser, the flags every command shares, the error policy, and a dict of commands.

Each command lives beside its code and offers ``add_parser(subparsers, common)`` and ``run(args)``: seqlab/lm/cli.py
for ``seqlab lm ...``, seqlab/classify/cli.py for ``seqlab classify ...``, and so on. Adding a task is one folder
and one entry in ``COMMANDS``.

Error policy, once for every command: a user's mistake (bad flags, bad data, a missing or foreign run, a file that
exists, training that cannot go on) ends in one line on stderr and exit status 2, never a traceback; Ctrl-C ends
with status 130.
"""

from __future__ import annotations

import argparse
import sys

from . import bench, flags
from .autoencode import cli as autoencode
from .classify import cli as classify
from .forecast import cli as forecast
from .gan import cli as gan
from .lab import cli as lab
from .lm import cli as lm
from .lm import units as inspect_units

COMMANDS = {
    "bench": bench,
    "lm": lm,
    "inspect": inspect_units,
    "lab": lab,
    "classify": classify,
    "forecast": forecast,
    "autoencode": autoencode,
    "gan": gan,
}
RESUMABLE = ("lm", "classify", "forecast")  # commands whose runs continue with --resume RUN


class Parser(argparse.ArgumentParser):
    """argparse's parser, but a mistake in the flags is one line (the usage stays a -h away), as every other error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = Parser(prog="seqlab", description="Learn from sequences of any length.")
    parser.add_argument("--version", action="version", version=f"seqlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    common = flags.common()
    for command in COMMANDS.values():
        command.add_parser(sub, common)
    return parser


def set_threads(threads: int | None) -> None:
    """torch's threads: --threads, else the cores this process may use (seqlab.train.cores), never more."""
    import torch

    from .train import cores

    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be at least 1, got {threads}")
    torch.set_num_threads(threads or min(torch.get_num_threads(), cores()))


def main(argv: list[str] | None = None) -> int:
    from .train import Interrupted, TrainingError

    args = build_parser().parse_args(argv)
    try:
        set_threads(getattr(args, "threads", None))
        COMMANDS[args.command].run(args)
    except (ValueError, OSError, TrainingError) as e:
        print(f"seqlab {args.command}: error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:  # the loop finished its step and wrote a checkpoint
        hint = f"continue with: seqlab {args.command} train --resume {e.run}" if args.command in RESUMABLE else ""
        print(f"seqlab {args.command}: {e}" + (f"; {hint}" if hint else ""), file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"seqlab {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
