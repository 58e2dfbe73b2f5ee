"""The training loop every task shares: batch, forward, backward, clip, step, log, evaluate, checkpoint.

A task supplies the model and five methods (see ``Task``); this loop owns the optimizer (AdamW), the schedule
(linear warm-up, then cosine to ``min_lr``), gradient-norm clipping (the norm before clipping is logged), evaluation
every ``eval_every`` steps, the best and last checkpoints, the metrics log, the loss plot, and resuming exactly.

Run directory, as the loop writes it:
    metrics.jsonl                one JSON object per log or evaluation step
    samples.txt                  what the task reported at each evaluation (text for language models)
    loss.png                     training and validation loss against steps (when matplotlib is installed)
    checkpoints/last.safetensors and best.safetensors (the best evaluation by the task's ``objective``)
    tb/                          TensorBoard scalars, when tensorboard is installed
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from . import checkpoint

STOPPED = {"steps": "end of the schedule", "minutes": "time budget spent", "patience": "no better validation"}
"""What each value of the ``stopped`` that ``train`` returns means, for the tasks' closing lines."""
ESTIMATE_STEPS = 10  # with --minutes and no --steps, the schedule's length is set from this many timed steps


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss stays non-finite); the last good checkpoint is kept."""


@dataclass
class TrainConfig:
    """The loop's settings; each task's config extends this one flat dataclass."""

    lr: float = 2e-3  # AdamW peak; char-rnn-sized recurrent nets take 2e-3 well
    min_lr: float = 1e-4  # where the cosine ends
    warmup: int = 100  # steps of linear warm-up from lr/100
    weight_decay: float = 0.01  # on matrices only, not biases or norms (nanoGPT's rule)
    beta2: float = 0.99  # AdamW's second-moment decay: 0.99 suits small noisy batches; 0.999 is Adam's default
    clip: float = 1.0  # gradient-norm clip
    steps: int | None = None  # schedule length; with only --minutes, estimated from the first steps
    minutes: float | None = None  # wall-clock budget for this session; stops cleanly with a checkpoint
    eval_every: int = 200  # evaluate, report, checkpoint
    patience: int | None = None  # stop after this many evaluations without a new best (early stopping); None: never
    log_every: int = 20  # training metrics to metrics.jsonl and the progress bar
    seed: int = 0


class Task(Protocol):
    model: nn.Module
    tokens_per_step: int

    def batch(self, step: int): ...  # a pure function of step, so resuming reads what the first run read

    def loss(self, batch) -> torch.Tensor: ...  # training mode, mean loss of the batch

    def evaluate(self) -> dict[str, float]: ...  # must contain "val_loss"

    # Optional: ``objective(result) -> tuple``, lower is better, ranks evaluations for best.safetensors and
    # --patience; without it, (val_loss,). A classifier ranks by accuracy first and loss second.

    def report(self, step: int) -> str: ...  # e.g. a sample of generated text

    def carry(self) -> dict[str, torch.Tensor]: ...  # state carried between steps (hidden state of TBPTT)

    def set_carry(self, tensors: dict[str, torch.Tensor]) -> None: ...


class Stateless:
    """For tasks whose batches are independent (nothing carried between steps): the carry half of ``Task``."""

    def carry(self) -> dict[str, torch.Tensor]:
        return {}

    def set_carry(self, tensors: dict[str, torch.Tensor]) -> None:
        pass


def lr_at(cfg: TrainConfig, step: int, horizon: int | None) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from ``lr`` to ``min_lr`` at ``horizon``."""
    if step < cfg.warmup:
        return cfg.lr * (0.01 + 0.99 * step / cfg.warmup)
    if horizon is None or horizon <= cfg.warmup:
        return cfg.lr
    progress = min(1.0, (step - cfg.warmup) / (horizon - cfg.warmup))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def objective(task: Task, result: dict) -> tuple[float, ...]:
    rank = getattr(task, "objective", None)
    return tuple(rank(result)) if rank is not None else (result["val_loss"],)


PLOT_EVERY_S = 30.0  # redraw loss.png at most this often during training (a redraw costs ~0.1 s), and at the end


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    rest = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, cfg.beta2))


class Metrics:
    """metrics.jsonl, plus TensorBoard scalars when tensorboard is installed."""

    def __init__(self, run: Path):
        self.path = run / "metrics.jsonl"
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run / "tb"))
        except ImportError:
            pass

    def truncate(self, last_step: int) -> None:
        """On resume: forget what the killed session logged after its last checkpoint."""
        if not self.path.exists():
            return
        keep = [ln for ln in self.path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= last_step]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(ln + "\n" for ln in keep))
        os.replace(tmp, self.path)

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, record["step"])

    def read(self) -> list[dict]:
        return read_metrics(self.path.parent)


def pyplot():
    """matplotlib's pyplot on the headless Agg backend, or None when matplotlib (the plot extra) is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def read_metrics(run: Path) -> list[dict]:
    """Every record of RUN/metrics.jsonl, in order (empty before the first one is written)."""
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def plot_losses(run: Path, records: list[dict]) -> None:
    """loss.png: training loss and validation loss (nats) against steps. Skipped without matplotlib."""
    plt = pyplot()
    if plt is None:
        return
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train, strict=True), label="training", lw=1, alpha=0.7)
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="validation", lw=1.5)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = run / ".loss.png.tmp"
    fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    os.replace(tmp, run / "loss.png")


def train(
    task: Task,
    cfg: TrainConfig,
    run: Path,
    resume: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> dict:
    """Train ``task.model`` until ``cfg.steps`` (the schedule's end) or ``cfg.minutes`` of wall clock.

    ``cfg.minutes`` counts wall clock, evaluations included; ``train_s`` in each evaluation record counts only the
    training steps.

    Returns the last evaluation's metrics with "step", "stopped" ('steps', 'minutes' or 'patience') and "best"
    (the best evaluation's metrics, the one in best.safetensors).
    """
    from tqdm import tqdm

    if cfg.steps is None and cfg.minutes is None:
        raise ValueError("give --steps or --minutes (or both)")
    model = task.model
    optimizer = make_optimizer(model, cfg)
    run.mkdir(parents=True, exist_ok=True)
    metrics = Metrics(run)
    last_path, best_path = run / "checkpoints" / "last.safetensors", run / "checkpoints" / "best.safetensors"
    step, horizon = 0, cfg.steps
    best: tuple[float, ...] = (math.inf,)  # the objective of best.safetensors
    best_result: dict = {}
    stale = 0  # evaluations since the best one
    if resume:
        tensors, meta = checkpoint.load(last_path)
        task.set_carry(checkpoint.restore(tensors, meta, model, optimizer))
        step, horizon = meta["step"], meta["horizon"]
        best = tuple(meta["best"]) if isinstance(meta["best"], list) else (meta["best"],)
        best_result, stale = meta.get("best_metrics", {}), meta.get("stale", 0)
        metrics.truncate(step)
        echo(f"resuming {run} at step {step}")

    def save(path: Path, result: dict) -> None:
        if not all(torch.isfinite(p).all() for p in model.parameters()):
            raise TrainingError(f"weights are not finite at step {step}; {last_path} keeps the last good state")
        tensors, meta = checkpoint.training_state(
            model,
            optimizer,
            step,
            task.carry(),
            {"horizon": horizon, "best": list(best), "best_metrics": best_result, "stale": stale, "metrics": result},
        )
        checkpoint.save(path, tensors, meta)

    last_plot, plot_stale = -math.inf, False

    def evaluate() -> dict:
        nonlocal best, best_result, stale, last_plot, plot_stale
        result = {"step": step, **task.evaluate(), "train_s": train_s}
        metrics.write(result)
        text = task.report(step)
        with open(run / "samples.txt", "a") as f:
            f.write(f"--- step {step}\n{text}\n")
        shown = ", ".join(f"{k} {v:.4g}" for k, v in result.items() if k != "step")
        (bar.write if progress else echo)(f"step {step}: {shown}\n{text}\n")
        score = objective(task, result)
        improved = score < best
        if improved:
            best, best_result, stale = score, result, 0
        else:
            stale += 1
        save(last_path, result)
        if improved:
            save(best_path, result)
        plot_stale = True
        if time.monotonic() - last_plot >= PLOT_EVERY_S:
            plot_losses(run, metrics.read())
            last_plot, plot_stale = time.monotonic(), False
        return result

    deadline = None if cfg.minutes is None else time.monotonic() + 60 * cfg.minutes
    bar = tqdm(total=horizon, initial=step, disable=not progress, unit="step", dynamic_ncols=True, file=sys.stderr)
    result: dict = {}
    stopped, non_finite, evaluated_at = "steps", 0, None
    window_loss, window_steps, window_time = 0.0, 0, 0.0  # training time only: evaluation does not count
    train_s = 0.0  # this session's training time, reported with each evaluation (the x axis of learning curves)
    session_t0, session_start = time.monotonic(), step
    while horizon is None or step < horizon:
        if deadline is not None and time.monotonic() >= deadline:
            stopped = "minutes"
            break
        t0 = time.monotonic()
        lr = lr_at(cfg, step, horizon)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = task.loss(task.batch(step))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = float(nn.utils.clip_grad_norm_(model.parameters(), cfg.clip))  # the norm before clipping
        loss_value = loss.item()
        if not (math.isfinite(loss_value) and math.isfinite(grad_norm)):
            non_finite += 1
            task.set_carry({})  # a non-finite state would poison the next windows too
            (bar.write if progress else echo)(f"step {step}: loss {loss_value}, gradient norm {grad_norm}: skipped")
            if non_finite >= 3:
                raise TrainingError(
                    f"the loss was not finite for 3 steps in a row at step {step}; stopped. "
                    f"{last_path} keeps the last good state; try a lower --lr"
                )
            step += 1
            continue
        non_finite = 0
        optimizer.step()
        step += 1
        bar.update(1)
        window_loss += loss_value
        window_steps += 1
        window_time += time.monotonic() - t0
        train_s += time.monotonic() - t0
        if horizon is None and step - session_start >= ESTIMATE_STEPS:
            per_step = (time.monotonic() - session_t0) / ESTIMATE_STEPS
            horizon = step + max(1, int((deadline - time.monotonic()) / per_step))
            bar.total = horizon
            bar.refresh()
        if step % cfg.log_every == 0:
            tps = window_steps * task.tokens_per_step / window_time
            record = {
                "step": step,
                "loss": window_loss / window_steps,
                "lr": lr,
                "grad_norm": grad_norm,
                "tokens_per_s": tps,
            }
            metrics.write(record)
            bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{tps:,.0f}")
            window_loss, window_steps, window_time = 0.0, 0, 0.0
        if step % cfg.eval_every == 0:
            result = evaluate()
            evaluated_at = step
            if cfg.patience is not None and stale >= cfg.patience:
                stopped = "patience"
                break
    if evaluated_at != step:
        result = evaluate()
    if plot_stale:
        plot_losses(run, metrics.read())
    bar.close()
    return {**result, "stopped": stopped, "best": best_result}
