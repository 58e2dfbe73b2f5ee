"""ES-RNN (Smyl 2020, the M4 winner): per-series multiplicative exponential smoothing, learned by gradient descent
jointly with one global recurrent network that forecasts the smoothed-out remainder.

Legend: N series the model knows, B series in a batch, T time (T_i of series i, right-padded), m season, L input
window, H horizon, Q quantiles, D hidden width.

Per series i, one row of an embedding holds its own parameters: the level smoothing alpha_i = sigmoid(a_i), and
when m > 1 the seasonal smoothing gamma_i = sigmoid(g_i) and m initial seasonal indices s_0..s_{m-1} = exp(c_i).
Holt-Winters without a trend (the network supplies it), multiplicative, so the data must be positive:

    l_0     = y_0 / s_0
    l_t     = alpha * y_t / s_t + (1 - alpha) * l_{t-1}                   the level
    s_{t+m} = gamma * y_t / l_t + (1 - gamma) * s_t                       the seasonal index m steps on

At every step t the network reads the last L values, deseasonalised and divided by the current level, in logs
(steps before the series' start repeat its first value):

    x_t = log(y_{t-L+1..t} / s_{t-L+1..t}) - log l_t                      (L,)

and outputs Q x H numbers, the quantiles of log(y_{t+h} / (l_t * s'_{t,h})) for h = 1..H, where s'_{t,h} =
s_{t+1+(h-1) mod m} is the last season known at t repeated; the forecast is exp(out) * l_t * s'_{t,h}. Every index
the forecast uses was computed from y_{<=t}. The network runs along the series' own time axis (its step t is origin
t), as in the paper, so one forward pass over a series trains on every origin in it at once.

The network is Smyl's dilated stack (``DilatedStack``): blocks of recurrent layers, layer j of a block reading its
own output ``d_j`` steps back (h_t = cell(x_t, h_{t-d})), with a residual connection around every block after the
first; Smyl's dilations were (1, 2), (2, 6) for yearly, (1, 2), (4, 8) for quarterly and (1, 3), (6, 12) for monthly
series (``smyl_dilations``). Left out from the paper: the level-wiggliness penalty and per-category inputs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .backbone import backbone

CELLS = ("lstm", "gru")


def smyl_dilations(m: int) -> tuple[tuple[int, ...], ...]:
    """Smyl 2020's dilations for a season m: yearly (m = 1) (1, 2), (2, 6); quarterly (4) (1, 2), (4, 8); monthly
    (12) (1, 3), (6, 12); other seasons by the same pattern, the second block at m/2 and m (at least 2 and 4)."""
    known = {1: ((1, 2), (2, 6)), 4: ((1, 2), (4, 8)), 12: ((1, 3), (6, 12))}
    return known.get(m, ((1, 2), (max(2, m // 2), max(4, m))))


def parse_dilations(text: str, m: int) -> tuple[tuple[int, ...], ...]:
    """--dilations: "auto" (smyl_dilations), "none" (one plain stack), or blocks separated by ";" of comma-separated
    positive dilations, e.g. "1,2;2,6"."""
    if text == "auto":
        return smyl_dilations(m)
    if text == "none":
        return ()
    try:
        blocks = tuple(tuple(int(d) for d in block.split(",")) for block in text.split(";"))
    except ValueError:
        blocks = ()
    if not blocks or not all(b and all(d >= 1 for d in b) for b in blocks):
        raise ValueError(f"--dilations must be auto, none or blocks like 1,2;2,6 (positive integers); got {text!r}")
    return blocks


def dilate(layer: nn.Module, x: Tensor, d: int) -> Tensor:
    """Run a causal recurrent ``layer`` with dilation d: x (B, T, F) -> (B, T, D), step t continuing from step t - d.
    The d interleaved subsequences t = r, r + d, r + 2d, .. become d rows of a batch (Chang et al. 2017), so the
    layer's own kernel runs them all at once; T is right-padded to a multiple of d, which no earlier step sees."""
    if d == 1:
        return layer(x)[0]
    B, T, F = x.shape
    pad = -T % d
    x = torch.cat([x, x.new_zeros(B, pad, F)], 1)  # no branch on pad: a trace keeps T's arithmetic (seqlab export)
    rows = x.view(B, (T + pad) // d, d, F).transpose(1, 2).reshape(B * d, (T + pad) // d, F)
    h = layer(rows)[0]
    return h.view(B, d, (T + pad) // d, -1).transpose(1, 2).reshape(B, T + pad, -1)[:, :T]


class DilatedStack(nn.Module):
    """Smyl's stack: blocks of one-layer recurrent backbones with dilations, a residual connection around every block
    after the first (its input and output are both ``hidden`` wide). Causal; forward(x (B, T, F)) -> (h, None)."""

    def __init__(self, cell: str, channels: int, hidden: int, blocks: tuple[tuple[int, ...], ...],
                 dropout: float = 0.0, backend: str = "auto"):  # fmt: skip
        super().__init__()
        self.blocks, self.width = blocks, hidden
        self.layers = nn.ModuleList()
        for k, block in enumerate(blocks):
            for j in range(len(block)):
                first = k == 0 and j == 0
                self.layers.append(backbone(cell, channels=channels if first else hidden, hidden=hidden, layers=1,
                                            backend=backend))  # fmt: skip
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, None]:
        """``lengths`` is accepted and not needed: every step's output depends on earlier steps only."""
        layers = iter(self.layers)
        for k, block in enumerate(self.blocks):
            h = x
            for j, d in enumerate(block):
                h = dilate(next(layers), h, d)
                if j + 1 < len(block) or k + 1 < len(self.blocks):
                    h = self.drop(h)
            x = h if k == 0 else x + h
        return x, None


def smooth(y: Tensor, alpha: Tensor, gamma: Tensor, s0: Tensor) -> tuple[Tensor, Tensor]:
    """The Holt-Winters recursion above. y (B, T) positive, alpha and gamma (B,), s0 (B, m) -> levels (B, T) and
    seasonal indices (B, T + m), s[:, t] being the index of step t. A Python loop over T: each step is a few (B,)
    operations, and autograd records them, which is what lets alpha, gamma and s0 learn."""
    T = y.shape[1]
    s = list(s0.unbind(1))
    level = y[:, 0] / s[0]
    levels = []
    for t in range(T):
        if t > 0:
            level = alpha * y[:, t] / s[t] + (1 - alpha) * level
        levels.append(level)
        s.append(gamma * y[:, t] / level + (1 - gamma) * s[t])
    return torch.stack(levels, 1), torch.stack(s, 1)


class ESRNN(nn.Module):
    def __init__(self, n_series: int, horizon: int, season: int = 1, context: int = 12, cell: str = "lstm",
                 hidden: int = 64, layers: int = 2, dropout: float = 0.1,
                 quantiles: tuple[float, ...] = (0.1, 0.5, 0.9), backend: str = "auto",
                 dilations: tuple[tuple[int, ...], ...] = ()):  # fmt: skip
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"esrnn's cell must be one of {', '.join(CELLS)}, got {cell!r}")
        self.N, self.H, self.m, self.L, self.quantiles = n_series, horizon, season, context, tuple(quantiles)
        self.Q = len(self.quantiles)
        # per series: a (alpha's logit), g (gamma's logit), c_0..c_{m-1} (log initial seasonal indices)
        self.series = nn.Embedding(n_series, 2 + season)
        with torch.no_grad():  # alpha 0.5, gamma 0.27, flat season: a neutral start that the data moves
            self.series.weight.zero_()
            self.series.weight[:, 1] = -1.0
        if dilations:  # Smyl's dilated stack (``layers`` is then the blocks' sizes)
            self.rnn = DilatedStack(cell, context, hidden, dilations, dropout, backend)
        else:
            self.rnn = backbone(cell, channels=context, hidden=hidden, layers=layers, dropout=dropout, backend=backend)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(self.rnn.width, horizon * self.Q)

    def coefficients(self, ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """alpha (B,), gamma (B,), s0 (B, m) of the series ``ids`` (B,); m = 1 has no season (gamma 0, s 1)."""
        p = self.series(ids)
        alpha = torch.sigmoid(p[:, 0])
        if self.m == 1:
            return alpha, torch.zeros_like(alpha), torch.ones_like(p[:, 2:])
        return alpha, torch.sigmoid(p[:, 1]), p[:, 2:].exp()

    def forward(self, y: Tensor, lengths: Tensor, ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """y (B, T) right-padded (padding may hold anything), lengths (B,), ids (B,) ->
        out (B, T, H, Q) in log-ratio units, log level (B, T), log seasonal factor (B, T, H) per origin t and step h."""
        B, T = y.shape
        valid = torch.arange(T, device=y.device)[None] < lengths[:, None]  # (B, T)
        y = torch.where(valid, y, torch.ones_like(y))  # padding: a harmless positive value, so no NaN reaches a grad
        alpha, gamma, s0 = self.coefficients(ids)
        levels, s = smooth(y, alpha, gamma, s0)  # (B, T), (B, T + m)
        log_l, log_s = levels.log(), s.log()
        t = torch.arange(T, device=y.device)
        window = (t[:, None] + torch.arange(1 - self.L, 1, device=y.device)[None]).clamp(min=0)  # (T, L)
        x = (y.log() - log_s[:, :T])[:, window] - log_l[..., None]  # (B, T, L)
        h, _ = self.rnn(x, lengths=lengths)  # (B, T, D)
        out = self.head(self.drop(h)).view(B, T, self.H, self.Q)
        ahead = t[:, None] + 1 + torch.arange(self.H, device=y.device)[None] % self.m  # (T, H)
        return out, log_l, log_s[:, ahead]

    def targets(self, y: Tensor, lengths: Tensor, log_l: Tensor, log_season: Tensor) -> tuple[Tensor, Tensor]:
        """What ``out`` predicts at origin t: log(y_{t+h} / (l_t s'_{t,h})) (B, T, H), and where y_{t+h} exists."""
        T = y.shape[1]
        t_h = torch.arange(T, device=y.device)[:, None] + 1 + torch.arange(self.H, device=y.device)[None]  # (T, H)
        known = t_h[None] < lengths[:, None, None]  # (B, T, H)
        future = torch.where(known, y[:, t_h.clamp(max=T - 1)], torch.ones_like(log_season))
        return future.log() - log_l[..., None] - log_season, known

    def forecast(self, y: Tensor, lengths: Tensor, ids: Tensor) -> Tensor:
        """The quantile forecasts (B, H, Q) of the H steps after each series' last step, in the data's units."""
        out, log_l, log_season = self(y, lengths, ids)
        rows = torch.arange(y.shape[0], device=y.device)
        last = lengths - 1
        z = out[rows, last]  # (B, H, Q)
        return (z + log_l[rows, last][:, None, None] + log_season[rows, last][..., None]).exp()


def pinball(pred: Tensor, target: Tensor, known: Tensor, quantiles: tuple[float, ...]) -> Tensor:
    """The quantile (pinball) loss, mean over the known (origin, step) pairs and the quantiles: pred (B, T, H, Q),
    target and known (B, T, H). For quantile q: q * (y - y_hat) above the forecast, (1 - q) * (y_hat - y) below."""
    q = torch.tensor(quantiles, dtype=pred.dtype, device=pred.device)
    diff = target[..., None] - pred  # (B, T, H, Q)
    loss = torch.maximum(q * diff, (q - 1) * diff).mean(-1)
    return (loss * known).sum() / known.sum().clamp(min=1)
