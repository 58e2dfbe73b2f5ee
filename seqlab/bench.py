"""Speed and memory of seqlab's recurrent layers against torch.nn, measured in the same process.

Every case times its variants alternately (torch.nn, then each seqlab backend, then again), after warm-up, and
reports medians, so a noisy shared machine moves all of them together and the ratios hold. Ratio > 1 means faster
than torch.nn. GFLOP/s counts the matrix products only: 2·T·B·G·H·(I + H) forward, three times that for training.
Saved-for-backward bytes are what autograd keeps between forward and backward (unique storages, parameters
excluded), read through torch.autograd.graph.saved_tensors_hooks.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from . import flags, runs
from .layers import GRU, LSTM, RNN, MinGRU, MinLSTM
from .runs import machine

CELLS = {"lstm": (LSTM, nn.LSTM, 4), "gru": (GRU, nn.GRU, 3), "rnn": (RNN, nn.RNN, 1)}
# (B, T, I, H), from the issue: small and large batches, long sequences at batch 1, a wide hidden layer.
SHAPES = [(32, 100, 64, 128), (64, 100, 256, 256), (32, 200, 512, 512), (1, 1000, 64, 128), (128, 50, 128, 1024)]
QUICK_SHAPES = [(32, 100, 64, 128), (1, 1000, 64, 128)]
# torch.nn's packed path takes ~40 s per training step on the full variable-length case, so --quick scales it down.
MEMORY_SHAPE = (32, 1000, 128, 512)
VARLEN = {"B": 64, "min": 100, "max": 1344, "I": 64, "H": 128}
QUICK_VARLEN = {"B": 16, "min": 25, "max": 336, "I": 64, "H": 128}
SCAN = {"B": 32, "T": (512, 2048), "I": 256}  # issue 18: minGRU/minLSTM training throughput, I = H


@dataclass
class Row:
    case: str  # e.g. "lstm 32x100x64x128"
    mode: str  # train | infer | saved
    variant: str  # torch.nn | fused | bptt | reference
    ms: float | None
    ratio: float | None  # torch.nn time / this time
    gflops: float | None
    saved_mb: float | None = None
    auto: bool = False  # the backend that backend="auto" picks here
    max_abs_diff: float | None = None  # against torch.nn's output, where checked


def median_ms(fns: dict[str, Callable[[], object]], repeats: int, warmup: int) -> dict[str, float]:
    """Alternate the variants so drift in machine speed hits all of them alike; median of each."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}


def saved_bytes(fn: Callable[[], object], exclude: list[torch.Tensor]) -> int:
    """Bytes autograd saves for backward while ``fn`` runs a forward (unique storages, ``exclude`` left out)."""
    seen = {t.untyped_storage().data_ptr() for t in exclude}
    total = 0

    def pack(t: torch.Tensor):
        nonlocal total
        if t.layout == torch.strided:
            s = t.untyped_storage()
            if s.data_ptr() not in seen:
                seen.add(s.data_ptr())
                total += s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return total


def _flops(cell: str, B: int, T: int, I: int, H: int, tokens: int | None = None) -> float:
    G = CELLS[cell][2]
    return 2.0 * (tokens if tokens is not None else B * T) * G * H * (I + H)


def bench_shape(cell: str, shape, backends: list[str], repeats: int, warmup: int) -> list[Row]:
    B, T, I, H = shape
    torch.manual_seed(0)
    x = torch.randn(T, B, I)
    ref = CELLS[cell][1](I, H)
    variants: dict[str, nn.Module] = {"torch.nn": ref}
    for backend in backends:
        m = CELLS[cell][0](I, H, backend=backend)
        m.load_state_dict(ref.state_dict())
        variants[backend] = m
    name = f"{cell} {B}x{T}x{I}x{H}"
    rows = []
    for mode in ("train", "infer"):
        with torch.set_grad_enabled(mode == "train"):
            auto = CELLS[cell][0](I, H).effective_backend  # what backend="auto" would run here
        if mode == "train":
            xg = x.clone().requires_grad_()

            def step(m, xg=xg):
                y, _ = m(xg)
                y.sum().backward()

        else:

            def step(m):
                with torch.no_grad():
                    m(x)

        fns = {k: (lambda m=m: step(m)) for k, m in variants.items()}
        ms = median_ms(fns, repeats, warmup)
        flops = _flops(cell, B, T, I, H) * (3 if mode == "train" else 1)
        for k, v in ms.items():
            rows.append(Row(name, mode, k, v, ms["torch.nn"] / v, flops / v / 1e6, auto=k == auto))
    return rows


def bench_memory(backends: list[str]) -> list[Row]:
    """Saved-for-backward bytes of one LSTM training forward at MEMORY_SHAPE."""
    B, T, I, H = MEMORY_SHAPE
    torch.manual_seed(0)
    x = torch.randn(T, B, I, requires_grad=True)
    ref = nn.LSTM(I, H)
    rows = []
    base = None
    for variant in ["torch.nn", *backends]:
        if variant == "torch.nn":
            m = ref
        else:
            m = LSTM(I, H, backend=variant)
            m.load_state_dict(ref.state_dict())
        nbytes = saved_bytes(lambda m=m, x=x: m(x)[0], [x, *m.parameters()])
        base = nbytes if base is None else base
        rows.append(Row(f"lstm {B}x{T}x{I}x{H}", "saved", variant, None, base / nbytes, None, nbytes / 2**20))
    return rows


def bench_varlen(v: dict, backends: list[str], repeats: int, warmup: int) -> list[Row]:
    """v["B"] sequences of lengths spread evenly over v["min"]..v["max"], in random order: seqlab with lengths=
    against torch.nn with PackedSequence, training. Also checks that both give the same output."""
    B, I, H = v["B"], v["I"], v["H"]
    g = torch.Generator().manual_seed(0)
    lengths = torch.linspace(v["min"], v["max"], B).round().long()[torch.randperm(B, generator=g)]
    T = int(lengths.max())
    x = torch.randn(T, B, I, generator=g)
    ref = nn.LSTM(I, H)
    name = f"lstm varlen {B}x{v['min']}-{v['max']}x{I}x{H}"
    with torch.no_grad():
        want = pad_packed_sequence(ref(pack_padded_sequence(x, lengths, enforce_sorted=False))[0], total_length=T)[0]
    xg = x.clone().requires_grad_()

    def torch_step():
        y, _ = ref(pack_padded_sequence(xg, lengths, enforce_sorted=False))
        y.data.sum().backward()

    fns: dict[str, Callable[[], object]] = {"torch.nn": torch_step}
    diffs = {"torch.nn": 0.0}
    for backend in backends:
        m = LSTM(I, H, backend=backend)
        m.load_state_dict(ref.state_dict())
        with torch.no_grad():
            diffs[backend] = float((m(x, lengths=lengths)[0] - want).abs().max())

        def step(m=m):
            y, _ = m(xg, lengths=lengths)
            y.sum().backward()

        fns[backend] = step
    ms = median_ms(fns, repeats, warmup)
    flops = 3 * _flops("lstm", B, T, I, H, tokens=int(lengths.sum()))
    auto = LSTM(I, H).effective_backend
    return [
        Row(name, "train", k, t, ms["torch.nn"] / t, flops / t / 1e6, None, k == auto, diffs[k]) for k, t in ms.items()
    ]


def measure(quick: bool, cells: list[str], backends: list[str], repeats: int | None, log=print) -> dict:
    """Run the benchmark; returns {"machine", "rows"} and logs each case as it finishes."""
    repeats = repeats or 7  # on a shared machine fewer repeats let noise move a ratio by 10%
    warmup = 2
    rows: list[Row] = []
    for shape in QUICK_SHAPES if quick else SHAPES:
        for cell in cells:
            new = bench_shape(cell, shape, backends, repeats, warmup)
            rows += new
            log(format_rows(new, header=not rows[: -len(new)]))
    if "lstm" in cells:
        varlen = bench_varlen(QUICK_VARLEN if quick else VARLEN, backends, min(repeats, 3), 1)
        for new in (varlen, [] if quick else bench_memory(backends)):
            rows += new
            if new:
                log(format_rows(new, header=False))
    return {"machine": machine(), "rows": [asdict(r) for r in rows]}


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def format_rows(rows: list[Row], header: bool = True) -> str:
    lines = []
    if header:
        lines.append(
            f"{'case':<36} {'mode':<5} {'variant':<14} {'ms':>9} {'vs torch':>8} {'GFLOP/s':>8} {'saved MB':>8}"
        )
    for r in rows:
        variant = r.variant + (" (auto)" if r.auto else "")
        extra = "" if r.max_abs_diff is None else f"  max|Δ| {r.max_abs_diff:.1e}"
        lines.append(
            f"{r.case:<36} {r.mode:<5} {variant:<14} {_fmt(r.ms, '9.2f')} {_fmt(r.ratio, '7.2f')}x "
            f"{_fmt(r.gflops, '8.1f')} {_fmt(r.saved_mb, '8.0f')}{extra}"
        )
    return "\n".join(lines)


def markdown(result: dict) -> str:
    """One line per case and mode: torch.nn's time, and each seqlab backend as a ratio (auto's choice in bold)."""
    rows = result["rows"]
    variants = [v for v in dict.fromkeys(r["variant"] for r in rows) if v != "torch.nn"]
    head = "| case (B x T x I x H) | mode | torch.nn | " + " | ".join(variants) + " |"
    lines = [head, "|" + "---|" * (3 + len(variants))]
    groups: dict[tuple[str, str], dict[str, dict]] = {}
    for r in rows:
        groups.setdefault((r["case"], r["mode"]), {})[r["variant"]] = r
    for (case, mode), g in groups.items():
        base = g["torch.nn"]
        if mode == "saved":
            first = f"{base['saved_mb']:.0f} MB"
            cells = [f"{g[v]['saved_mb']:.0f} MB ({1 / g[v]['ratio']:.2f}x)" if v in g else "-" for v in variants]
        else:
            first = f"{base['ms']:.1f} ms"
            cells = []
            for v in variants:
                text = "-" if v not in g else f"{g[v]['ratio']:.2f}x"
                cells.append(f"**{text}**" if v in g and g[v]["auto"] else text)
        lines.append(f"| {case} | {mode} | {first} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


class CausalAttention(nn.Module):
    """One causal self-attention layer of width I (4 heads; Q, K, V and output maps: 4·I² weights), through
    PyTorch's scaled-dot-product kernel: the attention block the scanned recurrences are measured against."""

    def __init__(self, width: int, heads: int = 4):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)

    def forward(self, x: torch.Tensor):
        mask = nn.Transformer.generate_square_subsequent_mask(x.shape[1])
        return self.attn(x, x, x, attn_mask=mask, is_causal=True, need_weights=False)[0], None


def bench_scan(repeats: int, warmup: int, lengths=SCAN["T"]) -> list[Row]:
    """A training step (forward, backward) of minGRU and minLSTM beside nn.GRU, nn.LSTM and causal attention, all
    batch first at B x T x I x I; ratio against nn.GRU, GFLOP/s replaced by thousands of tokens per second, and the
    bytes autograd saves (the scan keeps every step)."""
    B, I = SCAN["B"], SCAN["I"]
    rows = []
    for T in lengths:
        x = torch.randn(B, T, I, requires_grad=True)
        models = {"nn.GRU": nn.GRU(I, I, batch_first=True), "nn.LSTM": nn.LSTM(I, I, batch_first=True),
                  "minGRU": MinGRU(I, I, batch_first=True), "minLSTM": MinLSTM(I, I, batch_first=True),
                  "attention": CausalAttention(I)}  # fmt: skip

        def step(m, x=x):
            return lambda: (m(x)[0] ** 2).mean().backward()

        ms = median_ms({k: step(m) for k, m in models.items()}, repeats, warmup)
        for name, m in models.items():
            params = sum(p.numel() for p in m.parameters())
            rows.append(Row(f"scan {B}x{T}x{I}x{I}", "train", f"{name} ({params / 1e3:.0f}k)", ms[name],
                            ms["nn.GRU"] / ms[name], B * T / ms[name],  # tokens per ms = thousands per second
                            saved_bytes(lambda m=m, x=x: m(x)[0], [x, *m.parameters()]) / 2**20))  # fmt: skip
    return rows


VARIANT_SHAPES = [(32, 100, 64, 128), (64, 100, 256, 256), (1, 1000, 64, 128)]  # issue 17's: B, T, I, H
VARIANTS = {  # name: (class, options)
    "lstm layer norm": (LSTM, {"layer_norm": True}),
    "lstm zoneout": (LSTM, {"zoneout": 0.1}),
    "lstm ln+zoneout+rec. dropout": (LSTM, {"layer_norm": True, "zoneout": 0.1, "recurrent_dropout": 0.25}),
    "gru layer norm": (GRU, {"layer_norm": True}),
}


def bench_variants(repeats: int, warmup: int, shapes=VARIANT_SHAPES, variants=VARIANTS) -> list[Row]:
    """A training step (forward, backward) of each cell variant on bptt (its C++ time loop, and the Python loop it
    falls back to) beside the same math in per-step autograd (backend reference) and the fused nn.LSTM or nn.GRU
    (oneDNN), which have none of the variants. The ratio is the fused layer's time over each."""
    from .cells import compiled

    rows = []
    for B, T, I, H in shapes:
        torch.manual_seed(0)
        x = torch.randn(T, B, I, requires_grad=True)
        fns = {"nn.LSTM (fused)": (nn.LSTM(I, H), True), "nn.GRU (fused)": (nn.GRU(I, H), True)}
        for name, (cls, options) in variants.items():
            for backend in ("bptt", "reference"):
                fns[f"{name} {backend}"] = (cls(I, H, backend=backend, **options), True)
            fns[f"{name} bptt python loop"] = (fns[f"{name} bptt"][0], False)

        def step(m, native, x=x):
            with compiled.use(native):
                m(x)[0].sum().backward()

        ms = median_ms({k: (lambda m=m, n=n: step(m, n)) for k, (m, n) in fns.items()}, repeats, warmup)
        for k, v in ms.items():
            base = ms["nn.GRU (fused)" if k.startswith("gru") else "nn.LSTM (fused)"]
            rows.append(Row(f"variants {B}x{T}x{I}x{H}", "train", k, v, base / v, None))
    return rows


def variant_summary(rows: list[Row]) -> list[str]:
    """One line per variant and shape: bptt's speed-up over per-step autograd and over its own Python loop, and
    its time over the fused layer's (issue 17's targets: >= 2.5x and <= 1.5x)."""
    ms = {(r.case, r.variant): r.ms for r in rows}
    lines = []
    for (case, variant), v in ms.items():
        if variant.endswith(" bptt"):
            name = variant[: -len(" bptt")]
            fused = "nn.GRU (fused)" if name.startswith("gru") else "nn.LSTM (fused)"
            lines.append(
                f"# {case} {name}: bptt {ms[(case, name + ' reference')] / v:.2f}x per-step autograd, "
                f"{ms[(case, name + ' bptt python loop')] / v:.2f}x its Python loop, "
                f"{v / ms[(case, fused)]:.2f}x the fused {fused.split()[0]}'s time"
            )
    return lines


PROJ_SHAPES = [(32, 100, 64, 256, 64), (64, 100, 256, 512, 128), (1, 1000, 64, 256, 64)]  # B, T, I, H, proj_size


def bench_projection(repeats: int, warmup: int, shapes=PROJ_SHAPES) -> list[Row]:
    """The LSTM with proj_size: a training step and inference of torch.nn.LSTM(proj_size=P) (oneDNN has no
    projection: PyTorch's native per-step code) beside seqlab's fused (the same op) and bptt backends, and the
    bytes each keeps for backward."""
    rows = []
    for B, T, I, H, P in shapes:
        torch.manual_seed(0)
        x = torch.randn(T, B, I, requires_grad=True)
        variants = {"torch.nn": nn.LSTM(I, H, proj_size=P)}
        for backend in ("fused", "bptt"):
            variants[backend] = LSTM(I, H, proj_size=P, backend=backend)
            variants[backend].load_state_dict(variants["torch.nn"].state_dict())
        chooser = LSTM(I, H, proj_size=P)
        name = f"lstm proj {B}x{T}x{I}x{H}/{P}"
        train = {k: (lambda m=m, x=x: m(x)[0].sum().backward()) for k, m in variants.items()}
        infer = {k: (lambda m=m, x=x: torch.no_grad()(m)(x.detach())) for k, m in variants.items()}
        for mode, fns in (("train", train), ("infer", infer)):
            with torch.set_grad_enabled(mode == "train"):
                auto = chooser.effective_backend  # what backend="auto" runs here
            ms = median_ms(fns, repeats, warmup)
            rows += [Row(name, mode, k, v, ms["torch.nn"] / v, None, auto=k == auto) for k, v in ms.items()]
        saved = {k: saved_bytes(lambda m=m, x=x: m(x)[0], [x, *m.parameters()]) for k, m in variants.items()}
        rows += [Row(name, "saved", k, None, saved["torch.nn"] / v, None, v / 2**20) for k, v in saved.items()]
    return rows


PRECISION_SHAPE = (64, 100, 256, 256)  # issue 14's target case: B, T, I, H


def bench_precision(cells: list[str], repeats: int, warmup: int, shape=PRECISION_SHAPE) -> list[Row]:
    """A training step of each cell in float32 and under bfloat16 autocast, torch.nn and seqlab (its auto
    backend) side by side; the ratio is each implementation's float32 time over its bf16 time (> 1: bf16 is
    faster), and max|Δ| the bf16 output's distance from the float32 one. A variant that fails (oneDNN has no bf16
    LSTM where the CPU lacks bfloat16) has no time, and its error after its name."""
    B, T, I, H = shape
    rows = []
    for cell in cells:
        torch.manual_seed(0)
        x = torch.randn(T, B, I, requires_grad=True)
        ref = CELLS[cell][1](I, H)
        ours = CELLS[cell][0](I, H)
        ours.load_state_dict(ref.state_dict())
        fns, diffs = {}, {}
        for name, m in (("torch.nn", ref), ("seqlab", ours)):
            base = m(x)[0].detach()
            for precision in ("f32", "bf16"):

                def step(m=m, x=x, bf16=precision == "bf16"):
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                        y = m(x)[0]
                    y.float().sum().backward()
                    return y

                try:
                    diffs[f"{name} {precision}"] = float((step().detach().float() - base).abs().max())
                    fns[f"{name} {precision}"] = step
                except RuntimeError as e:
                    diffs[f"{name} {precision}"] = str(e).splitlines()[0][:60]
        ms = median_ms(fns, repeats, warmup)
        for variant, diff in diffs.items():
            f32 = ms.get(variant.replace("bf16", "f32"))
            t = ms.get(variant)
            row = Row(f"{cell} {B}x{T}x{I}x{H}", "train", variant, t, f32 / t if t and f32 else None,
                      _flops(cell, B, T, I, H) * 3 / t / 1e6 if t else None)  # fmt: skip
            row.max_abs_diff = diff if isinstance(diff, float) else None
            if not isinstance(diff, float):
                row.variant += f" fails: {diff}"
            rows.append(row)
    return rows


SCALE_STEPS = 60  # training steps per run of --scale: ~15-60 s each on 2 cores
SCALE_CASES = {  # name -> (seqlab arguments, what one step reads: tokens for lm, sequences for classify, unit)
    "lm lstm 2x512": (["lm", "train", "pydoc"], 32 * 128, "tokens/s"),
    "lm gru 2x512": (["lm", "train", "pydoc", "--model", "gru"], 32 * 128, "tokens/s"),
    "classify lstm 128": (["classify", "train", "{series}", "--time-column", "t", "--model", "lstm", "--hidden",
                           "128", "--regime", "standard", "--augment", "none"], 32, "sequences/s"),
}  # fmt: skip
SCALE_WAYS = {"1 process x 2 threads": ["--threads", "2"], "2 processes x 1 thread": ["--nproc", "2"]}


def scale_series(path, n: int = 1000, seed: int = 0) -> None:
    """A labelled collection to time classification on: random walks of 50-150 steps, 3 channels, 2 classes
    (a drift or none)."""
    import csv

    import numpy as np

    rng = np.random.default_rng(seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "t", "c0", "c1", "c2", "label"])
        for i in range(n):
            steps = rng.standard_normal((int(rng.integers(50, 151)), 3)) + 0.1 * (i % 2)
            for t, row in enumerate(np.cumsum(steps, 0)):
                w.writerow([i, t, *(f"{v:.4f}" for v in row), "drift" if i % 2 else "none"])


def bench_scale(steps: int = SCALE_STEPS, rounds: int = 2, log=print) -> list[dict]:
    """Training throughput of one process with two threads against two processes with one thread each (DDP,
    gloo), same global batch and steps, as real ``seqlab ... train`` runs; the two ways alternate, ``rounds``
    times, and the median is kept. Throughput = steps x what a step reads / training seconds (evaluation and
    start-up not counted)."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from .train import read_metrics

    rows = []
    with tempfile.TemporaryDirectory(prefix="seqlab-scale-") as tmp:
        series = Path(tmp) / "series.csv"
        scale_series(series)
        for case, (argv, per_step, unit) in SCALE_CASES.items():
            argv = [a.replace("{series}", str(series)) for a in argv]
            got: dict[str, list[float]] = {way: [] for way in SCALE_WAYS}
            for r in range(rounds):
                for way, extra in SCALE_WAYS.items():
                    run = Path(tmp) / f"{case}-{way}-{r}".replace(" ", "_")
                    cmd = [sys.executable, "-m", "seqlab", *argv, "--steps", str(steps), "--eval-every", str(steps),
                           "--out", str(run), "--no-progress", *extra]  # fmt: skip
                    subprocess.run(cmd, check=True, capture_output=True)
                    last = [r for r in read_metrics(run) if "val_loss" in r][-1]
                    got[way].append(last["step"] * per_step / last["train_s"])
            base = statistics.median(got[next(iter(SCALE_WAYS))])
            for way, values in got.items():
                rows.append({"case": case, "way": way, unit: statistics.median(values),
                             "ratio": statistics.median(values) / base})  # fmt: skip
                log(f"{case:<20} {way:<24} {statistics.median(values):>10,.0f} {unit:<12} {rows[-1]['ratio']:.2f}x")
    return rows


# ------------------------------------------------------------------------------------------------ the command
def add_parser(sub, common) -> None:
    b = sub.add_parser(
        "bench",
        parents=[common],
        help="time seqlab's RNN/LSTM/GRU against torch.nn",
        description="Training step and inference of each cell and backend against torch.nn, in one process.",
    )
    b.add_argument("--quick", action="store_true", help="two shapes and a smaller variable-length case: under a minute")
    b.add_argument("--cells", type=flags.comma_list(("lstm", "gru", "rnn")), default=["lstm", "gru", "rnn"])
    b.add_argument(
        "--backends",
        type=flags.comma_list(("fused", "bptt", "reference")),
        default=["fused", "bptt"],
        help="seqlab backends to time (default fused,bptt; 'auto' is marked on the one it picks)",
    )
    b.add_argument(
        "--scan",
        action="store_true",
        help="only minGRU/minLSTM (parallel scan) beside nn.GRU, nn.LSTM "
        "and causal attention: training at B=32, T=512 and 2048, I=H=256 (ratio vs nn.GRU; k tokens/s)",
    )
    b.add_argument(
        "--precision",
        choices=("32", "bf16"),
        default="32",
        help="bf16: only a training step in float32 and under bfloat16 autocast, torch.nn and seqlab, at "
        "B=64, T=100, I=H=256 (ratio: float32 time over bf16 time)",
    )
    b.add_argument(
        "--scale",
        action="store_true",
        help="only training throughput of 1 process x 2 threads against 2 processes x 1 thread (torchrun + DDP): "
        "lm (LSTM and GRU, 2x512) and classify (LSTM), real runs (~10 minutes)",
    )
    b.add_argument(
        "--proj",
        action="store_true",
        help="only the LSTM with proj_size: torch.nn beside seqlab's fused and bptt backends, training, inference "
        "and bytes saved for backward, at three shapes",
    )
    b.add_argument(
        "--variants",
        action="store_true",
        help="only the cell variants (layer norm, zoneout, recurrent dropout): a training step on bptt (its C++ "
        "loop and its Python loop) beside the same math in per-step autograd and the fused nn.LSTM/nn.GRU, at "
        "B,T,I,H = 32,100,64,128 / 64,100,256,256 / 1,1000,64,128",
    )
    b.add_argument("--repeats", type=int, default=None, help="timed repeats per variant (default 7)")
    b.add_argument("--json", metavar="FILE", help="also write the table as JSON")
    b.add_argument("--force", action="store_true", help="replace FILE if it exists")
    b.add_argument("--markdown", action="store_true", help="end with the summary as a Markdown table (README)")


def run(args) -> None:
    if args.repeats is not None and args.repeats < 1:
        raise ValueError(f"--repeats must be at least 1, got {args.repeats}")
    if args.json:
        runs.refuse_existing(args.json, args.force)
    print(f"# seqlab bench on {machine()}", flush=True)
    if args.scale:
        rows = bench_scale(rounds=args.repeats or 2, log=lambda s: print(s, flush=True))
        return write_rows(args.json, rows)
    if args.precision == "bf16":
        from .cells._steps import bf16_native

        if not bf16_native():
            print("# this CPU has no native bfloat16 (AVX512-BF16 or AMX): bf16 runs emulated here")
        rows = bench_precision(args.cells, args.repeats or 5, 1)
        print(format_rows(rows).replace("vs torch", " f32/bf16"))
        return write_rows(args.json, [asdict(r) for r in rows])
    if args.variants:
        rows = bench_variants(args.repeats or 5, 1)
        print(format_rows(rows).replace("vs torch", "vs fused"))
        print("\n".join(variant_summary(rows)))
        return write_rows(args.json, [asdict(r) for r in rows])
    if args.proj:
        rows = bench_projection(args.repeats or 5, 1)
        print(format_rows(rows))
        return write_rows(args.json, [asdict(r) for r in rows])
    if args.scan:
        rows = bench_scan(args.repeats or 3, 1)
        print(format_rows(rows).replace("GFLOP/s", "ktok/s").replace("vs torch", " vs GRU"))
        return write_rows(args.json, [asdict(r) for r in rows])
    result = measure(args.quick, args.cells, args.backends, args.repeats, log=lambda s: print(s, flush=True))
    if args.markdown:
        print(markdown(result))
    if args.json:
        runs.write_json(args.json, result)
        print(f"# wrote {args.json}")


def write_rows(path: str | None, rows: list[dict]) -> None:
    """--json FILE of one of the single-purpose modes: the machine and the rows."""
    if path:
        runs.write_json(path, {"machine": machine(), "rows": rows})
