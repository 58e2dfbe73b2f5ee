"""Checkpoints: tensors in safetensors, everything else as JSON in the same file's metadata. No pickle anywhere, so
loading a checkpoint cannot run code.

One checkpoint is one file, written to a temporary name in the same folder, flushed to disk, then renamed over the
old one (``atomic_write``; ``os.replace`` is atomic on POSIX): a process killed at any moment leaves either the
previous checkpoint or the new one, never a torn file. Tensors are saved from CPU copies, so a checkpoint written
on a GPU loads on CPU.

Layout of the tensors: ``model.<name>`` (state_dict), ``optim.<param index>.<state key>`` (the optimizer's per-
parameter state), ``state.<name>`` (whatever the task carries between steps, e.g. the hidden state of truncated
BPTT) and ``rng.torch`` (the CPU generator). The JSON holds the step, the optimizer's param_groups and the task's
scalars.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file


class CheckpointError(ValueError):
    """A missing or unreadable checkpoint: the message names the file."""


def _cpu(t: torch.Tensor) -> torch.Tensor:
    # clone: safetensors refuses tensors that share memory (tied weights), and a view would save its whole base.
    return t.detach().to("cpu").contiguous().clone()


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """``with atomic_write(path) as tmp:`` write to ``tmp``; on leaving the block it replaces ``path`` whole.

    Every file seqlab writes for a user goes through here (seqlab.runs re-exports it for the tasks). The temporary
    file sits in the same folder (so the rename stays on one file system) and keeps ``path``'s suffix (numpy and
    matplotlib choose a format by it); it is flushed to disk before the rename. If the block raises, the temporary
    file is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order: the checksum kept in the file's
    metadata and checked on load, so bytes that rotted on disk are found instead of loaded."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write atomically: the old file at ``path`` stays whole until the new one is complete on disk."""
    tensors = {k: _cpu(v) for k, v in tensors.items()}
    metadata = {"seqlab": json.dumps(meta), "sha256": digest(tensors)}
    try:
        with atomic_write(path) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
    except SafetensorError as e:  # e.g. a full disk; the previous checkpoint is untouched
        raise OSError(f"{path}: could not write the checkpoint ({e}); the previous one is kept") from None


def load(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        tensors = load_file(str(path), device="cpu")
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        meta = json.loads(metadata["seqlab"])
    except (SafetensorError, OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: not a readable seqlab checkpoint ({e})") from None
    if "sha256" in metadata and digest(tensors) != metadata["sha256"]:  # checkpoints before checksums have none
        raise CheckpointError(f"{path}: corrupt checkpoint (its tensors do not match their checksum)")
    return tensors, meta


def not_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """The names of the floating-point tensors holding a NaN or an infinity: weights no checkpoint should hold."""
    return [k for k, v in tensors.items() if v.is_floating_point() and not v.isfinite().all()]


def training_state(model, optimizer, step: int, carry: dict[str, torch.Tensor], scalars: dict) -> tuple[dict, dict]:
    """Everything needed to continue exactly: weights, optimizer, carried state, RNG, step."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for index, state in opt["state"].items():
        for key, value in state.items():
            tensors[f"optim.{index}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    tensors.update({f"state.{k}": v for k, v in carry.items()})
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"step": step, "param_groups": opt["param_groups"], **scalars}
    return tensors, meta


def restore(tensors: dict, meta: dict, model, optimizer=None) -> dict[str, torch.Tensor]:
    """Load weights (and optimizer state and RNG when training resumes); returns the carried state tensors.
    Weights that are not finite are refused: a model made of them answers NaN to everything."""
    bad = not_finite({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if bad:
        raise CheckpointError(f"the checkpoint's weights are not finite ({', '.join(bad[:3])}); it cannot be used")
    try:
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    except RuntimeError as e:  # e.g. a vocabulary or a layer size that differs from the run's config
        detail = str(e).strip().splitlines()[-1].strip()
        raise CheckpointError(f"the checkpoint does not fit the model built from the run's config: {detail}") from None
    if optimizer is not None:
        state: dict[int, dict] = {}
        for k, v in tensors.items():
            if k.startswith("optim."):
                _, index, key = k.split(".", 2)
                state.setdefault(int(index), {})[key] = v
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        torch.set_rng_state(tensors["rng.torch"])
    return {k[6:]: v for k, v in tensors.items() if k.startswith("state.")}
