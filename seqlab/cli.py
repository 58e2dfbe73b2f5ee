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
    return parser


def cmd_bench(args) -> None:
    import os

    import torch

    from . import bench

    if args.repeats is not None and args.repeats < 1:
        raise ValueError(f"--repeats must be at least 1, got {args.repeats}")
    if args.json and os.path.exists(args.json) and not args.force:
        raise FileExistsError(f"{args.json} exists; pass --force to replace it")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    print(f"# seqlab bench on {bench.machine()}", flush=True)
    result = bench.run(args.quick, args.cells, args.backends, args.repeats, log=lambda s: print(s, flush=True))
    if args.markdown:
        print(bench.markdown(result))
    if args.json:
        bench.write_json(result, args.json, args.force)
        print(f"# wrote {args.json}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        {"bench": cmd_bench}[args.command](args)
    except (ValueError, OSError) as e:
        print(f"seqlab {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("seqlab: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
