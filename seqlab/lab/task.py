"""The memory lab: does a model remember across T steps? Every model on the same data and budget, with the protocol
of the papers it reproduces:

- adding: the sum of two marked values among T (the last step's MSE);
- copy: 10 symbols recalled after T blanks (cross-entropy at every step);
- parity: the running parity of T bits (cross-entropy at every step), which a recurrence whose gates read the input
  only (minGRU, minLSTM) cannot compute: its state never flips sign;
- selective: 10 symbols at random positions among T blanks, recalled in order (cross-entropy at the recall steps),
  which needs gates that read the input: the task minGRU is reported to solve.

Default protocol: one recurrent layer of 128 units and a linear read-out, batch 50, Adam at 1e-3 (constant),
gradient-norm clipping at 1.0, fresh training batches every step, a fixed test set of 1000 sequences drawn from a
separate seed, evaluation every 250 steps, LSTM forget-gate bias 1. ``layers`` stacks recurrent layers (Feng et al.
2024 stack minGRU for selective copying). Each (task, length, model, seed) is an ordinary run directory written by
seqlab.train, so an interrupted lab continues where it stopped.

The literature's pattern (README): on the adding problem a tanh RNN stays at the baseline MSE 1/6 for T >= 100,
while an LSTM solves T = 100 in about 1.5-3.5 k steps; on the copy task at T = 200 an LSTM stays near its baseline.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch.nn import functional as F

from .. import checkpoint, runs
from ..data.synthetic import (
    ADDING_BASELINE,
    COPY_LENGTH,
    COPY_MARKER,
    PARITY_BASELINE,
    SELECTIVE_BASELINE,
    adding,
    copy_baseline,
    copy_memory,
    parity,
    selective_copy,
)
from ..models.backbone import BACKBONES
from ..models.memory import MemoryModel
from ..train import Task, TrainConfig, pyplot, read_metrics, train

TASKS = ("adding", "copy", "parity", "selective")
METRIC = {"adding": "solved_fraction", "copy": "recall_accuracy", "parity": "final_accuracy",
          "selective": "recall_accuracy"}  # fmt: skip
"""Each task's score beside its loss: the fraction of sums within 0.04; the symbols recalled; the parity of the
whole sequence (its last step) right."""
MODELS = BACKBONES
SOLVED = 0.04  # an adding-problem answer within 0.04 of the sum counts as solved (the IndRNN/uRNN papers' margin)


@dataclass
class LabConfig(TrainConfig):
    """One lab run; the loop's fields are TrainConfig's, set here to the protocol's values."""

    RULES: ClassVar[dict[str, str]] = {"T": ">=1", "hidden": ">=1", "layers": ">=1", "batch": ">=1", "test_size": ">=1",
                                       "blocks": ">=1", "heads": ">=1", "zoneout": "[0,1)"}  # fmt: skip

    lr: float = 1e-3  # Adam, constant: min_lr = lr and no warm-up
    min_lr: float = 1e-3
    warmup: int = 0
    weight_decay: float = 0.0  # AdamW without decay is Adam
    beta2: float = 0.999  # Adam's default, as the papers used
    clip: float = 1.0
    steps: int | None = 4000  # the reproduction criterion's horizon at T = 100
    eval_every: int = 250
    log_every: int = 50
    task: str = "adding"
    T: int = 100
    model: str = "lstm"
    hidden: int = 128
    layers: int = 1  # recurrent layers (the papers' protocol: one)
    batch: int = 50
    test_size: int = 1000
    forget_bias: float = 1.0  # LSTM only
    layer_norm: bool = False  # layer-normalised LSTM or GRU (seqlab.LSTM)
    zoneout: float = 0.0  # LSTM or GRU: each unit keeps its last value with this probability per step
    orthogonal: bool = False  # orthogonal W_hh at initialisation
    blocks: int = 2  # transformer only: pre-norm blocks of width `hidden`
    heads: int = 4  # transformer only


def baseline(task: str, T: int) -> float:
    """The loss of the best answer that remembers nothing."""
    return {"adding": ADDING_BASELINE, "parity": PARITY_BASELINE, "selective": SELECTIVE_BASELINE}.get(
        task, copy_baseline(T)
    )


class MemoryTask(Task):
    """For seqlab.train.train: fresh batches as a pure function of the step, a fixed test set."""

    def __init__(self, cfg: LabConfig):
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        make, n_in, n_out, extra = {
            "adding": (adding, 2, 1, 0),
            "copy": (copy_memory, COPY_MARKER + 1, COPY_MARKER, 2 * COPY_LENGTH),  # symbols, T blanks, marker, recall
            "parity": (parity, 2, 2, 0),
            "selective": (selective_copy, COPY_MARKER + 1, COPY_MARKER, COPY_LENGTH),  # T steps, then the markers
        }[cfg.task]
        self.model = MemoryModel(cfg.model, n_in, cfg.hidden, n_out, one_hot=cfg.task != "adding",
                                 forget_bias=cfg.forget_bias, orthogonal=cfg.orthogonal, blocks=cfg.blocks,
                                 heads=cfg.heads, layers=cfg.layers, layer_norm=cfg.layer_norm,
                                 zoneout=cfg.zoneout)  # fmt: skip
        self.make, self.length = make, cfg.T + extra
        self.test = self.make(cfg.test_size, cfg.T, seed=1_000_000 + cfg.seed)  # never a training seed
        self.tokens_per_step = cfg.batch * self.length
        self.loss_name = "test MSE" if cfg.task == "adding" else "cross-entropy per scored step (nats)"

    def batch(self, step: int):
        return self.make(self.cfg.batch, self.cfg.T, seed=self.cfg.seed * 100_003 + step)

    def _predict(self, x, model: MemoryModel | None = None) -> torch.Tensor:
        model = model or self.model
        return model(x, last_only=True).squeeze(-1) if self.cfg.task == "adding" else model(x)

    def _loss_of(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.cfg.task == "adding":
            return F.mse_loss(out, y)  # the last step's read-out against the sum
        if self.cfg.task == "selective":
            out, y = out[:, -COPY_LENGTH:], y[:, -COPY_LENGTH:]  # the recall steps only
        return F.cross_entropy(out.flatten(0, 1), y.flatten())

    def _loss(self, x, y, model: MemoryModel | None = None) -> torch.Tensor:
        return self._loss_of(self._predict(x, model), y)

    def loss(self, batch) -> torch.Tensor:
        return self._loss(*batch)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        x, y = self.test
        out = self._predict(x)
        result = {"val_loss": float(self._loss_of(out, y))}
        task = self.cfg.task
        if task == "adding":
            result["solved_fraction"] = float(((out - y).abs() < SOLVED).float().mean())
        elif task == "parity":
            right = out.argmax(-1) == y
            result["final_accuracy"] = float(right[:, -1].float().mean())  # the parity of all T bits
            result["step_accuracy"] = float(right.float().mean())
        else:
            recall = slice(-COPY_LENGTH, None)  # the steps where the symbols are due
            result["recall_accuracy"] = float((out[:, recall].argmax(-1) == y[:, recall]).float().mean())
        return result


def run_one(cfg: LabConfig, run: Path) -> list[dict]:
    """Train one (task, T, model, seed), or continue it; returns its evaluation records."""
    last = run / "checkpoints" / "last.safetensors"
    done = False
    if last.exists():
        _, meta = checkpoint.load(last)
        done = meta["step"] >= (cfg.steps or math.inf)
    if not done:
        with runs.writing(run, created=not last.exists()):
            runs.write_config(run, "lab", cfg)
            train(MemoryTask(cfg), cfg, run, resume=last.exists(), progress=False, echo=lambda s: None)
    return [r for r in read_metrics(run) if "val_loss" in r]


def first_below(records: list[dict], level: float) -> int | None:
    return next((r["step"] for r in records if r["val_loss"] < level), None)


def run_lab(
    task: str,
    models: list[str],
    lengths: list[int],
    seeds: int,
    steps: int | None,
    minutes: float | None,
    out: Path,
    echo=print,
    **overrides,
) -> list[dict]:
    """Every model, length and seed on the same data and budget. Writes results.csv, curves.csv, loss.png and
    table.md into ``out`` and returns one summary row per (model, length, seed)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    out.mkdir(parents=True, exist_ok=True)
    rows, curves = [], []
    for T in lengths:
        for model in models:
            for seed in range(seeds):
                cfg = LabConfig(task=task, T=T, model=model, seed=seed, steps=steps, minutes=minutes, **overrides)
                t0 = time.monotonic()
                records = run_one(cfg, out / f"{task}-T{T}-{model}-seed{seed}")
                level = 0.1 * baseline(task, T)
                row = {
                    "task": task,
                    "T": T,
                    "model": model,
                    "seed": seed,
                    "steps": records[-1]["step"],
                    "final_loss": records[-1]["val_loss"],
                    "baseline": baseline(task, T),
                    "first_step_below_10pct": first_below(records, level),
                    "seconds": time.monotonic() - t0,
                }
                extra = METRIC[task]
                row[extra] = records[-1][extra]
                rows.append(row)
                curves += [
                    {"T": T, "model": model, "seed": seed, "step": r["step"], "loss": r["val_loss"]} for r in records
                ]
                echo(
                    f"{task} T={T} {model} seed {seed}: loss {row['final_loss']:.4f} (baseline {row['baseline']:.4f}), "
                    f"below 10% at step {row['first_step_below_10pct'] or '-'}, {extra} {row[extra]:.3f}, "
                    f"{row['seconds']:.0f} s"
                )
    runs.write_csv(out / "results.csv", rows)
    runs.write_csv(out / "curves.csv", curves)
    plot(out / "loss.png", task, curves, lengths)
    runs.write_text(out / "table.md", table(rows))
    echo("\n" + table(rows))
    return rows


def table(rows: list[dict]) -> str:
    """Per model and length: final test loss of each seed, the step each first fell below 10% of the baseline."""
    extra = METRIC[rows[0]["task"]]
    lines = [
        f"| T | model | final test loss (per seed) | baseline | first step < 10% of baseline | {extra} |",
        "|---|---|---|---|---|---|",
    ]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["T"], r["model"]), []).append(r)
    for (T, model), g in groups.items():
        losses = ", ".join(f"{r['final_loss']:.4f}" for r in g)
        firsts = ", ".join(str(r["first_step_below_10pct"] or "-") for r in g)
        extras = ", ".join(f"{r[extra]:.2f}" for r in g)
        lines.append(f"| {T} | {model} | {losses} | {g[0]['baseline']:.4f} | {firsts} | {extras} |")
    return "\n".join(lines) + "\n"


def plot(path: Path, task: str, curves: list[dict], lengths: list[int]) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(1, len(lengths), figsize=(5 * len(lengths), 3.8), squeeze=False)
    colors = {"rnn": "tab:red", "lstm": "tab:blue", "gru": "tab:green", "transformer": "tab:purple",
              "mingru": "tab:olive", "minlstm": "tab:cyan"}  # fmt: skip
    for ax, T in zip(axes[0], lengths, strict=True):
        for key in sorted({(c["model"], c["seed"]) for c in curves if c["T"] == T}):
            pts = [(c["step"], c["loss"]) for c in curves if c["T"] == T and (c["model"], c["seed"]) == key]
            ax.plot(
                *zip(*pts, strict=True),
                color=colors.get(key[0]),
                lw=1.2,
                alpha=0.8,
                label=key[0] if key[1] == 0 else None,
            )
        ax.axhline(baseline(task, T), color="gray", ls="--", lw=1, label="no-memory baseline")
        ax.set_yscale("log")
        ax.set_title(f"{task}, T = {T}")
        ax.set_xlabel("step")
        ax.set_ylabel("test MSE" if task == "adding" else "test cross-entropy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    runs.save_figure(fig, path)
