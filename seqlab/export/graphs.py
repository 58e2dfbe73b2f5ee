"""What each task exports: the modules whose inputs and outputs are the pinned ONNX contracts, and what a caller
needs besides (export.json). Legend: B batch, T time, C channels, K classes or covariates, V vocabulary, H horizon.

A ``Graph`` is one ONNX file: a module that takes and gives plain tensors, an example input to trace it with, and
each input's and output's name and shape (a name such as "B" is a dynamic axis). The contracts:

- lm ``model.onnx``: tokens (B, T) int64 -> logits (B, T, V). ``step.onnx`` (recurrent models): token (B,) int64
  and the state -> logits (B, V) and the new state, for streaming generation at constant memory. The state is
  ``h`` (L·D, B, H), and for an LSTM ``c`` as well; a Transformer's step carries its key/value cache instead
  (``k``, ``v`` (layers, B, heads, S, head size) and their positions ``pos`` (S,)).
- classify ``model.onnx``: x (B, T, C) float32 in the data's units (the run's scaling is in the graph), or tokens
  (B, T) int64 for text, and lengths (B,) int64 -> probabilities (B, K). Exact with unequal lengths.
- forecast ``model.onnx``: history (B, L, C) in the data's units (and covariates (B, L + H, K), the past and the
  known future ones, where the run has them) -> forecast (B, H, C) (an ensemble's median), and quantiles
  (B, H, C, Q) where the model has them. The per-window scaling (seqlab.forecast.task.normalize) is in the graph.
  ES-RNN: x (M, B, T, L) and lengths -> out (M, B, H, Q), the network alone (ESRNNNetwork); the runtime smooths.
- autoencode, forecast detector (LSTM-AD) ``model.onnx``: x (B, T, C), lengths -> prediction (B, T, ahead, C):
  the prediction of step t made k + 1 steps before it is prediction[:, t - k, k], in the data's units.
  Reconstruct detector (EncDec-AD): ``model.onnx``: x, lengths -> code (B, Z) and the decoder's first state;
  ``step.onnx``: code, previous (B, C) and the state -> the next step (B, C) and the state (a free-running decoder
  is a loop over time that a trace cannot hold, so the runtime runs it).

The recurrent layers trace as PyTorch's own ops, with lengths as ONNX's ``sequence_lens`` (seqlab.layers.recurrent:
a tracer never sees the hand-written backward's Function), and every graph is checked in onnxruntime against
PyTorch at another batch size and length before it is kept (seqlab.export.writer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import NormalDist

import torch
from torch import Tensor, nn

from ..models.backbone import AttentionBackbone
from ..models.forecaster import Forecaster, members


@dataclass
class Graph:
    """One ONNX file: ``module(*example)`` -> outputs; ``inputs`` and ``outputs`` map names to shapes (ints are
    fixed, strings are dynamic axes), ``dtypes`` each input's numpy dtype name; ``probe`` another input (another
    batch size and length) on which onnxruntime must agree with PyTorch."""

    file: str
    module: nn.Module
    example: tuple[Tensor, ...]
    probe: tuple[Tensor, ...]
    inputs: dict[str, list]
    outputs: dict[str, list]
    dtypes: dict[str, str] = field(default_factory=dict)

    def contract(self) -> dict:
        """The I/O contract as export.json states it."""
        ins = [{"name": n, "shape": s, "dtype": self.dtypes.get(n, "float32")} for n, s in self.inputs.items()]
        outs = [{"name": n, "shape": s, "dtype": "float32"} for n, s in self.outputs.items()]
        return {"file": self.file, "inputs": ins, "outputs": outs}


def lengths_like(B: int, T: int) -> Tensor:
    """Unequal lengths for B rows of at most T steps, the longest not first, one row of length T: a probe that
    sorting, padding and the longest row must all get right."""
    return torch.tensor([max(1, T - (3 * i) % T) if i % 3 else T for i in range(B)][::-1], dtype=torch.int64)


def scaler(spec: dict, channels: int) -> tuple[Tensor, Tensor]:
    """The run's per-channel input scaling as (shift, divisor): standard (mean, std) or min-max (lo, span)."""
    if "mean" in spec:
        shift, div = torch.tensor(spec["mean"]), torch.tensor(spec["std"])
    else:
        lo, hi = torch.tensor(spec["lo"]), torch.tensor(spec["hi"])
        shift, div = lo, torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    return shift.float().reshape(channels), div.float().reshape(channels)


# ------------------------------------------------------------------------------------------------ lm
class Tokens(nn.Module):
    """tokens (B, T) -> logits (B, T, V), from no state."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor) -> Tensor:
        return self.model(tokens, None)[0]


class RecurrentStep(nn.Module):
    """token (B,) and the state tensors -> logits (B, V) and the new state tensors."""

    def __init__(self, model: nn.Module, lstm: bool):
        super().__init__()
        self.model, self.lstm = model, lstm

    def forward(self, token: Tensor, *state: Tensor):
        logits, new = self.model(token[:, None], state if self.lstm else state[0])
        return (logits[:, 0], *(new if self.lstm else (new,)))


class AttentionStep(nn.Module):
    """token (B,), the cache's keys and values stacked over layers (layers, B, heads, S, hs) and their positions
    (S,) -> logits (B, V) and the cache after this token, trimmed to the window's last W - 1 positions. The cache
    starts empty (S = 0); positions are int64."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, token: Tensor, k: Tensor, v: Tensor, pos: Tensor):
        from ..layers import KVCache

        cache = KVCache(list(k.unbind(0)), list(v.unbind(0)), pos)
        logits, new = self.model(token[:, None], cache)
        return logits[:, 0], torch.stack(new.k), torch.stack(new.v), new.pos


def lm_graphs(model: nn.Module, vocab: int, context: int) -> list[Graph]:
    """model.onnx, and step.onnx with the recurrent state or the Transformer's key/value cache."""
    g = torch.Generator().manual_seed(0)
    ids = lambda B, T: torch.randint(0, vocab, (B, T), generator=g)  # noqa: E731
    # A Transformer traced past its window keeps the window's band mask for every length.
    T = context + 3 if isinstance(model.backbone, AttentionBackbone) else 7
    graphs = [Graph("model.onnx", Tokens(model), (ids(2, T),), (ids(3, T + 5),), {"tokens": ["B", "T"]},
                    {"logits": ["B", "T", vocab]}, {"tokens": "int64"})]  # fmt: skip
    if isinstance(model.backbone, AttentionBackbone):
        graphs.append(attention_step(model, ids))
    else:
        graphs.append(recurrent_step(model, ids))
    return graphs


def recurrent_step(model: nn.Module, ids) -> Graph:
    rnn = model.backbone.rnn
    lstm = model.backbone.cell == "lstm"
    LD, H = rnn.num_layers * (2 if getattr(rnn, "bidirectional", False) else 1), rnn.hidden_size
    names = ["h", "c"] if lstm else ["h"]
    state = lambda B: tuple(torch.randn(LD, B, H) * 0.5 for _ in names)  # noqa: E731
    inputs = {"token": ["B"], **{n: [LD, "B", H] for n in names}}
    outputs = {"logits": ["B", model.head.out_features], **{f"{n}_out": [LD, "B", H] for n in names}}
    return Graph("step.onnx", RecurrentStep(model, lstm), (ids(2, 1)[:, 0], *state(2)), (ids(5, 1)[:, 0], *state(5)),
                 inputs, outputs, {"token": "int64"})  # fmt: skip


def attention_step(model: nn.Module, ids) -> Graph:
    tr = model.backbone.transformer
    blocks, heads = len(tr.blocks), tr.blocks[0].attn.heads
    hs = model.head.in_features // heads
    S = (tr.window or 16) - 1  # a full cache: the trim keeps W - 1 whatever S was

    def cache(B: int, S: int):
        return torch.randn(blocks, B, heads, S, hs), torch.randn(blocks, B, heads, S, hs), torch.arange(S) + 40

    kv = [blocks, "B", heads, "S", hs]
    return Graph("step.onnx", AttentionStep(model), (ids(2, 1)[:, 0], *cache(2, S)), (ids(4, 1)[:, 0], *cache(4, S)),
                 {"token": ["B"], "k": kv, "v": kv, "pos": ["S"]},
                 {"logits": ["B", model.head.out_features], "k_out": kv, "v_out": kv, "pos_out": ["S"]},
                 {"token": "int64", "pos": "int64"})  # fmt: skip


# ------------------------------------------------------------------------------------------------ classify
class Probabilities(nn.Module):
    """x (B, T, C) in the data's units (or token ids (B, T)), lengths (B,) -> probabilities (B, K)."""

    def __init__(self, model: nn.Module, scaling: tuple[Tensor, Tensor] | None):
        super().__init__()
        self.model = model
        self.scaled = scaling is not None
        if scaling is not None:
            self.register_buffer("shift", scaling[0])
            self.register_buffer("div", scaling[1])

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        if self.scaled:
            x = (x - self.shift) / self.div
        return torch.softmax(self.model(x, lengths), dim=-1)


def classify_graphs(model: nn.Module, inputs_spec: dict, vocab: int | None) -> list[Graph]:
    g = torch.Generator().manual_seed(0)
    K = model.classes
    if inputs_spec["kind"] == "text":
        x = lambda B, T: torch.randint(0, vocab, (B, T), generator=g)  # noqa: E731
        module, name, shape, dtype = Probabilities(model, None), "tokens", ["B", "T"], "int64"
    else:
        C = inputs_spec["channels"]
        x = lambda B, T: torch.randn(B, T, C, generator=g)  # noqa: E731
        module = Probabilities(model, scaler(inputs_spec, C))
        name, shape, dtype = "x", ["B", "T", C], "float32"
    dtypes = {name: dtype, "lengths": "int64"}
    return [Graph("model.onnx", module, (x(3, 9), lengths_like(3, 9)), (x(5, 13), lengths_like(5, 13)),
                  {name: shape, "lengths": ["B"]}, {"probabilities": ["B", K]}, dtypes)]  # fmt: skip


# ------------------------------------------------------------------------------------------------ forecast
def median(x: Tensor) -> Tensor:
    """The median over dim 0 as numpy takes it (the mean of the two middle values for an even count)."""
    n = x.shape[0]
    if n == 1:
        return x[0]
    s = x.sort(0).values
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


class Forecast(nn.Module):
    """history (B, L, C) [and covariates (B, L + H, K)] in the data's units -> forecast (B, H, C) [and quantiles
    (B, H, C, Q)]: each member's forecast from the window scaled by its own context (as the task forecasts), then
    the members' median."""

    def __init__(self, model: nn.Module, levels: tuple[float, ...]):
        super().__init__()
        self.nets = nn.ModuleList(members(model))
        self.levels = levels
        first = self.nets[0]
        self.C, self.K, self.H = first.C, first.K, first.H

    def forward(self, history: Tensor, covariates: Tensor | None = None):
        from ..forecast.task import normalize

        L = history.shape[1]
        window = torch.cat([history, history.new_zeros(history.shape[0], self.H, self.C)], 1)
        if self.K:
            window = torch.cat([window, covariates], 2)
        z, mean, std = normalize(window, L)
        future = z[:, L:, self.C :] if self.K else None
        points, quantiles = [], []
        for net in self.nets:
            mu, log_std = net(z[:, :L], future)
            scale = lambda x: x * std[..., : self.C, None] + mean[..., : self.C, None]  # noqa: E731
            if net.quantiles:
                q = scale(mu)
                points.append(q[..., net.quantiles.index(0.5)])
                quantiles.append(q)
                continue
            points.append(scale(mu[..., None])[..., 0])
            if log_std is not None and net.output == "direct":
                z_q = torch.tensor([NormalDist().inv_cdf(v) for v in self.levels], dtype=mu.dtype)
                quantiles.append(scale(mu[..., None] + log_std.exp()[..., None] * z_q))
        point = median(torch.stack(points))
        return (point, median(torch.stack(quantiles))) if quantiles else point


class ESRNNNetwork(nn.Module):
    """ES-RNN's network alone: x (M, B, T, L), each member's windows of deseasonalised, level-normalised logs (the
    runtime computes them from the exported smoothing coefficients: seqlab.export.runtime.esrnn_inputs), lengths
    (B,) -> out (M, B, H, Q) at each row's last origin, in log-ratio units. The Holt-Winters recursion stays out of
    the graph: it is a loop over each series' whole history with per-series coefficients."""

    def __init__(self, nets: list[nn.Module]):
        super().__init__()
        self.nets = nn.ModuleList(nets)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        outs = []
        for k, net in enumerate(self.nets):
            h, _ = net.rnn(x[k], lengths=lengths)  # (B, T, D)
            last = h[torch.arange(h.shape[0]), lengths - 1]  # (B, D)
            outs.append(net.head(net.drop(last)).view(-1, net.H, net.Q))
        return torch.stack(outs)


def esrnn_graphs(model: nn.Module, cfg) -> tuple[list[Graph], dict]:
    """The network's graph, and each member's smoothing coefficients (per series: alpha's and gamma's logits, the
    log initial seasonal indices) for export.json."""
    nets = members(model)
    first = nets[0]
    M, L, H, Q = len(nets), first.L, first.H, first.Q
    g = torch.Generator().manual_seed(0)
    args = lambda B, T: (torch.randn(M, B, T, L, generator=g) * 0.1, lengths_like(B, T))  # noqa: E731
    graph = Graph("model.onnx", ESRNNNetwork(nets), args(3, 2 * first.m + 9), args(4, 3 * first.m + 14),
                  {"x": [M, "B", "T", L], "lengths": ["B"]}, {"out": [M, "B", H, Q]}, {"lengths": "int64"})  # fmt: skip
    spec = {"esrnn": {"season": first.m, "context": L, "members": M,
                      "coefficients": [net.series.weight.detach().tolist() for net in nets]}}  # fmt: skip
    return [graph], spec


def forecast_graphs(model: nn.Module, cfg, saved: dict, levels: tuple[float, ...]) -> tuple[list[Graph], tuple, dict]:
    """The graphs, the quantile levels they give (empty for a point forecast) and what export.json adds."""
    if not all(isinstance(m, Forecaster) for m in members(model)):
        graphs, spec = esrnn_graphs(model, cfg)
        return graphs, levels, spec
    module = Forecast(model, levels)
    has_q = module.nets[0].quantiles or (module.nets[0].gaussian and module.nets[0].output == "direct")
    C, K, H, L = saved["channels"], saved["covariates"], cfg.horizon, cfg.context
    g = torch.Generator().manual_seed(0)

    def args(B: int, L: int):
        level = torch.rand(B, 1, C, generator=g) * 100  # the graph must undo a window's own scale
        hist = level + torch.randn(B, L, C, generator=g).cumsum(1)
        return (hist, torch.randn(B, L + H, K, generator=g)) if K else (hist,)

    inputs = {"history": ["B", "L", C], **({"covariates": ["B", "L+H", K]} if K else {})}
    outputs = {"forecast": ["B", H, C], **({"quantiles": ["B", H, C, len(levels)]} if has_q else {})}
    graphs = [Graph("model.onnx", module, args(2, L), args(5, L + 4), inputs, outputs)]
    return graphs, (levels if has_q else ()), {}


# ------------------------------------------------------------------------------------------------ autoencode
class Scaled(nn.Module):
    """Holds the run's input scaling: ``scale`` to the model's units, ``unscale`` back."""

    def __init__(self, model: nn.Module, scaling: tuple[Tensor, Tensor]):
        super().__init__()
        self.model = model
        self.register_buffer("shift", scaling[0])
        self.register_buffer("div", scaling[1])

    def scale(self, x: Tensor) -> Tensor:
        return (x - self.shift) / self.div

    def unscale(self, x: Tensor) -> Tensor:
        return x * self.div + self.shift


class Predictions(Scaled):
    """x (B, T, C), lengths -> prediction (B, T, ahead, C) in the data's units (LSTM-AD)."""

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        return self.unscale(self.model(self.scale(x), lengths)[0])


class Encode(Scaled):
    """x (B, T, C), lengths -> code (B, Z) and the decoder's first state (EncDec-AD)."""

    def forward(self, x: Tensor, lengths: Tensor):
        code = self.model.encode(self.scale(x), lengths)
        start = self.model._start(code)
        return (code, *(start if isinstance(start, tuple) else (start,)))


class DecodeStep(nn.Module):
    """code (B, Z), previous (B, C) and the state -> next (B, C) and the state: the free-running decoder's step, which
    reads its own previous output. previous and next are in the model's (scaled) units; the first step reads zeros."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, code: Tensor, previous: Tensor, *state: Tensor):
        m = self.model
        h, new = m.decoder(torch.cat([previous[:, None], code[:, None]], dim=2), state if len(state) == 2 else state[0])
        return (m.out(h)[:, 0], *(new if isinstance(new, tuple) else (new,)))


def autoencode_graphs(model: nn.Module, saved: dict) -> list[Graph]:
    from ..models.autoencoder import NextStep

    C = saved["channels"]
    scaling = scaler(saved, C)
    g = torch.Generator().manual_seed(0)
    x = lambda B, T: torch.randn(B, T, C, generator=g)  # noqa: E731
    ins = {"x": ["B", "T", C], "lengths": ["B"]}
    if isinstance(model, NextStep):
        out = {"prediction": ["B", "T", model.ahead, C]}
        return [Graph("model.onnx", Predictions(model, scaling), (x(3, 9), lengths_like(3, 9)),
                      (x(4, 12), lengths_like(4, 12)), ins, out, {"lengths": "int64"})]  # fmt: skip
    L, H, Z = model.layers, model.hidden, model.to_code.out_features
    names = ["h", "c"] if model.decoder.cell == "lstm" else ["h"]
    state = {n: [L, "B", H] for n in names}
    encode = Graph("model.onnx", Encode(model, scaling), (x(3, 9), lengths_like(3, 9)), (x(4, 12), lengths_like(4, 12)),
                   ins, {"code": ["B", Z], **state}, {"lengths": "int64"})  # fmt: skip
    step_args = lambda B: (torch.randn(B, Z), torch.randn(B, C), *(torch.randn(L, B, H) * 0.5 for _ in names))  # noqa: E731
    step = Graph("step.onnx", DecodeStep(model), step_args(2), step_args(5),
                 {"code": ["B", Z], "previous": ["B", C], **state},
                 {"next": ["B", C], **{f"{n}_out": [L, "B", H] for n in names}})  # fmt: skip
    return [encode, step]
