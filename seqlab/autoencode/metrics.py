"""Scores for time-series anomaly detection: runs of flags, smoothing, average precision, range precision and recall.

Legend: T time steps, N scored points. Flags are 1-D bool arrays (True = anomalous step); ranges are half-open
(start, end). numpy only.

Range-based precision and recall (Tatbul et al., NeurIPS 2018, "Precision and Recall for Time Series") with the
choices TimeEval reports: flat positional bias, reciprocal cardinality, α = 0 for precision. For a real range R_i
against the predicted ranges P = {P_j} of the same series:

    ω(R_i, P_j) = |R_i ∩ P_j| / |R_i|                               overlap size (flat bias: every step weighs 1)
    x_i = #{j : R_i ∩ P_j ≠ ∅},   γ_i = 1 / x_i (1 when x_i ≤ 1)      reciprocal cardinality: split detections pay
    Recall_T(R_i) = α · 1[x_i > 0] + (1 - α) · γ_i · Σ_j ω(R_i, P_j)
    Precision_T(P_j) = γ_j · Σ_i |P_j ∩ R_i| / |P_j|                  the same with the roles swapped and α = 0

Recall is the mean over all real ranges, precision the mean over all predicted ranges, both pooled over series.
"""

from __future__ import annotations

import numpy as np


def intervals(flags: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True in a 1-D bool array, as (start, end) with end exclusive."""
    f = np.asarray(flags, dtype=bool)
    if f.ndim != 1:
        raise ValueError(f"flags must be 1-D, got shape {f.shape}")
    edges = np.flatnonzero(np.diff(np.concatenate(([False], f, [False])).astype(np.int8)))  # rises, then falls
    return [(int(s), int(e)) for s, e in zip(edges[::2], edges[1::2], strict=True)]


def smooth(scores: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average: out[t] = mean(scores[max(0, t - width//2) : min(T, t + (width - 1)//2 + 1)]).

    The window holds ``width`` steps (for an even width one more in the past, as pandas' ``rolling(center=True)``);
    at the edges it is the mean of the part of the window that exists, so there is no bias towards zero. O(T) with
    one cumulative sum in float64; the mean is taken out first so the running sum does not lose digits.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {s.shape}")
    if width < 1:
        raise ValueError(f"width must be at least 1, got {width}")
    T = len(s)
    if T == 0 or width == 1:
        return s.copy()
    mu = s.mean()
    cs = np.concatenate(([0.0], np.cumsum(s - mu)))  # (T + 1,)
    t = np.arange(T)
    lo, hi = np.maximum(t - width // 2, 0), np.minimum(t + (width - 1) // 2 + 1, T)
    return (cs[hi] - cs[lo]) / (hi - lo) + mu


def average_precision(y: np.ndarray, s: np.ndarray) -> float:
    """Area under the precision-recall curve as average precision, AP = Σ_k (R_k - R_{k-1}) P_k.

    The thresholds are the distinct score values, highest first (as sklearn's ``average_precision_score``): tied
    scores enter together, so a tie between a positive and a negative costs precision whatever their order. nan when
    y has no positive.
    """
    y, s = np.asarray(y).astype(bool).ravel(), np.asarray(s, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"y and s differ in length: {y.shape} vs {s.shape}")
    if not y.any():
        return float("nan")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.concatenate((np.flatnonzero(np.diff(s)), [len(s) - 1]))  # last index of each distinct score value
    tp = np.cumsum(y)[last]
    precision, recall = tp / (last + 1), tp / tp[-1]
    return float(np.sum(np.diff(np.concatenate(([0.0], recall))) * precision))


def _rewards(flags: np.ndarray, other: np.ndarray, alpha: float) -> np.ndarray:
    """α · 1[x > 0] + (1 - α) · γ(x) · |range ∩ other| / |range| for each range of ``flags``, O(T).

    Because the other side's ranges are disjoint, Σ_j |range ∩ O_j| is the count of ``other`` steps inside the range,
    and x, the number of other ranges it meets, is the count of other ranges starting inside it after its first step
    plus one if ``other`` is already True at its first step.
    """
    r = np.asarray(intervals(flags), dtype=np.int64).reshape(-1, 2)
    if len(r) == 0:
        return np.zeros(0)
    s, e = r[:, 0], r[:, 1]
    covered = np.concatenate(([0], np.cumsum(other)))  # (T + 1,)
    begins = np.concatenate(([0], np.cumsum(other & ~np.concatenate(([False], other[:-1])))))
    x = begins[e] - begins[s + 1] + other[s]
    gamma = 1.0 / np.maximum(x, 1)
    return alpha * (x > 0) + (1 - alpha) * gamma * (covered[e] - covered[s]) / (e - s)


def range_scores(true: list[np.ndarray], pred: list[np.ndarray], alpha: float = 0.0) -> dict[str, float]:
    """Range-based precision, recall and F1 pooled over series (formulas in the module docstring).

    Arguments:
        true, pred: one 1-D bool array per series, the same lengths pairwise; ranges never cross series.
        alpha: existence weight of recall (precision always uses α = 0).
    Returns:
        {"precision", "recall", "f1"}: precision 0 when nothing is predicted, recall nan when there is no real range,
        f1 = 2pr / (p + r), 0 when p + r = 0 (nan when recall is).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    if len(true) != len(pred):
        raise ValueError(f"{len(true)} true series but {len(pred)} predicted")
    recalls, precisions = [], []
    for i, (t, p) in enumerate(zip(true, pred, strict=True)):
        t, p = np.asarray(t, dtype=bool), np.asarray(p, dtype=bool)
        if t.ndim != 1 or t.shape != p.shape:
            raise ValueError(f"series {i}: true and pred must be 1-D of one length, got {t.shape} and {p.shape}")
        recalls.append(_rewards(t, p, alpha))
        precisions.append(_rewards(p, t, 0.0))
    rec, prec = np.concatenate([np.zeros(0), *recalls]), np.concatenate([np.zeros(0), *precisions])
    r = float(rec.mean()) if len(rec) else float("nan")
    p = float(prec.mean()) if len(prec) else 0.0
    f1 = 0.0 if p + r == 0 else 2 * p * r / (p + r)
    return {"precision": p, "recall": r, "f1": f1}
