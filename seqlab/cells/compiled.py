"""The C++ time loops (loop.cpp): built with torch.utils.cpp_extension on first use, cached, and optional.

The first call in a fresh environment compiles loop.cpp (g++ and ninja, about half a minute) into torch's extension
cache (``TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``); later processes load the cached library in
milliseconds, and a change to loop.cpp or to the flags gives a new name, so a stale build is never loaded. Where it
cannot be built (no compiler), one warning says so and the cells run their Python loops, which compute the same
recurrence. ``SEQLAB_COMPILED=0`` turns the C++ loops off; ``use(False)`` does the same in-process (the tests run
both and compare).
"""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("loop.cpp")
_state: dict[str, object] = {"ops": None, "tried": False, "enabled": os.environ.get("SEQLAB_COMPILED", "1") != "0"}


def flags() -> list[str]:
    """Compiler flags: OpenMP (at::parallel_for splits a step's rows over torch's threads), and the vector ISA of
    the CPU kernels torch itself dispatches to here (AVX-512, AVX2, or portable code), so that ATen's Vectorized in
    loop.cpp has the same SIMD width and the same exp and tanh as torch.sigmoid and torch.tanh."""
    capability = torch.backends.cpu.get_cpu_capability()
    if capability == "AVX512":
        isa = ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma"]
    elif capability == "AVX2":
        isa = ["-mavx2", "-mfma"]
    else:
        return ["-O3", "-fopenmp"]
    return ["-O3", "-fopenmp", *isa, f"-DCPU_CAPABILITY={capability}", f"-DCPU_CAPABILITY_{capability}"]


def build():
    """Compile (or load from the cache) and return torch.ops.seqlab_loop; raises what the build raised."""
    from torch.utils import cpp_extension

    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(flags()).encode() + torch.__version__.encode())
    name = f"seqlab_loop_{digest.hexdigest()[:12]}"
    if not (Path(cpp_extension._get_build_directory(name, False)) / f"{name}.so").exists():
        print("seqlab: compiling the C++ time loops (once per environment, about 30 s)", file=sys.stderr, flush=True)
    cpp_extension.load(
        name=name,
        sources=[str(SOURCE)],
        extra_cflags=flags(),
        extra_ldflags=["-fopenmp"],  # at::parallel_for is OpenMP in torch's CPU builds: the same libgomp torch loaded
        is_python_module=False,
        verbose=False,
    )
    return torch.ops.seqlab_loop


def ops():
    """torch.ops.seqlab_loop, or None where the C++ loops are off or cannot be built (warned once)."""
    if not _state["enabled"]:
        return None
    if not _state["tried"]:
        _state["tried"] = True
        try:
            _state["ops"] = build()
        except Exception as e:  # no compiler, no ninja, a read-only cache: the Python loops still work
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            warnings.warn(f"seqlab: the C++ time loops could not be built ({first}); using the Python loops",
                          RuntimeWarning, stacklevel=2)  # fmt: skip
    return _state["ops"]


def enabled() -> bool:
    """Whether the C++ loops are on (SEQLAB_COMPILED, use()); they may still fail to build on first use."""
    return bool(_state["enabled"])


def usable(*tensors: torch.Tensor | None, slot=None, product=None):
    """The ops when the C++ loop can run these tensors: CPU, float32 or float64, contiguous, no recording slot
    (the gradient diagnostics read the Python loop's buffers), no reduced-precision products, not being traced
    by torch.compile. Else None: the caller runs its Python loop."""
    if slot is not None or product is not None or torch.compiler.is_compiling():
        return None
    for t in tensors:
        if t is not None and (t.device.type != "cpu" or t.dtype not in (torch.float32, torch.float64)):
            return None
    return ops()


def dense(*tensors: torch.Tensor | None) -> list[torch.Tensor | None]:
    """The tensors as the C++ loops read them: contiguous (None stays None, for an absent optional)."""
    return [t if t is None else t.contiguous() for t in tensors]


@contextmanager
def use(enabled: bool):
    """Run the block with the C++ loops on or off (tests compare the two)."""
    before = _state["enabled"]
    _state["enabled"] = enabled
    try:
        yield
    finally:
        _state["enabled"] = before
