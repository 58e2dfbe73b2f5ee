"""The C++ time loops (seqlab/cells/loop.cpp) against the Python loops they replace and the reference recurrence:
both paths run here, with every variant combination, small batches (the row-by-row product) and large ones
(ATen's GEMM, oneDNN's packed weight), unequal lengths, both directions, float32 and float64 gradcheck."""

from __future__ import annotations

import itertools
import shutil
import warnings

import pytest
import torch
from torch.autograd import gradcheck

import seqlab
from seqlab.cells import compiled, reference
from seqlab.cells._steps import PACK_MIN_ELEMENTS
from seqlab.cells.gru_variants import VariantGRUFunction
from seqlab.cells.lstm_variants import VariantLSTMFunction

F64 = {"dtype": torch.float64}
COMBOS = list(itertools.product([False, True], repeat=3))  # layer norm, zoneout, recurrent dropout


@pytest.fixture(scope="module", autouse=True)
def loop_ops():
    """The C++ loop must build wherever a compiler is present (CI has g++): a build failure there is a failure."""
    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("no C++ compiler on this machine: only the Python loops run")
    return compiled.build()


def run(module, x, lengths, native: bool):
    """Outputs, final state and every gradient of one forward and backward, with the C++ loop on or off; the
    random masks (zoneout, recurrent dropout) are drawn from the same seed both times."""
    torch.manual_seed(1)
    with compiled.use(native):
        module.zero_grad()
        x = x.detach().clone().requires_grad_()
        inp = x if lengths is None else torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
        y, state = module(inp)
        if lengths is not None:
            y = torch.nn.utils.rnn.pad_packed_sequence(y)[0]
        state = state if isinstance(state, tuple) else (state,)
        ((y**2).sum() + sum(s.sum() * (1.3 - 0.6 * k) for k, s in enumerate(state))).backward()
        return [y, *state, x.grad] + [p.grad for p in module.parameters()]


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
@pytest.mark.parametrize("norm, zone, rec", COMBOS)
@pytest.mark.parametrize("batch, lengths", [(3, None), (9, [7, 3, 5, 1, 7, 2, 6, 4, 7])], ids=["rows", "gemm"])
def test_cpp_loop_equals_python_loop_float64(cell, norm, zone, rec, batch, lengths):
    torch.manual_seed(0)
    m = getattr(seqlab, cell)(5, 11, num_layers=2, bidirectional=True, layer_norm=norm, zoneout=0.2 * zone,
                              recurrent_dropout=0.3 * rec, backend="bptt", **F64)  # fmt: skip
    x = torch.randn(7, batch, 5, **F64)
    for a, b in zip(run(m, x, lengths, True), run(m, x, lengths, False), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)  # rounding, amplified by LN


@pytest.mark.parametrize("cell, gates", [("LSTM", 4), ("GRU", 3)])
@pytest.mark.parametrize("packed", [False, True], ids=["mm", "packed"])
def test_cpp_loop_equals_python_loop_float32_and_in_eval(cell, gates, packed):
    """float32 to rounding (layer norm's sums run in another order; gradients to 1e-5 of their largest), with
    the oneDNN-packed product at the larger width; eval mode uses zoneout's expectation and no dropout."""
    hidden = 2 * int((PACK_MIN_ELEMENTS / gates) ** 0.5) if packed else 64  # W_hh of 2^17 elements or more is packed
    torch.manual_seed(0)
    m = getattr(seqlab, cell)(8, hidden, layer_norm=True, zoneout=0.1, recurrent_dropout=0.2, backend="bptt")
    x = torch.randn(6, 12, 8)
    for a, b in zip(run(m, x, None, True), run(m, x, None, False), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * b.abs().max().item())
    m.eval()
    with torch.no_grad(), compiled.use(True):
        y1 = m(x)[0]
    with torch.no_grad(), compiled.use(False):
        y2 = m(x)[0]
    torch.testing.assert_close(y1, y2, rtol=2e-5, atol=2e-5)


def check_against_reference(ours, spec, tensors):
    """On the C++ loop: the Function's outputs equal the reference recurrence's, and float64 gradcheck holds."""
    with compiled.use(True):
        for a, b in zip(ours(*tensors), spec(*tensors), strict=True):
            torch.testing.assert_close(a, b)
        assert gradcheck(ours, tensors)


@pytest.mark.parametrize("norm, zone, rec", COMBOS)
@pytest.mark.parametrize("B, bs", [(4, (4, 3, 3, 1, 1)), (7, (7, 7, 6, 5, 2))], ids=["rows", "gemm"])
def test_cpp_loop_gradcheck_against_the_reference(norm, zone, rec, B, bs):
    T, H = 5, 3
    G = 4 * H
    torch.manual_seed(0)
    xw = torch.randn(T, B, G, **F64, requires_grad=True)
    h0, c0 = (torch.randn(B, H, **F64, requires_grad=True) for _ in range(2))
    w = (torch.randn(G, H, **F64) * 0.5).requires_grad_()
    ln = [(torch.randn(n, **F64) * 0.3 + (1 - k % 2)).requires_grad_() for k, n in enumerate((G, G, H, H))]
    z = torch.bernoulli(torch.full((2, T, B, H), 0.3, **F64)) if zone else (None, None)
    m = torch.bernoulli(torch.full((B, H), 0.7, **F64)) / 0.7 if rec else None
    tensors = [xw, h0, c0, w, *(ln if norm else [])]

    def ours(xw, h0, c0, w, *ln):
        ln = list(ln) if norm else [None] * 4
        return VariantLSTMFunction.apply(xw, h0, c0, w, *ln, *z, m, bs, None, None)[:3]

    def spec(xw, h0, c0, w, *ln):
        ln = list(ln) if norm else [None] * 4
        return reference.variant_lstm_over(xw, h0, c0, w, *ln, *z, m, bs)

    check_against_reference(ours, spec, tensors)


@pytest.mark.parametrize("norm, zone, rec", COMBOS)
@pytest.mark.parametrize("B, bs", [(4, (4, 3, 3, 1, 1)), (7, (7, 7, 6, 5, 2))], ids=["rows", "gemm"])
def test_cpp_gru_loop_gradcheck_against_the_reference(norm, zone, rec, B, bs):
    T, H = 5, 3
    G = 3 * H
    torch.manual_seed(0)
    xw = torch.randn(T, B, G, **F64, requires_grad=True)
    h0 = torch.randn(B, H, **F64, requires_grad=True)
    w, b_hh = (torch.randn(G, H, **F64) * 0.5).requires_grad_(), torch.randn(G, **F64, requires_grad=True)
    ln = [(torch.randn(G, **F64) * 0.3 + (1 - k)).requires_grad_() for k in range(2)]
    z = torch.bernoulli(torch.full((T, B, H), 0.3, **F64)) if zone else None
    m = torch.bernoulli(torch.full((B, H), 0.7, **F64)) / 0.7 if rec else None
    tensors = [xw, h0, w, b_hh, *(ln if norm else [])]

    def ours(xw, h0, w, b_hh, *ln):
        ln = list(ln) if norm else [None] * 2
        return VariantGRUFunction.apply(xw, h0, w, b_hh, *ln, z, m, bs, None, None)[:2]

    def spec(xw, h0, w, b_hh, *ln):
        ln = list(ln) if norm else [None] * 2
        return reference.variant_gru_over(xw, h0, w, b_hh, *ln, z, m, bs)

    check_against_reference(ours, spec, tensors)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_zoneout_in_the_cpp_loop_keeps_units_bit_for_bit(cell):
    """A zoned-out unit repeats its previous value exactly (lerp from the nearer end, as torch.lerp)."""
    torch.manual_seed(0)
    m = getattr(seqlab, cell)(4, 256, zoneout=0.3, backend="bptt")
    with compiled.use(True):
        y, _ = m(torch.randn(20, 8, 4))
    assert abs((y[1:] == y[:-1]).double().mean().item() - 0.3) < 0.02


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_without_a_build_the_python_loop_runs_after_one_warning(monkeypatch, cell):
    def broken():
        raise RuntimeError("Error building extension 'seqlab_loop': g++ not found\nmore lines")

    monkeypatch.setattr(compiled, "build", broken)
    monkeypatch.setitem(compiled._state, "tried", False)
    monkeypatch.setitem(compiled._state, "ops", None)
    torch.manual_seed(0)
    m = getattr(seqlab, cell)(3, 5, layer_norm=True, backend="bptt")
    x = torch.randn(4, 2, 3)
    with pytest.warns(RuntimeWarning, match="could not be built .*g\\+\\+ not found.*using the Python loops"):
        y = m(x)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once, not at every call
        torch.testing.assert_close(m(x)[0], y)
    with compiled.use(False):
        torch.testing.assert_close(m(x)[0], y)
