"""Second-order gradients and torch.func through the hand-written BPTT, against torch.nn with the same weights.

The bptt Functions run their own reverse loop for a first-order backward and the reference recurrence's VJP when
a graph of the gradient is asked for (seqlab.cells._autograd); these tests hold the second route to torch.nn.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.autograd import gradgradcheck
from torch.func import functional_call, grad, hessian, jacfwd, vmap

import seqlab

F64 = {"dtype": torch.float64}
CELLS = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}


def pair(cell: str, **kwargs):
    torch.manual_seed(0)
    ours = getattr(seqlab, cell)(3, 4, backend="bptt", **F64, **kwargs)
    ref = CELLS[cell](3, 4, **F64, **kwargs)
    ref.load_state_dict(ours.state_dict())
    return ours, ref


def nodes(t: torch.Tensor):
    seen, todo = set(), [t.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        yield node
        todo.extend(n for n, _ in node.next_functions)


@pytest.mark.parametrize("cell", list(CELLS))
def test_gradient_penalty_equals_torch(cell):
    """create_graph=True: a penalty on ∂L/∂x, differentiated again, matches torch.nn's value and weight gradients."""
    ours, ref = pair(cell, num_layers=2, bidirectional=True)
    x = torch.randn(6, 3, 3, **F64, requires_grad=True)
    results = []
    for module in (ours, ref):
        y, _ = module(x)
        (gx,) = torch.autograd.grad(y.pow(2).sum(), x, create_graph=True)
        penalty = gx.pow(2).sum()
        results.append((penalty, torch.autograd.grad(penalty, list(module.parameters()))))
    torch.testing.assert_close(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("cell", list(CELLS))
def test_gradgradcheck_with_lengths_and_state(cell):
    ours, _ = pair(cell)
    lengths = torch.tensor([4, 2, 0])
    x = torch.randn(4, 3, 3, **F64, requires_grad=True)
    h = torch.randn(1, 3, 4, **F64, requires_grad=True)
    hx = (h, torch.randn(1, 3, 4, **F64, requires_grad=True)) if cell == "LSTM" else h

    def f(x, *state):
        y, s = ours(x, state if cell == "LSTM" else state[0], lengths=lengths)
        return y, *(s if cell == "LSTM" else (s,))

    assert gradgradcheck(f, (x, *(hx if cell == "LSTM" else (hx,))))


def test_projected_lstm_second_order_equals_torch():
    ours, ref = pair("LSTM", proj_size=2, num_layers=2)
    x = torch.randn(5, 2, 3, **F64, requires_grad=True)
    got = []
    for module in (ours, ref):
        (gx,) = torch.autograd.grad(module(x)[0].sum(), x, create_graph=True)
        got.append(torch.autograd.grad(gx.pow(2).sum(), module.weight_hr_l0))
    torch.testing.assert_close(got[0], got[1])


@pytest.mark.parametrize("cell", list(CELLS))
def test_torch_func_grad_and_per_sample_gradients(cell):
    ours, ref = pair(cell, num_layers=2)
    x = torch.randn(5, 3, 3, **F64)
    params = dict(ours.named_parameters())

    def loss(p, x):
        return functional_call(ours, p, (x,))[0].pow(2).sum()

    def reference_loss(p, x):
        return functional_call(ref, p, (x,))[0].pow(2).sum()

    torch.testing.assert_close(grad(loss)(params, x), grad(reference_loss)(params, x))
    per_sample = vmap(grad(lambda p, xi: loss(p, xi.unsqueeze(1))), in_dims=(None, 1))(params, x)
    for b in range(3):
        one = grad(reference_loss)(params, x[:, b : b + 1])
        for name in params:
            torch.testing.assert_close(per_sample[name][b], one[name])


@pytest.mark.parametrize("cell", list(CELLS))
def test_forward_mode_and_hessian_equal_torch(cell):
    ours, ref = pair(cell)
    x = torch.randn(3, 1, 3, **F64)
    torch.testing.assert_close(jacfwd(lambda x: ours(x)[0])(x), jacfwd(lambda x: ref(x)[0])(x))
    torch.testing.assert_close(hessian(lambda x: ours(x)[0].sum())(x), hessian(lambda x: ref(x)[0].sum())(x))


def test_vmap_over_the_weights_is_refused_in_words():
    ours, _ = pair("GRU")
    stacked = {k: torch.stack([v, v + 0.1]) for k, v in ours.named_parameters()}
    x = torch.randn(4, 2, 3, **F64)
    with pytest.raises(RuntimeError, match="vmap over the weights"):
        vmap(lambda p: functional_call(ours, p, (x,))[0])(stacked)


@pytest.mark.parametrize("cell", list(CELLS))
def test_first_order_path_keeps_no_projection(cell):
    """The layer hands the Function its input projection's inputs, so xw (T·B·G) is not kept for a graph that
    is rarely asked for; the first-order backward stays the hand-written one."""
    ours, ref = pair(cell)
    x = torch.randn(5, 2, 3, **F64, requires_grad=True)
    y, _ = ours(x)
    found = [n for n in nodes(y) if type(n).__name__.endswith("FunctionBackward")]
    assert found and all(not n.xw_saved for n in found)
    y.sum().backward()
    g = x.grad.clone()
    x.grad = None
    ref(x)[0].sum().backward()
    torch.testing.assert_close(g, x.grad)
