"""Language modelling end to end: a text in, a run directory out, and text generated from it.

    cfg = LMConfig(data="pydoc", minutes=3)
    model, tokenizer, run = train_lm(cfg)                     # writes runs/lm-lstm-<time>/
    for piece in generate(model, tokenizer, prompt="The ", length=300, seed=1):
        print(piece, end="")

A run directory holds config.json (the config, the corpus's SHA-256, versions), tokenizer.json, tokens.bin/json (the
encoded corpus, memory-mapped) and what seqlab.train writes (checkpoints, metrics.jsonl, samples.txt, loss.png).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch.nn import functional as F

from .. import runs
from ..data import Decoder, Streams, TokenFile, Tokenizer, encode_corpus, load_tokenizer, open_source, train_tokenizer
from ..data.errors import DataError
from ..models import LanguageModel
from ..models.backbone import RECURRENT, check_heads, check_name
from ..train import STOPPED, Task, TrainConfig, train


@dataclass
class LMConfig(TrainConfig):
    """A language-model run; saved as config.json. The training loop's fields are in TrainConfig."""

    RULES: ClassVar[dict[str, str]] = {"vocab_size": ">=1", "val_fraction": "(0,1)", "embed": ">=1", "hidden": ">=1",
                                       "layers": ">=1", "dropout": "[0,1)", "heads": ">=1", "batch": ">=1",
                                       "seq_len": ">=1", "eval_tokens": ">=1", "sample_length": ">=0",
                                       "weight_drop": "[0,1)", "locked_dropout": "[0,1)", "embed_dropout": "[0,1)",
                                       "zoneout": "[0,1)", "recurrent_dropout": "[0,1)",
                                       "sample_temperature": ">0"}  # fmt: skip

    data: str = "pydoc"  # a file, a directory, or a built-in corpus: pydoc | stdlib
    glob: str = "**/*"  # which files of a directory
    encoding_errors: str = "strict"  # 'replace' turns non-UTF-8 bytes into U+FFFD instead of refusing the file
    tokenizer: str = "char"  # char-rnn's unit: no unknown words, bits per character straight from the loss
    vocab_size: int = 4000  # word and bpe only
    val_fraction: float = 0.1  # the contiguous tail, as char-rnn
    model: str = "lstm"  # rnn | lstm | gru | mingru | minlstm | transformer
    embed: int = 64  # a character needs few dimensions; words and BPE want more
    hidden: int = 512
    layers: int = 2
    dropout: float = 0.25  # between layers and before the head; on pydoc 0.25 gave 1.613 bpc in 10 minutes, 0.1 1.643
    weight_drop: float = 0.0  # AWD-LSTM's DropConnect on each W_hh, one mask per window (rnn, lstm, gru)
    locked_dropout: float = 0.0  # one mask per sequence on the embedding, between layers and on the output; needs
    # dropout 0, whose per-step masks it replaces (rnn, lstm, gru)
    embed_dropout: float = 0.0  # whole tokens dropped from the embedding (rnn, lstm, gru)
    layer_norm: bool = False  # layer-normalised gate pre-activations (and LSTM cell state); lstm, gru
    zoneout: float = 0.0  # each unit of h (and c) keeps its last value with this probability per step; lstm, gru
    recurrent_dropout: float = 0.0  # h_{t-1} dropped before W_hh, one mask per sequence; lstm, gru
    heads: int = 4  # transformer only: attention heads (nanoGPT's character config has 4)
    tie: bool = False  # share embedding and head weights (needs embed == hidden)
    backend: str = "auto"  # recurrent backend, see seqlab.LSTM
    batch: int = 32  # parallel streams through the text
    seq_len: int = 128  # BPTT truncation length; a transformer's context (the window each position attends over)
    eval_tokens: int = 65536  # validation tokens per evaluation (the whole split when smaller)
    sample_length: int = 300  # tokens generated at each evaluation
    sample_temperature: float = 0.8


def check_model(cfg: LMConfig) -> None:
    check_name(cfg.model)
    check_heads(cfg.model, cfg.hidden, cfg.heads)
    awd = {
        "--weight-drop": cfg.weight_drop,
        "--locked-dropout": cfg.locked_dropout,
        "--embed-dropout": cfg.embed_dropout,
    }
    if cfg.model not in RECURRENT and (asked := [k for k, v in awd.items() if v]):
        raise ValueError(f"{', '.join(asked)}: AWD-LSTM's regularisers are for rnn, lstm and gru, not {cfg.model}")
    cells = {"--layer-norm": cfg.layer_norm, "--zoneout": cfg.zoneout, "--recurrent-dropout": cfg.recurrent_dropout}
    if cfg.model not in ("lstm", "gru") and (asked := [k for k, v in cells.items() if v]):
        raise ValueError(f"{', '.join(asked)}: variants of the LSTM and GRU, not for {cfg.model}")
    if any(cells.values()) and cfg.backend == "fused":
        raise ValueError(f"{', '.join(k for k, v in cells.items() if v)}: run on the bptt backend (PyTorch's fused "
                         f"kernel has none of them); drop --backend fused")  # fmt: skip
    if cfg.locked_dropout and cfg.dropout:
        raise ValueError(f"--locked-dropout {cfg.locked_dropout:g} replaces --dropout's per-step masks (embedding, "
                         f"between layers, output): give --dropout 0 with it")  # fmt: skip


def model_from(cfg: LMConfig, vocab_size: int) -> LanguageModel:
    check_model(cfg)
    return LanguageModel(vocab_size, cfg.model, cfg.embed, cfg.hidden, cfg.layers, cfg.dropout, cfg.tie, cfg.backend,
                         cfg.heads, cfg.seq_len, cfg.weight_drop, cfg.locked_dropout, cfg.embed_dropout,
                         layer_norm=cfg.layer_norm, zoneout=cfg.zoneout,
                         recurrent_dropout=cfg.recurrent_dropout)  # fmt: skip


class LMTask(Task):
    """Truncated BPTT over parallel streams (seqlab.data.Streams), for seqlab.train.train."""

    carry_dim = 1  # the carried state is (layers·directions, B, H)
    loss_name = "loss (nats per token)"

    def __init__(self, model: LanguageModel, tokenizer: Tokenizer, tokens: TokenFile, cfg: LMConfig):
        self.model, self.tokenizer, self.tokens, self.cfg = model, tokenizer, tokens, cfg
        ids = tokens.array()
        self.train_streams = Streams(ids, 0, tokens.split, cfg.batch, cfg.seq_len)
        n_val = tokens.n - tokens.split
        val_batch = max(1, min(cfg.batch, (n_val - 1) // cfg.seq_len))
        self.val_streams = Streams(ids, tokens.split, tokens.n, val_batch, cfg.seq_len, "validation")
        self.chars_per_token = tokens.val_chars / max(n_val, 1)
        self.tokens_per_step = cfg.batch * cfg.seq_len
        self.state = None

    def batch(self, step: int):
        return self.train_streams.window(step)

    def loss(self, batch) -> torch.Tensor:
        x, y, reset = batch
        if reset:  # the streams start over: so does the memory
            self.state = None
        logits, state = self.model(x, self.state)
        self.state = LanguageModel.detach(state)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation loss in nats per token over up to eval_tokens, state carried across windows."""
        streams, state, nats, count = self.val_streams, None, 0.0, 0
        windows = min(streams.windows, max(1, self.cfg.eval_tokens // (streams.B * streams.T)))
        for k in range(windows):
            x, y, _ = streams.window(k)
            logits, state = self.model(x, state)
            nats += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum"))
            count += y.numel()
        loss = nats / count
        return {"val_loss": loss, "val_bpc": loss / self.chars_per_token / math.log(2), "val_ppl": math.exp(loss)}

    def report(self, step: int) -> str:
        pieces = generate(
            self.model,
            self.tokenizer,
            length=self.cfg.sample_length,
            temperature=self.cfg.sample_temperature,
            seed=self.cfg.seed + step,
        )
        return "".join(pieces)

    def carry(self) -> dict[str, torch.Tensor]:
        if self.state is None:
            return {}
        parts = self.state if isinstance(self.state, tuple) else (self.state,)
        return {f"s{i}": s for i, s in enumerate(parts)}

    def set_carry(self, tensors: dict[str, torch.Tensor]) -> None:
        if not tensors:
            self.state = None
            return
        parts = tuple(tensors[f"s{i}"] for i in range(len(tensors)))
        self.state = parts if len(parts) > 1 else parts[0]


# ------------------------------------------------------------------------------------------------ runs
def read_config(run: Path) -> LMConfig:
    return runs.read_config(run, "lm", LMConfig)[0]


def train_lm(
    cfg: LMConfig, out: str | None = None, resume: str | None = None, progress: bool = True, echo=print
) -> tuple[LanguageModel, Tokenizer, Path]:
    """Train a language model in a new run directory, or continue the run ``resume`` exactly where it stopped."""
    if resume:
        run = runs.own(resume)
        cfg, _ = runs.resume_config(run, "lm", LMConfig, cfg, check_steps=True)  # the schedule is the run's own
    else:
        check_model(cfg)
        source = open_source(cfg.data, cfg.glob, cfg.encoding_errors)
        run = runs.create(out, "lm", cfg.model)
    with runs.writing(run, created=not resume):  # one writer; a failed start leaves no stub
        if resume:
            tokenizer, tokens = load_tokenizer(run / "tokenizer.json"), TokenFile.load(run)
        else:
            echo(f"run: {run}")
            tokenizer = train_tokenizer(cfg.tokenizer, source.documents, cfg.vocab_size)
            tokenizer.save(run / "tokenizer.json")
            tokens = encode_corpus(source, tokenizer, run, cfg.val_fraction)
            corpus = {
                "source": source.name,
                "sha256": source.sha256(),
                "tokens": tokens.n,
                "val_chars": tokens.val_chars,
            }
            runs.write_config(run, "lm", cfg, corpus=corpus, vocab_size=tokenizer.vocab_size)
            echo(
                f"corpus {source.name}: {tokens.n:,} tokens ({tokenizer.kind}, vocabulary {tokenizer.vocab_size}), "
                f"sha256 {corpus['sha256'][:16]}"
            )
            torch.manual_seed(cfg.seed)
        model = model_from(cfg, tokenizer.vocab_size)
        task = LMTask(model, tokenizer, tokens, cfg)
        result = train(task, cfg, run, resume=bool(resume), progress=progress, echo=echo)
    why = STOPPED[result["stopped"]]
    echo(
        f"stopped at step {result['step']} ({why}): validation {result['val_bpc']:.3f} bits per "
        f"character, perplexity {result['val_ppl']:.2f}; run written to {run}"
    )
    return model, tokenizer, run


def load(run: str | Path, which: str = "best") -> tuple[LanguageModel, Tokenizer, LMConfig]:
    """The model of a run (best or last checkpoint), in eval mode, on CPU, with its tokenizer and config."""
    read_config(Path(run))  # a missing run, or another task's, is named before its files are read
    tokenizer = load_tokenizer(Path(run) / "tokenizer.json")
    got = runs.load(run, "lm", LMConfig, lambda cfg, saved: model_from(cfg, tokenizer.vocab_size), which)
    return got.model, tokenizer, got.cfg


# ------------------------------------------------------------------------------------------------ use
def start_ids(tokenizer: Tokenizer) -> list[int]:
    """What an empty prompt starts from: a newline when the vocabulary has one, else token 0."""
    try:
        return tokenizer.encode("\n") or [0]
    except DataError:  # a character vocabulary without a newline
        return [0]


@torch.no_grad()
def generate(
    model: LanguageModel,
    tokenizer: Tokenizer,
    prompt: str = "",
    length: int = 200,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    seed: int | None = None,
    stop: str | None = None,
) -> Iterator[str]:
    """Stream text after ``prompt``, one decoded piece per token; memory stays constant however long it runs.

    Sampling: logits / temperature, then keep the top_k most likely and the smallest set whose probability reaches
    top_p, then draw (or take the most likely with greedy). Same seed, same text. ``stop`` ends the stream before
    the first occurrence of that string. An empty prompt starts from a newline when the vocabulary has one.
    """
    if not temperature > 0:  # NaN too
        raise ValueError(f"temperature must be positive, got {temperature} (use greedy for the most likely token)")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must lie in (0, 1], got {top_p}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    model.eval()
    ids = tokenizer.encode(prompt) if prompt else start_ids(tokenizer)
    gen = torch.Generator().manual_seed(seed if seed is not None else torch.seed())
    decode = Decoder(tokenizer)
    logits, state = model(torch.tensor([ids]), None)
    held = ""  # text held back while it could still be the start of ``stop``
    for _ in range(length):
        scores = logits[0, -1].float()
        if greedy:
            nxt = int(scores.argmax())
        else:
            scores = scores / temperature
            if top_k is not None and top_k < scores.numel():
                kth = torch.topk(scores, top_k).values[-1]
                scores = scores.masked_fill(scores < kth, -math.inf)
            probs = torch.softmax(scores, -1)
            if top_p is not None and top_p < 1:
                sorted_p, order = probs.sort(descending=True)
                drop = sorted_p.cumsum(0) - sorted_p >= top_p  # keep up to the token that crosses top_p
                probs = probs.index_fill(0, order[drop], 0.0)
            nxt = int(torch.multinomial(probs, 1, generator=gen))
        piece = decode(nxt)
        if stop:
            held += piece
            cut = held.find(stop)
            if cut >= 0:
                if held[:cut]:
                    yield held[:cut]
                return
            keep = len(stop) - 1
            out, held = (held[:-keep], held[-keep:]) if keep else (held, "")
            if out:
                yield out
        elif piece:
            yield piece
        logits, state = model(torch.tensor([[nxt]]), state)
    if held:
        yield held


@torch.no_grad()
def evaluate_text(model: LanguageModel, tokenizer: Tokenizer, text: str, seq_len: int = 256) -> dict[str, float]:
    """Bits per character of ``text`` under the model, state carried across windows of seq_len tokens."""
    ids = tokenizer.encode(text)
    if len(ids) < 2:
        raise DataError("the text is too short to evaluate (needs at least two tokens)")
    model.eval()
    seq = torch.tensor([ids])
    state, nats = None, 0.0
    for start in range(0, len(ids) - 1, seq_len):
        x, y = seq[:, start : start + seq_len], seq[:, start + 1 : start + seq_len + 1]
        x = x[:, : y.shape[1]]
        logits, state = model(x, state)
        nats += float(F.cross_entropy(logits[0], y[0], reduction="sum"))
    per_token = nats / (len(ids) - 1)
    chars = len(text) - len(tokenizer.decode(ids[:1]))  # the first token is context, not predicted
    return {
        "bpc": nats / max(chars, 1) / math.log(2),
        "nats_per_token": per_token,
        "ppl": math.exp(per_token),
        "tokens": len(ids),
        "chars": len(text),
    }
