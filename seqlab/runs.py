"""The run directory's life cycle, written once for every task: create, config, resume, load, atomic writes, and
the marker a benchmark leaves on a run it has finished.

A run directory, whatever the task:
    config.json          {"task", "config" (the task's flat dataclass), what the task adds (its preprocessing, the
                         data's hash, ...), "versions"}; rewritten atomically when the task adds to it later
    checkpoints/         last.safetensors and best.safetensors (seqlab.checkpoint)
    metrics.jsonl, ...   what seqlab.train and the task write
    done.json            only in a benchmark's runs: the run finished, and how long it took

Every file seqlab writes for a user goes through ``atomic_write`` (defined beside the checkpoints, the lowest
floor, so that they use it too): a temporary name in the same folder, flushed to disk, then renamed over the
target, so a process killed at any moment leaves the old file or the new one, never a torn one.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn

from . import checkpoint
from .checkpoint import CheckpointError, atomic_write
from .data.errors import DataError

CONFIG = "config.json"
CHECKPOINTS = ("best", "last")


# ------------------------------------------------------------------------------------------------ writing
def write_text(path: str | Path, text: str) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, value) -> None:
    write_text(path, json.dumps(value, indent=1) + "\n")


def write_csv(path: str | Path, rows: list[dict]) -> None:
    """Rows of dicts as CSV, the first row's keys as the header."""
    import csv

    with atomic_write(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def save_figure(fig, path: str | Path, dpi: int = 110) -> None:
    """A matplotlib figure as PNG, atomically, and closed."""
    import matplotlib.pyplot as plt

    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)


def refuse_existing(path: str | Path, force: bool | None = False, flag: str = "--out") -> Path:
    """An output the user named: refused if it exists, unless ``force``. ``force=None``: the command has no --force
    (it creates a folder, or a plot beside another output), so the hint is to choose another ``flag``."""
    path = Path(path)
    if path.exists() and not force:
        hint = f"choose another {flag}" if force is None else "pass --force to replace it"
        raise FileExistsError(f"{path} exists; {hint}")
    return path


# ------------------------------------------------------------------------------------------------ processes
@dataclass(frozen=True)
class World:
    """This process's place among the processes of one training (torchrun's RANK, WORLD_SIZE, LOCAL_WORLD_SIZE):
    rank 0 alone writes the user's run directory."""

    rank: int = 0
    size: int = 1
    local_size: int = 1  # processes on this machine, which share its cores

    @property
    def writer(self) -> bool:
        return self.rank == 0


def world() -> World:
    """The World torchrun (or ``--nproc``) started this process in; World() when it runs alone."""
    env = os.environ
    return World(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_WORLD_SIZE", 1)))


def own(path: str | Path, copy: bool = True) -> Path:
    """Where this process writes ``path``: the path itself on rank 0; on any other rank, a private copy in a
    temporary folder removed when the process ends (with ``copy``, what exists of ``path`` is copied into it, so
    a resumed run reads what rank 0 reads). Every rank thus runs the same code on the same files, and only rank
    0's writes reach the user."""
    path = Path(path)
    w = world()
    if w.writer:
        return path
    scratch = Path(tempfile.mkdtemp(prefix=f"seqlab-rank{w.rank}-"))
    atexit.register(shutil.rmtree, scratch, True)
    mine = scratch / (path.name or "run")
    if copy and path.is_dir():
        shutil.copytree(path, mine, ignore=shutil.ignore_patterns(".*"))  # not the lock or temporary files
    return mine


# ------------------------------------------------------------------------------------------------ runs
def default_dir(task: str, model: str | None = None) -> Path:
    name = f"{task}-{model}" if model else task
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def create(out: str | Path | None, task: str, model: str | None = None, resumable: bool = True) -> Path:
    """A new run directory: ``out``, or runs/<task>-<model>-<time>. One rule for every task: a folder that exists
    and holds anything is refused (an empty one is used), so no run is ever written over."""
    run = Path(out) if out else default_dir(task, model)
    if not world().writer:  # rank 0 checks and creates the user's folder; the others write a private one
        run = own(run, copy=False)
    if run.exists() and (not run.is_dir() or any(run.iterdir())):
        hint = f", or continue it with --resume {run}" if resumable else ""
        raise FileExistsError(f"{run} exists; choose another --out{hint}")
    top = run.resolve()
    while not top.parent.exists():  # the outermost folder this call makes (runs/ for a default run directory)
        top = top.parent
    if not top.exists():
        _MADE[run.resolve()] = top
    run.mkdir(parents=True, exist_ok=True)
    return run


_MADE: dict[Path, Path] = {}  # run directory -> the outermost folder this process made for it


class RunLocked(OSError):
    """Another process is writing the run directory."""


LOCK = ".lock"


def remove_debris(run: Path) -> list[Path]:
    """Temporary files left by writes that a kill interrupted (``atomic_write``'s ``.<name>.<random>.tmp<suffix>``),
    in the run and its checkpoints folder; removed under the lock, when no write of this run can be in flight."""
    debris = [p for folder in (run, run / "checkpoints") if folder.is_dir() for p in folder.glob(".*.tmp*")]
    for p in debris:
        p.unlink(missing_ok=True)
    return debris


@contextmanager
def writing(run: Path, created: bool = False) -> Iterator[Path]:
    """Hold the run's write lock while the block runs: one writer per run directory.

    The lock is an OS lock (``flock``) on RUN/.lock, so it goes with the process however the process ends; a
    second writer is refused with one line naming the process that holds it. On entry, the debris of interrupted
    writes is removed. ``created``: this process made ``run`` just now; if the block fails before the first
    checkpoint, the directory is removed again, so a failed start never leaves a stub behind (and the same --out
    works on the next try)."""
    import fcntl

    run.mkdir(parents=True, exist_ok=True)
    fd = os.open(run / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise RunLocked(f"{run} is being written by process {holder}; wait for it to finish or stop it") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        remove_debris(run)
        yield run
    except BaseException:
        if created and not (run / "checkpoints" / "last.safetensors").exists():
            discard(run)
        raise
    finally:
        os.close(fd)  # releases the lock


def discard(run: Path) -> None:
    """Remove a run that failed before its first checkpoint: the folder if this process made it, else (an empty
    folder the user made) only what was written into it."""
    made = _MADE.pop(run.resolve(), None)
    if made is not None:
        shutil.rmtree(run, ignore_errors=True)
        folder = run.resolve().parent
        while folder != made.parent:  # folders made for it too (runs/), unless another run is in them by now
            try:
                folder.rmdir()
            except OSError:
                break
            folder = folder.parent
        return
    for p in run.iterdir():
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def versions() -> dict[str, str]:
    return {"torch": torch.__version__, "python": platform.python_version()}


def write_config(run: Path, task: str, cfg, **extra) -> dict:
    """config.json: the task, its config, what the task adds (preprocessing, data hash, ...) and versions."""
    meta = {"task": task, "format": FORMAT, "config": asdict(cfg), **extra, "versions": versions()}
    write_json(run / CONFIG, meta)
    return meta


def update_config(run: Path, **values) -> dict:
    """Add to config.json what is known only later (a threshold, the training time)."""
    meta = json.loads((run / CONFIG).read_text())
    meta.update(values)
    write_json(run / CONFIG, meta)
    return meta


FORMAT = 1  # config.json's layout; a run written by a seqlab whose format is newer is refused, not misread


def task_of(run: str | Path) -> str:
    """The task that wrote ``run`` (a run written before config.json named its task is a language model's),
    refusing a folder that is not a run and a run from a newer seqlab."""
    path = Path(run) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{run}: not a seqlab run (no {CONFIG})")
    try:
        saved = json.loads(path.read_text())
        task, fmt = saved.get("task", "lm"), saved.get("format", 1)
    except (ValueError, AttributeError) as e:
        raise CheckpointError(f"{path}: unreadable run config ({e})") from None
    if not isinstance(fmt, int) or fmt > FORMAT:
        raise CheckpointError(f"{run}: written by a newer seqlab (run format {fmt}; this one reads up to {FORMAT})")
    return task


def read_config(run: str | Path, task: str, config_cls) -> tuple:
    """A run directory's config.json -> (config_cls instance, the whole saved JSON), refusing another task's run.

    Fields the config no longer has are dropped, and fields it did not have yet take the values that
    ``config_cls.OLD_DEFAULTS`` gives (what such a run did), else the defaults, so runs written by an older seqlab
    still load; a run written before config.json named its task is a language model's (the first task seqlab had)."""
    path = Path(run) / CONFIG
    task_of(run)
    try:
        saved = json.loads(path.read_text())
        found = saved.get("task", "lm")
        if found != task:
            raise CheckpointError(f"{run}: a {found} run, not a {task} run")
        known = {f.name for f in fields(config_cls)}
        values = {**getattr(config_cls, "OLD_DEFAULTS", {}), **saved["config"]}
        return config_cls(**{k: v for k, v in values.items() if k in known}), saved
    except CheckpointError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{path}: unreadable run config ({e})") from None


def resume_config(run: str | Path, task: str, config_cls, now, check_steps: bool = False) -> tuple:
    """The resume preamble: the run's own config, with this session's budget (``now.minutes``) and precision
    (``now.precision``: checkpoints are float32, so a run moves between precisions), and nothing else of ``now``.
    With ``check_steps``, a schedule (``now.steps``) that differs from the run's is refused: the learning rate
    depends on it (tasks whose config has a default schedule leave this to the command line)."""
    cfg, saved = read_config(run, task, config_cls)
    steps = now.steps
    if check_steps and steps is not None and cfg.steps is not None and steps != cfg.steps:
        raise ValueError(f"--steps {steps} differs from the run's schedule ({cfg.steps}); resume keeps the run's")
    cfg.minutes = now.minutes
    if hasattr(now, "precision"):
        cfg.precision = now.precision
    return cfg, saved


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def data_sha256(path: str | Path | None) -> str | None:
    """What config.json records of a run's data file, so that resuming on changed data is refused; None for data
    given from Python, which the run does not hold."""
    return file_sha256(path) if path and Path(path).is_file() else None


def check_data(run: Path, path: str | Path, saved: dict) -> None:
    """Refuse to continue ``run`` on data it cannot have again: data given from Python, or a file that changed."""
    if not saved.get("data_sha256"):
        raise ValueError(f"{run}: trained from Python data, which the run does not hold; it cannot be resumed")
    if file_sha256(path) != saved["data_sha256"]:
        raise DataError(f"{path}: changed since the run started (SHA-256 differs); resume needs the same data")


# ------------------------------------------------------------------------------------------------ loading
@dataclass
class Loaded:
    """What ``load`` gives for every task: the model (eval mode, CPU), the run's config and its whole config.json,
    and the checkpoint's JSON metadata."""

    model: nn.Module
    cfg: object
    saved: dict
    meta: dict
    run: Path


def checkpoint_path(run: str | Path, which: str = "best", fall_back: bool = False) -> Path:
    """RUN/checkpoints/<which>.safetensors; with ``fall_back``, last when best does not exist yet."""
    if which not in CHECKPOINTS:
        raise ValueError(f"checkpoint must be best or last, got {which!r}")
    path = Path(run) / "checkpoints" / f"{which}.safetensors"
    if fall_back and not path.exists():
        path = path.with_name("last.safetensors")
    return path


def load(run: str | Path, task: str, config_cls, build: Callable[[object, dict], nn.Module], which: str = "best",
         fall_back: bool = False) -> Loaded:  # fmt: skip
    """Read config.json, build the model from it (``build(cfg, saved)``), restore a checkpoint's weights."""
    run = Path(run)
    cfg, saved = read_config(run, task, config_cls)
    model = build(cfg, saved)
    tensors, meta = checkpoint.load(checkpoint_path(run, which, fall_back))
    checkpoint.restore(tensors, meta, model)  # refuses a checkpoint whose shapes differ from the config's model
    return Loaded(model.eval(), cfg, saved, meta, run)


# ------------------------------------------------------------------------------------------------ benchmarks
DONE = "done.json"
LEGACY_DONE = ("bench.json", "done")  # the markers benchmarks left before there was one


def finished(run: Path) -> dict | None:
    """What a benchmark recorded when it finished ``run``, or None when it has not."""
    for name in (DONE, *LEGACY_DONE):
        path = run / name
        if path.is_file():
            text = path.read_text().strip()
            return json.loads(text) if text else {}
    return None


def once(run: Path, work: Callable, *args, **kwargs) -> dict:
    """``work(*args, **kwargs)`` (which writes ``run``) unless an earlier, interrupted benchmark finished it; a run cut
    short starts over from scratch. Returns the record of the finished run: {"seconds": its wall-clock time}."""
    done = finished(run)
    if done is not None:
        return done
    shutil.rmtree(run, ignore_errors=True)
    t0 = time.monotonic()
    work(*args, **kwargs)
    done = {"seconds": time.monotonic() - t0}
    write_json(run / DONE, done)
    return done


def machine() -> str:
    """The machine a figure was measured on, for every benchmark table: CPU, torch threads, torch version."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"
