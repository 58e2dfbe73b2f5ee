"""``seqlab lm bench``: a language model against xz and a character n-gram on the same validation text, its
learning curve against CPU minutes, and the training loop's throughput against a bare loop around nn.LSTM."""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from .. import runs
from ..data import Streams, TokenFile, load_tokenizer
from ..train import read_metrics, train
from . import task as lm
from .baselines import KneserNey, xz_bpc


def throughput(cfg: lm.LMConfig, tokens: TokenFile, tokenizer, steps: int, rounds: int = 2) -> dict[str, float]:
    """Tokens/s of seqlab.train.train itself (as it logs them: training steps only) against a bare loop around
    nn.Embedding -> nn.LSTM -> nn.Linear with AdamW and clipping, on the same batches. Alternated; best of each."""
    vocab = tokenizer.vocab_size
    quick = replace(cfg, steps=steps, minutes=None, log_every=steps, eval_every=steps, warmup=0,
                    eval_tokens=cfg.batch * cfg.seq_len, sample_length=1)  # fmt: skip
    streams = Streams(tokens.array(), 0, tokens.split, cfg.batch, cfg.seq_len)

    def run_seqlab() -> float:
        torch.manual_seed(cfg.seed)
        model = lm.model_from(quick, vocab)
        with tempfile.TemporaryDirectory() as tmp:
            train(lm.LMTask(model, tokenizer, tokens, quick), quick, Path(tmp), progress=False, echo=lambda s: None)
            logged = read_metrics(Path(tmp))
        return next(r["tokens_per_s"] for r in logged if "tokens_per_s" in r)

    def run_bare() -> float:
        torch.manual_seed(cfg.seed)
        emb, head = nn.Embedding(vocab, cfg.embed), nn.Linear(cfg.hidden, vocab)
        rnn = nn.LSTM(cfg.embed, cfg.hidden, cfg.layers, batch_first=True, dropout=cfg.dropout if cfg.layers > 1 else 0)
        params = [*emb.parameters(), *rnn.parameters(), *head.parameters()]
        opt = torch.optim.AdamW(params, lr=cfg.lr)
        state = None
        t0 = time.perf_counter()
        for k in range(steps):
            x, y, _ = streams.window(k)
            out, state = rnn(emb(x), state)
            state = tuple(s.detach() for s in state)
            loss = F.cross_entropy(head(out).flatten(0, 1), y.flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, cfg.clip)
            loss.item()
            opt.step()
        return steps * cfg.batch * cfg.seq_len / (time.perf_counter() - t0)

    best = {"seqlab": 0.0, "bare nn.LSTM": 0.0}
    for _ in range(rounds):
        best["seqlab"] = max(best["seqlab"], run_seqlab())
        best["bare nn.LSTM"] = max(best["bare nn.LSTM"], run_bare())
    return best


def run(cfg: lm.LMConfig, out: str | None, throughput_steps: int, echo=print) -> dict:
    _, tokenizer, run_dir = lm.train_lm(cfg, out=out, echo=echo)
    tokens = TokenFile.load(run_dir)
    tokenizer = load_tokenizer(run_dir / "tokenizer.json")
    ids = tokens.array()
    train_text, val_text = (
        tokenizer.decode(ids[: tokens.split].tolist()),
        tokenizer.decode(ids[tokens.split :].tolist()),
    )
    echo("baselines on the same validation text ...")
    baselines = {
        "xz (validation text alone)": xz_bpc(val_text),
        "xz (given the training text)": xz_bpc(val_text, train_text),
    }
    for order in (5, 7):
        baselines[f"{order}-gram Kneser-Ney"] = KneserNey(train_text, order).bpc(val_text)
    evals = [r for r in read_metrics(run_dir) if "val_bpc" in r]
    curve = [{"step": r["step"], "train_minutes": r["train_s"] / 60, "val_bpc": r["val_bpc"]} for r in evals]
    best = min(r["val_bpc"] for r in evals)
    speed = throughput(cfg, tokens, tokenizer, throughput_steps) if throughput_steps else {}
    result = {"run": str(run_dir), "model_bpc": best, "baselines": baselines, "curve": curve, "tokens_per_s": speed}
    runs.write_json(run_dir / "bench_lm.json", result)
    echo(report(result))
    return result


def report(result: dict) -> str:
    lines = ["", "| model | validation bits per character |", "|---|---|"]
    lines.append(f"| seqlab {Path(result['run']).name} (best checkpoint) | **{result['model_bpc']:.3f}** |")
    lines += [f"| {name} | {bpc:.3f} |" for name, bpc in result["baselines"].items()]
    lines += ["", "| step | training minutes | validation bpc |", "|---|---|---|"]
    lines += [f"| {c['step']} | {c['train_minutes']:.1f} | {c['val_bpc']:.3f} |" for c in result["curve"]]
    if result["tokens_per_s"]:
        s = result["tokens_per_s"]
        lines += ["", f"training loop {s['seqlab']:,.0f} tokens/s vs bare nn.LSTM loop {s['bare nn.LSTM']:,.0f}: "
                  f"{s['seqlab'] / s['bare nn.LSTM']:.2f}x"]  # fmt: skip
    return "\n".join(lines)
