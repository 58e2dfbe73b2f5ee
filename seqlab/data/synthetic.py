"""Synthetic memory tasks with known answers and known no-memory baselines (Hochreiter & Schmidhuber 1997; the
unitary-RNN papers: Arjovsky, Shah & Bengio 2016; IndRNN, Li et al. 2018), and two that separate recurrences whose
gates read the input only (minGRU, minLSTM) from the classic ones: running parity, which needs a state that can flip
sign (Grazzi et al. 2024; Merrill et al. 2024), and selective copying, which needs input-dependent gates (Gu & Dao
2023's Mamba paper; Feng et al. 2024 report that stacked minGRU/minLSTM solve it).

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


PARITY_BASELINE = math.log(2)  # cross-entropy of answering 1/2 at every step


def parity(n: int, T: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Running parity: x (n, T) of bits {0, 1}, y (n, T) the parity of x_1..x_t at every step t.

    The state must flip with every 1 read: h_t = -h_{t-1} in some direction. An LSTM or GRU can; a recurrence
    h_t = a_t * h_{t-1} + b_t with 0 < a_t < 1 (minGRU, minLSTM) cannot for long sequences, whatever its width.
    Cross-entropy over all steps; the answer 1/2 scores ln 2."""
    if T < 1:
        raise ValueError(f"the parity task needs T >= 1, got {T}")
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 2, (n, T), generator=g)
    return x, x.cumsum(1) % 2


def selective_copy(n: int, T: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Selective copying: x, y (n, T + 10) of symbol ids.

    Input: T steps of blanks (0) with 10 symbols from {1..8} at random positions (a different set per sequence),
    then 10 markers (9). Target: the 10 symbols in the order they appeared, at the 10 marker steps; the steps
    before are not scored (their target is blank). Unlike the copy task the symbols' positions vary, so a model
    must decide from each input whether to store it. The memoryless answer scores ln 8 per scored step."""
    if T < COPY_LENGTH:
        raise ValueError(f"selective copying places {COPY_LENGTH} symbols among T steps: needs T >= {COPY_LENGTH}, "
                         f"got {T}")  # fmt: skip
    g = torch.Generator().manual_seed(seed)
    symbols = torch.randint(1, COPY_SYMBOLS + 1, (n, COPY_LENGTH), generator=g)
    where = torch.rand(n, T, generator=g).argsort(1)[:, :COPY_LENGTH].sort(1).values  # distinct, in order
    x = torch.full((n, T + COPY_LENGTH), COPY_BLANK, dtype=torch.long)
    x.scatter_(1, where, symbols)
    x[:, T:] = COPY_MARKER
    y = torch.full_like(x, COPY_BLANK)
    y[:, T:] = symbols
    return x, y


SELECTIVE_BASELINE = math.log(COPY_SYMBOLS)  # a uniform guess among the 8 symbols at each scored step
