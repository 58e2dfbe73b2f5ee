"""The drop-in layers under a tracer (torch.jit.trace, the TorchScript ONNX exporter): exact at a batch size and a
length other than the traced ones, or refused; never a graph that runs and is wrong.

Before, a GRU or RNN exported to ONNX as its input projection alone (the bptt autograd.Function is opaque to a
tracer): onnxruntime ran it, off by up to 0.87, and torch.jit.trace failed outright."""

import io
import warnings

import numpy as np
import pytest
import torch

from seqlab.layers import GRU, LSTM, RNN

CELLS = {"lstm": (LSTM, {}), "gru": (GRU, {}), "rnn": (RNN, {}), "rnn-relu": (RNN, {"nonlinearity": "relu"})}
ONNX_OPS = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN", "rnn-relu": "RNN"}


def layer(cell: str, layers: int, bidirectional: bool, batch_first: bool):
    torch.manual_seed(0)
    cls, extra = CELLS[cell]
    return cls(4, 6, layers, batch_first=batch_first, bidirectional=bidirectional, **extra).eval()


def inputs(m, B: int, T: int, with_h0: bool):
    x = torch.randn(B, T, 4) if m.batch_first else torch.randn(T, B, 4)
    if not with_h0:
        return (x,)
    h0 = torch.randn(m.num_layers * (2 if m.bidirectional else 1), B, 6)
    return (x, (h0, torch.randn_like(h0)) if isinstance(m, LSTM) else h0)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers,bidirectional,batch_first,with_h0",
                         [(1, False, False, False), (2, True, True, True), (2, False, True, False)])  # fmt: skip
def test_a_traced_layer_equals_eager_at_another_batch_and_length(cell, layers, bidirectional, batch_first, with_h0):
    m = layer(cell, layers, bidirectional, batch_first)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(m, inputs(m, 2, 5, with_h0))  # in grad mode, as a new user would
    assert "PythonOp" not in str(traced.graph)  # no opaque autograd.Function in the graph
    other = inputs(m, 3, 9, with_h0)
    for got, want in zip(traced(*other), m(*other), strict=True):
        for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,),
                        strict=True):  # fmt: skip
            torch.testing.assert_close(g, w, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_onnx_export_is_the_recurrent_op_and_equals_eager_at_another_batch_and_length(cell, bidirectional):
    onnx = pytest.importorskip("onnx")  # the test extra installs it; a bare checkout still runs the rest
    ort = pytest.importorskip("onnxruntime")
    m = layer(cell, 2, bidirectional, batch_first=True)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, inputs(m, 2, 5, False), f, dynamo=False, input_names=["x"], output_names=["y", "h"],
                          dynamic_axes={"x": {0: "B", 1: "T"}, "y": {0: "B", 1: "T"}})  # fmt: skip
    ops = {n.op_type for n in onnx.load_from_string(f.getvalue()).graph.node}
    assert ONNX_OPS[cell] in ops, ops  # the recurrence is in the graph
    (x,) = inputs(m, 3, 9, False)
    got = ort.InferenceSession(f.getvalue()).run(["y"], {"x": x.numpy()})[0]
    np.testing.assert_allclose(got, m(x)[0].detach().numpy(), atol=1e-5, rtol=0)


def test_tracing_with_lengths_is_refused_in_words():
    m = layer("gru", 1, False, batch_first=True)
    with pytest.raises(RuntimeError, match="tracing or exporting with lengths"):
        torch.jit.trace(lambda x, n: m(x, lengths=n)[0], (torch.randn(2, 5, 4), torch.tensor([5, 3])))
