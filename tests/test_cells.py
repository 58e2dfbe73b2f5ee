"""The hand-written backward of every cell against finite differences in float64, and the reference cells
against torch.nn's own cells: the two oracles everything else is tested with."""

import pytest
import torch
from torch.autograd import gradcheck

from seqlab.cells import GRUFunction, LSTMFunction, RNNFunction, reference

T, B, H = 6, 4, 3
F64 = {"dtype": torch.float64, "requires_grad": True}
# Rows sorted longest first, as the layer hands them over; one row of length 0 keeps its initial state.
BATCH_SIZES = [None, (4, 4, 3, 2, 2, 1), (3, 3, 2, 1, 0, 0)]


def inputs(gates: int):
    return torch.randn(T, B, gates * H, **F64), torch.randn(B, H, **F64), (torch.randn(gates * H, H, **F64) * 0.6)


@pytest.mark.parametrize("bs", BATCH_SIZES)
def test_lstm_gradcheck(bs):
    xw, h0, w = inputs(4)
    c0 = torch.randn(B, H, **F64)
    assert gradcheck(lambda *a: LSTMFunction.apply(*a, bs, None), (xw, h0, c0, w))


@pytest.mark.parametrize("bs", BATCH_SIZES)
@pytest.mark.parametrize("bias", [True, False])
def test_gru_gradcheck(bs, bias):
    xw, h0, w = inputs(3)
    b_hn = torch.randn(H, **F64) if bias else None
    args = (xw, h0, w) + ((b_hn,) if bias else ())
    assert gradcheck(lambda x, h, w, *b: GRUFunction.apply(x, h, w, b[0] if b else None, bs, None), args)


@pytest.mark.parametrize("bs", BATCH_SIZES)
@pytest.mark.parametrize("relu", [False, True])
def test_rnn_gradcheck(bs, relu):
    xw, h0, w = inputs(1)
    assert gradcheck(lambda x, h, w: RNNFunction.apply(x, h, w, relu, bs, None), (xw, h0, w))


def test_padded_positions_are_zero_and_final_state_is_each_rows_own():
    xw, h0, w = inputs(4)
    c0 = torch.randn(B, H, **F64)
    bs = (3, 3, 2, 1, 0, 0)  # lengths 4, 3, 2, 0
    h, h_n, _ = LSTMFunction.apply(xw, h0, c0, w, bs, None)
    lengths = [4, 3, 2, 0]
    for row, n in enumerate(lengths):
        assert torch.all(h[n:, row] == 0)
        assert torch.equal(h_n[row], h[n - 1, row] if n else h0[row])


@pytest.mark.parametrize(
    "ours, theirs, gates",
    [
        (reference.lstm_cell, torch.nn.LSTMCell, 4),
        (reference.gru_cell, torch.nn.GRUCell, 3),
        (reference.rnn_tanh_cell, lambda i, h: torch.nn.RNNCell(i, h, nonlinearity="tanh"), 1),
        (reference.rnn_relu_cell, lambda i, h: torch.nn.RNNCell(i, h, nonlinearity="relu"), 1),
    ],
)
def test_reference_cells_equal_torch_cells(ours, theirs, gates):
    cell = theirs(5, H).double()
    x, h, c = torch.randn(B, 5).double(), torch.randn(B, H).double(), torch.randn(B, H).double()
    weights = (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    if gates == 4:
        got = ours(x, (h, c), *weights)
        want = cell(x, (h, c))
    else:
        got = ours(x, (h,), *weights)
        want = (cell(x, h),)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w)


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch build has no oneDNN")
def test_step_product_prepacked_equals_addmm(monkeypatch):
    from seqlab.cells import _steps

    monkeypatch.setattr(_steps, "PACK_MIN_ELEMENTS", 0)
    w, x, bias = torch.randn(24, 8), torch.randn(5, 8), torch.randn(24)
    add = torch.randn(5, 48)[:, :24]  # strided, as a slice of xw is
    step = _steps.StepProduct(w, rows_hint=5)
    assert step.packed is not None
    out = torch.empty(5, 24)
    torch.testing.assert_close(step(x, out, add=add), torch.addmm(add, x, w.t()))
    torch.testing.assert_close(step(x, out, bias=bias), torch.addmm(bias, x, w.t()))
    torch.testing.assert_close(step(x[:2], out[:2]), x[:2] @ w.t())  # fewer rows than the hint
    assert _steps.StepProduct(w.double(), 5).packed is None  # oneDNN has no float64 GEMM


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch build has no oneDNN")
@pytest.mark.parametrize("cls, torch_cls", [("LSTM", "LSTM"), ("GRU", "GRU"), ("RNN", "RNN")])
def test_cells_on_the_prepacked_path_equal_torch(monkeypatch, cls, torch_cls):
    """Weights of 2^17 elements and more take oneDNN's GEMM; force it at a small size and compare with torch.nn."""
    import seqlab
    from seqlab.cells import _steps

    monkeypatch.setattr(_steps, "PACK_MIN_ELEMENTS", 0)
    ref = getattr(torch.nn, torch_cls)(5, 6, num_layers=2, bidirectional=True)
    ours = getattr(seqlab, cls)(5, 6, num_layers=2, bidirectional=True, backend="bptt")
    ours.load_state_dict(ref.state_dict())
    lengths = torch.tensor([7, 3, 7, 1])
    x1 = torch.randn(7, 4, 5, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    y1, _ = ours(x1, lengths=lengths)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x2, lengths, enforce_sorted=False)
    y2 = torch.nn.utils.rnn.pad_packed_sequence(ref(packed)[0], total_length=7)[0]
    torch.testing.assert_close(y1, y2, atol=1e-5, rtol=1e-4)
    y1.square().sum().backward()
    y2.square().sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-5, rtol=1e-4)
    for p, q in zip(ours.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-5, rtol=1e-4)
