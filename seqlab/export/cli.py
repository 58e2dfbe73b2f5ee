"""``seqlab export RUN [--out DIR] [--quantize int8] [--force]``."""

from __future__ import annotations


def add_parser(sub, common) -> None:
    ex = sub.add_parser("export", parents=[common],
                        help="a trained run as ONNX files and export.json, for seqlab.export.runtime")  # fmt: skip
    ex.add_argument("run", help="a lm, classify, forecast or autoencode run directory")
    ex.add_argument("--out", help="the folder to write (default RUN/export)")
    ex.add_argument("--checkpoint", choices=("best", "last"), default="best")
    ex.add_argument("--quantize", choices=("int8",), help="onnxruntime's dynamic int8 quantization of the weights")
    ex.add_argument("--force", action="store_true", help="replace --out if it exists")
    ex.add_argument("--bench", action="store_true",
                    help="then time it against the run's model in PyTorch (lm per token, classify per sequence), "
                         "float32 and int8")  # fmt: skip
    ex.add_argument("--data", help="--bench: also the task's metric on this file (lm: bits/char; classify: accuracy)")


def run(args) -> None:
    from .writer import export_run

    out = export_run(args.run, args.out, args.checkpoint, int8=args.quantize == "int8", force=args.force)
    print(f"written to {out}: export.json and the graphs above; load with seqlab.export.runtime.load({str(out)!r})")
    if args.bench:
        from .bench import bench_export

        bench_export(args.run, out, args.data)
