"""seqlab.RNN / LSTM / GRU against torch.nn with the same weights, on every backend, and the length contract.

The grid: every cell and backend x 1-3 layers x uni/bidirectional x padded-with-lengths / packed / plain; within
each, batch_first both ways, with and without bias, with and without hx, float32 and float64. Outputs, final
states, and the gradients of the input, the initial state and every parameter must match.
"""

import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import seqlab
from seqlab.cells import compiled

CELLS = {
    "lstm": (seqlab.LSTM, nn.LSTM, {}),
    "gru": (seqlab.GRU, nn.GRU, {}),
    "rnn_tanh": (seqlab.RNN, nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (seqlab.RNN, nn.RNN, {"nonlinearity": "relu"}),
}
BACKENDS = ["fused", "bptt", "reference", "auto"]
I, H, B, T = 3, 5, 4, 7
LENGTHS = torch.tensor([7, 2, 5, 5])  # unsorted, with a tie and a full-length row


def pair(cell, backend, dtype=torch.float32, **kw):
    ours_cls, torch_cls, extra = CELLS[cell]
    ref = torch_cls(I, H, dtype=dtype, **extra, **kw)
    ours = ours_cls(I, H, dtype=dtype, backend=backend, **extra, **kw)
    ours.load_state_dict(ref.state_dict())
    return ours, ref


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def loss_of(y, state):
    # Weights that differ per position, so that a gradient routed to the wrong step or row shows.
    y = y.data if isinstance(y, nn.utils.rnn.PackedSequence) else y
    w = torch.linspace(0.5, 1.5, y.numel(), dtype=y.dtype).view_as(y)
    return (w * y).sum() + sum((s**2).sum() * (k + 1) for k, s in enumerate(as_tuple(state)))


def packed(v, batch_first):
    return pack_padded_sequence(v, LENGTHS, batch_first=batch_first, enforce_sorted=False)


def data(y):
    return y.data if isinstance(y, nn.utils.rnn.PackedSequence) else y


def check_against_torch(cell, backend, num_layers, bidirectional, mode, batch_first, bias, with_hx, dtype):
    ours, ref = pair(cell, backend, dtype, num_layers=num_layers, bias=bias, batch_first=batch_first,
                     bidirectional=bidirectional)  # fmt: skip
    x = torch.randn((B, T, I) if batch_first else (T, B, I), dtype=dtype)
    n_states = 2 if cell == "lstm" else 1
    D = 2 if bidirectional else 1
    hx = [torch.randn(num_layers * D, B, H, dtype=dtype) for _ in range(n_states)] if with_hx else None
    runs = []
    for module in (ours, ref):
        xi = x.clone().requires_grad_()
        hi = None if hx is None else tuple(h.clone().requires_grad_() for h in hx)
        arg = None if hi is None else (hi if n_states == 2 else hi[0])
        if mode == "plain":
            y, s = module(xi, arg)
        elif mode == "packed":
            y, s = module(packed(xi, batch_first), arg)
            assert isinstance(y, nn.utils.rnn.PackedSequence)
        elif module is ours:
            y, s = module(xi, arg, lengths=LENGTHS)
        else:
            y, s = module(packed(xi, batch_first), arg)
            y = pad_packed_sequence(y, batch_first=batch_first, total_length=T)[0]
        loss_of(y, s).backward()
        runs.append(
            (y, as_tuple(s), xi.grad, [] if hi is None else [h.grad for h in hi], [p.grad for p in module.parameters()])
        )
    (y1, s1, dx1, dh1, dp1), (y2, s2, dx2, dh2, dp2) = runs
    if mode == "packed":
        assert torch.equal(y1.batch_sizes, y2.batch_sizes) and torch.equal(y1.sorted_indices, y2.sorted_indices)
    tol = {"atol": 1e-5, "rtol": 1e-4} if dtype == torch.float32 else {"atol": 1e-10, "rtol": 1e-9}
    where = (
        f"{cell} {backend} L={num_layers} bi={bidirectional} {mode} bf={batch_first} bias={bias} hx={with_hx} {dtype}"
    )
    pairs = [("output", data(y1), data(y2)), ("input grad", dx1, dx2)]
    pairs += [("final state", a, b) for a, b in zip(s1, s2, strict=True)]
    pairs += [("hx grad", a, b) for a, b in zip(dh1, dh2, strict=True)]
    pairs += [(f"{n} grad", a, b) for (n, _), a, b in zip(ours.named_parameters(), dp1, dp2, strict=True)]
    for what, a, b in pairs:
        torch.testing.assert_close(a, b, **tol, msg=f"{what} differs: {where}")


@pytest.mark.parametrize("mode", ["plain", "lengths", "packed"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", list(CELLS))
def test_equals_torch_nn(cell, backend, num_layers, bidirectional, mode):
    for batch_first, bias, with_hx, dtype in itertools.product(
        [False, True], [True, False], [False, True], [torch.float32, torch.float64]
    ):
        check_against_torch(cell, backend, num_layers, bidirectional, mode, batch_first, bias, with_hx, dtype)


# ------------------------------------------------------------------------------------------------ properties
@pytest.mark.parametrize("backend", ["fused", "bptt", "reference"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_chunked_with_carried_state_equals_whole(cell, backend):
    ours, _ = pair(cell, backend, torch.float64, num_layers=2)
    x = torch.randn(12, B, I, dtype=torch.float64)
    whole, s_whole = ours(x)
    state, parts = None, []
    for chunk in x.split([5, 1, 6]):
        y, state = ours(chunk, state)
        parts.append(y)
    torch.testing.assert_close(torch.cat(parts), whole)
    for a, b in zip(as_tuple(state), as_tuple(s_whole), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("backend", ["fused", "bptt", "reference"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_padded_row_equals_sequence_alone(cell, backend):
    ours, _ = pair(cell, backend, torch.float64, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(B, T, I, dtype=torch.float64)
    x[1, 2:] = 1e3  # garbage in the padding must not leak into anything
    y, state = ours(x, lengths=LENGTHS)
    for row, n in enumerate(LENGTHS.tolist()):
        alone, s_alone = ours(x[row : row + 1, :n])
        torch.testing.assert_close(y[row, :n], alone[0])
        assert torch.all(y[row, n:] == 0)
        for a, b in zip(as_tuple(state), as_tuple(s_alone), strict=True):
            torch.testing.assert_close(a[:, row], b[:, 0])


@pytest.mark.parametrize("backend", ["fused", "bptt"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_permuting_the_batch_permutes_the_results(cell, backend):
    ours, _ = pair(cell, backend, torch.float64, bidirectional=True)
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    perm = torch.tensor([2, 0, 3, 1])
    y, s = ours(x, lengths=LENGTHS)
    yp, sp = ours(x[:, perm], lengths=LENGTHS[perm])
    torch.testing.assert_close(yp, y[:, perm])
    for a, b in zip(as_tuple(sp), as_tuple(s), strict=True):
        torch.testing.assert_close(a, b[:, perm])


@pytest.mark.parametrize("cell", list(CELLS))
def test_state_dict_moves_both_ways(cell):
    ours, ref = pair(cell, "auto", num_layers=2, bidirectional=True)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ref2 = CELLS[cell][1](I, H, num_layers=2, bidirectional=True, **CELLS[cell][2])
    ref2.load_state_dict(ours.state_dict())
    x = torch.randn(T, B, I)
    torch.testing.assert_close(ref2(x)[0], ours(x)[0])


@pytest.mark.parametrize("cell", list(CELLS))
def test_unbatched_input_equals_a_batch_of_one(cell):
    ours, ref = pair(cell, "bptt", torch.float64)
    x = torch.randn(T, I, dtype=torch.float64)
    y, s = ours(x)
    y_ref, s_ref = ref(x)
    torch.testing.assert_close(y, y_ref)
    for a, b in zip(as_tuple(s), as_tuple(s_ref), strict=True):
        assert a.shape == (1, H)
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("backend", ["fused", "bptt", "reference"])
def test_dropout_between_layers_matches_torch_where_it_is_deterministic(backend):
    # p=1 in training zeroes the input of every layer past the first, in both; in eval mode dropout is the identity.
    for p, train in ((1.0, True), (0.5, False)):
        ours, ref = pair("gru", backend, torch.float64, num_layers=3, dropout=p)
        ours.train(train)
        ref.train(train)
        x = torch.randn(T, B, I, dtype=torch.float64)
        torch.testing.assert_close(ours(x)[0], ref(x)[0])
        packed, _ = ref(pack_padded_sequence(x, LENGTHS, enforce_sorted=False))
        torch.testing.assert_close(ours(x, lengths=LENGTHS)[0], pad_packed_sequence(packed, total_length=T)[0])


def test_all_empty_and_zero_length_rows():
    m = seqlab.LSTM(I, H, backend="bptt")
    x = torch.randn(T, 2, I)
    h0 = (torch.randn(1, 2, H), torch.randn(1, 2, H))
    y, (h, c) = m(x, h0, lengths=torch.tensor([0, 0]))
    assert torch.all(y == 0) and torch.equal(h, h0[0]) and torch.equal(c, h0[1])
    for backend in ("fused", "bptt", "reference"):
        m.backend = backend
        y, (h, c) = m(x, h0, lengths=torch.tensor([3, 0]))
        assert torch.all(y[:, 1] == 0) and torch.equal(h[:, 1], h0[0][:, 1])


# ------------------------------------------------------------------------------------------------ options
def test_forget_bias_sets_the_total_forget_gate_bias():
    m = seqlab.LSTM(I, H, num_layers=2, bidirectional=True, forget_bias=1.0)
    for name, p in m.named_parameters():
        if name.startswith("bias_ih"):
            assert torch.all(p[H : 2 * H] == 1.0)
        if name.startswith("bias_hh"):
            assert torch.all(p[H : 2 * H] == 0.0)
    with pytest.raises(ValueError, match="forget_bias needs bias=True"):
        seqlab.LSTM(I, H, bias=False, forget_bias=1.0)


def test_auto_backend_choice_is_visible():
    assert seqlab.LSTM(I, H).effective_backend == "fused"
    assert seqlab.LSTM(I, H, dtype=torch.float64).effective_backend == "bptt"  # oneDNN has no float64 kernel
    assert seqlab.GRU(I, H).effective_backend == "bptt"
    assert seqlab.RNN(I, H).effective_backend == "bptt"
    with torch.no_grad():
        assert seqlab.GRU(I, H).effective_backend == "bptt"  # its C++ loop beats nn.GRU in inference too
        assert seqlab.RNN(I, H).effective_backend == "fused"
        assert seqlab.RNN(I, 1024).effective_backend == "bptt"  # prepacked per-step GEMM wins from here on
        with compiled.use(False):
            assert seqlab.GRU(I, H).effective_backend == "fused"
    assert seqlab.GRU(I, H, backend="reference").effective_backend == "reference"


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m: m(torch.randn(T, B, I + 1)), r"input_size=3.*got shape \(7, 4, 4\)"),
        (lambda m: m(torch.randn(B)), r"input must be 3-D \(T, B, input_size\).*got shape \(4,\)"),
        (lambda m: m(torch.randint(0, 3, (T, B, I))), r"input must be a floating-point tensor, got torch.int64"),
        (
            lambda m: m(torch.randn(T, B, I, dtype=torch.float64)),
            r"input dtype \(torch.float64\) does not match weight dtype \(torch.float32\)",
        ),
        (
            lambda m: m(torch.randn(T, B, I), lengths=torch.tensor([1, 2, 3])),
            r"lengths must be 4 integers.*shape \(3,\)",
        ),
        (lambda m: m(torch.randn(T, B, I), lengths=torch.tensor([1, 2, 3, 8])), r"lengths must lie in \[0, 7\].*max 8"),
        (
            lambda m: m(torch.randn(T, B, I), lengths=torch.tensor([1, 2, 3, -1])),
            r"lengths must lie in \[0, 7\].*min -1",
        ),
        (lambda m: m(torch.randn(T, B, I), lengths=torch.rand(4)), r"lengths must be 4 integers.*torch.float32"),
        (lambda m: m(torch.randn(T, I), lengths=[3]), r"lengths needs a batched input"),
        (lambda m: m(torch.randn(T, B, I), torch.randn(2, B, H)), r"hx must have shape \(1, 4, 5\).*got \(2, 4, 5\)"),
        (lambda m: m(torch.randn(0, B, I)), r"input has no time steps"),
    ],
)
def test_bad_input_is_a_value_error_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call(seqlab.GRU(I, H))


def test_bad_lstm_state_and_constructor_arguments():
    m = seqlab.LSTM(I, H)
    with pytest.raises(ValueError, match=r"hx must be a pair \(h0, c0\) of shape \(1, 4, 5\)"):
        m(torch.randn(T, B, I), torch.randn(1, B, H))
    with pytest.raises(ValueError, match=r"cx must have shape \(1, 4, 5\)"):
        m(torch.randn(T, B, I), (torch.randn(1, B, H), torch.randn(1, B, H + 1)))
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        seqlab.LSTM(I, H, proj_size=H)
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu'"):
        seqlab.RNN(I, H, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="backend must be one of auto, fused, bptt, reference"):
        seqlab.GRU(I, H, backend="cuda")
    with pytest.raises(ValueError, match="hidden_size must be greater than zero"):
        seqlab.GRU(I, 0)
    with pytest.raises(ValueError, match="dropout must be a number in"):
        seqlab.GRU(I, H, num_layers=2, dropout=1.5)
    with pytest.raises(ValueError, match="lengths: a PackedSequence carries its own lengths"):
        m(pack_padded_sequence(torch.randn(T, B, I), LENGTHS, enforce_sorted=False), lengths=LENGTHS)


@pytest.mark.parametrize("cell", list(CELLS))
def test_bfloat16_bptt_tracks_float32_torch(cell):
    """bf16 keeps 8 bits of mantissa: the forward stays within a few 1e-3 of float32 (nn.LSTM's own bf16 path measured
    2.5e-3), and backward runs to finite gradients, with lengths."""
    ours, ref = pair(cell, "bptt", num_layers=2)
    x = torch.randn(T, B, I)
    want, _ = ref(x)
    ours = ours.to(torch.bfloat16)
    xb = x.bfloat16().requires_grad_()
    got, _ = ours(xb)
    assert (got.float() - want).abs().max() < 2e-2
    ours(xb, lengths=LENGTHS)[0].float().sum().backward()
    assert torch.isfinite(xb.grad).all() and all(torch.isfinite(p.grad).all() for p in ours.parameters())
