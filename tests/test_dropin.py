"""seqlab.RNN / LSTM / GRU as drop-in torch.nn.RNN / LSTM / GRU where a caller can tell the difference: positional
arguments, flag types, an empty batch, parametrized weights, and the errors torch.nn raises. Every test runs the
same call on torch.nn with the same weights and asks for the same answer (or the same exception and wording).
"""

import re
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations, parametrize

import seqlab

CELLS = {"lstm": (seqlab.LSTM, nn.LSTM), "gru": (seqlab.GRU, nn.GRU), "rnn": (seqlab.RNN, nn.RNN)}
BACKENDS = ["fused", "bptt", "reference", "auto"]
I, H, B, T = 3, 5, 2, 4


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def run_both(ours, ref, x, hx=None):
    """Forward both on clones of x; return (output, final state tuple, x.grad) for each after backward."""
    results = []
    for m in (ours, ref):
        xi = x.detach().clone().requires_grad_()
        y, state = m(xi, hx)
        state = as_tuple(state)
        (y.sum() + sum((s * s).sum() for s in state)).backward()
        results.append((y, state, xi.grad))
    return results


# ------------------------------------------------------------------------------------------------ constructor
@pytest.mark.parametrize(
    "ours_cls, torch_cls, args",
    [
        (seqlab.RNN, nn.RNN, (I, H, 1, "relu")),
        (seqlab.RNN, nn.RNN, (I, H, 2, "relu", False, True, 0.0, True)),
        (seqlab.LSTM, nn.LSTM, (I, H, 2, False, True, 0.0, True)),
        (seqlab.GRU, nn.GRU, (I, H, 2, False, True, 0.0, True)),
        (seqlab.LSTM, nn.LSTM, (I, H, 1, True, False, 0.0, False, 0, "cpu", torch.float64)),  # proj_size 8th
    ],
)
def test_positional_arguments_follow_torch_nn(ours_cls, torch_cls, args):
    ref = torch_cls(*args)
    ours = ours_cls(*args)
    for key in ("num_layers", "bias", "batch_first", "bidirectional", "nonlinearity"):
        assert getattr(ours, key, None) == getattr(ref, key, None), key
    ours.load_state_dict(ref.state_dict())
    dtype = ref.weight_ih_l0.dtype
    assert ours.weight_ih_l0.dtype == dtype
    x = torch.randn((B, T, I) if ref.batch_first else (T, B, I), dtype=dtype)
    (y, state, gx), (y_ref, state_ref, gx_ref) = run_both(ours, ref, x)
    torch.testing.assert_close(y, y_ref)
    for s, s_ref in zip(state, state_ref, strict=True):
        torch.testing.assert_close(s, s_ref)
    torch.testing.assert_close(gx, gx_ref)


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("arg", ["bias", "batch_first", "bidirectional"])
def test_non_bool_flag_is_a_type_error(cell, arg):
    """torch.nn refuses a non-bool bias or batch_first (batch_first="False" would be true); it takes
    bidirectional="False" as True, which we refuse in the same words."""
    ours_cls, torch_cls = CELLS[cell]
    if arg == "bidirectional":
        assert torch_cls(I, H, **{arg: "False"}).bidirectional == "False"  # torch.nn accepts it
        phrase = "bidirectional should be of type bool, got: str"
    else:
        with pytest.raises(TypeError) as e_torch:
            torch_cls(I, H, **{arg: "False"})
        phrase = str(e_torch.value)
        assert phrase == f"{arg} should be of type bool, got: str"
    with pytest.raises(TypeError, match=re.escape(phrase)):
        ours_cls(I, H, **{arg: "False"})


# ------------------------------------------------------------------------------------------------ empty batch
@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("with_hx", [False, True])
def test_empty_batch_matches_torch(cell, backend, batch_first, bidirectional, with_hx):
    ours_cls, torch_cls = CELLS[cell]
    kw = {"num_layers": 2, "batch_first": batch_first, "bidirectional": bidirectional}
    ref = torch_cls(I, H, **kw)
    ours = ours_cls(I, H, backend=backend, **kw)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn((0, T, I) if batch_first else (T, 0, I))
    hx = None
    if with_hx:
        h = torch.randn(2 * (2 if bidirectional else 1), 0, H)
        hx = (h, h.clone()) if cell == "lstm" else h
    (y, state, gx), (y_ref, state_ref, gx_ref) = run_both(ours, ref, x, hx)
    assert y.shape == y_ref.shape and gx.shape == gx_ref.shape == x.shape
    assert [s.shape for s in state] == [s.shape for s in state_ref]
    for (name, p), (name_ref, p_ref) in zip(ours.named_parameters(), ref.named_parameters(), strict=True):
        assert name == name_ref
        torch.testing.assert_close(p.grad, p_ref.grad)  # zeros, and present, as in torch.nn


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_batch_with_lengths(cell, backend):
    ours = CELLS[cell][0](I, H, batch_first=True, bidirectional=True, backend=backend)
    y, state = ours(torch.randn(0, T, I), lengths=torch.zeros(0, dtype=torch.int64))
    assert y.shape == (0, T, 2 * H)
    assert all(s.shape == (2, 0, H) for s in as_tuple(state))


# ------------------------------------------------------------------------------------------------ parametrizations
class Doubled(nn.Module):
    def forward(self, w):
        return 2 * torch.tanh(w)


def _legacy_weight_norm(m, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated in favour of parametrizations.weight_norm
        torch.nn.utils.weight_norm(m, name)


PARAMETRIZE = {
    "weight_norm": lambda m, name: parametrizations.weight_norm(m, name),
    "spectral_norm": lambda m, name: parametrizations.spectral_norm(m, name),  # draws u: seeded per module below
    "register_parametrization": lambda m, name: parametrize.register_parametrization(m, name, Doubled()),
    "legacy_weight_norm": _legacy_weight_norm,
}


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", list(PARAMETRIZE))
def test_parametrized_weights_train_as_in_torch(cell, backend, kind):
    """The parametrization's own parameters (original0/original1, weight_g/weight_v, ...) get torch.nn's gradients,
    and after an optimizer step both still agree.

    spectral_norm runs in eval mode: in training every read of the weight steps its power iteration, and torch.nn
    reads each weight 4 times per call (hasattr + getattr, twice) where we read it once, so u and v advance at
    different rates (to the same limit). In eval both use the stored u and v, and the gradients still reach
    ``original``."""
    ours_cls, torch_cls = CELLS[cell]
    kw = {"num_layers": 2, "bidirectional": True, "dtype": torch.float64}
    ref = torch_cls(I, H, **kw)
    ours = ours_cls(I, H, backend=backend, **kw)
    ours.load_state_dict(ref.state_dict())
    for m in (ref, ours):
        torch.manual_seed(1)
        for name in ("weight_hh_l0", "weight_ih_l1_reverse", "bias_ih_l1"):
            PARAMETRIZE[kind](m, name)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    if kind == "spectral_norm":
        ours.eval(), ref.eval()
    opts = [torch.optim.SGD(m.parameters(), lr=0.1) for m in (ours, ref)]
    x = torch.randn(T, B, I, dtype=torch.float64)
    for _ in range(2):
        for opt in opts:
            opt.zero_grad()
        (y, state, gx), (y_ref, state_ref, gx_ref) = run_both(ours, ref, x)
        torch.testing.assert_close(y, y_ref)
        for s, s_ref in zip(state, state_ref, strict=True):
            torch.testing.assert_close(s, s_ref)
        torch.testing.assert_close(gx, gx_ref)
        for (name, p), (_, p_ref) in zip(ours.named_parameters(), ref.named_parameters(), strict=True):
            torch.testing.assert_close(p.grad, p_ref.grad, msg=name)
        for opt in opts:
            opt.step()


# ------------------------------------------------------------------------------------------------ errors
def _hx(cell, *shapes):
    hs = [torch.randn(*s) for s in shapes]
    return tuple(hs) if cell == "lstm" else hs[0]


ERRORS = {  # name: (make(cls, cell) -> module, call(module, cell)); the module only where the call is the mistake
    "input_size": (lambda c, cell: c(I, H), lambda m, cell: m(torch.randn(T, B, I + 1))),
    "hidden_batch": (lambda c, cell: c(I, H), lambda m, cell: m(torch.randn(T, B, I), _hx(cell, (1, 3, H), (1, B, H)))),
    "cell_size": (lambda c, cell: c(I, H), lambda m, cell: m(torch.randn(T, B, I), _hx(cell, (1, B, H), (1, B, 6)))),
    "hidden_unbatched": (lambda c, cell: c(I, H), lambda m, cell: m(torch.randn(T, I), _hx(cell, (1, 6), (1, H)))),
    "hidden_dims": (lambda c, cell: c(I, H), lambda m, cell: m(torch.randn(T, B, I), _hx(cell, (1, H), (1, B, H)))),
    "input_4d": (lambda c, cell: c(I, H), lambda m, cell: m(torch.randn(T, B, 1, I))),
    "no_time_steps": (lambda c, cell: c(I, H), lambda m, cell: m(torch.randn(0, B, I))),
    "proj_size": (lambda c, cell: c(I, H, proj_size=0), None),
    "nonlinearity": (lambda c, cell: c(I, H, nonlinearity="sigmoid"), None),
    "proj_negative": (lambda c, cell: c(I, H, proj_size=-1), None),
    "proj_too_large": (lambda c, cell: c(I, H, proj_size=H), None),
    "proj_hidden": (
        lambda c, cell: c(I, H, proj_size=2),
        lambda m, cell: m(torch.randn(T, B, I), _hx(cell, (1, B, H), (1, B, H))),
    ),
    "proj_cell": (
        lambda c, cell: c(I, H, proj_size=2),
        lambda m, cell: m(torch.randn(T, B, I), _hx(cell, (1, B, 2), (1, B, 2))),
    ),
}


LSTM_ONLY = ("cell_size", "proj_negative", "proj_too_large", "proj_hidden", "proj_cell")
ONLY = {"nonlinearity": ("rnn",), "proj_size": ("gru", "rnn"), **dict.fromkeys(LSTM_ONLY, ("lstm",))}


@pytest.mark.parametrize("case, cell", [(case, cell) for case in ERRORS for cell in ONLY.get(case, tuple(CELLS))])
def test_errors_have_torch_type_and_wording(case, cell):
    """Each mistake raises torch.nn's exception type with torch.nn's whole message inside ours."""
    make, call = ERRORS[case]
    call = call or (lambda m, cell: None)
    ours_cls, torch_cls = CELLS[cell]
    with pytest.raises(Exception) as e_torch:
        m = make(torch_cls, cell)
        call(m, cell)
    phrase = str(e_torch.value)
    with pytest.raises(type(e_torch.value), match=re.escape(phrase)):
        m = make(ours_cls, cell)
        call(m, cell)


def test_shape_errors_stay_value_errors_for_the_cli():
    """torch.nn's RuntimeError for a shape mistake is also a ValueError here: seqlab's CLI turns ValueError into
    one line, and code written against seqlab before catches it as it did."""
    for mistake in (
        lambda: seqlab.GRU(I, H)(torch.randn(T, B, I + 1)),
        lambda: seqlab.GRU(I, H)(torch.randn(T, B, I), torch.randn(1, 3, H)),
        lambda: seqlab.GRU(I, H)(torch.randn(0, B, I)),
    ):
        with pytest.raises(RuntimeError) as e:
            mistake()
        assert isinstance(e.value, ValueError)
