"""minGRU and minLSTM: the parallel log-space scan against a per-step loop of the paper's equations in float64,
forward and backward, with and without an initial state (of either sign), across chunk borders, stacked and
bidirectional; padded == alone; step-by-step generation == the whole sequence; a long float32 sequence."""

import pytest
import torch
from torch.nn import functional as F

from seqlab.layers.minimal import MinGRU, MinLSTM, g

CLASSES = [MinGRU, MinLSTM]


def loop(layer, x, hx=None):
    """The paper's equations one step at a time, in plain (not log) space: (B, T, I) -> (B, T, D·H), h_n."""
    finals = []
    for layer_i in range(layer.num_layers):
        outs = []
        for d in range(layer.directions):
            k = layer_i * layer.directions + d
            h = None if hx is None else hx[k]
            steps = range(x.shape[1])[::-1] if d == 1 else range(x.shape[1])
            out = [None] * x.shape[1]
            for t in steps:
                pre = layer.maps[k](x[:, t])
                if isinstance(layer, MinGRU):
                    kz, v = pre.chunk(2, -1)
                    z = torch.sigmoid(kz)
                    a, b = 1 - z, z * g(v)
                else:
                    kf, ki, v = pre.chunk(3, -1)
                    f, i = torch.sigmoid(kf), torch.sigmoid(ki)
                    a, b = f / (f + i), i / (f + i) * g(v)
                h = b if h is None else a * h + b
                out[t] = h
            outs.append(torch.stack(out, 1))
            finals.append(h)
        x = torch.cat(outs, 2)
    return x, torch.stack(finals)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("with_h0", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_scan_equals_the_per_step_loop_forward_and_backward(cls, with_h0, bidirectional):
    torch.manual_seed(0)
    layer = cls(3, 4, num_layers=2, batch_first=True, bidirectional=bidirectional, chunk=4).double()
    x = torch.randn(2, 11, 3, dtype=torch.float64, requires_grad=True)
    hx = torch.randn(2 * layer.directions, 2, 4, dtype=torch.float64, requires_grad=True) if with_h0 else None
    out, h_n = layer(x, hx)
    want, want_h = loop(layer, x, hx)
    torch.testing.assert_close(out, want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(h_n, want_h, rtol=1e-10, atol=1e-12)
    inputs = [x, *layer.parameters()] + ([hx] if with_h0 else [])
    got = torch.autograd.grad((out**2).sum() + h_n.sum(), inputs)
    expect = torch.autograd.grad((want**2).sum() + want_h.sum(), inputs)
    for a, b in zip(got, expect, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("cls", CLASSES)
def test_gradcheck_in_float64(cls):
    torch.manual_seed(0)
    layer = cls(2, 3, bidirectional=True, chunk=3).double()
    x = torch.randn(5, 2, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, h0: layer(x, h0)[0], (x, h0))


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padded_rows_equal_each_sequence_alone(cls, bidirectional):
    torch.manual_seed(0)
    layer = cls(3, 4, num_layers=2, batch_first=True, bidirectional=bidirectional).double()
    lengths = torch.tensor([6, 9, 1])
    x = torch.randn(3, 9, 3, dtype=torch.float64)
    for b, n in enumerate(lengths):
        x[b, n:] = 1e3  # padding that would show if it leaked
    out, h_n = layer(x, lengths=lengths)
    for b, n in enumerate(lengths):
        alone, h_alone = layer(x[b : b + 1, :n])
        torch.testing.assert_close(out[b : b + 1, :n], alone)
        torch.testing.assert_close(h_n[:, b : b + 1], h_alone)
        assert out[b, n:].abs().sum() == 0


@pytest.mark.parametrize("cls", CLASSES)
def test_step_by_step_generation_equals_the_whole_sequence(cls):
    torch.manual_seed(0)
    layer = cls(3, 5, num_layers=2, batch_first=True).double()
    x = torch.randn(2, 7, 3, dtype=torch.float64)
    whole, h_whole = layer(x)
    h, outs = None, []
    for t in range(7):
        out, h = layer(x[:, t : t + 1], h)  # constant memory: the state is (L, B, H) whatever t is
        outs.append(out)
    torch.testing.assert_close(torch.cat(outs, 1), whole)
    torch.testing.assert_close(h, h_whole)


@pytest.mark.parametrize("cls", CLASSES)
def test_a_long_float32_sequence_stays_finite_and_close_to_float64(cls):
    torch.manual_seed(0)
    layer = cls(4, 8)
    x = 3 * torch.randn(5000, 2, 4)  # large inputs saturate the gates: log a far from 0
    out, _ = layer(x)
    exact, _ = layer.double()(x.double())
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.double(), exact, rtol=1e-4, atol=1e-5)


def test_bad_arguments_are_refused():
    layer = MinGRU(2, 3, batch_first=True)
    with pytest.raises(ValueError, match=r"lengths must be 2 values in \[1, 4\]"):
        layer(torch.randn(2, 4, 2), lengths=torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="input must be"):
        layer(torch.randn(2, 4, 5))
    with pytest.raises(ValueError, match="sequence length 0"):
        layer(torch.randn(2, 0, 2))
    with pytest.raises(ValueError, match="Expected hidden size"):
        layer(torch.randn(2, 4, 2), torch.zeros(2, 2, 3))
    with pytest.raises(ValueError, match="one backend"):
        MinLSTM(2, 3, backend="bptt")
    with pytest.raises(TypeError, match="batch_first should be of type bool"):
        MinLSTM(2, 3, batch_first="False")
    assert F.softplus(torch.tensor(0.0)) > 0  # the module's log-space helpers rest on torch's softplus
