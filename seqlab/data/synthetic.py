"""Synthetic memory tasks with known answers and known no-memory baselines (Hochreiter & Schmidhuber 1997; the
unitary-RNN papers: Arjovsky, Shah & Bengio 2016; IndRNN, Li et al. 2018).

Every batch is a pure function of (seed, index), so a run's data can be regenerated and a lab run resumed.
"""

from __future__ import annotations

import math

import torch

ADDING_BASELINE = 1 / 6  # MSE of always predicting 1: the variance of a sum of two U(0, 1)
COPY_SYMBOLS, COPY_BLANK, COPY_MARKER, COPY_LENGTH = 8, 0, 9, 10


def adding(n: int, T: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The adding problem, halves variant: x (n, T, 2), y (n,).

    Channel 0 holds values ~ U(0, 1); channel 1 marks one position drawn from the first half and one from the
    second half; the target is the sum of the two marked values. Only the last step's output is scored.
    """
    if T < 2:
        raise ValueError(f"the adding problem needs T >= 2, got {T}")
    g = torch.Generator().manual_seed(seed)
    values = torch.rand(n, T, generator=g)
    first = torch.randint(0, T // 2, (n,), generator=g)
    second = torch.randint(T // 2, T, (n,), generator=g)
    marks = torch.zeros(n, T)
    rows = torch.arange(n)
    marks[rows, first] = 1.0
    marks[rows, second] = 1.0
    return torch.stack([values, marks], 2), values[rows, first] + values[rows, second]


def copy_memory(n: int, T: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The copy-memory task: x, y (n, T + 20) of symbol ids.

    Input: 10 symbols from {1..8}, T - 1 blanks (0), the marker 9, 10 blanks. Target: blank for the first T + 10
    steps, then the 10 symbols. Cross-entropy over all steps.
    """
    if T < 1:
        raise ValueError(f"the copy task needs T >= 1, got {T}")
    g = torch.Generator().manual_seed(seed)
    symbols = torch.randint(1, COPY_SYMBOLS + 1, (n, COPY_LENGTH), generator=g)
    x = torch.full((n, T + 2 * COPY_LENGTH), COPY_BLANK, dtype=torch.long)
    x[:, :COPY_LENGTH] = symbols
    x[:, T + COPY_LENGTH - 1] = COPY_MARKER
    y = torch.full_like(x, COPY_BLANK)
    y[:, -COPY_LENGTH:] = symbols
    return x, y


def copy_baseline(T: int) -> float:
    """Cross-entropy per step of the best memoryless answer: blanks where blanks are due, then a uniform guess
    among the 8 symbols for each of the 10 to recall."""
    return COPY_LENGTH * math.log(COPY_SYMBOLS) / (T + 2 * COPY_LENGTH)
