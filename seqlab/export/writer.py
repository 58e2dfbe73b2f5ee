"""``seqlab export RUN``: a run's model as ONNX files plus export.json, checked in onnxruntime before it is kept.

The files are written to a temporary folder beside the destination and moved there at the end, so an export that
fails leaves nothing, and an existing folder is replaced only with ``force`` (and only once the new export is whole).
Each graph is traced with the TorchScript exporter (``torch.onnx.export(dynamo=False)``): the only one of PyTorch's
exporters that writes a recurrent layer over variable lengths (ONNX's ``sequence_lens``); torch.export refuses them,
for torch.nn's layers as for seqlab's. Every graph is then run in onnxruntime at another batch size and length than
it was traced at and compared with PyTorch; a difference over the tolerance refuses the export.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from .. import __version__, runs
from ..data.errors import DataError
from .graphs import Graph, autoencode_graphs, classify_graphs, forecast_graphs, lm_graphs

FORMAT = 1  # export.json's format; the runtime refuses a newer one
TOLERANCE = 1e-4  # onnxruntime against PyTorch on the probe, relative to the outputs' scale
EXPORTABLE = ("lm", "classify", "forecast", "autoencode")


def describe(run: Path, task: str, which: str) -> tuple[list[Graph], dict]:
    """The run's graphs and what export.json says besides their contracts."""
    if task not in EXPORTABLE:
        raise DataError(f"{run}: a {task} run; seqlab export writes {', '.join(EXPORTABLE)} runs")
    if task == "lm":
        from ..lm.task import load, start_ids

        model, tokenizer, cfg = load(run, which)
        spec = {"tokenizer": tokenizer.spec(), "model": cfg.model, "start": start_ids(tokenizer)}
        return lm_graphs(model, tokenizer.vocab_size, cfg.seq_len), spec
    if task == "classify":
        from ..classify.task import load

        model, inputs, cfg = load(run, which)
        spec = {**inputs.to_json(), "model": cfg.model, "max_len": cfg.max_len}
        if inputs.tokenizer is not None:
            spec["tokenizer"] = inputs.tokenizer.spec()
        return classify_graphs(model, spec, inputs.vocab_size), spec
    if task == "forecast":
        from ..forecast.task import load, loss_kind, quantile_levels

        model, cfg, saved = load(run, which)
        levels = quantile_levels(cfg) if loss_kind(cfg) != "mse" else ()
        graphs, levels, extra = forecast_graphs(model, cfg, saved, levels)
        spec = {"model": cfg.model, "horizon": cfg.horizon, "context": cfg.context, "channels": saved["channels"],
                "covariates": saved["covariates"], "quantiles": list(levels), "season": cfg.season,
                **extra}  # fmt: skip
        return graphs, spec
    from ..autoencode.task import load

    model, cfg, saved = load(run, which)
    if "threshold" not in saved:
        raise runs.CheckpointError(f"{run}: training did not finish, so the run has no thresholds; train it again")
    keys = ("channels", "mean", "std", "lo", "hi", "normal", "threshold", "step_threshold")
    spec = {"detector": cfg.detector, "model": cfg.model, "window": cfg.window, "smooth": cfg.smooth,
            "score": cfg.score, "ahead": cfg.ahead, **{k: saved[k] for k in keys if k in saved}}  # fmt: skip
    return autoencode_graphs(model, saved), spec


def write_onnx(graph: Graph, path: Path) -> None:
    dynamic = {}
    for name, shape in (graph.inputs | graph.outputs).items():
        axes = {i: a for i, a in enumerate(shape) if isinstance(a, str)}
        if axes:
            dynamic[name] = axes
    graph.module.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            torch.onnx.export(graph.module, graph.example, str(path), dynamo=False, input_names=list(graph.inputs),
                              output_names=list(graph.outputs), dynamic_axes=dynamic, opset_version=17)  # fmt: skip
    except (RuntimeError, torch.onnx.errors.OnnxExporterError) as e:  # a layer's refusal, or an op ONNX lacks
        raise ValueError(f"{graph.file}: cannot be exported: {str(e).strip().splitlines()[0]}") from None


def difference(graph: Graph, path: Path) -> float:
    """The largest difference between onnxruntime and PyTorch on the probe, relative to the outputs' scale."""
    import onnxruntime as ort

    with torch.no_grad():
        want = graph.module(*graph.probe)
    want = want if isinstance(want, tuple) else (want,)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {n: t.numpy() for n, t in zip(graph.inputs, graph.probe, strict=True)})
    worst = 0.0
    for name, w, g in zip(graph.outputs, want, got, strict=True):
        w = w.numpy()
        if w.shape != g.shape:
            raise ValueError(f"{graph.file}: {name} has shape {g.shape} in onnxruntime, {w.shape} in PyTorch")
        worst = max(worst, float(np.abs(w - g).max() / max(1.0, np.abs(w).max())) if w.size else 0.0)
    return worst


def check(graph: Graph, path: Path) -> float:
    """``difference``, refused (ValueError) over TOLERANCE."""
    worst = difference(graph, path)
    if not worst <= TOLERANCE:
        raise ValueError(
            f"{graph.file}: onnxruntime differs from PyTorch by {worst:.3g} on a probe batch; not exported"
        )
    return worst


def quantize(path: Path) -> None:
    """onnxruntime's dynamic int8 quantization of the weights, in place."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantized = path.with_name(path.stem + ".int8.onnx")
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process, printed for every model
    try:
        quantize_dynamic(str(path), str(quantized), weight_type=QuantType.QInt8)
    finally:
        logging.getLogger().setLevel(level)
    quantized.replace(path)


def export_run(run: str | Path, out: str | Path | None = None, which: str = "best", int8: bool = False,
               force: bool = False, echo=print) -> Path:  # fmt: skip
    """Write ``out`` (default RUN/export): model.onnx (and step.onnx where the task streams) and export.json."""
    run = Path(run)
    out = Path(out) if out is not None else run / "export"
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists; give --force to replace it, or another --out")
    task = runs.task_of(run)
    graphs, spec = describe(run, task, which)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        files, sizes = [], {}
        for graph in graphs:
            path = Path(tmp) / graph.file
            write_onnx(graph, path)
            error = check(graph, path)
            size = sizes[graph.file] = {"float32": path.stat().st_size}
            if int8:
                quantize(path)
                size.update(int8=path.stat().st_size, int8_difference=difference(graph, path))
            files.append(graph.contract())
            said = f"{graph.file}: {size['float32'] / 1e6:.2f} MB, onnxruntime = PyTorch to {error:.1e}"
            if int8:
                said += f"; int8: {size['int8'] / 1e6:.2f} MB, differs by {size['int8_difference']:.1e}"
            echo(said)
        meta = {"format": FORMAT, "seqlab": __version__, "task": task, "run": str(run),
                "checkpoint": which, "quantized": "int8" if int8 else None, "graphs": files, "sizes": sizes,
                **spec}  # fmt: skip
        (Path(tmp) / "export.json").write_text(json.dumps(meta, indent=1))
        replace_dir(Path(tmp), out)
    return out


def replace_dir(new: Path, out: Path) -> None:
    """Move the finished folder ``new`` to ``out``; an existing ``out`` goes only after the new one is in place."""
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        new.rename(out)
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    else:
        new.rename(out)
    umask = os.umask(0)
    os.umask(umask)
    out.chmod(0o777 & ~umask)  # a temporary folder is private; the export is an ordinary one
    new.mkdir()  # TemporaryDirectory removes its folder at exit
