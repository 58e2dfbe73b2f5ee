"""PyTorch's own recurrent tests, with seqlab's classes swapped in and torch.nn as the control.

Two parts, each test parametrized by ``impl`` (torch.nn or seqlab) so the pass lists can be compared directly:
- **module_db**: every sample of ``torch.testing._internal.common_modules`` for nn.RNN, nn.GRU and nn.LSTM (the
  inputs and the error inputs PyTorch's test_modules.py runs), through our own versions of its CPU tests: forward,
  gradcheck, gradgradcheck, non-contiguous inputs, pickling, repr, factory kwargs, dtype moves and the errors.
  For seqlab the forward is also held to torch.nn's with the same weights.
- **test_nn extract**: the recurrent tests of PyTorch's test_nn.py that run on CPU, written anew here (same
  checks, our code): dropout semantics, initial states, argument checks, projections, packed sequences, weight
  norm, retain_graph, double backward.

The remaining differences, on purpose, are listed in the README ("Drop-in: what differs from torch.nn").
"""

from __future__ import annotations

import copy
import io
import pickle
import re

import pytest
import torch
from torch import nn
from torch.autograd import gradcheck, gradgradcheck
from torch.nn.utils.rnn import pack_sequence, pad_packed_sequence
from torch.testing._internal.common_modules import ModuleErrorEnum, module_db

import seqlab

OURS = {nn.RNN: seqlab.RNN, nn.GRU: seqlab.GRU, nn.LSTM: seqlab.LSTM}
IMPLS = ("torch.nn", "seqlab")
INFOS = {info.module_cls.__name__: info for info in module_db if info.module_cls in OURS}


def cls_of(impl: str, torch_cls: type) -> type:
    return torch_cls if impl == "torch.nn" else OURS[torch_cls]


def samples(name: str, dtype=torch.float64, requires_grad=True, training=True):
    info = INFOS[name]
    return info.module_inputs_func(info, device="cpu", dtype=dtype, requires_grad=requires_grad, training=training)


CASES = [(name, i) for name in INFOS for i in range(len(samples(name)))]
CASE_IDS = [f"{name}-{i}" for name, i in CASES]


def build(impl: str, name: str, sample, dtype=torch.float64) -> nn.Module:
    args, kwargs = sample.constructor_input.args, sample.constructor_input.kwargs
    torch.manual_seed(0)
    return cls_of(impl, INFOS[name].module_cls)(*args, **kwargs).to(dtype)


def tensors_in(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in tensors_in(v)]
    return []


def flat(outputs) -> list[torch.Tensor]:
    return tensors_in(outputs)


# ----------------------------------------------------------------------------------------------- module_db
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_forward_equals_torch_nn(case):
    """seqlab's output on every module_db sample equals torch.nn's with the same weights, in train and eval."""
    name, i = case
    sample = samples(name)[i]
    ref, ours = build("torch.nn", name, sample), build("seqlab", name, sample)
    ours.load_state_dict(ref.state_dict())
    args = sample.forward_input.args
    for training in (True, False):
        ref.train(training), ours.train(training)
        for a, b in zip(flat(ours(*args)), flat(ref(*args)), strict=True):
            torch.testing.assert_close(a, b)


def as_function(impl: str, case):
    """The module of a module_db sample as a function of its inputs that need gradients and its parameters, as
    test_modules' test_grad and test_gradgrad check it; returns (function, arguments)."""
    name, i = case
    sample = samples(name)[i]
    m = build(impl, name, sample)
    inputs = [t for t in tensors_in(sample.forward_input.args) if t.requires_grad]

    def fn(*values):
        n = len(inputs)
        args = swap(sample.forward_input.args, dict(zip(map(id, inputs), values[:n], strict=True)))
        return tuple(flat(torch.func.functional_call(m, dict(zip(names(m), values[n:], strict=True)), args)))

    return fn, (*inputs, *m.parameters())


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_grad(impl, case):
    """test_modules' test_grad: gradcheck over the inputs and every parameter, float64."""
    assert gradcheck(*as_function(impl, case), fast_mode=True)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_gradgrad(impl, case):
    """test_modules' test_gradgrad: second derivatives by gradgradcheck, float64."""
    assert gradgradcheck(*as_function(impl, case), fast_mode=True)


def names(m: nn.Module) -> list[str]:
    return [n for n, _ in m.named_parameters()]


def swap(value, replace: dict):
    """``value`` (nested tuples of tensors) with the tensors whose id is in ``replace`` replaced."""
    if isinstance(value, torch.Tensor):
        return replace.get(id(value), value)
    if isinstance(value, (tuple, list)):
        return type(value)(swap(v, replace) for v in value)
    return value


def non_contiguous(t: torch.Tensor) -> torch.Tensor:
    """The same values in a strided view: every other element of a tensor twice as wide."""
    wide = torch.stack([t.detach(), torch.full_like(t, float("nan"))], dim=-1)
    out = wide[..., 0]
    assert not out.is_contiguous() or out.numel() <= 1
    return out.requires_grad_(t.requires_grad)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_non_contiguous_tensors(impl, case):
    """test_modules' test_non_contiguous_tensors: strided inputs give the same outputs and gradients."""
    name, i = case
    sample = samples(name)[i]
    m = build(impl, name, sample)
    inputs = tensors_in(sample.forward_input.args)
    strided = {id(t): non_contiguous(t) for t in inputs}
    runs = []
    for args in (sample.forward_input.args, swap(sample.forward_input.args, strided)):
        m.zero_grad()
        out = flat(m(*args))
        leaves = [t for t in tensors_in(args) if t.requires_grad]
        grads = torch.autograd.grad(sum(o.sum() for o in out), [*leaves, *m.parameters()])
        runs.append((out, grads))
    for a, b in zip(runs[0][0] + list(runs[0][1]), runs[1][0] + list(runs[1][1]), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_pickle_repr_and_factory_kwargs(impl, case):
    """test_modules' test_pickle, test_repr and test_factory_kwargs: a pickled module computes the same; repr and
    str work; device and dtype given to the constructor reach every parameter."""
    name, i = case
    sample = samples(name)[i]
    m = build(impl, name, sample)
    buffer = io.BytesIO()
    torch.save(m, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    copied = pickle.loads(pickle.dumps(m))
    args = sample.forward_input.args
    for other in (loaded, copied):
        for a, b in zip(flat(other(*args)), flat(m(*args)), strict=True):
            torch.testing.assert_close(a, b)
    assert repr(m) and str(m)
    kwargs = {**sample.constructor_input.kwargs, "device": "cpu", "dtype": torch.float64}
    made = cls_of(impl, INFOS[name].module_cls)(*sample.constructor_input.args, **kwargs)
    assert all(p.dtype == torch.float64 and p.device.type == "cpu" for p in made.parameters())


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", list(INFOS))
def test_to_float32_and_back(impl, name):
    """test_modules' test_to: the module moved between dtypes computes in the new one."""
    for sample in samples(name, torch.float32, requires_grad=False)[:4]:
        m = build(impl, name, sample, torch.float64).to(torch.float32)
        assert all(p.dtype == torch.float32 for p in m.parameters())
        out = flat(m(*sample.forward_input.args))
        assert all(o.dtype == torch.float32 for o in out)


ERROR_CASES = [(name, i) for name in INFOS for i in range(len(INFOS[name].module_error_inputs_func(
    INFOS[name], device="cpu", dtype=torch.float64, requires_grad=False, training=True)))]  # fmt: skip


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", ERROR_CASES, ids=[f"{n}-{i}" for n, i in ERROR_CASES])
def test_errors(impl, case):
    """test_modules' test_errors: each of PyTorch's error inputs raises its exception type with its wording."""
    name, i = case
    info = INFOS[name]
    error = info.module_error_inputs_func(info, device="cpu", dtype=torch.float64, requires_grad=False,
                                          training=True)[i]  # fmt: skip
    sample = error.module_error_input
    cls = cls_of(impl, info.module_cls)
    with pytest.raises(error.error_type, match=error.error_regex):
        m = cls(*sample.constructor_input.args, **sample.constructor_input.kwargs)
        assert error.error_on == ModuleErrorEnum.FORWARD_ERROR, "constructed without the error"
        m(*sample.forward_input.args, **sample.forward_input.kwargs)


# ----------------------------------------------------------------------------------------------- test_nn extract
CLASSES = {"RNN": nn.RNN, "GRU": nn.GRU, "LSTM": nn.LSTM}


def make(impl: str, kind: str, *args, **kwargs) -> nn.Module:
    return cls_of(impl, CLASSES[kind])(*args, **kwargs)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("p", [0.0, 0.276, 0.731, 1.0])
def test_RNN_dropout(impl, p):
    """All-ones weights and input through a relu RNN of two layers: the second layer sees the first's output
    dropped with probability p and scaled by 1/(1-p); eval mode drops nothing."""
    torch.manual_seed(0)
    rnn = make(impl, "RNN", 10, 1000, 2, bias=False, dropout=p, nonlinearity="relu")
    with torch.no_grad():
        for w in rnn.parameters():
            w.fill_(1)
    x = torch.ones(1, 1, 10)
    hx = torch.zeros(2, 1, 1000)
    output, hy = rnn(x, hx)
    value = output[0, 0, 0].item()
    assert output.min() == output.max()  # every unit of layer 2 sums the same dropped layer-1 output
    if p == 0 or p == 1:
        assert value == (0 if p == 1 else 10000)
    else:  # a multiple of 10 / (1 - p): the units layer 2 kept, each 10 scaled by 1/(1-p)
        assert 8000 < value < 12000
        remainder = (value * (1 - p)) % 10
        assert min(remainder, 10 - remainder) < 1e-2
    assert hy[0].min() == hy[0].max() == 10 and hy[1][0, 0].item() == value
    rnn.eval()
    assert bool((rnn(x, hx)[0] == 10000).all())


@pytest.mark.parametrize("impl", IMPLS)
def test_RNN_change_dropout(impl):
    """dropout is read at each call: changed after construction, it takes effect."""
    torch.manual_seed(0)
    rnn = make(impl, "RNN", 10, 100, 2, dropout=0.0, nonlinearity="relu")
    x = torch.rand(1, 4, 10)
    first = rnn(x)[0]
    rnn.dropout = 0.9
    dropped = rnn(x)[0]
    rnn.dropout = 0.0
    assert torch.equal(rnn(x)[0], first)
    assert not torch.equal(dropped, first)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", list(CLASSES))
def test_rnn_initial_hidden_state(impl, kind):
    torch.manual_seed(0)
    rnn = make(impl, kind, 30, 20, 2)
    x = torch.randn(10, 32, 30)
    h = torch.zeros(2, 32, 20)
    hx = (h, h) if kind == "LSTM" else h
    a, ha = rnn(x, hx)
    b, hb = rnn(x)
    torch.testing.assert_close(a, b)
    for u, v in zip(flat(ha), flat(hb), strict=True):
        torch.testing.assert_close(u, v)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_projections_lstm_initial_hidden_state(impl, bidirectional):
    torch.manual_seed(0)
    D = 2 if bidirectional else 1
    rnn = make(impl, "LSTM", 30, 20, 2, bidirectional=bidirectional, proj_size=10)
    x = torch.randn(10, 32, 30)
    a, (h, c) = rnn(x, (torch.zeros(2 * D, 32, 10), torch.zeros(2 * D, 32, 20)))
    b, (h2, c2) = rnn(x)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(h, h2)
    torch.testing.assert_close(c, c2)
    assert a.shape == (10, 32, 10 * D) and h.shape == (2 * D, 32, 10) and c.shape == (2 * D, 32, 20)


def args_check_cases(proj: bool):
    """(what is wrong, input shape, h shape, c shape) as test_nn's test_rnn_args_check and its projected twin."""
    T, B, I, H, L, P = 3, 5, 4, 6, 2, 3
    h = P if proj else H
    return [
        ("input size", (T, B, I + 1), (L, B, h), (L, B, H)),
        ("hidden batch", (T, B, I), (L, B + 1, h), (L, B, H)),
        ("hidden size", (T, B, I), (L, B, h + 1), (L, B, H)),
        ("hidden layers", (T, B, I), (L + 1, B, h), (L, B, H)),
        ("cell size", (T, B, I), (L, B, h), (L, B, H + 1)),
        ("input 4-D", (T, B, I, 1), (L, B, h), (L, B, H)),
    ], (I, H, L, P)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", list(CLASSES))
@pytest.mark.parametrize("proj", [False, True])
def test_rnn_args_check(impl, kind, proj):
    """Wrong input or state shapes raise RuntimeError (a 4-D input: ValueError), as test_nn checks."""
    if proj and kind != "LSTM":
        with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM"):
            make(impl, kind, 4, 6, proj_size=3)
        return
    cases, (I, H, L, P) = args_check_cases(proj)
    rnn = make(impl, kind, I, H, L, **({"proj_size": P} if proj else {}))
    for what, x_shape, h_shape, c_shape in cases:
        if what == "cell size" and kind != "LSTM":
            continue
        hx = (torch.randn(h_shape), torch.randn(c_shape)) if kind == "LSTM" else torch.randn(h_shape)
        with pytest.raises(ValueError if what == "input 4-D" else RuntimeError):
            rnn(torch.randn(x_shape), hx)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", list(CLASSES))
@pytest.mark.parametrize("bidirectional", [False, True])
def test_RNN_input_size_zero(impl, kind, bidirectional):
    """A batch of no sequences runs forward and backward."""
    rnn = make(impl, kind, 3, 4, bidirectional=bidirectional)
    x = torch.zeros(5, 0, 3, requires_grad=True)
    out, _ = rnn(x)
    assert out.shape == (5, 0, 4 * (2 if bidirectional else 1))
    out.sum().backward()
    assert x.grad.shape == x.shape


@pytest.mark.parametrize("impl", IMPLS)
def test_RNN_nonlinearity(impl):
    assert make(impl, "RNN", 1, 10).nonlinearity == "tanh"
    assert make(impl, "RNN", 1, 10, nonlinearity="relu").nonlinearity == "relu"
    assert make(impl, "RNN", 1, 10, 1, "relu").nonlinearity == "relu"  # positional, the 4th argument
    with pytest.raises(ValueError, match="Unknown nonlinearity"):
        make(impl, "RNN", 1, 10, nonlinearity="garbage")


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", list(CLASSES))
def test_variable_sequence(impl, kind):
    """A packed batch of unequal lengths: each sequence's output and final state equal it run alone."""
    torch.manual_seed(0)
    rnn = make(impl, kind, 3, 5, 2, bidirectional=True, dtype=torch.float64)
    seqs = [torch.randn(n, 3, dtype=torch.float64) for n in (6, 4, 1, 5)]
    out, state = rnn(pack_sequence(seqs, enforce_sorted=False))
    padded, lengths = pad_packed_sequence(out)
    h = state[0] if kind == "LSTM" else state
    for b, s in enumerate(seqs):
        alone, alone_state = rnn(s.unsqueeze(1))
        torch.testing.assert_close(padded[: lengths[b], b], alone[:, 0])
        alone_h = alone_state[0] if kind == "LSTM" else alone_state
        torch.testing.assert_close(h[:, b], alone_h[:, 0])


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", list(CLASSES))
def test_rnn_weight_norm(impl, kind):
    """weight_norm on weight_hh_l0: its parameters replace the weight's, the output is unchanged, and removing it
    restores the parameter list."""
    torch.manual_seed(0)
    rnn = make(impl, kind, 4, 5, 2)
    x = torch.randn(3, 2, 4)
    before = rnn(x)[0]
    count = len(list(rnn.parameters()))
    rnn = torch.nn.utils.parametrizations.weight_norm(rnn, "weight_hh_l0")
    assert len(list(rnn.parameters())) == count + 1
    torch.testing.assert_close(rnn(x)[0], before)
    torch.nn.utils.parametrize.remove_parametrizations(rnn, "weight_hh_l0")
    assert len(list(rnn.parameters())) == count


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", list(CLASSES))
def test_rnn_retain_variables(impl, kind):
    """backward twice with retain_graph gives the same gradient."""
    torch.manual_seed(0)
    rnn = make(impl, kind, 10, 20, 2, dtype=torch.float64)
    x = torch.randn(5, 6, 10, dtype=torch.float64, requires_grad=True)
    out = rnn(x)[0]
    out.sum().backward(retain_graph=True)
    grads = [x.grad.clone()] + [p.grad.clone() for p in rnn.parameters()]
    rnn.zero_grad()
    x.grad = None
    out.sum().backward()
    for a, b in zip(grads, [x.grad] + [p.grad for p in rnn.parameters()], strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", list(CLASSES))
@pytest.mark.parametrize("bias", [True, False])
def test_grad_and_gradgrad(impl, kind, bias):
    """test_nn's test_{RNN,GRU,LSTM}_grad_and_gradgrad: gradcheck and gradgradcheck of a 2-layer module."""
    torch.manual_seed(0)
    rnn = make(impl, kind, 3, 4, 2, bias=bias, dtype=torch.float64)
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda x: rnn(x)[0], (x,))
    assert gradgradcheck(lambda x: rnn(x)[0], (x,))


@pytest.mark.parametrize("impl", IMPLS)
def test_LSTM_differentiable_backward_float32(impl):
    """test_nn's test_LSTM_differentiable_backward_using_oneDNN: a float32 LSTM (oneDNN's kernel on CPU) takes a
    gradient of its gradient, and matches the same computation in float64."""
    torch.manual_seed(0)
    wide = make(impl, "LSTM", 4, 6, 2, batch_first=True, dtype=torch.float64)
    x64 = torch.randn(3, 5, 4, dtype=torch.float64)
    results = []
    for rnn, x in ((copy.deepcopy(wide).float(), x64.float()), (wide, x64)):
        x = x.requires_grad_()
        (gx,) = torch.autograd.grad(rnn(x)[0].pow(2).sum(), x, create_graph=True)
        gx.pow(2).sum().backward()
        results.append(rnn.weight_hh_l0.grad.double())
    torch.testing.assert_close(results[0], results[1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", list(CLASSES))
def test_unbatched_equals_batch_of_one(impl, kind):
    torch.manual_seed(0)
    rnn = make(impl, kind, 3, 4, 2, bidirectional=True)
    x = torch.randn(5, 3)
    out, state = rnn(x)
    out1, state1 = rnn(x.unsqueeze(1))
    torch.testing.assert_close(out, out1[:, 0])
    for a, b in zip(flat(state), flat(state1), strict=True):
        torch.testing.assert_close(a, b[:, 0])


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", list(CLASSES))
def test_type_checks_of_flags(impl, kind):
    """batch_first='False' used to pass as True; it is a TypeError now (in torch.nn too)."""
    for arg in ("bias", "batch_first"):
        with pytest.raises(TypeError, match=re.escape(f"{arg} should be of type bool, got: str")):
            make(impl, kind, 3, 4, **{arg: "False"})


@pytest.mark.parametrize("kind", list(CLASSES))
def test_state_dicts_move_both_ways(kind):
    """The state_dict of either loads into the other (strict), projections included for the LSTM."""
    extra = {"proj_size": 2} if kind == "LSTM" else {}
    ref, ours = (make(impl, kind, 3, 4, 2, bidirectional=True, **extra) for impl in IMPLS)
    ours.load_state_dict(ref.state_dict())
    ref.load_state_dict(ours.state_dict())
    assert list(ref.state_dict()) == list(ours.state_dict())
