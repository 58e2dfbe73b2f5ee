"""Opt-in diagnostics for the ``bptt`` backend: gate activations per step and ∂L/∂h_t, the vanishing-gradient signal.

    with record(model) as rec:
        out, _ = model(x, lengths=lengths)
        loss(out).backward()
    rec.gates["l0"]["f"]     # (B, T, H) forget gate of layer 0, zero past each sequence's length
    rec.grad_norm["l0"]      # (B, T) ||∂L/∂h_t||: the total gradient at h_t, through the output and through time

Keys are ``l{k}`` and ``l{k}_reverse``, prefixed by the module path when the recurrent layer sits inside a model.
Off by default; when off the cells receive ``slot=None`` and do no extra work. Recording keeps the saved gate
tensors alive and, in backward, one (T, B, H) buffer per layer.

Imports go one way: this module finds the layers and calls their public ``attach_recording``/``detach_recording``;
a layer only calls ``Recording.slot`` on whatever it was attached to, and never imports this module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .recurrent import Recurrent


class Recording:
    """What one recorded pass saw. gates[name][gate]: (B, T, H); grad_norm[name]: (B, T), filled by backward."""

    def __init__(self) -> None:
        self.gates: dict[str, dict[str, torch.Tensor]] = {}
        self.grad_norm: dict[str, torch.Tensor] = {}

    def slot(self, name: str, restore: Callable[[torch.Tensor], torch.Tensor]) -> Slot:
        """The mailbox for the layer-direction ``name``; ``restore`` maps its time-major tensors to (B, T, H)."""
        return Slot(self, name, restore)


class Slot:
    """One layer-direction's mailbox: the cell hands over time-major tensors in its own (sorted, maybe reversed)
    row and time order, and ``restore`` turns them into the caller's (B, T, H) layout."""

    def __init__(self, recording: Recording, name: str, restore: Callable[[torch.Tensor], torch.Tensor]):
        self.recording, self.name, self.restore = recording, name, restore

    def keep(self, **tensors: torch.Tensor) -> None:
        self.recording.gates[self.name] = {k: self.restore(v.detach()) for k, v in tensors.items()}

    def keep_grad(self, dh: torch.Tensor) -> None:
        self.recording.grad_norm[self.name] = self.restore(dh).norm(dim=-1)


@contextmanager
def record(module: nn.Module) -> Iterator[Recording]:
    """Record gates and ∂L/∂h_t of every seqlab recurrent layer in ``module`` (itself included).

    Under recording, ``backend="auto"`` resolves to ``bptt``; an explicit ``fused`` or ``reference`` is refused,
    since only our backward sees ∂L/∂h_t whole (a fused kernel's output gradient misses the path through time).
    """
    layers = [(name, m) for name, m in module.named_modules() if isinstance(m, Recurrent)]
    if not layers:
        raise ValueError(f"record: {type(module).__name__} contains no seqlab recurrent layer")
    for name, m in layers:
        if m.backend not in ("auto", "bptt"):
            raise ValueError(
                f"record: layer {name or type(m).__name__} uses backend={m.backend!r}; use 'bptt' or 'auto'"
            )
    rec = Recording()
    attached = []
    try:
        for name, m in layers:
            m.attach_recording(rec, f"{name}." if name else "")
            attached.append(m)
        yield rec
    finally:
        for m in attached:
            m.detach_recording()
