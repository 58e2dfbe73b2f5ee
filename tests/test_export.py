"""The drop-in layers under a tracer (torch.jit.trace, the TorchScript ONNX exporter): exact at a batch size, a
length and lengths other than the traced ones, or refused; never a graph that runs and is wrong. And dynamic
quantization, which must turn seqlab's layers into torch's quantized ones as it does torch.nn's.

Before, a GRU or RNN exported to ONNX as its input projection alone (the bptt autograd.Function is opaque to a
tracer): onnxruntime ran it, off by up to 0.87, and torch.jit.trace failed outright. Tracing with lengths was
refused, and torch's quantize_dynamic left seqlab's layers in floating point without a word."""

import io
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqlab.layers import GRU, LSTM, RNN, quantization_mapping, quantize_dynamic

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


class WithLengths(nn.Module):
    """A tracer takes tensors in and out: the layer called with lengths (and h0), its outputs flattened."""

    def __init__(self, m, packed: bool = False):
        super().__init__()
        self.m, self.packed = m, packed

    def forward(self, x, n, *h0):
        hx = None if not h0 else h0 if len(h0) == 2 else h0[0]
        if not self.packed:
            y, h = self.m(x, hx, lengths=n)
        else:  # a PackedSequence in and out, as a torch.nn user writes it
            bf = self.m.batch_first
            y, h = self.m(pack_padded_sequence(x, n, batch_first=bf, enforce_sorted=False), hx)
            y = pad_packed_sequence(y, batch_first=bf, total_length=x.shape[1 if bf else 0])[0]
        return (y, *h) if isinstance(h, tuple) else (y, h)


def lengths_inputs(m, B: int, T: int, lengths: list[int], with_h0: bool):
    x, *h0 = inputs(m, B, T, with_h0)
    h0 = [t for h in h0 for t in (h if isinstance(h, tuple) else (h,))]
    return (x, torch.tensor(lengths), *h0)


TRACED = (3, 5, [5, 2, 4])  # B, T, lengths the graph is traced at
OTHER = (5, 8, [3, 8, 1, 6, 8])  # another batch and length; unsorted lengths, one of them T, one of them 1


def torch_twin(m, cell: str) -> nn.Module:
    """torch.nn's layer with m's weights, run the torch.nn way on a padded batch (pack, layer, pad)."""
    kind = {"lstm": nn.LSTM, "gru": nn.GRU}.get(cell, nn.RNN)
    extra = {"nonlinearity": "relu"} if cell == "rnn-relu" else {}
    twin = kind(4, 6, m.num_layers, batch_first=m.batch_first, bidirectional=m.bidirectional, **extra).eval()
    twin.load_state_dict(m.state_dict())
    return WithLengths(twin, packed=True)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers,bidirectional,batch_first,with_h0",
                         [(1, False, False, False), (1, True, True, True), (2, True, False, True),
                          (2, False, True, False)])  # fmt: skip
def test_a_layer_traced_with_lengths_equals_eager_at_other_lengths(cell, layers, bidirectional, batch_first, with_h0):
    m = WithLengths(layer(cell, layers, bidirectional, batch_first))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(m, lengths_inputs(m.m, *TRACED, with_h0))
    assert "PythonOp" not in str(traced.graph)
    other = lengths_inputs(m.m, *OTHER, with_h0)
    want = m(*other)
    for got, w in zip(traced(*other), want, strict=True):
        torch.testing.assert_close(got, w, atol=1e-5, rtol=0)
    for got, w in zip(torch_twin(m.m, cell)(*other), want, strict=True):  # eager seqlab is torch.nn's packed path
        torch.testing.assert_close(got, w, atol=1e-5, rtol=0)
    n = other[1]
    y = want[0] if batch_first else want[0].transpose(0, 1)
    assert not y[1, n[1] :].any() and not y[2, n[2] :].any()  # zero past each length
    full = (other[0], torch.full_like(n, OTHER[1]), *other[2:])  # every row full length: eager takes another path
    for got, w in zip(traced(*full), m(*full), strict=True):
        torch.testing.assert_close(got, w, atol=1e-5, rtol=0)


def export_onnx(m, args, names: list[str], batch_first: bool) -> bytes:
    """The TorchScript exporter, every batch and time axis dynamic."""
    B, T = (0, 1) if batch_first else (1, 0)
    seq = {B: "B", T: "T"}
    state = {1: "B"}
    inputs_ = ["x", "n", *(f"{k}0" for k in names[1:])][: len(args)]
    axes = {"x": seq, "n": {0: "B"}, "y": seq} | {k: state for k in inputs_[2:] + names[1:]}
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, args, f, dynamo=False, input_names=inputs_, output_names=names, dynamic_axes=axes)
    return f.getvalue()


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers,bidirectional,batch_first,with_h0,packed",
                         [(2, True, True, True, False), (1, False, False, False, False),
                          (2, True, False, False, True)])  # fmt: skip
def test_onnx_export_with_lengths_equals_eager_at_other_lengths(cell, layers, bidirectional, batch_first, with_h0,
                                                                packed):  # fmt: skip
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    m = WithLengths(layer(cell, layers, bidirectional, batch_first), packed=packed)
    names = ["y", "h", "c"] if cell == "lstm" else ["y", "h"]
    graph = export_onnx(m, lengths_inputs(m.m, *TRACED, with_h0), names, batch_first)
    ops = {n.op_type for n in onnx.load_from_string(graph).graph.node}
    assert ONNX_OPS[cell] in ops, ops  # one recurrent op, its sequence_lens the lengths
    other = lengths_inputs(m.m, *OTHER, with_h0)
    session = ort.InferenceSession(graph)
    got = session.run(None, {i.name: a.numpy() for i, a in zip(session.get_inputs(), other, strict=True)})
    for g, w in zip(got, m(*other), strict=True):
        np.testing.assert_allclose(g, w.detach().numpy(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", ["lstm", "rnn-relu"])
def test_a_traced_layer_takes_a_packed_sequence_as_torch_nn_does(cell):
    m = WithLengths(layer(cell, 2, True, batch_first=True), packed=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(m, lengths_inputs(m.m, *TRACED, True))
    other = lengths_inputs(m.m, *OTHER, True)
    for got, tw, w in zip(traced(*other), torch_twin(m.m, cell)(*other), WithLengths(m.m)(*other), strict=True):
        torch.testing.assert_close(got, tw, atol=1e-5, rtol=0)
        torch.testing.assert_close(got, w, atol=1e-5, rtol=0)


class Dynamic(nn.Module):
    """x, lengths (used or not) and h0 in; output and state out: for torch.export, whose inputs are all tensors."""

    def __init__(self, m, use_lengths: bool):
        super().__init__()
        self.m, self.use_lengths = m, use_lengths

    def forward(self, x, n, *h0):
        hx = h0 if len(h0) == 2 else h0[0]
        y, h = self.m(x, hx, lengths=n if self.use_lengths else None)
        return (y, *h) if isinstance(h, tuple) else (y, h)


def dynamic_shapes(with_state: int):
    B, T = torch.export.Dim("B"), torch.export.Dim("T")
    return {"x": {0: B, 1: T}, "n": {0: B}, "h0": tuple({1: B} for _ in range(with_state))}


# torch.export takes 3-7 s a scan on this machine: a few cases that cover the cells, two layers, both directions
# and lengths.
@pytest.mark.parametrize("cell,layers,bidirectional,use_lengths",
                         [("lstm", 1, True, True), ("gru", 2, False, False)])  # fmt: skip
def test_torch_export_keeps_batch_length_and_lengths_dynamic_and_exact(cell, layers, bidirectional, use_lengths):
    """Under torch.export each layer-direction is one scan over time (cells.reference.scanned), so the program is
    exact at another batch size, length and lengths; torch.nn's own LSTM has its length fixed there."""
    m = Dynamic(layer(cell, layers, bidirectional, batch_first=True), use_lengths)
    args = lengths_inputs(m.m, *TRACED, True)
    program = torch.export.export(m, args, dynamic_shapes=dynamic_shapes(len(args) - 2))
    other = lengths_inputs(m.m, *OTHER, True)
    for got, want in zip(program.module()(*other), m(*other), strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell,layers,bidirectional", [("rnn-relu", 1, True)])
def test_the_dynamo_onnx_exporter_keeps_lengths_exact(cell, layers, bidirectional):
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    m = Dynamic(layer(cell, layers, bidirectional, batch_first=True), True)
    args = lengths_inputs(m.m, *TRACED, True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(m, args, dynamo=True, dynamic_shapes=dynamic_shapes(len(args) - 2))
    session = ort.InferenceSession(program.model_proto.SerializeToString())
    other = lengths_inputs(m.m, *OTHER, True)
    got = session.run(None, {i.name: a.numpy() for i, a in zip(session.get_inputs(), other, strict=True)})
    for g, w in zip(got, m(*other), strict=True):
        np.testing.assert_allclose(g, w.detach().numpy(), atol=1e-5, rtol=0)


def test_torch_export_refuses_a_packed_sequence_in_words():
    m = WithLengths(layer("gru", 1, False, batch_first=True), packed=True)
    with pytest.raises(RuntimeError, match=r"PackedSequence cannot be exported by torch\.export.*lengths="):
        torch.export.export(m, lengths_inputs(m.m, *TRACED, False))


class Net(nn.Module):
    def __init__(self, recurrent: nn.Module):
        super().__init__()
        self.rec, self.head = recurrent, nn.Linear(12, 3)

    def forward(self, x):
        return self.head(self.rec(x)[0])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("dtype", [torch.qint8, torch.float16])
def test_quantize_dynamic_makes_seqlab_layers_torchs_quantized_ones(cell, dtype):
    from torch.ao.nn.quantized import dynamic as nnqd
    from torch.ao.quantization import quantize_dynamic as torch_quantize_dynamic

    ours = Net(layer(cell, 2, True, batch_first=True))
    theirs = Net(torch_twin(ours.rec, cell).m)
    theirs.head.load_state_dict(ours.head.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation
        q_ours, q_theirs = quantize_dynamic(ours, dtype), torch_quantize_dynamic(theirs, dtype=dtype)
        q_mapped = torch_quantize_dynamic(ours, {nn.Linear, LSTM, GRU}, dtype, mapping=quantization_mapping())
    quantized = {"lstm": nnqd.LSTM, "gru": nnqd.GRU}[cell]
    for q in (q_ours, q_mapped):
        assert type(q.rec) is quantized and type(q.head) is nnqd.Linear
        assert q.rec.batch_first and q.rec.bidirectional and q.rec.num_layers == 2
    assert type(ours.rec) is CELLS[cell][0]  # not in place
    x = torch.randn(3, 7, 4)
    torch.testing.assert_close(q_ours(x), q_theirs(x), atol=1e-6, rtol=0)
    torch.testing.assert_close(q_mapped(x), q_theirs(x), atol=1e-6, rtol=0)


def test_quantize_dynamic_refuses_a_seqlab_rnn_unless_it_is_excluded():
    from torch.ao.nn.quantized import dynamic as nnqd
    from torch.ao.quantization import quantize_dynamic as torch_quantize_dynamic

    model = Net(RNN(4, 12))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=r"rec is a seqlab RNN.*exclude"):
            quantize_dynamic(model)
        with pytest.raises(ValueError, match="seqlab RNN"):  # torch's own, given the mapping and asked for RNN
            torch_quantize_dynamic(model, {RNN}, mapping=quantization_mapping())
        for exclude in ([RNN], "rec"):
            q = quantize_dynamic(model, exclude=exclude)
            assert type(q.rec) is RNN and type(q.head) is nnqd.Linear
        assert type(quantize_dynamic(model, exclude="").head) is nn.Linear  # the whole model kept float
        with pytest.raises(ValueError, match="no module"):
            quantize_dynamic(model, exclude=["recc"])
