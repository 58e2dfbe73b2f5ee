"""Recording on the bptt backend: gates against the reference equations, ||∂L/∂h_t|| against autograd."""

import ast
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

import seqlab
from seqlab.cells import reference

I, H, B, T = 3, 4, 3, 6
LENGTHS = torch.tensor([4, 6, 2])


def total_gradient_at_each_state(cell, m, x, lengths, loss_fn):
    """∂L/∂h_t by the definition: add a zero perturbation ε_t to h_t (as output and as the next state) in a
    per-step reference loop, and read ∂L/∂ε_t."""
    w = (m.weight_ih_l0, m.weight_hh_l0, m.bias_ih_l0, m.bias_hh_l0)
    eps = torch.zeros(T, B, H, dtype=x.dtype, requires_grad=True)
    state = (torch.zeros(B, H, dtype=x.dtype),) * (2 if cell is reference.lstm_cell else 1)
    outs = []
    for t in range(T):
        new = cell(x[:, t], state, *w)
        live = (lengths > t)[:, None]
        h = torch.where(live, new[0] + eps[t], state[0])
        state = (h, *(torch.where(live, n, s) for n, s in zip(new[1:], state[1:], strict=True)))
        outs.append(torch.where(live, h, torch.zeros_like(h)))
    loss_fn(torch.stack(outs, 1)).backward()
    return eps.grad.norm(dim=-1).t()  # (B, T)


@pytest.mark.parametrize(
    "cls, cell, gate_names",
    [
        (seqlab.LSTM, reference.lstm_cell, ("i", "f", "g", "o", "c", "h")),
        (seqlab.GRU, reference.gru_cell, ("r", "z", "n", "h")),
        (seqlab.RNN, reference.rnn_tanh_cell, ("h",)),
    ],
)
def test_recorded_gates_and_gradient_norms(cls, cell, gate_names):
    m = cls(I, H, batch_first=True, dtype=torch.float64)
    x = torch.randn(B, T, I, dtype=torch.float64)
    target = torch.randn(B, T, H, dtype=torch.float64)
    loss_fn = lambda y: ((y - target) ** 2).sum()  # noqa: E731
    with seqlab.record(m) as rec:
        y, _ = m(x, lengths=LENGTHS)
        loss_fn(y).backward()
    assert set(rec.gates["l0"]) == set(gate_names)
    torch.testing.assert_close(rec.gates["l0"]["h"], y.detach())
    want = total_gradient_at_each_state(cell, m, x, LENGTHS, loss_fn)
    torch.testing.assert_close(rec.grad_norm["l0"], want)
    assert rec.grad_norm["l0"].shape == (B, T)
    if cls is seqlab.LSTM:  # the forget gate, from its equation
        w_ih, w_hh, b = m.weight_ih_l0, m.weight_hh_l0, m.bias_ih_l0 + m.bias_hh_l0
        h_prev = torch.cat([torch.zeros(B, 1, H, dtype=x.dtype), y[:, :-1]], 1).detach()
        f = torch.sigmoid(F.linear(x, w_ih[H : 2 * H]) + F.linear(h_prev, w_hh[H : 2 * H]) + b[H : 2 * H])
        live = (torch.arange(T) < LENGTHS[:, None])[..., None]
        torch.testing.assert_close(rec.gates["l0"]["f"], torch.where(live, f, 0.0).detach())


def test_bidirectional_stacked_recording_is_in_the_callers_layout():
    m = seqlab.GRU(I, H, num_layers=2, bidirectional=True, dtype=torch.float64)
    model = torch.nn.Sequential()
    model.add_module("encoder", m)
    x = torch.randn(T, B, I, dtype=torch.float64)
    with seqlab.record(model) as rec:
        y, _ = m(x, lengths=LENGTHS)
        y.sum().backward()
    assert set(rec.gates) == {"encoder.l0", "encoder.l0_reverse", "encoder.l1", "encoder.l1_reverse"}
    torch.testing.assert_close(rec.gates["encoder.l1"]["h"], y[..., :H].transpose(0, 1).detach())
    torch.testing.assert_close(rec.gates["encoder.l1_reverse"]["h"], y[..., H:].transpose(0, 1).detach())
    for name, norms in rec.grad_norm.items():
        assert norms.shape == (B, T), name
        past = torch.arange(T) >= LENGTHS[:, None]
        assert torch.all(norms[past] == 0), name


def test_recording_is_off_by_default_and_refuses_other_backends():
    m = seqlab.LSTM(I, H)
    assert m.effective_backend == "fused"
    with seqlab.record(m) as rec:
        assert m.effective_backend == "bptt"
    assert m.effective_backend == "fused" and rec.gates == {}
    fused = seqlab.LSTM(I, H, backend="fused")
    with pytest.raises(ValueError, match="uses backend='fused'; use 'bptt' or 'auto'"), seqlab.record(fused):
        pass
    with pytest.raises(ValueError, match="contains no seqlab recurrent layer"), seqlab.record(torch.nn.Linear(2, 2)):
        pass


def test_layers_are_attached_through_their_public_api_and_never_twice():
    m = seqlab.RNN(I, H)  # auto without gradients is fused for the RNN
    model = torch.nn.Sequential(m)
    with seqlab.record(model) as rec:
        with pytest.raises(RuntimeError, match="already recording"), seqlab.record(m):
            pass
        m(torch.randn(T, B, I))  # the outer recording is still attached
        with torch.no_grad():
            assert m.effective_backend == "bptt"  # recording needs bptt
    assert set(rec.gates) == {"0.l0"}
    with torch.no_grad():
        assert m.effective_backend == "fused"  # detached on leaving
    sink = seqlab.Recording()
    m.attach_recording(sink, "enc.")
    m(torch.randn(T, B, I))
    m.detach_recording()
    assert set(sink.gates) == {"enc.l0"}


def test_recurrent_does_not_import_recording():
    """recording.py finds the layers; recurrent.py must not import it back (the cycle of issue 13)."""
    tree = ast.parse(Path(seqlab.layers.recurrent.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not any(name.endswith("recording") for name in imported), imported


def test_forget_bias_makes_gradients_reach_further_back():
    """The literature's reason for forget_bias=1: at initialisation, ||∂L/∂h_t|| decays more slowly through time.
    Measured g_0 / g_39 for a loss at the last of 40 steps: about 5e-10, 6e-5 and 0.09 for biases 0, 1 and 3."""
    x = torch.randn(16, 40, I)
    reach = {}
    for bias in (0.0, 1.0, 3.0):
        torch.manual_seed(1)
        m = seqlab.LSTM(I, 32, batch_first=True, forget_bias=bias)
        with seqlab.record(m) as rec:
            y, _ = m(x)
            y[:, -1].sum().backward()  # loss at the last step only
        g = rec.grad_norm["l0"].mean(0)
        reach[bias] = float(g[0] / g[-1])
    assert 0 < 1e3 * reach[0.0] < reach[1.0] and 1e2 * reach[1.0] < reach[3.0]
