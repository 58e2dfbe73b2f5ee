"""``seqlab export RUN --bench [--data FILE]``: the exported model against the run's model in PyTorch, in one process.

Latency: a language model's per-token time when streaming (PyTorch eager carrying its state, against step.onnx),
and a classifier's per-sequence time (one sequence per call, and batches of 64), each for onnxruntime's float32 and
int8 (dynamic quantization) graphs, with the sizes: the timed ONNX file's, and PyTorch's parameters. PyTorch and
onnxruntime get the same number of threads, and their rounds alternate, so a noisy machine slows both alike
(onnxruntime's threads do not spin between calls, which would take the cores from PyTorch's round); each figure is
the median of the rounds.
With --data, the task's metric in each: a language model's bits per character over the file's first characters (the
whole stretch as one sequence), a classifier's accuracy on a labelled file.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from .runtime import Exported
from .runtime import load as load_export
from .writer import quantize

ROUNDS = 5
LM_TOKENS = 100  # tokens per timed round
METRIC_CHARS = 20_000  # a language model's metric: the file's first characters, as one sequence


def timed(fn, n: int) -> float:
    """Seconds per call of ``fn`` over n calls."""
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def alternate(fns: dict, n: int) -> dict[str, float]:
    """Median seconds per call of each of ``fns``, their rounds interleaved, after one warm-up round each."""
    for fn in fns.values():
        timed(fn, max(1, n // 10))
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(ROUNDS):
        for k, fn in fns.items():
            times[k].append(timed(fn, n))
    return {k: statistics.median(v) for k, v in times.items()}


def bench_export(run: str | Path, folder: str | Path, data: str | Path | None = None, echo=print) -> dict:
    """Latency, size and (with ``data``) the task metric of PyTorch, onnxruntime float32 and int8; printed as a
    table and returned."""
    run, folder = Path(run), Path(folder)
    float32 = load_export(folder, threads=torch.get_num_threads(), spinning=False)
    if float32.meta.get("quantized"):
        raise ValueError(f"{folder}: an int8 export; bench a float32 one (it quantizes a copy itself)")
    with tempfile.TemporaryDirectory() as tmp:
        for f in [*float32.contracts, "export.json"]:
            (Path(tmp) / f).write_bytes((folder / f).read_bytes())
        for f in float32.contracts:
            quantize(Path(tmp) / f)
        int8 = load_export(tmp, threads=torch.get_num_threads(), spinning=False)
        task = float32.meta["task"]
        timed_file = "step.onnx" if task == "lm" else "model.onnx"  # the graph the latency is of
        sizes = {"float32": (folder / timed_file).stat().st_size, "int8": (Path(tmp) / timed_file).stat().st_size}
        if task == "lm":
            result = bench_lm(run, float32, int8, data)
        elif task == "classify":
            result = bench_classify(run, float32, int8, data)
        else:
            raise ValueError(f"--bench measures lm and classify exports; {folder} is a {task} export")
    result["sizes"] = {**sizes, "torch": result.pop("parameter_bytes")}
    echo(table(result, torch.get_num_threads()))
    return result


def bench_lm(run: Path, float32, int8, data) -> dict:
    from ..lm.task import load

    model, tokenizer, _ = load(run)
    ids = tokenizer.encode("The ")
    state = {"torch": model(torch.tensor([ids]))[1]}

    @torch.no_grad()
    def eager():
        logits, state["torch"] = model(torch.tensor([[int(ids[-1])]]), state["torch"])
        int(logits[0, -1].argmax())

    def stepper(rt: Exported):
        names = [s["name"] for s in rt.contracts["step.onnx"]["inputs"][1:]]
        held = {"state": rt.start_state(1)}

        def step():
            logits, *new = rt.run("step.onnx", token=np.array([ids[-1]], np.int64), **held["state"])
            held["state"] = dict(zip(names, new, strict=True))
            int(logits[0].argmax())

        return step

    with torch.no_grad():
        t = alternate({"torch": eager, "float32": stepper(float32), "int8": stepper(int8)}, LM_TOKENS)
    result = {"task": "lm", "what": "per token (streaming, batch 1)", "latency": t, "parameter_bytes": size(model)}
    if data is not None:
        text = Path(data).read_text()[:METRIC_CHARS]
        seq = np.array([tokenizer.encode(text)], np.int64)
        with torch.no_grad():
            torch_logits = model(torch.from_numpy(seq))[0].numpy()
        chars = len(text) - len(tokenizer.decode(seq[0, :1].tolist()))
        bits = lambda logits: nats(logits[0, :-1], seq[0, 1:]) / chars / np.log(2)  # noqa: E731
        result["metric"] = ("bits/char", {"torch": bits(torch_logits), "float32": bits(float32.logits(seq)),
                                          "int8": bits(int8.logits(seq))})  # fmt: skip
    return result


def size(model: torch.nn.Module) -> int:
    """The model's parameters and buffers in bytes (what its checkpoint holds)."""
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}  # a tied weight once
    return sum(t.numel() * t.element_size() for t in tensors.values())


def nats(logits: np.ndarray, targets: np.ndarray) -> float:
    logits = logits.astype(np.float64)
    top = logits.max(1, keepdims=True)
    log_z = np.log(np.exp(logits - top).sum(1)) + top[:, 0]
    return float((log_z - logits[np.arange(len(targets)), targets]).sum())


def bench_classify(run: Path, float32, int8, data) -> dict:
    from ..classify.task import load, read_table

    model, inputs, cfg = load(run)
    C = inputs.channels
    if data is not None:
        table = read_table(data, cfg, labels="required")
        items, labels = table.items, np.asarray([str(v) for v in table.labels])
    else:
        rng = np.random.default_rng(0)
        items, labels = [rng.normal(size=(100, C or 1)).astype(np.float32) for _ in range(64)], None
    one, batch = items[:1], items[:64]

    @torch.no_grad()
    def eager(b: list) -> None:  # as a PyTorch user would call it: seqlab's preprocessing, padding, the model
        seqs = [inputs.encode_text(t) for t in b] if C is None else inputs.series(b, [""] * len(b))
        x = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(s) for s in seqs], batch_first=True)
        torch.softmax(model(x, torch.tensor([len(s) for s in seqs])), -1)

    t1 = alternate({"torch": lambda: eager(one), "float32": lambda: float32.predict_proba(one),
                    "int8": lambda: int8.predict_proba(one)}, 50)  # fmt: skip
    t64 = alternate({"torch": lambda: eager(batch), "float32": lambda: float32.predict_proba(batch),
                     "int8": lambda: int8.predict_proba(batch)}, 5)  # fmt: skip
    n = len(batch)
    result = {"task": "classify", "what": f"per sequence (batch 1; batch {n}), T = {len(items[0])}",
              "latency": {k: t1[k] for k in t1}, "latency_batch": {k: t64[k] / n for k in t64},
              "parameter_bytes": size(model)}  # fmt: skip
    if labels is not None:
        from ..classify.task import predict_proba

        truth = np.asarray([str(c) for c in inputs.labels.classes])
        acc = lambda p: float((truth[p.argmax(1)] == labels).mean())  # noqa: E731
        result["metric"] = ("accuracy", {"torch": acc(predict_proba(model, inputs.prepare(table))),
                                         "float32": acc(float32.predict_proba(items)),
                                         "int8": acc(int8.predict_proba(items))})  # fmt: skip
    return result


def table(result: dict, threads: int) -> str:
    """The result as a markdown table: one row per engine."""
    head = f"{result['task']}, {result['what']}, {threads} threads"
    metric = result.get("metric")
    cols = ["engine", "size", "latency", *(["batched"] if "latency_batch" in result else []),
            *([metric[0]] if metric else [])]  # fmt: skip
    lines = [head, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for k, label in (("torch", "PyTorch eager"), ("float32", "onnxruntime float32"), ("int8", "onnxruntime int8")):
        size = result["sizes"][k]
        row = [label, f"{size / 1e6:.2f} MB", f"{result['latency'][k] * 1e3:.3f} ms"]
        if "latency_batch" in result:
            row.append(f"{result['latency_batch'][k] * 1e3:.3f} ms")
        if metric:
            row.append(f"{metric[1][k]:.4f}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
