"""Forecast accuracy as the M competitions measure it: sMAPE, MASE, and OWA against Naive2; seasonal naive and Naive2.

Legend: n series, T history steps, H horizon, C channels, m season.

- sMAPE (%) = 200 |y - y_hat| / (|y| + |y_hat|), averaged over steps (0 where both are 0).
- MASE = MAE / (in-sample MAE of the seasonal-naive forecast, lag m) (Hyndman & Koehler 2006): below 1 beats
  seasonal naive on the history's own terms.
- OWA = (sMAPE / sMAPE_Naive2 + MASE / MASE_Naive2) / 2, on the means over all series and origins (M4's overall
  weighted average): below 1 beats Naive2.
- Naive2 (M4): the last value, on data seasonally adjusted by classical multiplicative decomposition when a 90%
  autocorrelation test at lag m finds seasonality (m > 1, positive data); else plain naive.
"""

from __future__ import annotations

import numpy as np

SEASONALITY_Z = 1.645  # the M4 benchmarks' one-sided 90% test on the lag-m autocorrelation


def seasonal_naive(history: np.ndarray, horizon: int, m: int) -> np.ndarray:
    """y_hat(T + h) = y(T + h - m * ceil(h / m)): the last season repeated (m = 1: the last value)."""
    m = min(m, len(history))
    last = history[-m:]
    return np.stack([last[(h % m)] for h in range(horizon)])


def smape(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Elementwise sMAPE (%), 0 where truth and forecast are both 0."""
    denom = np.abs(truth) + np.abs(pred)
    return np.where(denom > 0, 200 * np.abs(pred - truth) / np.where(denom > 0, denom, 1), 0.0)


def mase_scale(history: np.ndarray, m: int) -> np.ndarray:
    """The in-sample MAE of seasonal naive, per channel: history (T, C) -> (C,); 1 where it is 0 or undefined."""
    lag = min(m, len(history) - 1)
    if lag < 1:
        return np.ones(history.shape[1])
    scale = np.abs(history[lag:] - history[:-lag]).mean(0)
    return np.where(scale > 0, scale, 1.0)


def scores(truth: np.ndarray, pred: np.ndarray, insample: list[np.ndarray], m: int) -> dict[str, float]:
    """MAE, RMSE, sMAPE (%) and MASE over series, steps and channels: truth and pred (n, H, C), insample[i] (T_i, C)."""
    err = pred - truth
    mase = [(np.abs(err[i]).mean(0) / mase_scale(hist, m)).mean() for i, hist in enumerate(insample)]
    return {
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "smape": float(smape(truth, pred).mean()),
        "mase": float(np.mean(mase)),
    }


def pinball_terms(diff: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    """The pinball (quantile) loss of each value: diff = truth - forecast quantile, (..., Q) at ``levels``; q * diff
    above the forecast, (q - 1) * diff below (models.esrnn.pinball is the training loss's torch twin)."""
    lv = np.asarray(levels)
    return np.maximum(lv * diff, (lv - 1) * diff)


def interval_level(levels: tuple[float, ...]) -> int:
    """The outer quantiles' interval in %: (0.1, .., 0.9) -> 80."""
    return round(100 * (levels[-1] - levels[0]))


def quantile_scores(truth: np.ndarray, q: np.ndarray, levels: tuple[float, ...], insample: list[np.ndarray],
                    m: int) -> dict:  # fmt: skip
    """How good forecast quantiles are: truth (n, H, C), q (n, H, C, Q) at sorted ``levels``. Returns
    - ``coverage_<P>``: the share of truths inside the outer interval (P % = 100 (q_Q - q_1));
    - ``msis_<P>``: M4's mean scaled interval score of it, (u - l + 2/a (l - y)[y < l] + 2/a (y - u)[y > u]) / scale
      with a = 1 - P/100, scale being MASE's (seasonal naive's in-sample MAE);
    - ``below``: per level, the share of truths below the quantile (calibrated: equal to the level);
    - ``sql``: the scaled pinball loss, 2 x pinball / scale averaged over the levels (at the median alone: MASE)."""
    scale = np.stack([mase_scale(h, m) for h in insample])[:, None, :]  # (n, 1, C)
    lo, hi = q[..., 0], q[..., -1]
    a = 1 - (levels[-1] - levels[0])
    width = hi - lo + 2 / a * (lo - truth) * (truth < lo) + 2 / a * (truth - hi) * (truth > hi)
    level = interval_level(levels)
    return {
        f"coverage_{level}": float(((truth >= lo) & (truth <= hi)).mean()),
        f"msis_{level}": float((width / scale).mean()),
        "below": {f"{v:g}": float((truth < q[..., j]).mean()) for j, v in enumerate(levels)},
        "sql": float((2 * pinball_terms(truth[..., None] - q, levels) / scale[..., None]).mean()),
    }


def owa(s: dict, naive2: dict) -> float:
    """M4's OWA of scores ``s`` relative to Naive2's on the same series and origins."""
    ratio = lambda k: s[k] / naive2[k] if naive2[k] > 0 else float("nan")  # noqa: E731
    return 0.5 * (ratio("smape") + ratio("mase"))


# ------------------------------------------------------------------------------------------------ Naive2
def is_seasonal(y: np.ndarray, m: int) -> bool:
    """The M4 benchmarks' test: |acf(m)| > 1.645 sqrt((1 + 2 sum_{k<m} acf(k)^2) / T), needing T >= 3m."""
    if m <= 1 or len(y) < 3 * m:
        return False
    d = y - y.mean()
    denom = (d * d).sum()
    if denom == 0:
        return False
    acf = np.array([(d[k:] * d[: len(d) - k]).sum() / denom for k in range(1, m + 1)])
    limit = SEASONALITY_Z * np.sqrt((1 + 2 * (acf[:-1] ** 2).sum()) / len(y))
    return abs(acf[-1]) > limit


def seasonal_indices(y: np.ndarray, m: int) -> np.ndarray:
    """Classical multiplicative decomposition: the m seasonal indices (mean 1), index j for steps t with t % m == j.
    The trend is a centred moving average (2 x m for even m); indices are the mean ratio y / trend per position."""
    if m % 2:
        trend = np.convolve(y, np.ones(m) / m, mode="valid")
        offset = m // 2
    else:
        w = np.r_[0.5, np.ones(m - 1), 0.5] / m
        trend = np.convolve(y, w, mode="valid")
        offset = m // 2
    ratio = y[offset : offset + len(trend)] / trend
    pos = (np.arange(len(ratio)) + offset) % m
    idx = np.array([ratio[pos == j].mean() for j in range(m)])
    return idx / idx.mean()


def deseasonalize(y: np.ndarray, m: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """(y / its seasonal indices, the indices of the next ``horizon`` steps), or (y, ones) when the test says the
    series is not seasonal or it is not positive (a multiplicative decomposition needs positive data)."""
    if not (is_seasonal(y, m) and y.min() > 0):
        return y, np.ones(horizon)
    idx = seasonal_indices(y, m)
    T = len(y)
    return y / idx[np.arange(T) % m], idx[np.arange(T, T + horizon) % m]


def naive2(history: np.ndarray, horizon: int, m: int) -> np.ndarray:
    """M4's Naive2 for one series (T,) -> (H,)."""
    adjusted, ahead = deseasonalize(history, m, horizon)
    return np.full(horizon, adjusted[-1]) * ahead
