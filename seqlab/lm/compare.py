"""Recurrent against self-attention language models, on the same data and budget.

    seqlab lm compare pydoc --minutes 10     # LSTM, GRU, minGRU, minLSTM, Transformer: validation bpc against minutes
    seqlab lm speed                          # per-token generation time and state memory against position

compare: the Transformer is nanoGPT's character-level CPU configuration (4 layers, 4 heads, width 128, context 64,
batch 12, dropout 0, lr 1e-3, weight decay 0.1); the recurrent models (2 layers, embedding 64, context 128, batch
32, dropout 0.1, lr 2e-3) get the hidden size that brings their parameter count closest to the Transformer's. Each
run is an ordinary run directory; finished ones are reused.

speed: untrained models of the compared sizes, but with a window of positions + 1 for the Transformer so its cache
grows to every position generated. A recurrent state is fixed ((h, c), or h); the cache holds keys and values for
every position seen.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch

from .. import runs
from ..data import open_source, train_tokenizer
from ..layers import KVCache
from ..train import pyplot, read_metrics
from . import task as lm

TRANSFORMER = dict(model="transformer", layers=4, heads=4, hidden=128, seq_len=64, batch=12, dropout=0.0, lr=1e-3,
                   min_lr=1e-4, weight_decay=0.1, beta2=0.99, warmup=100, eval_every=500)  # fmt: skip
RECURRENT = dict(layers=2, embed=64, seq_len=128, batch=32, dropout=0.1, lr=2e-3, eval_every=200)
COLORS = {"lstm": "tab:blue", "gru": "tab:green", "transformer": "tab:red", "rnn": "tab:orange", "mingru": "tab:olive",
          "minlstm": "tab:cyan"}  # fmt: skip


def n_params(cfg: lm.LMConfig, vocab: int) -> int:
    return sum(p.numel() for p in lm.model_from(cfg, vocab).parameters())


def matched(model: str, target: int, vocab: int, base: lm.LMConfig) -> lm.LMConfig:
    """The recurrent config whose parameter count is closest to ``target`` (hidden in steps of 8)."""
    best = min(range(32, 1025, 8), key=lambda h: abs(n_params(replace(base, model=model, hidden=h), vocab) - target))
    return replace(base, model=model, hidden=best)


def configs(data: str, minutes: float, models: list[str]) -> tuple[list[lm.LMConfig], int]:
    base = lm.LMConfig(data=data, minutes=minutes)
    source = open_source(data)
    vocab = train_tokenizer("char", source.documents, base.vocab_size).vocab_size
    transformer = replace(base, **TRANSFORMER)
    target = n_params(transformer, vocab)
    out = [transformer if m == "transformer" else matched(m, target, vocab, replace(base, **RECURRENT)) for m in models]
    return out, vocab


def compare(data: str, minutes: float, models: list[str], out: Path, echo=print) -> list[dict]:
    """Train each model for ``minutes`` in out/<model>, then table.md, results.csv and curves.png."""
    out.mkdir(parents=True, exist_ok=True)
    cfgs, vocab = configs(data, minutes, models)
    rows = []
    for cfg in cfgs:
        run = out / cfg.model
        if runs.finished(run) is None:  # a run cut short starts over: its minutes must be one session's
            params = n_params(cfg, vocab)
            echo(f"{cfg.model}: hidden {cfg.hidden}, {cfg.layers} layers, {params:,} parameters, {minutes} minutes")
        runs.once(run, lm.train_lm, cfg, out=str(run), progress=False, echo=lambda s: None)
        records = read_metrics(run)
        evals = [r for r in records if "val_bpc" in r]
        speeds = [r["tokens_per_s"] for r in records if "tokens_per_s" in r]
        row = {
            "model": cfg.model,
            "hidden": cfg.hidden,
            "layers": cfg.layers,
            "context": cfg.seq_len,
            "params": n_params(cfg, vocab),
            "final_bpc": evals[-1]["val_bpc"],
            "best_bpc": min(r["val_bpc"] for r in evals),
            "train_minutes": evals[-1]["train_s"] / 60,
            "steps": evals[-1]["step"],
            "tokens_per_s": sorted(speeds)[len(speeds) // 2] if speeds else float("nan"),  # none logged: a tiny budget
        }
        rows.append(row)
        echo(f"{cfg.model}: best validation {row['best_bpc']:.3f} bits per character")
    runs.write_csv(out / "results.csv", rows)
    runs.write_text(out / "table.md", table(rows, data, minutes) + "\n")
    plot_curves(out, [c.model for c in cfgs], data)
    return rows


def table(rows: list[dict], data: str, minutes: float) -> str:
    lines = [
        f"{data}, {minutes:g} minutes each on {runs.machine()}; validation bits per character (lower is better).",
        "",
        "| model | width x layers | context | parameters | best bpc | training tokens/s | steps |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['hidden']} x {r['layers']} | {r['context']} | {r['params']:,} | "
            f"**{r['best_bpc']:.3f}** | {r['tokens_per_s']:,.0f} | {r['steps']:,} |"
        )
    return "\n".join(lines)


def plot_curves(out: Path, models: list[str], data: str) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for m in models:
        evals = [r for r in read_metrics(out / m) if "val_bpc" in r]
        ax.plot([r["train_s"] / 60 for r in evals], [r["val_bpc"] for r in evals], "o-", ms=2.5, lw=1.5,
                label=m, color=COLORS.get(m))  # fmt: skip
    ax.set_xlabel("training minutes (2 CPU cores, evaluation excluded)")
    ax.set_ylabel("validation bits per character")
    ax.set_title(f"{data}: comparable parameter counts, same data and budget")
    ax.set_ylim(top=min(4.0, ax.get_ylim()[1]))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    runs.save_figure(fig, out / "curves.png")


# ------------------------------------------------------------------------------------------------ generation cost
def configs_for_speed(models: tuple[str, ...], positions: int, vocab: int) -> list[lm.LMConfig]:
    """compare's sizes, but a Transformer window of ``positions`` + 1 so its cache (the window's last positions
    before the current one) can grow to ``positions``."""
    base = lm.LMConfig()
    transformer = replace(base, **{**TRANSFORMER, "seq_len": positions + 1})
    target = n_params(replace(transformer, seq_len=64), vocab)
    return [
        transformer if m == "transformer" else matched(m, target, vocab, replace(base, **RECURRENT)) for m in models
    ]


def state_bytes(state) -> int:
    if isinstance(state, KVCache):
        return state.nbytes()
    return sum(s.numel() * s.element_size() for s in (state if isinstance(state, tuple) else (state,)))


@torch.no_grad()
def speed(positions: int, out: Path, models: tuple[str, ...] = ("lstm", "gru", "mingru", "minlstm", "transformer"),
          vocab: int = 100, echo=print) -> list[dict]:  # fmt: skip
    """Seconds and state bytes per generated token at every position 1..positions, for recurrent models and a
    Transformer of the compared sizes (the Transformer's window = positions). Writes speed.csv and speed.png."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for cfg in configs_for_speed(models, positions, vocab):
        torch.manual_seed(0)
        model = lm.model_from(cfg, vocab).eval()
        ids = torch.randint(0, vocab, (positions,))
        state, times = None, []
        for t in range(positions):
            t0 = time.perf_counter()
            _, state = model(ids[t].view(1, 1), state)
            times.append(time.perf_counter() - t0)
            rows.append(
                {"model": cfg.model, "position": t + 1, "seconds": times[-1], "state_bytes": state_bytes(state)}
            )
        first, last = 1e3 * sum(times[:64]) / len(times[:64]), 1e3 * sum(times[-64:]) / len(times[-64:])
        kib = rows[-1]["state_bytes"] / 1024
        echo(f"{cfg.model}: {first:.2f} ms per token over the first 64 positions, {last:.2f} over the last 64; "
             f"state {kib:,.0f} KiB")  # fmt: skip
    runs.write_csv(out / "speed.csv", rows)
    plot_speed(out, rows, positions)
    return rows


def plot_speed(out: Path, rows: list[dict], positions: int) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for m in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == m]
        width = max(1, positions // 64)  # median over buckets of positions: single timings are noisy
        xs, ys = [], []
        for s in range(0, len(mine), width):
            chunk = sorted(r["seconds"] for r in mine[s : s + width])
            xs.append(mine[s]["position"])
            ys.append(1e3 * chunk[len(chunk) // 2])
        a.plot(xs, ys, label=m, color=COLORS.get(m))
        b.plot([r["position"] for r in mine], [r["state_bytes"] / 2**10 for r in mine], label=m, color=COLORS.get(m))
    a.set_xlabel("position")
    a.set_ylabel("ms per generated token (median per bucket)")
    a.set_ylim(bottom=0)
    b.set_xlabel("position")
    b.set_ylabel("state carried to the next token (KiB)")
    b.set_yscale("log")  # a few KiB of recurrent state against MiB of cache
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Generation, one token at a time: a recurrent state is constant, the key/value cache grows")
    fig.tight_layout()
    runs.save_figure(fig, out / "speed.png")
