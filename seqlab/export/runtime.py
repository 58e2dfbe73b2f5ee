"""Run an exported seqlab model with numpy and onnxruntime: no torch (of seqlab, only its tokenizers, which are
plain Python).

    from seqlab.export.runtime import load
    lm = load("runs/notes/export")           # the folder ``seqlab export`` wrote
    print(lm.generate("The ", length=200, temperature=0.8, top_k=40, seed=1))
    clf = load("runs/vowels/export")
    clf.predict_proba([x1, x2])               # each a (T_i, C) array in the data's units, any lengths
    load("runs/sales/export").forecast([y1, y2])          # -> Forecast(mean (n, H, C), quantiles, levels)
    load("runs/pumps/export").score([s1, s2])             # -> per-step and per-series anomaly scores

What seqlab does before and after its model (tokenizing, padding, cutting a history to the run's context, the
anomaly score's Gaussian and smoothing) is done here from export.json, the same way; the scaling is inside the
graphs. Wrong shapes or dtypes get a ValueError naming what the graph expects. HF ``tokenizers`` is imported only for
a byte-level BPE vocabulary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..data.tokenizers import Decoder, tokenizer_from_json  # the data package loads torch only for its streams

FORMAT = 1  # the newest export.json this runtime reads
BATCH = 256  # sequences per onnxruntime call


def load(folder: str | Path, threads: int | None = None, spinning: bool = True):
    """The exported model in ``folder``: a LanguageModel, Classifier, Forecaster or Detector, by its task.
    ``threads``: onnxruntime's intra-op threads (default: its own choice); ``spinning`` False stops them busy-waiting
    between calls (a little latency given back to whatever else runs on the machine)."""
    folder = Path(folder)
    path = folder / "export.json"
    if not path.is_file():
        raise ValueError(f"{folder}: not a seqlab export (no export.json); write one with: seqlab export RUN")
    meta = json.loads(path.read_text())
    if not isinstance(meta.get("format"), int) or meta["format"] > FORMAT:
        raise ValueError(f"{folder}: export format {meta.get('format')!r}; this runtime reads up to {FORMAT}")
    kinds = {"lm": LanguageModel, "classify": Classifier, "forecast": Forecaster, "autoencode": Detector}
    if meta.get("task") not in kinds:
        raise ValueError(f"{folder}: an export of task {meta.get('task')!r}, which this runtime does not know")
    return kinds[meta["task"]](folder, meta, threads, spinning)


class Exported:
    """The graphs of one export, each an onnxruntime session checked against its contract on every call."""

    def __init__(self, folder: Path, meta: dict, threads: int | None = None, spinning: bool = True):
        self.folder, self.meta = folder, meta
        self.contracts = {g["file"]: g for g in meta["graphs"]}
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.sessions = {f: ort.InferenceSession(str(folder / f), options, providers=["CPUExecutionProvider"])
                         for f in self.contracts}  # fmt: skip

    def run(self, file: str, **inputs: np.ndarray) -> list[np.ndarray]:
        """One graph on named arrays; a missing input, a wrong rank, size or dtype is a ValueError naming the
        expected shape and dtype."""
        contract = self.contracts[file]
        feeds = {}
        for spec in contract["inputs"]:
            name, shape, dtype = spec["name"], spec["shape"], spec["dtype"]
            want = f"{name} of shape ({', '.join(map(str, shape))}) {dtype}"
            if name not in inputs:
                raise ValueError(f"{file}: missing input {want}")
            a = np.asarray(inputs[name])
            if a.dtype != np.dtype(dtype):
                raise ValueError(f"{file}: expected {want}, got {a.dtype}")
            if a.ndim != len(shape) or any(isinstance(s, int) and s != n for s, n in zip(shape, a.shape, strict=True)):
                raise ValueError(f"{file}: expected {want}, got shape {a.shape}")
            feeds[name] = a
        extra = set(inputs) - set(feeds)
        if extra:
            raise ValueError(f"{file}: unknown inputs {sorted(extra)}; it takes {', '.join(feeds)}")
        return self.sessions[file].run(None, feeds)


def padded(series: list[np.ndarray], channels: int, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded (B, T_max, C) and lengths (B,) int64."""
    lengths = np.array([len(s) for s in series], np.int64)
    x = np.zeros((len(series), int(lengths.max()), channels) if channels else (len(series), int(lengths.max())), dtype)
    for i, s in enumerate(series):
        x[i, : len(s)] = s
    return x, lengths


def as_series(items, channels: int, what: str = "series") -> list[np.ndarray]:
    """A list of (T_i, C) (or (T_i,) when C = 1) arrays, or a 3-D (n, T, C) array -> float32 (T_i, C) arrays; refuses
    an empty sequence, a wrong channel count and a value that is not finite."""
    if isinstance(items, np.ndarray) and items.ndim == 3:
        items = list(items)
    out = []
    for i, s in enumerate(items):
        a = np.asarray(s, dtype=np.float32)
        a = a[:, None] if a.ndim == 1 and channels == 1 else a
        if a.ndim != 2 or a.shape[1] != channels or len(a) == 0:
            raise ValueError(f"{what} {i}: expected (T, {channels}) with T >= 1, got shape {np.shape(s)}")
        if not np.isfinite(a).all():
            raise ValueError(f"{what} {i}: holds a value that is not finite (fill or drop missing values first)")
        out.append(a)
    if not out:
        raise ValueError(f"no {what} given")
    return out


# ------------------------------------------------------------------------------------------------ lm
class LanguageModel(Exported):
    """``logits(tokens)``, and ``generate``: streaming generation on step.onnx at constant memory per token."""

    def __init__(self, folder: Path, meta: dict, threads: int | None = None, spinning: bool = True):
        super().__init__(folder, meta, threads, spinning)
        self.tokenizer = tokenizer_from_json(meta["tokenizer"])
        self.step_inputs = self.contracts["step.onnx"]["inputs"][1:]  # the state, after the token

    def logits(self, tokens: np.ndarray) -> np.ndarray:
        """tokens (B, T) int64 -> logits (B, T, V), from the start of each row."""
        return self.run("model.onnx", tokens=np.asarray(tokens, np.int64))[0]

    def start_state(self, B: int = 1) -> dict[str, np.ndarray]:
        """The state before the first token: zeros, or an empty key/value cache."""
        state = {}
        for spec in self.step_inputs:
            shape = [B if s == "B" else 0 if s == "S" else s for s in spec["shape"]]
            state[spec["name"]] = np.zeros(shape, np.dtype(spec["dtype"]))
        return state

    def stream(self, prompt: str = "", length: int = 200, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None, seed: int | None = None, greedy: bool = False):  # fmt: skip
        """Decoded pieces of text after ``prompt``, one per token, as seqlab.lm.generate samples them (logits /
        temperature, top_k, then top_p; or the most likely with greedy). Greedy output equals seqlab's; a seed
        gives the same text each time (numpy's generator, so not the text torch's would draw)."""
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature} (use greedy for the most likely token)")
        if top_p is not None and not 0 < top_p <= 1:
            raise ValueError(f"top_p must lie in (0, 1], got {top_p}")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        ids = self.tokenizer.encode(prompt) if prompt else self.meta["start"]
        rng, decode = np.random.default_rng(seed), Decoder(self.tokenizer)
        state, names = self.start_state(1), [s["name"] for s in self.step_inputs]
        for i in ids:
            logits, *new = self.run("step.onnx", token=np.array([i], np.int64), **state)
            state = dict(zip(names, new, strict=True))
        for _ in range(length):
            nxt = choose(logits[0].astype(np.float64), temperature, top_k, top_p, greedy, rng)
            piece = decode(nxt)
            if piece:
                yield piece
            logits, *new = self.run("step.onnx", token=np.array([nxt], np.int64), **state)
            state = dict(zip(names, new, strict=True))

    def generate(self, prompt: str = "", length: int = 200, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, seed: int | None = None, greedy: bool = False) -> str:  # fmt: skip
        """The text ``stream`` yields, joined."""
        return "".join(self.stream(prompt, length, temperature, top_k, top_p, seed, greedy))


def choose(scores: np.ndarray, temperature: float, top_k, top_p, greedy: bool, rng) -> int:
    if greedy:
        return int(scores.argmax())
    scores = scores / temperature
    if top_k is not None and top_k < scores.size:
        kth = np.sort(scores)[-top_k]
        scores = np.where(scores < kth, -np.inf, scores)
    p = np.exp(scores - scores.max())
    p /= p.sum()
    if top_p is not None and top_p < 1:
        order = np.argsort(-p, kind="stable")
        sorted_p = p[order]
        p[order[np.cumsum(sorted_p) - sorted_p >= top_p]] = 0.0  # keep up to the token that crosses top_p
        p /= p.sum()
    return int(rng.choice(p.size, p=p))


# ------------------------------------------------------------------------------------------------ classify
class Classifier(Exported):
    """``predict_proba`` and ``predict`` for series ((T_i, C) arrays in the data's units) or texts (strings)."""

    def __init__(self, folder: Path, meta: dict, threads: int | None = None, spinning: bool = True):
        super().__init__(folder, meta, threads, spinning)
        self.classes = np.array(meta["classes"])
        self.text = meta["kind"] == "text"
        self.tokenizer = tokenizer_from_json(meta["tokenizer"]) if self.text else None

    def predict_proba(self, items) -> np.ndarray:
        """(n, K): each sequence's class probabilities, in the order of ``classes``."""
        if self.text:
            seqs = [np.array(self.tokenizer.encode_any(t), np.int64) for t in items]
            for i, s in enumerate(seqs):
                if len(s) == 0:
                    raise ValueError(f"text {i}: no tokens")
        else:
            seqs = as_series(items, self.meta["channels"])
        if self.meta.get("max_len"):
            seqs = [s[: self.meta["max_len"]] for s in seqs]
        out = []
        for k in range(0, len(seqs), BATCH):
            if self.text:
                x, lengths = padded(seqs[k : k + BATCH], 0, np.int64)
                out.append(self.run("model.onnx", tokens=x, lengths=lengths)[0])
            else:
                x, lengths = padded(seqs[k : k + BATCH], self.meta["channels"])
                out.append(self.run("model.onnx", x=x, lengths=lengths)[0])
        return np.concatenate(out)

    def predict(self, items) -> np.ndarray:
        return self.classes[self.predict_proba(items).argmax(1)]


# ------------------------------------------------------------------------------------------------ forecast
@dataclass
class Forecast:
    """The point forecast (n, H, C) (an ensemble's median), and the quantiles (n, H, C, Q) at ``levels`` or None."""

    mean: np.ndarray
    quantiles: np.ndarray | None
    levels: tuple[float, ...]


class Forecaster(Exported):
    """``forecast(histories, covariates=None)``: the H steps after each history."""

    def forecast(self, histories, covariates=None) -> Forecast:
        """histories: (T_i, C) arrays (or 1-D for one channel), of which the last ``context`` steps are read (a
        shorter one is padded on the left with its first step, as seqlab does); covariates, when the run has them:
        per series (T_i + H, K), the known covariates of the history and of the H steps ahead."""
        m = self.meta
        C, K, H, L = m["channels"], m["covariates"], m["horizon"], m["context"]
        if "esrnn" in m:
            return self._esrnn(as_series(histories, C, "history"))
        hist = [window(h, L) for h in as_series(histories, C, "history")]
        feeds = {"history": np.stack(hist)}
        if K:
            if covariates is None or len(covariates) != len(hist):
                raise ValueError(f"the run has {K} known covariates: give covariates, one (T_i + {H}, {K}) per series")
            cov = as_series(covariates, K, "covariates")
            for i, (c, h) in enumerate(zip(cov, histories, strict=True)):
                if len(c) != len(h) + H:
                    raise ValueError(f"covariates {i}: {len(c)} rows; expected the history's {len(h)} + {H} ahead")
            feeds["covariates"] = np.stack([window(c, L + H) for c in cov])
        elif covariates is not None:
            raise ValueError("the run has no covariates")
        out = self.run("model.onnx", **feeds)
        return Forecast(out[0], out[1] if len(out) > 1 else None, tuple(m["quantiles"]))

    def _esrnn(self, histories: list[np.ndarray]) -> Forecast:
        """ES-RNN (seqlab.models.esrnn): history i is the run's series i (as ``seqlab forecast predict`` matches them);
        each member smooths it with its own coefficients, the graph reads the windows, the forecasts' median."""
        spec, H, levels = self.meta["esrnn"], self.meta["horizon"], tuple(self.meta["quantiles"])
        n = len(spec["coefficients"][0])
        if len(histories) != n:
            raise ValueError(f"{len(histories)} histories; the esrnn run learned the smoothing of {n} series, "
                             "matched by position")  # fmt: skip
        for i, h in enumerate(histories):
            if (h <= 0).any():
                raise ValueError(f"history {i}: esrnn forecasts positive series (it works in logs)")
        out = []
        for i, h in enumerate(histories):
            parts = [esrnn_inputs(h[:, 0], np.asarray(c[i], np.float32), spec["season"], spec["context"])
                     for c in spec["coefficients"]]  # fmt: skip
            x = np.stack([p[0] for p in parts])[:, None]  # (M, 1, T, L)
            z = self.run("model.onnx", x=x, lengths=np.array([len(h)], np.int64))[0][:, 0]  # (M, H, Q)
            ahead = len(h) + np.arange(H) % spec["season"]  # the seasonal index of step T - 1 + 1 + h
            out.append(np.stack([np.exp(zk + p[1][-1] + p[2][ahead][:, None]) for zk, p in zip(z, parts, strict=True)]))
        q = np.median(np.stack(out, 1), 0)[:, :, None, :].astype(np.float64)  # (n, H, 1, Q)
        return Forecast(q[..., levels.index(0.5)], q, levels)


def esrnn_inputs(y: np.ndarray, p: np.ndarray, m: int, L: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """seqlab.models.esrnn's Holt-Winters smoothing of one positive series y (T,) with coefficients p (alpha's and
    gamma's logits, log initial seasonal indices), in float32 as PyTorch runs it -> the network's input (T, L), the
    log levels (T,) and the log seasonal indices (T + m,)."""
    f = np.float32
    alpha = f(1) / (f(1) + np.exp(-p[0]))
    gamma = f(1) / (f(1) + np.exp(-p[1])) if m > 1 else f(0)
    s = list(np.exp(p[2:]) if m > 1 else np.ones(m, f))
    y = y.astype(f)
    level, levels = y[0] / s[0], []
    for t in range(len(y)):
        if t > 0:
            level = alpha * y[t] / s[t] + (f(1) - alpha) * level
        levels.append(level)
        s.append(gamma * y[t] / level + (f(1) - gamma) * s[t])
    log_l, log_s = np.log(np.array(levels, f)), np.log(np.array(s, f))
    t = np.arange(len(y))
    idx = np.maximum(t[:, None] + np.arange(1 - L, 1)[None], 0)  # (T, L)
    return ((np.log(y) - log_s[: len(y)])[idx] - log_l[:, None]).astype(f), log_l, log_s


def window(s: np.ndarray, n: int) -> np.ndarray:
    """The last n rows, padded on the left with the first row when there are fewer."""
    s = s[-n:]
    return np.concatenate([np.repeat(s[:1], n - len(s), 0), s]) if len(s) < n else s


# ------------------------------------------------------------------------------------------------ autoencode
class Detector(Exported):
    """``score(series)``: anomaly scores per step and per series, as ``seqlab autoencode score`` gives them;
    ``reconstruct`` and ``embed`` for a reconstruct (EncDec-AD) detector."""

    def __init__(self, folder: Path, meta: dict, threads: int | None = None, spinning: bool = True):
        super().__init__(folder, meta, threads, spinning)
        C = meta["channels"]
        self.div = np.asarray(meta["std"] if "std" in meta else np.where(np.array(meta["hi"]) > meta["lo"],
                              np.subtract(meta["hi"], meta["lo"]), 1.0), np.float64).reshape(C)  # fmt: skip

    def errors(self, series: list[np.ndarray]) -> list[np.ndarray]:
        """Per series, the detector's errors (T_i, D) in the model's scaled units (seqlab.autoencode.task.errors)."""
        if self.meta["detector"] == "forecast":
            return [self._forecast_errors(s) for s in series]
        pieces = [s[k : k + self.meta["window"]] for s in series for k in range(0, len(s), self.meta["window"])]
        rebuilt = self._reconstruct(pieces)
        flat = np.concatenate([(r - p) / self.div for r, p in zip(rebuilt, pieces, strict=True)])
        return np.split(flat, np.cumsum([len(s) for s in series])[:-1])

    def _forecast_errors(self, s: np.ndarray) -> np.ndarray:
        pred = self.run("model.onnx", x=s[None], lengths=np.array([len(s)], np.int64))[0][0]  # (T, ahead, C)
        T, A, C = pred.shape
        e = np.full((T, A, C), np.nan)
        for k in range(min(A, T)):
            e[k:, k] = (s[k:] - pred[: T - k, k]) / self.div
        e = e.reshape(T, A * C)
        e[0] = np.nan  # step 0 is predicted from nothing
        return e

    def _reconstruct(self, pieces: list[np.ndarray]) -> list[np.ndarray]:
        """Each piece rebuilt by the free-running decoder, in the data's units."""
        out = []
        for k in range(0, len(pieces), BATCH):
            x, lengths = padded(pieces[k : k + BATCH], self.meta["channels"])
            code, *state = self.run("model.onnx", x=x, lengths=lengths)
            names = [s["name"] for s in self.contracts["step.onnx"]["inputs"][2:]]
            prev, steps = np.zeros((len(x), x.shape[2]), np.float32), []
            for _ in range(x.shape[1]):
                prev, *state = self.run("step.onnx", code=code, previous=prev, **dict(zip(names, state, strict=True)))
                steps.append(prev)
            rebuilt = np.stack(steps, 1).astype(np.float64) * self.div + self.shift
            out += [r[:n] for r, n in zip(rebuilt, lengths, strict=True)]
        return out

    @property
    def shift(self) -> np.ndarray:
        return np.asarray(self.meta["mean"] if "mean" in self.meta else self.meta["lo"], np.float64)

    def reconstruct(self, series) -> list[np.ndarray]:
        """Reconstruct detector: each series rebuilt window by window (the run's --window), in the data's units."""
        self._needs_codes()
        series = as_series(series, self.meta["channels"])
        w = self.meta["window"]
        pieces = [s[k : k + w] for s in series for k in range(0, len(s), w)]
        flat = np.concatenate(self._reconstruct(pieces))
        return np.split(flat, np.cumsum([len(s) for s in series])[:-1])

    def embed(self, series) -> np.ndarray:
        """Reconstruct detector: each whole series' code (n, Z)."""
        self._needs_codes()
        x, lengths = padded(as_series(series, self.meta["channels"]), self.meta["channels"])
        return self.run("model.onnx", x=x, lengths=lengths)[0]

    def _needs_codes(self) -> None:
        if self.meta["detector"] != "reconstruct":
            raise ValueError("a forecast detector has no codes or reconstruction; train with --detector reconstruct")

    def score(self, series) -> dict:
        """{"steps": per series (T_i,) step scores, "flags": steps over the step threshold, "scores": (n,) series
        scores, "anomaly": (n,) over the series threshold, and both thresholds}."""
        m = self.meta
        errors = self.errors(as_series(series, m["channels"]))
        if "normal" in m:
            mean, precision = np.asarray(m["normal"]["mean"]), np.asarray(m["normal"]["precision"])

            def a(e):
                d = e - mean
                return np.nan_to_num(np.einsum("tc,cd,td->t", d, precision, d), nan=0.0)

            steps = [smooth(np.log1p(a(e)), m["smooth"]) for e in errors]
        else:
            steps = [(e**2).mean(1) for e in errors]
        scores = np.array([s.max() if m["score"] == "max" else s.mean() for s in steps])
        step_threshold = m.get("step_threshold", m["threshold"])
        return {"steps": steps, "flags": [s > step_threshold for s in steps], "scores": scores,
                "anomaly": scores > m["threshold"], "threshold": m["threshold"],
                "step_threshold": step_threshold}  # fmt: skip


def smooth(s: np.ndarray, width: int) -> np.ndarray:
    """seqlab.autoencode.metrics.smooth: a centred moving average over ``width`` steps, edges averaged over what
    exists (for an even width one more step in the past)."""
    s = np.asarray(s, np.float64)
    T = len(s)
    if T == 0 or width <= 1:
        return s.copy()
    mu = s.mean()
    cs = np.concatenate(([0.0], np.cumsum(s - mu)))
    t = np.arange(T)
    lo, hi = np.maximum(t - width // 2, 0), np.minimum(t + (width - 1) // 2 + 1, T)
    return (cs[hi] - cs[lo]) / (hi - lo) + mu
