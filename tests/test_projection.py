"""LSTM with proj_size (h_t = (o_t ⊙ tanh c_t) W_hr^T) on every backend, against torch.nn.LSTM with the same weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.autograd import gradcheck
from torch.nn.utils.rnn import pack_padded_sequence

import seqlab
from seqlab.cells import LSTMFunction, _steps

F64 = {"dtype": torch.float64}
I, H, P = 3, 5, 2


def pair(backend: str, **kwargs):
    torch.manual_seed(0)
    ours = seqlab.LSTM(I, H, proj_size=P, backend=backend, **F64, **kwargs)
    ref = nn.LSTM(I, H, proj_size=P, **F64, **kwargs)
    ref.load_state_dict(ours.state_dict())  # torch.nn's keys, weight_hr_l* included, both ways
    return ours, ref


def test_parameters_are_torch_nn_s():
    ours, ref = pair("auto", num_layers=2, bidirectional=True)
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [(n, p.shape) for n, p in ref.named_parameters()]
    assert "proj_size=2" in repr(ours)


@pytest.mark.parametrize("backend", ["fused", "bptt", "reference"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("lengths", [None, [6, 2, 4, 1]])
@pytest.mark.parametrize("with_hx", [False, True])
def test_projected_lstm_equals_torch(backend, bidirectional, lengths, with_hx):
    """Outputs, final (h, c) and every gradient; with lengths torch.nn runs the PackedSequence."""
    ours, ref = pair(backend, num_layers=2, bidirectional=bidirectional)
    D, B, T = 2 if bidirectional else 1, 4, 6
    x = torch.randn(T, B, I, **F64, requires_grad=True)
    hx = (torch.randn(2 * D, B, P, **F64), torch.randn(2 * D, B, H, **F64)) if with_hx else None
    y, (h, c) = ours(x, hx, lengths=None if lengths is None else torch.tensor(lengths))
    if lengths is None:
        y_ref, (h_ref, c_ref) = ref(x, hx)
    else:
        packed = pack_padded_sequence(x, torch.tensor(lengths), enforce_sorted=False)
        out, (h_ref, c_ref) = ref(packed, hx)
        y_ref = nn.utils.rnn.pad_packed_sequence(out, total_length=T)[0]
    assert y.shape == (T, B, D * P) and h.shape == (2 * D, B, P) and c.shape == (2 * D, B, H)
    for a, b in ((y, y_ref), (h, h_ref), (c, c_ref)):
        torch.testing.assert_close(a, b)
    weights = torch.randn_like(y)
    grads = torch.autograd.grad((y * weights).sum() + h.sum() + c.sum(), [x, *ours.parameters()])
    grads_ref = torch.autograd.grad((y_ref * weights).sum() + h_ref.sum() + c_ref.sum(), [x, *ref.parameters()])
    for a, b in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("bs", [None, (4, 3, 3, 1, 1)])
def test_projected_function_gradcheck_over_several_chunks(monkeypatch, bs):
    monkeypatch.setattr(_steps, "CHUNK_ELEMENTS", 2 * 4 * 5 * H)  # two steps per backward window
    T, B = 5, 4
    xw = torch.randn(T, B, 4 * H, **F64, requires_grad=True)
    h0, c0 = torch.randn(B, P, **F64, requires_grad=True), torch.randn(B, H, **F64, requires_grad=True)
    w_hh = (torch.randn(4 * H, P, **F64) * 0.5).requires_grad_()
    w_hr = (torch.randn(P, H, **F64) * 0.5).requires_grad_()
    assert gradcheck(lambda *a: LSTMFunction.apply(*a, bs, None, None)[:3], (xw, h0, c0, w_hh, w_hr))


def test_projected_batch_first_unbatched_and_float32():
    ours, ref = pair("bptt", batch_first=True)
    ours, ref = ours.float(), ref.float()
    x = torch.randn(3, 7, I)
    torch.testing.assert_close(ours(x)[0], ref(x)[0])
    torch.testing.assert_close(ours(x[0])[0], ref(x[0])[0])
    auto = seqlab.LSTM(I, H, proj_size=P)
    assert auto.effective_backend == "bptt"  # training: faster than PyTorch's native projected LSTM
    with torch.no_grad():
        assert auto.effective_backend == "fused"  # inference: PyTorch's own op, as torch.nn runs


def test_projected_recording_and_trace():
    ours, ref = pair("bptt")
    x = torch.randn(4, 2, I, **F64)
    with seqlab.record(ours) as rec:
        ours(x.requires_grad_())[0].sum().backward()
    assert rec.gates["l0"]["h"].shape == (2, 4, P) and rec.gates["l0"]["c"].shape == (2, 4, H)
    assert rec.grad_norm["l0"].shape == (2, 4) and bool((rec.grad_norm["l0"] > 0).all())
    traced = torch.jit.trace(ours.eval(), (x.detach(),))
    other = torch.randn(9, 3, I, **F64)  # another length and batch than traced
    torch.testing.assert_close(traced(other)[0], ref(other)[0])
