"""The hand-written backward of every cell against finite differences in float64, and the reference cells
against torch.nn's own cells: the two oracles everything else is tested with."""

import sys

import pytest
import torch
from torch import nn
from torch.autograd import gradcheck
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import seqlab
from seqlab.cells import GRUFunction, LSTMFunction, RNNFunction, _steps, compiled, reference

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
    assert gradcheck(lambda *a: LSTMFunction.apply(*a, None, bs, None, None)[:3], (xw, h0, c0, w))


@pytest.mark.parametrize("bs", BATCH_SIZES)
@pytest.mark.parametrize("bias", [True, False])
def test_gru_gradcheck(bs, bias):
    xw, h0, w = inputs(3)
    b_hn = torch.randn(H, **F64) if bias else None
    args = (xw, h0, w) + ((b_hn,) if bias else ())
    assert gradcheck(lambda x, h, w, *b: GRUFunction.apply(x, h, w, b[0] if b else None, bs, None, None)[:2], args)


@pytest.mark.parametrize("bs", BATCH_SIZES)
@pytest.mark.parametrize("relu", [False, True])
def test_rnn_gradcheck(bs, relu):
    xw, h0, w = inputs(1)
    assert gradcheck(lambda x, h, w: RNNFunction.apply(x, h, w, relu, bs, None, None), (xw, h0, w))


def test_padded_positions_are_zero_and_final_state_is_each_rows_own():
    xw, h0, w = inputs(4)
    c0 = torch.randn(B, H, **F64)
    bs = (3, 3, 2, 1, 0, 0)  # lengths 4, 3, 2, 0
    h, h_n, *_ = LSTMFunction.apply(xw, h0, c0, w, None, bs, None, None)
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


# ------------------------------------------------------------------------------------------------ backward chunks
# The LSTM and GRU backward take their per-step factors in windows of at most CHUNK_ELEMENTS (2^20): one window on
# any small test, several on every real training step. SMALL_CHUNK makes the windows two steps long here: the factors
# are B·5H = 75 (LSTM) and B·6H = 90 (GRU) elements per step with B = 5, H = 3.
SMALL_CHUNK = 180
# Sorted longest first, as the layer hands them over: rows end at steps 8, 6, 3 and 1, and the last never starts.
CHUNK_LENGTHS = (9, 7, 4, 2, 0)


def batch_sizes_of(lengths) -> tuple[int, ...]:
    return tuple(sum(n > t for n in lengths) for t in range(max(lengths)))


def small_chunks(monkeypatch, function) -> list[list[tuple[int, int]]]:
    """Shrink the backward's windows to SMALL_CHUNK elements; returns, per backward call of ``function``, the
    windows it walked (read where the cell's module looks ``reverse_chunks`` up, so they are the ones it used).
    The windows are the Python loop's: the C++ loop (tests/test_compiled_loop.py) is turned off here."""
    monkeypatch.setitem(compiled._state, "enabled", False)
    monkeypatch.setattr(_steps, "CHUNK_ELEMENTS", SMALL_CHUNK)
    calls = []

    def spy(T, per_step):
        calls.append([])
        for window in _steps.reverse_chunks(T, per_step):
            calls[-1].append(window)
            yield window

    monkeypatch.setattr(sys.modules[function.__module__], "reverse_chunks", spy)
    return calls


def assert_rows_left_across_chunks(calls, lengths) -> None:
    """Every backward walked the same several windows, and the rows' last steps fall in at least three of them, so
    rows leave the batch between chunks (and the chunk code cannot quietly fall back to one window)."""
    assert calls, "the backward never asked for its chunks"
    windows = calls[0]
    assert all(c == windows for c in calls)
    assert len(windows) >= 3, windows
    ends = [n - 1 for n in lengths if n > 0]
    chunk_of_end = {i for e in ends for i, (t0, t1) in enumerate(windows) if t0 <= e < t1}
    assert len(chunk_of_end) >= 3, (windows, ends)


def chunk_inputs(gates: int):
    bs = batch_sizes_of(CHUNK_LENGTHS)
    T, B = len(bs), len(CHUNK_LENGTHS)
    xw, h0, w = torch.randn(T, B, gates * H, **F64), torch.randn(B, H, **F64), torch.randn(gates * H, H, **F64) * 0.6
    return bs, xw, h0, w


def test_lstm_gradcheck_over_several_backward_chunks(monkeypatch):
    calls = small_chunks(monkeypatch, LSTMFunction)
    bs, xw, h0, w = chunk_inputs(4)
    c0 = torch.randn(len(CHUNK_LENGTHS), H, **F64)
    assert gradcheck(lambda *a: LSTMFunction.apply(*a, None, bs, None, None)[:3], (xw, h0, c0, w))
    assert_rows_left_across_chunks(calls, CHUNK_LENGTHS)


def test_gru_gradcheck_over_several_backward_chunks(monkeypatch):
    calls = small_chunks(monkeypatch, GRUFunction)
    bs, xw, h0, w = chunk_inputs(3)
    b_hn = torch.randn(H, **F64)
    assert gradcheck(lambda *a: GRUFunction.apply(*a, bs, None, None)[:2], (xw, h0, w, b_hn))
    assert_rows_left_across_chunks(calls, CHUNK_LENGTHS)


@pytest.mark.parametrize("relu", [False, True])
def test_rnn_gradcheck_over_several_backward_chunks(monkeypatch, relu):
    """The RNN backward has no windows (φ'_t ⊙ dh_t is one kernel per step, nothing to take ahead): same lengths
    and initial state as the others. Should it start chunking, this test must spy on it too."""
    assert not hasattr(sys.modules[RNNFunction.__module__], "reverse_chunks")
    monkeypatch.setattr(_steps, "CHUNK_ELEMENTS", SMALL_CHUNK)
    bs, xw, h0, w = chunk_inputs(1)
    assert gradcheck(lambda *a: RNNFunction.apply(*a, relu, bs, None, None), (xw, h0, w))


LAYERS = {
    "lstm": (seqlab.LSTM, nn.LSTM, {}, LSTMFunction),
    "gru": (seqlab.GRU, nn.GRU, {}, GRUFunction),
    "rnn_tanh": (seqlab.RNN, nn.RNN, {"nonlinearity": "tanh"}, RNNFunction),
    "rnn_relu": (seqlab.RNN, nn.RNN, {"nonlinearity": "relu"}, RNNFunction),
}


@pytest.mark.parametrize("cell", list(LAYERS))
def test_bptt_layer_over_several_backward_chunks_equals_torch(monkeypatch, cell):
    """The layer on bptt with small chunks, unsorted lengths, both directions and an initial state: outputs, final
    states and every gradient equal torch.nn on a PackedSequence."""
    ours_cls, torch_cls, extra, function = LAYERS[cell]
    calls = small_chunks(monkeypatch, function) if function is not RNNFunction else None
    I = 2
    lengths = torch.tensor([4, 9, 1, 7, 2])  # sorted 9, 7, 4, 2, 1: rows end at steps 8, 6, 3, 1, 0
    T, B = int(lengths.max()), len(lengths)
    ref = torch_cls(I, H, bidirectional=True, dtype=torch.float64, **extra)
    ours = ours_cls(I, H, bidirectional=True, dtype=torch.float64, backend="bptt", **extra)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(T, B, I, dtype=torch.float64)
    hx = [torch.randn(2, B, H, dtype=torch.float64) for _ in range(2 if cell == "lstm" else 1)]
    runs = []
    for module in (ours, ref):
        xi, hi = x.clone().requires_grad_(), [h.clone().requires_grad_() for h in hx]
        arg = tuple(hi) if cell == "lstm" else hi[0]
        if module is ours:
            y, s = module(xi, arg, lengths=lengths)
        else:
            y, s = module(pack_padded_sequence(xi, lengths, enforce_sorted=False), arg)
            y = pad_packed_sequence(y, total_length=T)[0]
        s = s if isinstance(s, tuple) else (s,)
        # Weights that differ per position, so a gradient routed to the wrong step or row shows.
        loss = (torch.linspace(0.5, 1.5, y.numel(), dtype=y.dtype).view_as(y) * y).sum() + sum(
            v.square().sum() for v in s
        )
        loss.backward()
        runs.append([y, *s, xi.grad, *(h.grad for h in hi), *(p.grad for p in module.parameters())])
    for a, b in zip(*runs, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-9)
    if calls is not None:
        assert_rows_left_across_chunks(calls, lengths.tolist())


@pytest.mark.parametrize("cell", list(LAYERS))
@pytest.mark.parametrize("used", ["output", "final h", "final c"])
def test_unused_outputs_get_no_gradient_and_the_rest_match_torch(cell, used):
    """Autograd does not materialize zero gradients for outputs a loss leaves out (nor for the buffers the
    Functions hand to backward); the Functions fill them in: a loss on one output alone equals torch.nn's."""
    if used == "final c" and cell != "lstm":
        return
    ours_cls, torch_cls, extra, _ = LAYERS[cell]
    ref = torch_cls(2, H, dtype=torch.float64, **extra)
    ours = ours_cls(2, H, dtype=torch.float64, backend="bptt", **extra)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(5, 3, 2, dtype=torch.float64, requires_grad=True)
    grads = []
    for module in (ours, ref):
        y, state = module(x)
        state = state if cell == "lstm" else (state,)
        pick = {"output": y, "final h": state[0], "final c": state[-1]}[used]
        grads.append(torch.autograd.grad(pick.pow(2).sum(), [x, *module.parameters()]))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)
