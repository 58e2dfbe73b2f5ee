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
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import ClassVar

import torch
import torch.distributed as dist
from torch import nn

from . import checkpoint
from .cells._steps import bf16_native
from .runs import World, save_figure, world, write_text

STOPPED = {"steps": "end of the schedule", "minutes": "time budget spent", "patience": "no better validation"}
"""What each value of the ``stopped`` that ``train`` returns means, for the tasks' closing lines."""
ESTIMATE_STEPS = 10  # with --minutes and no --steps, the schedule's length is first set from this many timed steps


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss stays non-finite); the last good checkpoint is kept."""


class Interrupted(KeyboardInterrupt):
    """Training stopped on SIGINT (Ctrl-C) or SIGTERM (what schedulers send) after finishing its step and writing
    RUN/checkpoints/last.safetensors; resuming continues from ``step`` as if nothing had happened."""

    def __init__(self, run: Path, step: int):
        super().__init__(f"interrupted at step {step}; {run / 'checkpoints' / 'last.safetensors'} written")
        self.run, self.step = run, step


@contextmanager
def stop_signals() -> Iterator[list[int]]:
    """While the block runs, the first SIGINT or SIGTERM is only noted (the loop stops at the end of its step and
    saves); a second one acts at once, as it would without us. Off the main thread, signals are left alone."""
    asked: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield asked
        return

    def note(signum, frame) -> None:
        asked.append(signum)
        signal.signal(signum, previous[signum])

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield asked
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cores() -> int:
    """The cores this process may use: its CPU affinity, capped by a cgroup CPU quota (containers) when one is set,
    shared among the training processes on this machine. torch's own default counts the host's cores, which
    oversubscribes a container or a shared machine."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            n = min(n, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n // world().local_size)  # processes on one machine share its cores (oversubscribed: 5-10x slower)


@contextmanager
def using_threads(threads: int | None) -> Iterator[int]:
    """torch's intra-op threads set to ``threads`` (None: ``cores()``) while the block runs, then put back."""
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads or cores())
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


RULES = {  # a range's name in a config's RULES or flags.ranged -> (what it says when broken, the test)
    ">0": ("must be positive", lambda v: v > 0),
    ">=0": ("must be at least 0", lambda v: v >= 0),
    ">=1": ("must be at least 1", lambda v: v >= 1),
    ">=2": ("must be at least 2", lambda v: v >= 2),
    "[0,1)": ("must lie in [0, 1)", lambda v: 0 <= v < 1),
    "(0,1)": ("must lie in (0, 1)", lambda v: 0 < v < 1),
    "(0,1]": ("must lie in (0, 1]", lambda v: 0 < v <= 1),
    "[0,1]": ("must lie in [0, 1]", lambda v: 0 <= v <= 1),
}


def out_of_range(value, rule: str | None = None) -> str | None:
    """What is wrong with ``value``: not a finite number, or outside ``rule`` (a key of RULES); None if nothing."""
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    if rule is not None and value is not None and not RULES[rule][1](value):
        return RULES[rule][0]
    return None


def check_value(name: str, value, rule: str | None = None) -> None:
    """Refuse a non-finite number, or one outside ``rule``, naming the flag and the range."""
    problem = out_of_range(value, rule)
    if problem is not None:
        raise ValueError(f"--{name.replace('_', '-')} {problem}, got {value}")


class Checked:
    """A config dataclass whose numbers are checked when it is made, from flags or from Python alike: every float
    finite, and each field named in ``RULES`` (merged along the class hierarchy, a subclass's rule winning) within
    its range. So a bad value is refused before anything is read or written."""

    RULES: ClassVar[dict[str, str]] = {}

    def __post_init__(self) -> None:
        rules: dict[str, str] = {}
        for cls in reversed(type(self).__mro__):
            rules.update(cls.__dict__.get("RULES", {}))
        for f in fields(self):
            check_value(f.name, getattr(self, f.name), rules.get(f.name))


@dataclass
class TrainConfig(Checked):
    """The loop's settings; each task's config extends this one flat dataclass."""

    RULES: ClassVar[dict[str, str]] = {"lr": ">=0", "min_lr": ">=0", "warmup": ">=0", "weight_decay": ">=0",
                                       "beta2": "(0,1)", "clip": ">0", "steps": ">=1", "minutes": ">0",
                                       "eval_every": ">=1", "patience": ">=1", "log_every": ">=1"}  # fmt: skip

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
    precision: str = "32"  # 32 | bf16 (autocast: products in bfloat16, states, sums and weights in float32); a
    # session's choice, like --minutes: a resumed run takes the one given now

    def __post_init__(self) -> None:
        super().__post_init__()
        check_precision(self.precision, hardware=False)  # a run's config loads on any machine


PRECISIONS = ("32", "bf16", "fp16")


def check_precision(precision: str, device: str = "cpu", hardware: bool = True) -> None:
    """Refuse, in one line, a precision that is not one of PRECISIONS; with ``hardware``, also one this machine
    cannot run well: bf16 on a CPU without native bfloat16 (emulated, it is slower than float32), fp16 without
    CUDA (it needs a GPU and a gradient scaler)."""
    if precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if not hardware:
        return
    if precision == "bf16" and device == "cpu" and not bf16_native():
        raise ValueError("--precision bf16: this CPU has no native bfloat16 (AVX512-BF16 or AMX), so it would be "
                         "emulated and slower than float32; use --precision 32")  # fmt: skip
    if precision == "fp16" and device != "cuda":
        raise ValueError("--precision fp16 needs a CUDA GPU (it trains with a gradient scaler); on CPU use bf16")


def autocast(precision: str, device: str = "cpu"):
    """The context a training forward runs in: torch.autocast to bfloat16 or float16, or nothing for 32."""
    if precision == "32":
        return nullcontext()
    return torch.autocast(device, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


class Task:
    """What a task gives the loop. Subclass it and override what differs; the defaults fit a task whose batches are
    independent (nothing carried between steps) and whose evaluations rank by validation loss.

    The loop, not the task, switches the model between training mode (batch and loss) and evaluation mode
    (evaluate and report, which also run without gradients)."""

    model: nn.Module
    tokens_per_step: int  # for the tokens/s the loop logs (sequence steps for series tasks)
    loss_name: str = "loss"  # what the loss is, in its units: the y axis of loss.png
    cycles: int = 1  # the cosine restarts from lr this many times over the schedule (SGDR; snapshot ensembles)
    carry_dim: int = 0  # the batch dimension of the carried tensors: each process carries its own rows of them

    def batch(self, step: int):  # a pure function of step, so resuming reads what the first run read
        raise NotImplementedError

    def loss(self, batch) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The mean loss of the batch; or (mean, units) when it is a mean over units that a batch's rows hold
        unequally (valid steps of unequal lengths, class weights), so that N processes, each with a shard of the
        batch, weigh their means by their units and together compute the one-process loss exactly."""
        raise NotImplementedError

    def evaluate(self) -> dict[str, float]:  # must contain "val_loss"
        raise NotImplementedError

    def objective(self, result: dict) -> tuple[float, ...]:
        """Ranks evaluations for best.safetensors and --patience, lower is better."""
        return (result["val_loss"],)

    def report(self, step: int) -> str:  # e.g. a sample of generated text, kept in samples.txt
        return ""

    def carry(self) -> dict[str, torch.Tensor]:  # state carried between steps (the hidden state of TBPTT)
        return {}

    def set_carry(self, tensors: dict[str, torch.Tensor]) -> None:
        pass


def lr_at(cfg: TrainConfig, step: int, horizon: int | None, cycles: int = 1) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from ``lr`` to ``min_lr`` at ``horizon``; with ``cycles``
    C > 1, C such cosines one after another (warm restarts, Loshchilov & Hutter 2017), each ending at
    ``cycle_ends``."""
    if step < cfg.warmup:
        return cfg.lr * (0.01 + 0.99 * step / cfg.warmup)
    if horizon is None or horizon <= cfg.warmup:
        return cfg.lr
    ends = [cfg.warmup, *cycle_ends(cfg.warmup, horizon, cycles)]
    k = next((j for j in range(cycles) if step < ends[j + 1]), cycles - 1)
    progress = min(1.0, (step - ends[k]) / max(1, ends[k + 1] - ends[k]))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def cycle_ends(warmup: int, horizon: int, cycles: int) -> list[int]:
    """The steps at which each of ``cycles`` equal cosine cycles between ``warmup`` and ``horizon`` ends: after
    that many steps, the rate is at its minimum (a snapshot's moment) and the next step restarts at ``lr``."""
    return [warmup + round((horizon - warmup) * (k + 1) / cycles) for k in range(cycles)]


PLOT_EVERY_S = 30.0  # redraw loss.png at most this often during training (a redraw costs ~0.1 s), and at the end


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    rest = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, cfg.beta2))


class Log:
    """Everything the loop writes besides checkpoints: metrics.jsonl (and TensorBoard scalars when tensorboard is
    installed), samples.txt, loss.png (redrawn at most every PLOT_EVERY_S), and the progress bar or echo lines."""

    def __init__(self, run: Path, loss_name: str, progress: bool, echo: Callable[[str], None]):
        from tqdm import tqdm

        self.run, self.loss_name, self.echo = run, loss_name, echo
        self.path = run / "metrics.jsonl"
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run / "tb"))
        except ImportError:
            pass
        self.bar = tqdm(disable=not progress, unit="step", dynamic_ncols=True, file=sys.stderr)
        pyplot()  # import matplotlib now (~1 s), not inside the first evaluation, whose time sizes the last one
        self.say = self.bar.write if progress else echo
        self.last_plot, self.plot_stale = -math.inf, False

    def truncate(self, last_step: int) -> None:
        """On resume: forget what the killed session logged after its last checkpoint."""
        if self.path.exists():
            keep = [
                ln for ln in self.path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= last_step
            ]
            write_text(self.path, "".join(ln + "\n" for ln in keep))

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, record["step"])

    def evaluation(self, result: dict, text: str) -> None:
        self.write(result)
        with open(self.run / "samples.txt", "a") as f:
            f.write(f"--- step {result['step']}\n{text}\n")
        shown = ", ".join(f"{k} {v:.4g}" for k, v in result.items() if k != "step")
        self.say(f"step {result['step']}: {shown}\n{text}\n")
        self.plot_stale = True
        if time.monotonic() - self.last_plot >= PLOT_EVERY_S:
            self.plot()

    def plot(self) -> None:
        plot_losses(self.run, read_metrics(self.run), self.loss_name)
        self.last_plot, self.plot_stale = time.monotonic(), False

    def close(self) -> None:
        if self.plot_stale:
            self.plot()
        self.bar.close()
        if self.tb is not None:
            self.tb.close()


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


def plot_losses(run: Path, records: list[dict], loss_name: str = "loss") -> None:
    """loss.png: training loss and validation loss against steps. Skipped without matplotlib."""
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
    ax.set_ylabel(loss_name)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, run / "loss.png")


# ------------------------------------------------------------------------------------------------ processes
def shard(batch, w: World):
    """This process's rows of a global batch: part ``w.rank`` of ``w.size`` nearly equal parts (tensor_split) of
    every tensor along its first dimension, through tuples, lists and dicts; anything else (a flag) as it is. A
    batch of fewer rows than processes leaves the last ones empty."""
    if torch.is_tensor(batch):
        return batch.tensor_split(w.size)[w.rank] if batch.dim() else batch
    if isinstance(batch, (tuple, list)):
        return type(batch)(shard(b, w) for b in batch)
    if isinstance(batch, dict):
        return {k: shard(v, w) for k, v in batch.items()}
    return batch


def first_rows(batch) -> int:
    """The rows of a batch: the first dimension of its first tensor."""
    if torch.is_tensor(batch):
        return batch.shape[0]
    parts = batch.values() if isinstance(batch, dict) else batch
    return next(first_rows(b) for b in parts if torch.is_tensor(b) or isinstance(b, (tuple, list, dict)))


class LossOf(nn.Module):
    """A task's loss as a module around its model, so that DistributedDataParallel sees every forward the task
    runs (a task may call its model several times, or parts of it)."""

    def __init__(self, task: Task):
        super().__init__()
        self.model, self.task = task.model, task

    def forward(self, batch):
        return self.task.loss(batch)


class Processes:
    """The processes of one training, as the loop needs them: one (nothing to share), or N started by torchrun
    (``--nproc N``, or torchrun itself, on one machine or several).

    With N, every process builds the same global batch (``Task.batch`` is a pure function of the step) and
    computes the loss of its shard of rows; DistributedDataParallel (gloo on CPU, nccl on CUDA) averages the
    gradients, which are then the one-process gradients of the global batch: each shard's mean is weighed by its
    share of the batch's units (``Task.loss``). The weights start equal (DDP broadcasts rank 0's) and stay equal,
    since each process steps the same optimizer on the same gradients. Every process evaluates; rank 0's result
    decides (the best checkpoint, patience) for all, and rank 0 alone writes the user's run directory
    (``runs.own``). Carried state is per process (its rows); checkpoints hold the whole batch's, so that a run
    resumes with any number of processes."""

    def __init__(self, task: Task, w: World | None = None):
        self.w = w or world()
        self.ddp = None
        if self.w.size > 1:
            from torch.nn.parallel import DistributedDataParallel

            join()
            self.ddp = DistributedDataParallel(LossOf(task), forward_sync_buffers=False)

    def loss(self, task: Task, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(what to backpropagate, the global batch's mean loss for the log)."""
        if self.ddp is None:
            out = task.loss(batch)
            loss = out[0] if isinstance(out, tuple) else out
            return loss, loss.detach()
        rows = first_rows(batch)
        idle = self.w.rank >= rows  # fewer rows than processes (an epoch's last batch, say)
        part = shard(batch, World(0, rows) if idle else self.w)  # idle: row 0, weighed 0
        out = self.ddp(part)  # every process runs forward and backward: the gradients are averaged in backward
        loss, units = out if isinstance(out, tuple) else (out, first_rows(part))
        units = torch.as_tensor(0 if idle else units, dtype=torch.float64).detach().reshape(1)
        total = units.clone()
        dist.all_reduce(total)
        share = float(units / total)  # this shard's share of the global mean; DDP divides the sum by N
        mean = (loss.detach().double() * share).reshape(1)
        dist.all_reduce(mean)
        return loss * (share * self.w.size), mean[0].float()

    def agree(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag true on every process if it is true on any (a stop asked on one stops all at the same step)."""
        if self.ddp is None:
            return flags
        t = torch.tensor(flags, dtype=torch.uint8)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return tuple(bool(v) for v in t)

    def same(self, value):
        """Rank 0's ``value`` on every process (an evaluation's record, a re-estimated schedule)."""
        if self.ddp is None:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, carry: dict[str, torch.Tensor], dim: int) -> dict[str, torch.Tensor]:
        """The whole batch's carried state from each process's rows (for a checkpoint)."""
        if self.ddp is None or not carry:
            return carry
        out = {}
        for k, v in sorted(carry.items()):
            parts = [None] * self.w.size
            dist.all_gather_object(parts, v.detach())
            out[k] = torch.cat(parts, dim)
        return out

    def scatter(self, carry: dict[str, torch.Tensor], dim: int) -> dict[str, torch.Tensor]:
        """This process's rows of the whole batch's carried state (from a checkpoint)."""
        if self.ddp is None:
            return carry
        return {k: v.tensor_split(self.w.size, dim)[self.w.rank] for k, v in carry.items()}


def join() -> None:
    """Join the process group torchrun set up (MASTER_ADDR, RANK, ...), once per process: gloo on CPU, nccl when
    this process has a GPU. Left at exit.

    The keys go under a prefix of torchrun's restart count: after a restart (--max-restarts), torchrun's store
    still holds the addresses the dead processes published, and a process that read one waited for a peer that
    no longer listens (seen here in about one restart of three)."""
    import atexit

    if not dist.is_initialized():
        store, rank, size = next(dist.rendezvous("env://"))
        store = dist.PrefixStore(f"seqlab/attempt{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", store=store, rank=rank,
                                world_size=size)  # fmt: skip
        atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())


LAUNCHED = "SEQLAB_LAUNCHED"  # set by ``launch`` for its processes: they report a failure to it, not to the terminal


def launch(argv: list[str], nproc: int) -> int:
    """``seqlab ARGV`` (ARGV without --nproc) in ``nproc`` processes on this machine, started by PyTorch's own
    launcher: torch.distributed.run (torchrun) with a standalone rendezvous on a free local port. Returns the exit
    status; a failure is one line, the first rank's to fail on its own (not one that stopped because another
    died), as that process wrote it to torchrun's error file."""
    import logging

    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    env = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(max(1, cores() // nproc))), LAUNCHED: "1"}
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # for the processes torchrun starts (torchrun would set 1 thread, and say so)
    logging.disable(logging.ERROR)  # torchrun's own logs (a failure's summary included): the one line replaces them
    args = torchrun.get_args_parser().parse_args(["--standalone", f"--nproc-per-node={nproc}", "-m", "seqlab",
                                                  *argv])  # fmt: skip
    try:
        torchrun.run(args)
    except ChildFailedError as e:
        rank, failure = min(e.failures.items(), key=lambda kv: first_cause(*kv))
        if "peer" in failure.error_file_data:  # report_failure's own line
            print(failure.message, file=sys.stderr)
        else:  # killed: no word from the process itself
            print(f"seqlab: rank {rank} ended: {failure.message}", file=sys.stderr)
        return failure.exitcode if failure.exitcode in (2, 130) else 1
    except SignalException:  # Ctrl-C (or SIGTERM) reached the launcher; it stopped the processes
        print("seqlab: interrupted; a run keeps its last checkpoint (continue it with --resume)", file=sys.stderr)
        return 130
    finally:
        logging.disable(logging.NOTSET)
        for k, v in before.items():
            if v is None:
                os.environ.pop(k)
            else:
                os.environ[k] = v
    return 0


def first_cause(rank: int, failure) -> tuple:
    """Orders a launch's failures, the cause first: a process's own error, or a kill from outside, before a process
    that was stopped (by a signal, or the launcher's SIGTERM) or lost a peer; then by time and rank."""
    data = failure.error_file_data
    followed = data.get("peer", False) or failure.exitcode == -signal.SIGTERM
    return (followed, failure.timestamp, rank)


def report_failure(line: str, peer: bool = False) -> None:
    """How a process of a training says why it stopped: under ``launch``, in torchrun's error file for the
    launcher to choose the one line to show (``peer``: it was stopped from outside, or by another process's
    failure); else on stderr."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if os.environ.get(LAUNCHED) and path:
        Path(path).write_text(json.dumps({"message": line, "timestamp": int(time.time()), "peer": peer}))
    else:
        print(line, file=sys.stderr)


# ------------------------------------------------------------------------------------------------ the loop
@dataclass
class Progress:
    """The loop's own state, kept in each checkpoint's JSON so that a resumed run continues exactly."""

    step: int = 0
    horizon: int | None = None  # the schedule's length (cfg.steps, or estimated from --minutes)
    best: tuple[float, ...] = (math.inf,)  # the objective of best.safetensors
    best_result: dict = field(default_factory=dict)
    stale: int = 0  # evaluations since the best one
    train_s: float = 0.0  # this session's training time (the x axis of learning curves); evaluation not counted


def save(path: Path, task: Task, optimizer, p: Progress, result: dict, procs: Processes) -> None:
    if checkpoint.not_finite(dict(task.model.named_parameters())):
        raise TrainingError(f"weights are not finite at step {p.step}; {path.parent}/last.safetensors keeps the "
                            "last good state")  # fmt: skip
    scalars = {"horizon": p.horizon, "best": list(p.best), "best_metrics": p.best_result, "stale": p.stale,
               "metrics": result}  # fmt: skip
    carry = procs.gather(task.carry(), task.carry_dim)
    checkpoint.save(path, *checkpoint.training_state(task.model, optimizer, p.step, carry, scalars))


def restore_progress(task: Task, optimizer, run: Path, log: Log, procs: Processes) -> Progress:
    """Continue from RUN/checkpoints/last.safetensors: weights, optimizer, carried state, RNG and the loop's state."""
    tensors, meta = checkpoint.load(run / "checkpoints" / "last.safetensors")
    task.set_carry(procs.scatter(checkpoint.restore(tensors, meta, task.model, optimizer), task.carry_dim))
    best = tuple(meta["best"]) if isinstance(meta["best"], list) else (meta["best"],)
    log.truncate(meta["step"])
    log.echo(f"resuming {run} at step {meta['step']}")
    return Progress(meta["step"], meta["horizon"], best, meta.get("best_metrics", {}), meta.get("stale", 0))


def evaluate(task: Task, optimizer, p: Progress, run: Path, log: Log, procs: Processes) -> dict:
    """Evaluate and report in eval mode without gradients, rank the result, write the last (and maybe the best)
    checkpoint; returns the evaluation's record."""
    task.model.eval()
    with torch.no_grad():
        result = {"step": p.step, **task.evaluate(), "train_s": p.train_s}
        text = task.report(p.step)
    task.model.train()
    result, text = procs.same((result, text))
    score = tuple(task.objective(result))
    improved = score < p.best
    if improved:
        p.best, p.best_result, p.stale = score, result, 0
    else:
        p.stale += 1
    log.evaluation(result, text)
    save(run / "checkpoints" / "last.safetensors", task, optimizer, p, result, procs)
    if improved:
        save(run / "checkpoints" / "best.safetensors", task, optimizer, p, result, procs)
    return result


def step(task: Task, optimizer, cfg: TrainConfig, p: Progress, procs: Processes) -> tuple[float, float]:
    """One training step on batch ``p.step``: forward (under autocast for bf16), backward, clip; returns the
    global batch's loss and the gradient norm before clipping (the same on every process: the gradients are
    averaged first). The optimizer has not stepped yet: the caller does, if both are finite."""
    lr = lr_at(cfg, p.step, p.horizon, task.cycles)
    for group in optimizer.param_groups:
        group["lr"] = lr
    batch = task.batch(p.step)
    with autocast(cfg.precision):
        loss, mean = procs.loss(task, batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = nn.utils.clip_grad_norm_(task.model.parameters(), cfg.clip)
    # .item() waits for the step to finish (a sync point on GPU); kept on every step because a non-finite loss
    # must be caught before optimizer.step() writes it into the weights.
    return mean.item(), float(grad_norm)


def train(
    task: Task,
    cfg: TrainConfig,
    run: Path,
    resume: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> dict:
    """Train ``task.model`` until ``cfg.steps`` (the schedule's end) or ``cfg.minutes`` of wall clock.

    ``cfg.minutes`` counts wall clock, setting up and evaluations included, and is spent: without ``cfg.steps`` the
    schedule's end is re-estimated as steps are timed (Pace). ``train_s`` in each evaluation record counts only the
    training steps. Returns the last evaluation's metrics with "step", "stopped" ('steps', 'minutes' or
    'patience') and "best" (the best evaluation's metrics, the one in best.safetensors).
    """
    if cfg.steps is None and cfg.minutes is None:
        raise ValueError("give --steps or --minutes (or both)")
    check_precision(cfg.precision)
    deadline = None if cfg.minutes is None else time.monotonic() + 60 * cfg.minutes  # setting up counts too
    model, optimizer = task.model, make_optimizer(task.model, cfg)
    procs = Processes(task)
    run.mkdir(parents=True, exist_ok=True)
    log = Log(run, task.loss_name, progress and procs.w.writer, echo)
    p = restore_progress(task, optimizer, run, log, procs) if resume else Progress(horizon=cfg.steps)
    if procs.w.size > 1:  # dropout: each process its own stream, set by the run's seed, its rank and the step
        torch.manual_seed(cfg.seed * 1_000_003 + procs.w.rank * 7919 + p.step)
    if cfg.steps is None:  # a budget, not a schedule: each session's minutes set where its cosine ends (Pace)
        p.horizon = None
    log.bar.reset(total=p.horizon)
    log.bar.update(p.step)
    model.train()
    try:
        with stop_signals() as asked:
            result, stopped = loop(task, optimizer, cfg, p, run, log, deadline, asked, procs)
    finally:  # the curve, the bar and TensorBoard are closed however the loop ended
        log.close()
    return {**result, "stopped": stopped, "best": p.best_result}


def loop(task: Task, optimizer, cfg: TrainConfig, p: Progress, run: Path, log: Log, deadline: float | None,
         asked: list[int], procs: Processes) -> tuple[dict, str]:  # fmt: skip
    """The steps, until the schedule, the budget, patience or a stop signal ends them; returns the last evaluation
    and why it stopped. Every process takes the same decisions at the same steps (``procs.agree``, ``same``)."""
    window, pace = Window(), Pace(p.step)
    result, stopped, non_finite, evaluated_at = {}, "steps", 0, None
    budget = cfg.steps is None  # only the deadline ends it; past an estimated horizon the rate stays at min_lr
    while budget or p.step < p.horizon:
        late = deadline is not None and time.monotonic() + pace.last_eval_s >= deadline  # the final evaluation fits
        stop, late = procs.agree(bool(asked), late)
        if stop:  # Ctrl-C or SIGTERM: the step in flight has finished; keep it
            save(run / "checkpoints" / "last.safetensors", task, optimizer, p, result, procs)
            raise Interrupted(run, p.step)
        if late:
            stopped = "minutes"
            break
        t0 = time.monotonic()
        loss, grad_norm = step(task, optimizer, cfg, p, procs)
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            non_finite = skip(task, p, log, loss, grad_norm, non_finite + 1, run)
            continue
        non_finite = 0
        optimizer.step()
        p.step += 1
        log.bar.update(1)
        window.add(loss, time.monotonic() - t0)
        p.train_s += time.monotonic() - t0
        if budget and pace.due(p.step, cfg.log_every):
            p.horizon = procs.same(pace.horizon(p.step, deadline))
            log.bar.total = p.horizon
            log.bar.refresh()
        if p.step % cfg.log_every == 0:
            record = window.record(p.step, optimizer.param_groups[0]["lr"], grad_norm, task.tokens_per_step)
            log.write(record)
            log.bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_s']:,.0f}")
        if p.step % cfg.eval_every == 0:
            t_eval = time.monotonic()
            result, evaluated_at = evaluate(task, optimizer, p, run, log, procs), p.step
            pace.evaluated(time.monotonic() - t_eval)
            if cfg.patience is not None and p.stale >= cfg.patience:
                stopped = "patience"
                break
    if evaluated_at != p.step:
        result = evaluate(task, optimizer, p, run, log, procs)
    return result, stopped


class Pace:
    """With --minutes and no --steps: where the schedule ends, so that the budget is spent, not guessed once.

    The first estimate comes after ESTIMATE_STEPS steps of this session; then it is re-estimated at every log step
    from the pace since then (the first steps, slower while memory is allocated, no longer count), wall clock
    evaluations included. The cosine thus ends at the deadline, and the last evaluation is kept inside it."""

    def __init__(self, step: int):
        self.start, self.t_start = step, time.monotonic()
        self.ref: tuple[int, float] | None = None  # (step, time) after the first ESTIMATE_STEPS steps
        self.last_eval_s = 0.0  # what the final evaluation should take: the quickest so far (the first one also
        # pays one-time costs, such as importing matplotlib for loss.png)

    def evaluated(self, seconds: float) -> None:
        self.last_eval_s = min(self.last_eval_s, seconds) if self.last_eval_s else seconds

    def due(self, step: int, every: int) -> bool:
        if self.ref is None:
            return step - self.start >= ESTIMATE_STEPS
        return step % every == 0 and step - self.ref[0] >= ESTIMATE_STEPS

    def horizon(self, step: int, deadline: float) -> int:
        now = time.monotonic()
        if self.ref is None:
            per_step = (now - self.t_start) / (step - self.start)
            self.ref = (step, now)
        else:
            per_step = (now - self.ref[1]) / (step - self.ref[0])
        return step + max(1, int((deadline - now) / per_step))


class Window:
    """Training loss, steps and time since the last log line (evaluation time is not counted)."""

    def __init__(self):
        self.loss, self.steps, self.seconds = 0.0, 0, 0.0

    def add(self, loss: float, seconds: float) -> None:
        self.loss, self.steps, self.seconds = self.loss + loss, self.steps + 1, self.seconds + seconds

    def record(self, step: int, lr: float, grad_norm: float, tokens_per_step: int) -> dict:
        record = {"step": step, "loss": self.loss / self.steps, "lr": lr, "grad_norm": grad_norm,
                  "tokens_per_s": self.steps * tokens_per_step / self.seconds}  # fmt: skip
        self.__init__()
        return record


def skip(task: Task, p: Progress, log: Log, loss: float, grad_norm: float, in_a_row: int, run: Path) -> int:
    """A non-finite loss or gradient: the step is skipped (its batch is not retried) and the carried state reset;
    three in a row stop training with the last good checkpoint kept."""
    task.set_carry({})  # a non-finite state would poison the next windows too
    log.say(f"step {p.step}: loss {loss}, gradient norm {grad_norm}: skipped")
    if in_a_row >= 3:
        raise TrainingError(
            f"the loss was not finite for 3 steps in a row at step {p.step}; stopped. "
            f"{run / 'checkpoints' / 'last.safetensors'} keeps the last good state; try a lower --lr"
        )
    p.step += 1
    return in_a_row
