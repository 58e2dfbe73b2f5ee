"""Self-attention: rotary positions, masks against a naive implementation, cached == uncached generation at any
length (the sliding window), the padded row == alone for the encoder, and the transformer in every task."""

import math

import numpy as np
import pytest
import torch

from seqlab import lm
from seqlab.cli import main
from seqlab.data.tokenizers import CharTokenizer
from seqlab.layers import Transformer
from seqlab.layers.attention import SelfAttention, rotate
from seqlab.models import Classifier, LanguageModel
from seqlab.train import read_metrics


def naive_attention(q, k, v, allowed):
    """Per batch, head and query: softmax over the allowed keys of q·k / sqrt(hs), then the weighted sum of values."""
    B, nh, T, hs = q.shape
    out = torch.zeros_like(q)
    for b in range(B):
        for h in range(nh):
            for i in range(T):
                keys = [j for j in range(k.shape[2]) if allowed[b, i, j]]
                scores = torch.stack([q[b, h, i] @ k[b, h, j] / math.sqrt(hs) for j in keys])
                w = torch.softmax(scores, 0)
                out[b, h, i] = sum(w[n] * v[b, h, j] for n, j in enumerate(keys))
    return out


def test_rotary_scores_depend_on_distance_only():
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 16, dtype=torch.float64), torch.randn(1, 1, 1, 16, dtype=torch.float64)
    at = lambda p: torch.tensor([p])  # noqa: E731
    base = (rotate(q, at(7)) * rotate(k, at(3))).sum()
    for shift in (1, 100, 123_456):
        torch.testing.assert_close((rotate(q, at(7 + shift)) * rotate(k, at(3 + shift))).sum(), base)
    torch.testing.assert_close(rotate(q, at(5)).norm(), q.norm())  # a rotation
    assert not torch.allclose((rotate(q, at(9)) * rotate(k, at(3))).sum(), base)


@pytest.mark.parametrize("kind", ["causal", "band", "padding"])
def test_attention_masks_against_a_naive_implementation(kind):
    torch.manual_seed(0)
    B, T, D, nh = 2, 7, 8, 2
    stack = Transformer(D, 1, nh, causal=kind != "padding", window=3 if kind == "band" else None).double().eval()
    attn: SelfAttention = stack.blocks[0].attn
    x = torch.randn(B, T, D, dtype=torch.float64)
    pos = torch.arange(T)
    lengths = torch.tensor([7, 4])
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    if kind == "causal":
        allowed, mask, causal = (j <= i).expand(B, T, T), None, True
    elif kind == "band":
        allowed = ((j <= i) & (i - j < 3)).expand(B, T, T)
        mask, causal = stack.band(pos, pos)[None, None], True
    else:
        allowed = (j < lengths[:, None, None]).expand(B, T, T)
        mask, causal = allowed[:, None], False
    y, _ = attn(x, pos, mask, causal)
    q, k, v = attn.qkv(x).split(D, 2)
    q, k, v = (t.view(B, T, nh, D // nh).transpose(1, 2) for t in (q, k, v))
    ref = naive_attention(rotate(q, pos), rotate(k, pos), v, allowed)
    torch.testing.assert_close(y, attn.proj(ref.transpose(1, 2).reshape(B, T, D)))


def tiny_lm(context=8):
    torch.manual_seed(0)
    return LanguageModel(30, "transformer", hidden=16, layers=2, heads=2, context=context, dropout=0.0).double().eval()


def test_cached_steps_and_chunks_equal_one_full_pass_beyond_the_context():
    model = tiny_lm(context=8)
    ids = torch.randint(0, 30, (2, 40))  # five contexts long: the window slides
    full, _ = model(ids)
    state, steps = None, []
    for t in range(40):
        logits, state = model(ids[:, t : t + 1], state)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, 1), full)
    assert state.k[0].shape[2] == 7 and state.pos.tolist() == list(range(33, 40))  # W - 1 keys kept
    state, chunks = None, []
    for a, b in ((0, 3), (3, 11), (11, 12), (12, 40)):
        logits, state = model(ids[:, a:b], state)
        chunks.append(logits)
    torch.testing.assert_close(torch.cat(chunks, 1), full)


def test_window_limits_what_a_position_sees():
    model = tiny_lm(context=8)  # 2 layers of window 8: a position hears back 2 x 7 steps
    ids = torch.randint(0, 30, (1, 30))
    changed = ids.clone()
    changed[0, 5] = (ids[0, 5] + 1) % 30
    a, _ = model(ids)
    b, _ = model(changed)
    torch.testing.assert_close(a[0, :5], b[0, :5])  # causal: the past does not see the future
    assert not torch.allclose(a[0, 19], b[0, 19])  # 19 - 5 = 2 x 7: still within reach
    torch.testing.assert_close(a[0, 20:], b[0, 20:])  # beyond it


def test_cached_generation_equals_uncached_generation_token_for_token():
    model = tiny_lm(context=8).float()
    tok = CharTokenizer([chr(ord("a") + i) for i in range(30)])
    text = "".join(lm.generate(model, tok, prompt="abc", length=30, greedy=True))
    ids = tok.encode("abc")
    for _ in range(30):  # no cache: the whole sequence again for every token, with the same window
        logits, _ = model(torch.tensor([ids]))
        ids.append(int(logits[0, -1].argmax()))
    assert text == tok.decode(ids[3:])
    sampled = "".join(lm.generate(model, tok, prompt="ab", length=25, temperature=0.9, seed=4))
    assert sampled == "".join(lm.generate(model, tok, prompt="ab", length=25, temperature=0.9, seed=4))


def test_training_carries_no_cache_and_the_encoder_takes_none():
    model = tiny_lm()
    model.train()
    assert model(torch.randint(0, 30, (2, 8)))[1] is None
    encoder = Transformer(8, 1, 2, causal=False)
    with pytest.raises(ValueError, match="takes no cache"):
        encoder(torch.randn(1, 3, 8), cache=tiny_lm().eval()(torch.zeros(1, 2, dtype=torch.long))[1])
    with pytest.raises(ValueError, match="even size"):
        SelfAttention(12, 4)


@pytest.mark.parametrize("pooling", ["last", "mean", "max", "attention", "concat"])
def test_encoder_padded_row_equals_the_sequence_alone(pooling):
    torch.manual_seed(0)
    small = {"model": "transformer", "hidden": 8, "layers": 2, "heads": 2, "pooling": pooling}
    for net in (Classifier(3, channels=4, **small), Classifier(3, vocab_size=11, **small)):
        net = net.double().eval()
        lengths = torch.tensor([5, 1, 8])
        x = (
            torch.randn(3, 8, 4, dtype=torch.float64)
            if net.backbone.project is not None
            else torch.randint(0, 11, (3, 8))
        )
        if x.is_floating_point():
            for b, n in enumerate(lengths):
                x[b, n:] = 1e3
        batch = net(x, lengths)
        for b, n in enumerate(lengths):
            torch.testing.assert_close(batch[b : b + 1], net(x[b : b + 1, :n], lengths[b : b + 1]))


def test_transformer_language_model_trains_samples_and_evaluates(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("abcabcabd " * 300)
    run = tmp_path / "run"
    args = ["lm", "train", str(corpus), "--model", "transformer", "--hidden", "16", "--layers", "2", "--heads", "2",
            "--seq-len", "16", "--batch", "8", "--steps", "80", "--eval-every", "40", "--lr", "3e-3", "--warmup", "5",
            "--dropout", "0.0", "--out", str(run), "--no-progress", "--sample-length", "40"]  # fmt: skip
    assert main(args) == 0
    evals = [r for r in read_metrics(run) if "val_bpc" in r]
    assert evals[-1]["val_bpc"] < 0.6 * evals[0]["val_bpc"] or evals[-1]["val_bpc"] < 0.5
    capsys.readouterr()
    assert main(["lm", "sample", str(run), "--prompt", "abc", "--length", "50", "--greedy"]) == 0  # > context
    out = capsys.readouterr().out
    assert len(out.strip()) == 53 and "abcab" in out
    assert main(["lm", "eval", str(run), str(corpus)]) == 0
    assert main(["inspect", str(run), "--text", "abc"]) == 2  # gates are recurrent only
    assert "this run is a transformer" in capsys.readouterr().err


def test_transformer_classifier_from_the_command_line(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rows = ["text,label"] + [f"{'x' * int(rng.integers(1, 6))}{'yz'[i % 2] * 3},{'yz'[i % 2]}" for i in range(60)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    assert main(["classify", "train", str(tmp_path / "d.csv"), "--model", "transformer", "--hidden", "16",
                 "--heads", "2", "--epochs", "30", "--lr", "0.01", "--out", str(tmp_path / "r"),
                 "--no-progress"]) == 0  # fmt: skip
    assert "validation accuracy 1.0000" in capsys.readouterr().out
    assert main(["classify", "train", str(tmp_path / "d.csv"), "--model", "transformer", "--hidden", "12",
                 "--heads", "4", "--out", str(tmp_path / "r2"), "--no-progress"]) == 2  # fmt: skip
    assert "must split into 4 heads of an even size" in capsys.readouterr().err


def test_lab_copy_runs_the_transformer(tmp_path):
    from seqlab.lab import run_lab

    rows = run_lab("copy", ["transformer"], [10], 1, 30, None, tmp_path, echo=lambda s: None, hidden=16,
                   eval_every=15, batch=8)  # fmt: skip
    assert rows[0]["model"] == "transformer" and rows[0]["steps"] == 30
    with pytest.raises(ValueError, match="leave transformer out of"):
        from seqlab.lab import run_gradients

        run_gradients("adding", 10, ["transformer"], 5, tmp_path / "g")
