"""Forecaster: a window of history -> the next H steps, by a direct multi-horizon head or an autoregressive rollout.

Legend: B batch, L context, H horizon, C target channels, K known covariates, D width.

Each step's input is [y_t, k_t] (targets and known covariates, scaled). The encoder is a unidirectional recurrent
stack or a causal Transformer.
- ``direct`` (the default): the encoder's state after the last context step, joined with the future covariates of all
  H steps, goes through one linear head to all H x C values at once. No forecast is fed back, so errors do not
  compound along the horizon and training sees exactly what prediction sees (no exposure bias); one forward pass
  per forecast (MQ-RNN, Wen et al. 2017; N-BEATS's finding that direct multi-horizon outputs hold up on M4).
- ``autoregressive``: a one-step-ahead head at every position, trained with teacher forcing (the true y_t is the
  input at t); forecasting feeds each prediction back as the next input (DeepAR's rollout, Salinas et al. 2020),
  so any horizon can be asked for. Optional scheduled sampling feeds the model's own forecasts back in training
  too, with a probability that rises over training.
What the head gives per value (``loss`` in the task):
- ``quantiles`` q_1 < .. < q_Q (direct only): Q numbers, fitted by the pinball loss (MQ-RNN); the 0.5 quantile is the
  point forecast. They come out sorted (Chernozhukov et al. 2010's rearrangement), so they never cross.
- ``gaussian``: a mean and a log standard deviation, fitted by the Gaussian negative log-likelihood. Direct: each
  step's marginal, quantiles mean + z_q sigma. Autoregressive: ``sample_paths`` feeds draws back (DeepAR), so the
  spread grows along the horizon as it should; the quantiles are the paths'.
- neither: the mean alone, by the mean squared error (a point forecast, no interval).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from .backbone import accept_old_checkpoints, backbone, continue_from

OUTPUTS = ("direct", "autoregressive")
LOG_STD_LIMIT = 7.0  # log sigma is clamped to [-7, 7] (sigma in [1e-3, 1e3] of a window's scale): the Gaussian
# NLL's gradient grows like 1/sigma^2, and one window with a near-zero spread would otherwise blow it up


class Forecaster(nn.Module):
    def __init__(self, channels: int, covariates: int = 0, horizon: int = 12, model: str = "lstm", hidden: int = 64,
                 layers: int = 2, output: str = "direct", gaussian: bool = False, dropout: float = 0.1,
                 heads: int = 4, backend: str = "auto", quantiles: tuple[float, ...] = ()):  # fmt: skip
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        if quantiles and (gaussian or output != "direct"):
            raise ValueError("quantile heads are direct and not Gaussian (an autoregressive rollout samples paths)")
        self.C, self.K, self.H, self.output, self.gaussian = channels, covariates, horizon, output, gaussian
        self.quantiles = tuple(quantiles)
        n_in, per_value = channels + covariates, 2 if gaussian else max(1, len(self.quantiles))
        self.backbone = backbone(model, channels=n_in, hidden=hidden, layers=layers, dropout=dropout, heads=heads,
                                 backend=backend)  # fmt: skip
        self.drop = nn.Dropout(dropout)
        if output == "direct":
            self.head = nn.Linear(hidden + horizon * covariates, horizon * channels * per_value)
        else:
            self.head = nn.Linear(hidden, channels * per_value)
        accept_old_checkpoints(self)

    def split(self, out: Tensor) -> tuple[Tensor, Tensor | None]:
        """Head output (..., C, 2C or CQ) -> the mean (..., C) or the sorted quantiles (..., C, Q), and the log
        standard deviation (None unless gaussian)."""
        if self.quantiles:
            return out.unflatten(-1, (self.C, len(self.quantiles))).sort(-1).values, None
        if not self.gaussian:
            return out, None
        mean, log_std = out.chunk(2, dim=-1)
        return mean, log_std.clamp(-LOG_STD_LIMIT, LOG_STD_LIMIT)

    def forward(self, history: Tensor, future_cov: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """history (B, L, C + K); future_cov (B, H, K) when K > 0 -> mean (B, H, C) (with quantiles: (B, H, C, Q))
        and log_std (B, H, C) or None."""
        B = history.shape[0]
        if self.output == "direct":
            h, _ = self.backbone(history)
            summary = self.drop(h[:, -1])  # (B, D)
            if self.K:
                summary = torch.cat([summary, future_cov.reshape(B, -1)], dim=1)
            out = self.head(summary).view(B, self.H, -1)  # (B, H, C, 2C or CQ)
            return self.split(out)
        # autoregressive rollout: each prediction is the next step's input, continuing from the backbone's state
        # (a training Transformer keeps no cache, and re-reads the grown sequence: H is short).
        h, state = self.backbone(history)
        seq, means, log_stds = history, [], []
        for j in range(self.H):
            mean, log_std = self.split(self.head(self.drop(h[:, -1:])))  # (B, 1, C)
            means.append(mean)
            log_stds.append(log_std)
            if j + 1 < self.H:
                step = mean if not self.K else torch.cat([mean, future_cov[:, j : j + 1]], dim=2)
                h, seq, state = continue_from(self.backbone, seq, step, state)
        return torch.cat(means, 1), (torch.cat(log_stds, 1) if self.gaussian else None)

    def sample_paths(self, history: Tensor, future_cov: Tensor | None, paths: int, generator: torch.Generator
                     ) -> Tensor:  # fmt: skip
        """A Gaussian autoregressive model's ``paths`` sample paths (paths, B, H, C): at each step a draw from the
        predicted Gaussian is the next input (DeepAR's forecast distribution)."""
        B = history.shape[0]
        rep = lambda x: None if x is None else x.repeat(paths, *[1] * (x.dim() - 1))  # noqa: E731
        history, future_cov = rep(history), rep(future_cov)
        h, state = self.backbone(history)
        seq, draws = history, []
        for j in range(self.H):
            mean, log_std = self.split(self.head(self.drop(h[:, -1:])))
            noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device)
            draws.append(mean + log_std.exp() * noise)
            if j + 1 < self.H:
                step = draws[-1] if not self.K else torch.cat([draws[-1], future_cov[:, j : j + 1]], dim=2)
                h, seq, state = continue_from(self.backbone, seq, step, state)
        return torch.cat(draws, 1).view(paths, B, self.H, self.C)

    def teacher_forced(self, window: Tensor, context: int = 0, feed_back: float = 0.0) -> tuple[Tensor, Tensor | None]:
        """Autoregressive training: window (B, L + H, C + K) -> predictions of steps 1..L+H-1, (B, L + H - 1, C).

        With ``feed_back`` p > 0 (scheduled sampling, Bengio et al. 2015): past the ``context`` L, each sequence's
        input at each step is, with probability p, the model's own (detached) forecast of it instead of the truth,
        so training meets the inputs a rollout will feed it. p = 1 is the rollout itself."""
        if feed_back <= 0:
            h, _ = self.backbone(window[:, :-1])
            return self.split(self.head(self.drop(h)))
        C, B = self.C, window.shape[0]
        h, state = self.backbone(window[:, :context])
        outs = [self.head(self.drop(h))]  # predictions of steps 1..L
        seq = window[:, :context]
        for t in range(context, window.shape[1] - 1):
            own = self.split(outs[-1][:, -1:])[0].detach()  # the forecast of step t
            use_own = torch.rand(B, 1, 1, device=window.device) < feed_back
            step = torch.cat([torch.where(use_own, own, window[:, t : t + 1, :C]), window[:, t : t + 1, C:]], 2)
            h, seq, state = continue_from(self.backbone, seq, step, state)
            outs.append(self.head(self.drop(h)))
        return self.split(torch.cat(outs, 1))


class Ensemble(nn.Module):
    """K forecasting models of one kind held in one run: trained side by side (the task's loss is the sum of the
    members' losses, so each member's gradient is its own; they share the batches and the clipping of the total
    gradient norm), and combined by the median of their forecasts. State-dict keys: ``members.<k>.<the model's>``."""

    def __init__(self, nets: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(nets)


class Snapshots(nn.Module):
    """A snapshot ensemble (Huang et al. 2017): the model being trained (``live``, itself maybe an Ensemble) and
    ``len(kept)`` frozen copies of it, taken at the ends of the first cycles of a cyclic schedule; the live model is
    the last snapshot. ``filled`` (a buffer, so checkpoints and resume carry it) counts the copies taken so far.
    State-dict keys: ``live.<the model's>``, ``kept.<j>.<the model's>``, ``filled``."""

    def __init__(self, live: nn.Module, snapshots: int):
        super().__init__()
        self.live = live
        self.kept = nn.ModuleList(copy.deepcopy(live).requires_grad_(False) for _ in range(snapshots - 1))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))

    def keep(self, due: int) -> bool:
        """Copy the live weights into the next slot if fewer than ``due`` (<= len(kept)) are taken; True if it did.
        Idempotent per cycle end, so a resumed or repeated step never takes a snapshot twice."""
        if int(self.filled) >= min(due, len(self.kept)):
            return False
        self.kept[int(self.filled)].load_state_dict(self.live.state_dict())
        self.filled += 1
        return True


def trained(model: nn.Module) -> list[nn.Module]:
    """The models the loss trains: an Ensemble's members, a snapshot ensemble's live ones, or the model itself."""
    if isinstance(model, Snapshots):
        return trained(model.live)
    return list(model.members) if isinstance(model, Ensemble) else [model]


def members(model: nn.Module) -> list[nn.Module]:
    """The models whose forecasts are combined: the trained ones and the snapshots taken so far."""
    if isinstance(model, Snapshots):
        return [*trained(model.live), *(m for k in model.kept[: int(model.filled)] for m in trained(k))]
    return trained(model)
