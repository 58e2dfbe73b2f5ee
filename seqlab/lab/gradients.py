"""Vanishing and exploding gradients, measured: ||dL/dh_t|| against t for each recurrent model of the memory lab, at
initialisation (several variants: an orthogonal RNN, LSTM forget-gate biases 0, 1 and 3, layer-normalised and
zoned-out LSTM and GRU, zoneout's masks drawn as in training) and after training, with
the gradient norm before clipping during training and the vanilla RNN's spectral radius.

    seqlab lab gradients --on adding --lengths 100      -> gradients.csv, gradients.png, one run per model
"""

from __future__ import annotations

from pathlib import Path

import torch

from .. import checkpoint, runs
from ..models.backbone import RECURRENT
from ..models.memory import MemoryModel
from ..train import pyplot, read_metrics
from .task import LabConfig, MemoryTask, run_one

GRADIENT_VARIANTS = {  # name: (cell, overrides) measured at initialisation
    "rnn": ("rnn", {}),
    "rnn orthogonal": ("rnn", {"orthogonal": True}),
    "lstm forget bias 0": ("lstm", {"forget_bias": 0.0}),
    "lstm forget bias 1": ("lstm", {"forget_bias": 1.0}),
    "lstm forget bias 3": ("lstm", {"forget_bias": 3.0}),
    "lstm layer norm": ("lstm", {"layer_norm": True}),
    "lstm zoneout 0.15": ("lstm", {"zoneout": 0.15}),
    "gru": ("gru", {}),
    "gru layer norm": ("gru", {"layer_norm": True}),
    "gru zoneout 0.15": ("gru", {"zoneout": 0.15}),
}


def gradient_profile(task: MemoryTask, n: int = 200) -> list[float]:
    """Mean over n test sequences of ||∂L/∂h_t|| for every t, recorded by the bptt backend (seqlab.record): the
    total gradient at the state, through the read-out and through time. Measured on a float64 copy of the model:
    in float32 a vanishing gradient underflows to exactly 0 below ~1e-38 and its decay can no longer be read."""
    import copy

    from ..layers import record

    model = copy.deepcopy(task.model).double()
    x, y = task.test[0][:n], task.test[1][:n]
    x, y = (x.double() if x.is_floating_point() else x), (y.double() if y.is_floating_point() else y)
    with record(model) as rec:
        task._loss(x, y, model).backward()
    return rec.grad_norm["backbone.rnn.l0"].mean(0).tolist()


def spectral_radius(model: MemoryModel) -> float:
    return float(torch.linalg.eigvals(model.backbone.rnn.weight_hh_l0.detach().double()).abs().max())


def run_gradients(task: str, T: int, models: list[str], steps: int, out: Path, echo=print) -> list[dict]:
    """||∂L/∂h_t|| against t at initialisation (every variant) and after ``steps`` steps of training (each model),
    the gradient norm before clipping during training, and the RNN's spectral radius: gradients.csv and .png."""
    if other := [m for m in models if m not in RECURRENT]:
        raise ValueError(f"lab gradients records ||dL/dh_t|| through the bptt layers (rnn, lstm, gru); leave "
                         f"{', '.join(other)} out of --models")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []

    def add(name: str, phase: str, t_task: MemoryTask) -> None:
        profile = gradient_profile(t_task)
        radius = spectral_radius(t_task.model) if t_task.cfg.model == "rnn" else None
        rows.extend(
            {"variant": name, "phase": phase, "t": t, "grad_norm": g, "spectral_radius": radius}
            for t, g in enumerate(profile)
        )
        ratio = profile[0] / profile[-1] if profile[-1] else float("nan")
        shown = "" if radius is None else f", spectral radius of W_hh {radius:.2f}"
        echo(f"{name} ({phase}): ||dL/dh_0|| / ||dL/dh_T-1|| = {ratio:.2e}{shown}")

    for name, (cell, extra) in GRADIENT_VARIANTS.items():
        if cell in models:
            add(name, "init", MemoryTask(LabConfig(task=task, T=T, model=cell, **extra)))
    for cell in models:
        cfg = LabConfig(task=task, T=T, model=cell, steps=steps, log_every=max(1, steps // 100))
        run = out / f"{task}-T{T}-{cell}"
        run_one(cfg, run)  # trains, continues, or reuses a finished run
        trained = MemoryTask(cfg)
        checkpoint.restore(*checkpoint.load(run / "checkpoints" / "last.safetensors"), trained.model)
        add(cell, f"after {steps} steps", trained)
    runs.write_csv(out / "gradients.csv", rows)
    plot_gradients(out, task, T, rows, models, steps)
    return rows


def plot_gradients(out: Path, task: str, T: int, rows: list[dict], models: list[str], steps: int) -> None:
    plt = pyplot()
    if plt is None:
        return
    colour = {
        "rnn": "tab:red",
        "rnn orthogonal": "tab:orange",
        "lstm": "tab:blue",
        "lstm forget bias 0": "lightsteelblue",
        "lstm forget bias 1": "tab:blue",
        "lstm forget bias 3": "navy",
        "lstm layer norm": "tab:purple",
        "lstm zoneout 0.15": "tab:cyan",
        "gru": "tab:green",
        "gru layer norm": "olive",
        "gru zoneout 0.15": "lime",
    }
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    for ax, phase in zip(axes[:2], ("init", "after"), strict=True):
        for name in dict.fromkeys(r["variant"] for r in rows):
            pts = [(r["t"], r["grad_norm"]) for r in rows if r["variant"] == name and r["phase"].startswith(phase)]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=name, lw=1.3, color=colour.get(name))
        ax.set_yscale("log")
        ax.set_xlabel("t")
        ax.set_ylabel("mean ||dL/dh_t||")
        ax.set_title(f"{task}, T = {T}: " + ("at initialisation" if phase == "init" else f"after {steps} steps"))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for cell in models:
        logged = read_metrics(out / f"{task}-T{T}-{cell}")
        pts = [(r["step"], r["grad_norm"]) for r in logged if "grad_norm" in r]
        if pts:
            axes[2].plot(*zip(*pts, strict=True), label=cell, lw=1.2, color=colour[cell])
    axes[2].set_yscale("log")
    axes[2].set_xlabel("step")
    axes[2].set_ylabel("gradient norm before clipping")
    axes[2].set_title("during training")
    axes[2].grid(alpha=0.3)
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    runs.save_figure(fig, out / "gradients.png")
