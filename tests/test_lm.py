"""Language models end to end: training, checkpoints, exact resume after SIGKILL, sampling, evaluation, bad input."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from seqlab import checkpoint, lm
from seqlab.cli import main
from seqlab.train import Task, TrainConfig, TrainingError, train

TEXT = (
    "The quick brown fox jumps over the lazy dog. A stitch in time saves nine.\n"
    "To be or not to be, that is the question. All that glitters is not gold.\n"
) * 40
SMALL = [
    "--hidden",
    "32",
    "--embed",
    "16",
    "--batch",
    "4",
    "--seq-len",
    "32",
    "--log-every",
    "10",
    "--sample-length",
    "20",
    "--no-progress",
]


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT)
    return path


def small_config(corpus: Path, **kw) -> lm.LMConfig:
    base = {
        "data": str(corpus),
        "hidden": 32,
        "embed": 16,
        "batch": 4,
        "seq_len": 32,
        "log_every": 10,
        "sample_length": 20,
        "eval_every": 20,
        "steps": 60,
    }
    return lm.LMConfig(**{**base, **kw})


def test_training_writes_a_complete_run_and_learns(corpus, tmp_path):
    cfg = small_config(corpus, steps=150, eval_every=50, lr=1e-2)
    model, _, run = lm.train_lm(cfg, out=str(tmp_path / "r"), progress=False, echo=lambda s: None)
    names = {p.name for p in run.iterdir()}
    assert {
        "config.json",
        "tokenizer.json",
        "tokens.bin",
        "tokens.json",
        "metrics.jsonl",
        "samples.txt",
        "loss.png",
    } <= names
    assert {p.name for p in (run / "checkpoints").iterdir()} == {"last.safetensors", "best.safetensors"}
    config = json.loads((run / "config.json").read_text())
    assert config["corpus"]["sha256"] == __import__("hashlib").sha256(TEXT.encode()).hexdigest()
    evals = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "val_loss" in r]
    assert [r["step"] for r in evals] == [50, 100, 150]
    assert evals[-1]["val_bpc"] < 0.6 * evals[0]["val_bpc"]  # a repetitive text is learned quickly
    assert abs(evals[-1]["val_bpc"] * 0.6931471805599453 - evals[-1]["val_loss"]) < 1e-9  # char: bpc = nats / ln 2
    loaded, tok2, _ = lm.load(run, "last")
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    result = lm.evaluate_text(loaded, tok2, TEXT[:400])
    assert result["chars"] == 400 and result["bpc"] < evals[0]["val_bpc"]


def read_step(path: Path) -> int | None:
    try:
        with safe_open(str(path), framework="pt") as f:
            return json.loads(f.metadata()["seqlab"])["step"]
    except Exception:
        return None


def seqlab_cmd(*args):
    return [sys.executable, "-m", "seqlab.cli", *args]


def test_resume_after_sigkill_is_bitwise_equal_to_an_uninterrupted_run(corpus, tmp_path):
    args = [
        "lm",
        "train",
        str(corpus),
        *SMALL,
        "--layers",
        "2",
        "--dropout",
        "0.3",
        "--steps",
        "300",
        "--eval-every",
        "20",
        "--threads",
        "1",
    ]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(seqlab_cmd(*args, "--out", str(whole)), check=True, capture_output=True)
    proc = subprocess.Popen(
        seqlab_cmd(*args, "--out", str(killed)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    last = killed / "checkpoints" / "last.safetensors"
    deadline = time.monotonic() + 120
    while (read_step(last) or 0) < 60 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    interrupted_at = read_step(last)
    assert interrupted_at is not None and 60 <= interrupted_at < 300, interrupted_at
    subprocess.run(
        seqlab_cmd("lm", "train", "--resume", str(killed), "--no-progress", "--threads", "1"),
        check=True,
        capture_output=True,
    )
    a, _ = checkpoint.load(whole / "checkpoints" / "last.safetensors")
    b, _ = checkpoint.load(last)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps = [json.loads(ln)["step"] for ln in (killed / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps)  # what the killed session logged past its checkpoint was dropped, not duplicated


def test_a_crash_while_writing_a_checkpoint_leaves_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "last.safetensors"
    checkpoint.save(path, {"w": torch.ones(3)}, {"step": 1})

    def torn_write(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a file")
        raise KeyboardInterrupt  # the process dies mid-write

    monkeypatch.setattr(checkpoint, "save_file", torn_write)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, {"w": torch.zeros(3)}, {"step": 2})
    tensors, meta = checkpoint.load(path)
    assert meta["step"] == 1 and torch.equal(tensors["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]  # no temporary file left behind


class NaNTask(Task):
    """A task whose loss turns non-finite after step 5."""

    def __init__(self):
        self.model = torch.nn.Linear(2, 1)
        self.tokens_per_step = 1

    def batch(self, step):
        return step

    def loss(self, step):
        out = self.model(torch.ones(1, 2)).sum() ** 2
        return out * float("nan") if step >= 5 else out

    def evaluate(self):
        return {"val_loss": 1.0}


def test_non_finite_loss_stops_without_overwriting_the_good_checkpoint(tmp_path):
    task = NaNTask()
    with pytest.raises(TrainingError, match="not finite for 3 steps in a row at step 7"):
        train(task, TrainConfig(steps=20, eval_every=5, log_every=100), tmp_path, progress=False, echo=lambda s: None)
    tensors, meta = checkpoint.load(tmp_path / "checkpoints" / "last.safetensors")
    assert meta["step"] == 5 and all(torch.isfinite(t).all() for t in tensors.values())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    (root / "c.txt").write_text(TEXT)
    return lm.train_lm(
        small_config(root / "c.txt", steps=40), out=str(root / "run"), progress=False, echo=lambda s: None
    )


def test_sampling_is_deterministic_per_seed_and_streams(trained):
    model, tok, _ = trained
    a = list(lm.generate(model, tok, "The ", 60, seed=7))
    assert "".join(a) == "".join(lm.generate(model, tok, "The ", 60, seed=7))
    assert "".join(a) != "".join(lm.generate(model, tok, "The ", 60, seed=8))
    assert len(a) == 60  # one piece per character token: streamed as generated
    greedy = "".join(lm.generate(model, tok, "The ", 40, greedy=True))
    assert "".join(lm.generate(model, tok, "The ", 40, top_k=1, seed=3)) == greedy
    assert "".join(lm.generate(model, tok, "The ", 40, top_p=1e-6, seed=4)) == greedy  # nucleus of one token


def test_generation_with_carried_state_equals_rerunning_the_whole_text(trained):
    """The recurrent state is the cache: greedy tokens fed one at a time give the logits of one full pass."""
    model, tok, _ = trained
    text = "The " + "".join(lm.generate(model, tok, "The ", 30, greedy=True))
    ids = torch.tensor([tok.encode(text)])
    with torch.no_grad():
        full, _ = model(ids)
        assert torch.equal(full[0, 3:-1].argmax(-1), ids[0, 4:])  # each greedy token is the full pass's argmax
        state, steps = None, []
        for t in range(ids.shape[1]):  # one token at a time, the state carried
            logits, state = model(ids[:, t : t + 1], state)
            steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-5, atol=1e-5)


def test_stop_string_ends_the_stream_before_it(trained):
    model, tok, _ = trained
    free = "".join(lm.generate(model, tok, "The ", 200, seed=5))
    stop = free[50:52]
    cut = "".join(lm.generate(model, tok, "The ", 200, seed=5, stop=stop))
    assert cut == free[: free.index(stop)]


def test_cli_train_sample_eval_and_bad_input(corpus, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["lm", "train", str(corpus), *SMALL, "--steps", "20", "--eval-every", "10", "--out", str(run)]) == 0
    assert "run written to" in capsys.readouterr().out
    assert main(["lm", "sample", str(run), "--prompt", "The q", "--length", "30", "--seed", "1"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("The q") and len(first.rstrip("\n")) >= 30
    main(["lm", "sample", str(run), "--prompt", "The q", "--length", "30", "--seed", "1"])
    assert capsys.readouterr().out == first
    assert main(["lm", "eval", str(run), str(corpus)]) == 0
    assert "bits per character" in capsys.readouterr().out
    before = run.joinpath("config.json").read_text()
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "bad_run").mkdir()
    (tmp_path / "bad_run" / "config.json").write_text("{not json")
    cases = [
        (["lm", "train", str(corpus), "--out", str(run)], "exists; choose another --out"),
        (["lm", "train", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "e")], "no text"),
        (["lm", "train", str(tmp_path / "latin1.txt"), "--out", str(tmp_path / "l")], "not UTF-8 at byte offset 3"),
        (["lm", "train", str(tmp_path / "nowhere")], "no such file or directory"),
        (["lm", "train"], "give DATA"),
        (["lm", "sample", str(tmp_path / "nowhere")], "not a seqlab run"),
        (["lm", "sample", str(tmp_path / "bad_run")], "unreadable run config"),
        (["lm", "sample", str(run), "--prompt", "Zé!"], "characters not in the vocabulary: '!Zé'"),
        (["lm", "sample", str(run), "--temperature", "0"], "temperature must be positive"),
        (["lm", "eval", str(run), str(tmp_path / "latin1.txt")], "not UTF-8 at byte offset 3"),
        (["lm", "train", "--resume", str(run), "--steps", "99"], "differs from the run's schedule"),
        (
            ["lm", "train", "--resume", str(run), "--hidden", "64"],
            "drop --hidden (only --minutes and --precision may change)",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (argv, err)
    assert run.joinpath("config.json").read_text() == before
    tokenizer = json.loads((run / "tokenizer.json").read_text())
    (run / "tokenizer.json").write_text(json.dumps({**tokenizer, "chars": [*tokenizer["chars"], "€"]}))
    for argv in (["lm", "train", "--resume", str(run)], ["lm", "sample", str(run)]):
        assert main(argv) == 2
        assert "does not fit the model built from the run's config" in capsys.readouterr().err
    (run / "tokenizer.json").write_text(json.dumps(tokenizer))
    (run / "checkpoints" / "best.safetensors").write_bytes(b"garbage")
    assert main(["lm", "sample", str(run)]) == 2
    assert "not a readable seqlab checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("kind, extra", [("word", {"vocab_size": 40}), ("bpe", {"vocab_size": 300}),
                                         ("char", {"tie": True, "embed": 32, "hidden": 32})])  # fmt: skip
def test_every_tokenizer_and_tied_weights_train_save_and_load(corpus, tmp_path, kind, extra):
    cfg = small_config(corpus, tokenizer=kind, steps=10, eval_every=10, **extra)
    model, tokenizer, run = lm.train_lm(cfg, out=str(tmp_path / kind), progress=False, echo=lambda s: None)
    loaded, tok2, _ = lm.load(run, "last")
    assert tok2.vocab_size == tokenizer.vocab_size == model.backbone.embedding.num_embeddings
    if cfg.tie:
        assert loaded.head.weight is loaded.backbone.embedding.weight
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    text = "".join(lm.generate(loaded, tok2, "The quick", 20, seed=0))
    assert text and "".join(lm.generate(loaded, tok2, "The quick", 20, seed=0)) == text
    metrics = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert metrics["val_bpc"] > 0 and math.isfinite(metrics["val_bpc"])


def test_compare_trains_each_family_at_the_transformers_parameter_count(corpus, tmp_path):
    from seqlab.lm import compare

    rows = compare.compare(str(corpus), 0.02, ["mingru", "minlstm", "transformer"], tmp_path, echo=lambda s: None)
    params = {r["model"]: r["params"] for r in rows}
    for model in ("mingru", "minlstm"):  # matched in steps of 8 hidden units: within 3% of the Transformer
        assert abs(params[model] / params["transformer"] - 1) < 0.03, params
    # How many steps fit the tiny budget depends on the machine's load (0 is possible): only the evaluations count.
    assert all(math.isfinite(r["best_bpc"]) and r["steps"] >= 0 for r in rows), rows
    table = (tmp_path / "table.md").read_text()
    assert "| mingru |" in table and "| minlstm |" in table
    assert (tmp_path / "curves.png").exists() and (tmp_path / "mingru" / "checkpoints" / "best.safetensors").exists()


def test_generation_state_is_constant_for_recurrences_and_grows_for_attention(tmp_path):
    from seqlab.lm import compare

    rows = compare.speed(24, tmp_path, ("lstm", "mingru", "transformer"), vocab=50, echo=lambda s: None)
    state = {m: [r["state_bytes"] for r in rows if r["model"] == m] for m in ("lstm", "mingru", "transformer")}
    assert len(state["lstm"]) == len(state["mingru"]) == 24
    assert len(set(state["lstm"])) == 1 and len(set(state["mingru"])) == 1  # (h, c) or h: the same every token
    grows = [b - a for a, b in zip(state["transformer"], state["transformer"][1:], strict=False)]
    assert len(set(grows)) == 1 and grows[0] > 0  # one more key and value per token
    configs = {c.model: c for c in compare.configs_for_speed(("lstm", "mingru"), 24, 50)}
    assert state["mingru"][0] == 2 * configs["mingru"].hidden * 4  # two layers of h, float32
    assert state["lstm"][0] == 2 * 2 * configs["lstm"].hidden * 4  # two layers of (h, c)
    assert (tmp_path / "speed.csv").exists() and (tmp_path / "speed.png").exists()
