"""The memory tasks against their definitions and their published no-memory baselines."""

import math

import pytest
import torch

from seqlab.data.synthetic import ADDING_BASELINE, adding, copy_baseline, copy_memory


def test_adding_problem_definition():
    x, y = adding(20000, 100, seed=0)
    assert x.shape == (20000, 100, 2) and y.shape == (20000,)
    marks = x[..., 1]
    assert torch.all(marks.sum(1) == 2)
    first, second = marks[:, :50].argmax(1), 50 + marks[:, 50:].argmax(1)
    assert torch.all(marks[:, :50].sum(1) == 1) and torch.all(marks[:, 50:].sum(1) == 1)
    rows = torch.arange(20000)
    torch.testing.assert_close(y, x[rows, first, 0] + x[rows, second, 0])
    assert abs(float(y.mean()) - 1.0) < 0.01  # E[sum] = 1
    assert abs(float(((y - 1) ** 2).mean()) - ADDING_BASELINE) < 0.005  # predicting 1 gives MSE 1/6
    assert torch.equal(adding(5, 100, seed=3)[0], adding(5, 100, seed=3)[0])
    assert not torch.equal(adding(5, 100, seed=3)[0], adding(5, 100, seed=4)[0])


@pytest.mark.parametrize("T, baseline", [(100, 0.1733), (200, 0.0945)])
def test_copy_task_definition_and_baseline(T, baseline):
    x, y = copy_memory(500, T, seed=0)
    assert x.shape == y.shape == (500, T + 20)
    assert torch.all((x[:, :10] >= 1) & (x[:, :10] <= 8))
    assert torch.all(x[:, 10 : T + 9] == 0) and torch.all(x[:, T + 9] == 9) and torch.all(x[:, T + 10 :] == 0)
    assert torch.all(y[:, : T + 10] == 0) and torch.equal(y[:, T + 10 :], x[:, :10])
    assert abs(copy_baseline(T) - baseline) < 1e-4
    # The memoryless answer (blank where due, uniform over 8 symbols after) scores exactly the baseline.
    logits = torch.full((500, T + 20, 10), -1e9)
    logits[:, : T + 10, 0] = 0
    logits[:, T + 10 :, 1:9] = 0
    ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
    assert math.isclose(float(ce), copy_baseline(T), rel_tol=1e-5)


def test_running_parity_definition():
    from seqlab.data.synthetic import PARITY_BASELINE, parity

    x, y = parity(300, 40, seed=0)
    assert x.shape == y.shape == (300, 40) and set(x.unique().tolist()) == {0, 1}
    state = torch.zeros(300, dtype=torch.long)
    for t in range(40):  # the definition, one step at a time: flip on every 1
        state = state ^ x[:, t]
        assert torch.equal(y[:, t], state)
    assert abs(float(x.float().mean()) - 0.5) < 0.02
    assert math.isclose(PARITY_BASELINE, math.log(2))
    assert torch.equal(parity(4, 9, seed=5)[0], parity(4, 9, seed=5)[0])
    with pytest.raises(ValueError, match="T >= 1"):
        parity(2, 0, seed=0)


def test_selective_copy_definition_and_baseline():
    from seqlab.data.synthetic import SELECTIVE_BASELINE, selective_copy
    from seqlab.lab.task import LabConfig, MemoryTask

    T = 30
    x, y = selective_copy(400, T, seed=0)
    assert x.shape == y.shape == (400, T + 10)
    assert torch.all(x[:, T:] == 9) and torch.all(y[:, :T] == 0)
    stored = x[:, :T]
    assert torch.all((stored >= 0) & (stored <= 8)) and torch.all((stored > 0).sum(1) == 10)
    for i in range(400):  # the symbols come back in the order they appeared
        assert torch.equal(y[i, T:], stored[i][stored[i] > 0])
    positions = torch.stack([torch.nonzero(stored[i]).flatten() for i in range(400)])
    assert set(positions.flatten().tolist()) == set(range(T))  # any step can hold a symbol
    assert len({tuple(p) for p in positions.tolist()}) > 390  # a different placement per sequence
    # Only the 10 recall steps are scored: the memoryless answer (uniform over the 8 symbols) scores ln 8 there,
    # whatever it says before.
    task = MemoryTask(LabConfig(task="selective", T=T, hidden=4, test_size=8))
    logits = torch.randn(400, T + 10, 9)
    logits[:, T:] = 0
    logits[:, T:, 0] = -1e9
    assert math.isclose(float(task._loss_of(logits, y)), SELECTIVE_BASELINE, rel_tol=1e-5)
    with pytest.raises(ValueError, match="needs T >= 10"):
        selective_copy(2, 9, seed=0)
