"""Checkpoints: tensors in safetensors, everything else as JSON in the same file's metadata. No pickle anywhere, so
loading a checkpoint cannot run code.

One checkpoint is one file, written to a temporary name in the same folder, flushed to disk, then renamed over the
old one (``os.replace`` is atomic on POSIX): a process killed at any moment leaves either the previous checkpoint or
the new one, never a torn file. Tensors are saved from CPU copies, so a checkpoint written on a GPU loads on CPU.

Layout of the tensors: ``model.<name>`` (state_dict), ``optim.<param index>.<state key>`` (the optimizer's per-
parameter state), ``state.<name>`` (whatever the task carries between steps, e.g. the hidden state of truncated
BPTT) and ``rng.torch`` (the CPU generator). The JSON holds the step, the optimizer's param_groups and the task's
scalars.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file


class CheckpointError(ValueError):
    """A missing or unreadable checkpoint: the message names the file."""


def _cpu(t: torch.Tensor) -> torch.Tensor:
    # clone: safetensors refuses tensors that share memory (tied weights), and a view would save its whole base.
    return t.detach().to("cpu").contiguous().clone()


def save(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write atomically: the old file at ``path`` stays whole until the new one is complete on disk."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: _cpu(v) for k, v in tensors.items()}, tmp, metadata={"seqlab": json.dumps(meta)})
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        tensors = load_file(str(path), device="cpu")
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["seqlab"])
    except (SafetensorError, OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: not a readable seqlab checkpoint ({e})") from None
    return tensors, meta


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
    """Load weights (and optimizer state and RNG when training resumes); returns the carried state tensors."""
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


def read_run(run, task: str, config_cls) -> tuple:
    """A run directory's config.json -> (config_cls instance, the whole saved JSON), refusing another task's run.

    Fields the config no longer has are dropped, so runs written by an older seqlab still load."""
    from dataclasses import fields

    path = Path(run) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{run}: not a seqlab run (no config.json)")
    try:
        saved = json.loads(path.read_text())
        found = saved.get("task", "lm")
        if found != task:
            raise CheckpointError(f"{run}: a {found} run, not a {task} run")
        known = {f.name for f in fields(config_cls)}
        return config_cls(**{k: v for k, v in saved["config"].items() if k in known}), saved
    except CheckpointError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{path}: unreadable run config ({e})") from None
