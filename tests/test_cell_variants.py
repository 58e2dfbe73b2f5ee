"""The LSTM and GRU variants on the bptt path (layer norm, zoneout, recurrent dropout): the hand-written backward
against the reference recurrence (float64 gradcheck, every combination, unequal lengths), the layer against its
reference backend (bidirectional, stacked, lengths, train and eval), and properties of each variant."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import seqlab
from seqlab.cells import reference
from seqlab.cells.gru_variants import VariantGRUFunction
from seqlab.cells.lstm_variants import VariantLSTMFunction
from seqlab.models.backbone import backbone

F64 = {"dtype": torch.float64}
T, B, H = 5, 4, 3
G = 4 * H
COMBOS = list(itertools.product([False, True], repeat=3))  # layer norm, zoneout, recurrent dropout


def function_inputs(norm: bool, zone: bool, rec: bool):
    torch.manual_seed(0)
    xw = torch.randn(T, B, G, **F64, requires_grad=True)
    h0, c0 = (torch.randn(B, H, **F64, requires_grad=True) for _ in range(2))
    w = (torch.randn(G, H, **F64) * 0.5).requires_grad_()
    ln = [(torch.randn(n, **F64) * 0.3 + (1 if k % 2 == 0 else 0)).requires_grad_() for k, n in enumerate((G, G, H, H))]
    masks = torch.bernoulli(torch.full((2, T, B, H), 0.3, **F64)) if zone else (None, None)
    m = torch.bernoulli(torch.full((B, H), 0.7, **F64)) / 0.7 if rec else None
    return [xw, h0, c0, w, *(ln if norm else [])], (*masks, m)


@pytest.mark.parametrize("norm, zone, rec", COMBOS)
@pytest.mark.parametrize("bs", [None, (4, 3, 3, 1, 1)], ids=["full", "lengths"])
def test_function_gradcheck_and_equals_reference(norm, zone, rec, bs):
    tensors, masks = function_inputs(norm, zone, rec)

    def ours(xw, h0, c0, w, *ln):
        ln = list(ln) if norm else [None] * 4
        return VariantLSTMFunction.apply(xw, h0, c0, w, *ln, *masks, bs, None, None)[:3]

    def spec(xw, h0, c0, w, *ln):
        ln = list(ln) if norm else [None] * 4
        return reference.variant_lstm_over(xw, h0, c0, w, *ln, *masks, bs)

    for a, b in zip(ours(*tensors), spec(*tensors), strict=True):
        torch.testing.assert_close(a, b)
    assert gradcheck(ours, tensors)
    if norm and zone and rec:
        assert gradgradcheck(ours, tensors)


def test_lstm_function_over_several_backward_windows(monkeypatch):
    """The backward computes its factors a window of steps at a time: with two steps per window and unequal
    lengths (rows leave inside a window), gradcheck still holds with every variant on."""
    from seqlab.cells import _steps, compiled

    monkeypatch.setitem(compiled._state, "enabled", False)  # the windows are the Python loop's
    monkeypatch.setattr(_steps, "CHUNK_ELEMENTS", 2 * B * 10 * H)
    tensors, masks = function_inputs(True, True, True)
    bs = (4, 3, 3, 1, 1)

    def ours(xw, h0, c0, w, *ln):
        return VariantLSTMFunction.apply(xw, h0, c0, w, *ln, *masks, bs, None, None)[:3]

    assert len(list(_steps.reverse_chunks(T, B * 10 * H))) == 3
    assert gradcheck(ours, tensors)


@pytest.mark.parametrize("norm, zone, rec", COMBOS)
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("bs", [None, (4, 3, 3, 1, 1)], ids=["full", "lengths"])
def test_gru_function_gradcheck_and_equals_reference(norm, zone, rec, bias, bs):
    torch.manual_seed(0)
    G3 = 3 * H
    xw, h0 = torch.randn(T, B, G3, **F64, requires_grad=True), torch.randn(B, H, **F64, requires_grad=True)
    w = (torch.randn(G3, H, **F64) * 0.5).requires_grad_()
    b_hh = [torch.randn(G3, **F64, requires_grad=True)] if bias else []
    ln = [(torch.randn(G3, **F64) * 0.3 + 1).requires_grad_(), (torch.randn(G3, **F64) * 0.1).requires_grad_()]
    z_h = torch.bernoulli(torch.full((T, B, H), 0.3, **F64)) if zone else None
    m = torch.bernoulli(torch.full((B, H), 0.7, **F64)) / 0.7 if rec else None
    tensors = [xw, h0, w, *b_hh, *(ln if norm else [])]

    def unpack(values):
        xw, h0, w, *rest = values
        b = rest.pop(0) if bias else None
        return (xw, h0, w, b, *(rest if norm else [None, None]))

    def ours(*values):
        return VariantGRUFunction.apply(*unpack(values), z_h, m, bs, None, None)[:2]

    for a, b in zip(ours(*tensors), reference.variant_gru_over(*unpack(tensors), z_h, m, bs), strict=True):
        torch.testing.assert_close(a, b)
    assert gradcheck(ours, tensors)
    if norm and zone and rec and bias:
        assert gradgradcheck(ours, tensors)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
@pytest.mark.parametrize("norm, zone, rec", [c for c in COMBOS if any(c)])
def test_layer_bptt_equals_reference_backend(cell, norm, zone, rec):
    """Stacked and bidirectional with unsorted lengths and an initial state, in training (the same masks: the same
    seed) and in eval (zoneout's expectation): outputs, final states and every gradient."""
    kw = {"layer_norm": norm, "zoneout": 0.3 if zone else 0.0, "recurrent_dropout": 0.4 if rec else 0.0}
    torch.manual_seed(0)
    layer = getattr(seqlab, cell)
    ours = layer(3, H, 2, bidirectional=True, **F64, **kw)
    spec = layer(3, H, 2, bidirectional=True, backend="reference", **F64, **kw)
    spec.load_state_dict(ours.state_dict())
    assert ours.effective_backend == "bptt"
    x = torch.randn(6, 4, 3, **F64, requires_grad=True)
    h0 = torch.randn(4, 4, H, **F64)
    hx = (h0, torch.randn(4, 4, H, **F64)) if cell == "LSTM" else h0
    lengths = torch.tensor([6, 2, 4, 1])
    for training in (True, False):
        runs = []
        for module in (ours, spec):
            module.train(training)
            torch.manual_seed(1)
            y, state = module(x, hx, lengths=lengths)
            state = state if cell == "LSTM" else (state,)
            loss = y.sum() + sum(s.sum() for s in state)
            runs.append((y, *state, *torch.autograd.grad(loss, [x, *module.parameters()])))
        for a, b in zip(*runs, strict=True):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_layer_norm_makes_the_gates_blind_to_the_scale_of_w_hh(cell):
    """LN_h normalises h W_hh^T: scaling W_hh by 10 leaves the outputs (nearly: ε) unchanged; without layer norm it
    changes them."""
    torch.manual_seed(0)
    x = torch.randn(8, 2, 3, **F64)
    for layer_norm in (True, False):
        m = getattr(seqlab, cell)(3, 16, layer_norm=layer_norm, **F64)
        before = m(x)[0]
        with torch.no_grad():
            m.weight_hh_l0.mul_(10)
        diff = (m(x)[0] - before).abs().max().item()
        assert (diff < 1e-3) if layer_norm else (diff > 1e-2)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_zoneout_keeps_a_fraction_p_of_units_and_eval_is_the_expectation(cell):
    torch.manual_seed(0)
    m = getattr(seqlab, cell)(4, 256, zoneout=0.3, **F64)
    x = torch.randn(20, 8, 4, **F64)
    y, _ = m(x)
    kept = (y[1:] == y[:-1]).double().mean().item()  # a zoned-out unit repeats its last value exactly
    assert abs(kept - 0.3) < 0.02
    m.eval()
    y1, _ = m(x)
    y2, _ = m(x)
    torch.testing.assert_close(y1, y2)  # deterministic
    assert (y1[1:] == y1[:-1]).double().mean().item() < 0.01


def test_recurrent_dropout_cuts_the_same_units_at_every_step():
    """An LSTM's first output depends on h_0 only through W_hh: the units of h_0 that the mask dropped get exactly
    zero gradient, and a fraction p of them is dropped; eval drops none. (The GRU passes h_0 on through z too.)"""
    torch.manual_seed(0)
    m = seqlab.LSTM(2, 200, recurrent_dropout=0.4, **F64)
    h0 = torch.randn(1, 3, 200, **F64, requires_grad=True)
    y, _ = m(torch.randn(1, 3, 2, **F64), (h0, torch.zeros_like(h0)))
    (g,) = torch.autograd.grad(y.sum(), h0)
    dropped = (g == 0).double().mean().item()
    assert abs(dropped - 0.4) < 0.05
    m.eval()
    y, _ = m(torch.randn(1, 3, 2, **F64), (h0, torch.zeros_like(h0)))
    (g,) = torch.autograd.grad(y.sum(), h0)
    assert bool((g != 0).all())


@pytest.mark.parametrize("cell, gate", [("LSTM", "f"), ("GRU", "z")])
def test_recording_sees_the_variant_cell(cell, gate):
    m = getattr(seqlab, cell)(3, H, layer_norm=True, zoneout=0.2, **F64)
    x = torch.randn(5, 2, 3, **F64, requires_grad=True)
    with seqlab.record(m) as rec:
        m(x)[0].sum().backward()
    assert rec.gates["l0"][gate].shape == (2, 5, H) and bool((rec.grad_norm["l0"] > 0).all())


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: seqlab.LSTM(3, 4, layer_norm=True, backend="fused"), ValueError, "run on the bptt backend"),
        (lambda: seqlab.LSTM(3, 4, zoneout=0.1, proj_size=2), ValueError, "cannot be combined with proj_size"),
        (lambda: seqlab.LSTM(3, 4, zoneout=1.0), ValueError, r"zoneout must be a probability in \[0, 1\)"),
        (lambda: seqlab.LSTM(3, 4, recurrent_dropout=-0.1), ValueError, "recurrent_dropout must be a probability"),
        (lambda: seqlab.LSTM(3, 4, layer_norm=1), TypeError, "layer_norm should be of type bool"),
        (lambda: torch.jit.trace(seqlab.LSTM(3, 4, layer_norm=True), torch.randn(2, 1, 3)), RuntimeError,
         "cannot record"),
        (lambda: backbone("rnn", channels=2, zoneout=0.1), ValueError, "variants of the LSTM and GRU"),
        (lambda: seqlab.GRU(3, 4, zoneout=0.5, backend="fused"), ValueError, "run on the bptt backend"),
    ],
)  # fmt: skip
def test_bad_variant_arguments_are_one_clear_error(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_lm_cli_refuses_variants_for_other_models(tmp_path, capsys):
    from seqlab.cli import main

    assert main(["lm", "train", "pydoc", "--model", "rnn", "--layer-norm", "--out", str(tmp_path / "run")]) != 0
    assert "--layer-norm: variants of the LSTM and GRU, not for rnn" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_second_order_through_the_layer_recomputes_xw_and_equals_reference(cell):
    """The layer hands the Function its layer-normalised input projection's inputs instead of keeping xw; a
    gradient penalty (create_graph) recomputes xw from them and equals the reference backend's."""
    kw = {"layer_norm": True, "zoneout": 0.2, "recurrent_dropout": 0.3}
    torch.manual_seed(0)
    ours = getattr(seqlab, cell)(3, H, 2, **F64, **kw)
    spec = getattr(seqlab, cell)(3, H, 2, backend="reference", **F64, **kw)
    spec.load_state_dict(ours.state_dict())
    x = torch.randn(5, 2, 3, **F64, requires_grad=True)
    results = []
    for module in (ours, spec):
        torch.manual_seed(1)
        y, _ = module(x)
        if module is ours:
            node = y.grad_fn
            while node is not None and not type(node).__name__.startswith("Variant"):
                node = node.next_functions[0][0]
            assert node is not None and not node.xw_saved
        (gx,) = torch.autograd.grad(y.pow(2).sum(), x, create_graph=True)
        results.append(torch.autograd.grad(gx.pow(2).sum(), [x, *module.parameters()]))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b)
