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
import os
import signal
import sys
import threading

from . import bench, flags
from .autoencode import cli as autoencode
from .classify import cli as classify
from .export import cli as export
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
    "export": export,
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
    from torch.distributed import DistError

    from .runs import world
    from .train import Interrupted, TrainingError, launch, report_failure

    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    w = world()
    where = f"seqlab {args.command}: " + (f"rank {w.rank}: " if w.size > 1 else "")
    if not w.writer:  # rank 0 speaks for all
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
    before = signal.signal(signal.SIGTERM, stop) if threading.current_thread() is threading.main_thread() else None
    try:
        if getattr(args, "nproc", None) and w.size == 1 and args.nproc > 1:
            flags.check_processes(args)  # before any process starts
            return launch(flags.without_nproc(argv), args.nproc)
        set_threads(getattr(args, "threads", None))
        COMMANDS[args.command].run(args)
    except (ValueError, OSError, TrainingError) as e:
        report_failure(f"{where}error: {e}")
        return 2
    except Interrupted as e:  # the loop finished its step and wrote a checkpoint
        hint = f"continue with: seqlab {args.command} train --resume {e.run}" if args.command in RESUMABLE else ""
        report_failure(f"{where}{e}" + (f"; {hint}" if hint else ""), peer=True)  # stopped from outside
        return 130
    except KeyboardInterrupt:
        report_failure(f"{where}interrupted", peer=True)
        return 130
    except RuntimeError as e:  # a collective failed: another process died (its own line says why), or the network
        if w.size == 1 or not (isinstance(e, DistError) or "gloo" in str(e) or "NCCL" in str(e)):
            raise
        report_failure(f"{where}lost the other processes: {str(e).strip().splitlines()[0]}", peer=True)
        return 1
    finally:
        if before is not None:
            signal.signal(signal.SIGTERM, before)
    return 0


def stop(signum, frame):
    """SIGTERM (a scheduler's, or torchrun stopping its processes) outside the training loop, which handles it
    itself: ends the command as Ctrl-C does, so that a run that has no checkpoint yet is removed, not left."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
