"""Training in several processes (torchrun + DistributedDataParallel, gloo) and in bfloat16.

The oracle is the one-process run: N processes that share each global batch end with its weights (1e-5), whatever
the backbone, with unequal lengths and weighted losses; a run resumes with another number of processes and ends
where the uninterrupted run does; a rank killed under ``torchrun --max-restarts=1`` costs nothing but time. Every
multi-process run here is a real one (``seqlab ... --nproc 2`` or ``python -m torch.distributed.run``), in its own
processes, on small models and few steps."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from test_classify import toy_series, write_long_csv

from seqlab import checkpoint
from seqlab.cli import main
from seqlab.layers import GRU, LSTM, RNN
from seqlab.runs import World
from seqlab.train import TrainConfig, check_precision, shard

LM = ["--steps", "200", "--batch", "4", "--seq-len", "32", "--hidden", "32", "--layers", "1", "--dropout", "0",
      "--eval-every", "20", "--no-progress"]  # fmt: skip
CLOSE = 1e-5  # final weights of N processes against one: summation order differs, nothing else


def seqlab(*argv: str, nproc: int = 1, check: bool = True) -> subprocess.CompletedProcess:
    extra = ["--nproc", str(nproc)] if nproc > 1 else ["--threads", "1"]
    out = subprocess.run([sys.executable, "-m", "seqlab", *argv, *extra], capture_output=True, text=True)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def weights(run: Path) -> dict[str, torch.Tensor]:
    tensors, meta = checkpoint.load(run / "checkpoints" / "last.safetensors")
    return {k: v for k, v in tensors.items() if k.startswith(("model.", "state."))} | {"step": meta["step"]}


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.pop("step") == wb.pop("step")
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=CLOSE, rtol=0, msg=k)


@pytest.fixture(scope="module")
def text(tmp_path_factory) -> Path:
    import pydoc_data.topics

    path = tmp_path_factory.mktemp("text") / "text.txt"
    path.write_text("".join(pydoc_data.topics.topics.values())[:40_000])
    return path


@pytest.fixture(scope="module")
def alone(text) -> Path:
    """The one-process LSTM language model every multi-process run is held against."""
    run = text.parent / "alone"
    seqlab("lm", "train", str(text), "--out", str(run), *LM)
    return run


# ------------------------------------------------------------------------------------------------ equality
def test_two_processes_train_the_lstm_lm_of_one(text, alone, tmp_path):
    seqlab("lm", "train", str(text), "--out", str(tmp_path / "two"), *LM, nproc=2)
    assert_same_weights(alone, tmp_path / "two")  # the carried TBPTT state too, gathered from both


def test_two_processes_train_the_transformer_lm_of_one(text, tmp_path):
    args = ["lm", "train", str(text), *LM, "--model", "transformer", "--steps", "50", "--heads", "2"]
    seqlab(*args, "--out", str(tmp_path / "one"))
    seqlab(*args, "--out", str(tmp_path / "two"), nproc=2)
    assert_same_weights(tmp_path / "one", tmp_path / "two")


def test_two_processes_classify_unequal_lengths_with_a_weighted_loss_as_one(tmp_path):
    X, y = toy_series(40)  # lengths 8..30: every shard pads differently
    y = ["low"] * 20 + y[20:]  # unbalanced, so that the balanced weights differ by class
    path = tmp_path / "series.csv"
    write_long_csv(path, X, y)
    args = ["classify", "train", str(path), "--time-column", "t", "--hidden", "8", "--batch", "8", "--steps", "50",
            "--regime", "standard", "--dropout", "0", "--augment", "none", "--class-weight", "balanced",
            "--model", "lstm", "--bidirectional", "--no-progress"]  # fmt: skip
    seqlab(*args, "--out", str(tmp_path / "one"))
    seqlab(*args, "--out", str(tmp_path / "two"), nproc=2)
    assert_same_weights(tmp_path / "one", tmp_path / "two")


def test_two_processes_train_the_batch_normed_fcn_classifier_of_one(tmp_path):
    X, y = toy_series(40)
    path = tmp_path / "series.csv"
    write_long_csv(path, X, y)
    args = ["classify", "train", str(path), "--time-column", "t", "--hidden", "8", "--batch", "8", "--steps", "30",
            "--regime", "standard", "--augment", "none", "--model", "fcn", "--dropout", "0",
            "--no-progress"]  # fmt: skip
    seqlab(*args, "--out", str(tmp_path / "one"))
    seqlab(*args, "--out", str(tmp_path / "two"), nproc=2)
    assert_same_weights(tmp_path / "one", tmp_path / "two")  # the running statistics too: the global batch's


def test_two_processes_run_the_memory_lab_of_one(tmp_path):
    args = ["lab", "adding", "--models", "gru", "--lengths", "20", "--seeds", "1", "--steps", "30", "--hidden", "16"]
    seqlab(*args, "--out", str(tmp_path / "one"))
    seqlab(*args, "--out", str(tmp_path / "two"), nproc=2)
    assert_same_weights(tmp_path / "one" / "adding-T20-gru-seed0", tmp_path / "two" / "adding-T20-gru-seed0")
    assert (tmp_path / "two" / "table.md").read_text() == (tmp_path / "one" / "table.md").read_text()


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> Path:
    """Eight monthly series of unequal lengths (60-95 steps): ES-RNN and the anomaly detectors weigh their shards."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("series") / "m.csv"
    rows = ["series,t,y"]
    for s in range(8):
        n = 60 + 5 * s
        y = 10 + 3 * np.sin(np.arange(n) * 2 * np.pi / 12) + 0.3 * rng.standard_normal(n) + 0.05 * np.arange(n)
        rows += [f"s{s},{t},{v:.4f}" for t, v in enumerate(y)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("argv", [
    ["forecast", "train", "--horizon", "6", "--season", "12", "--model", "esrnn", "--dropout", "0"],  # known pairs
    ["autoencode", "train", "--detector", "forecast", "--window", "24"],  # a mean over valid steps
])  # fmt: skip
def test_two_processes_train_the_series_models_of_one(series, tmp_path, argv):
    args = [*argv, str(series), "--id-column", "series", "--time-column", "t", "--steps", "30", "--batch", "4",
            "--no-progress"]  # fmt: skip
    seqlab(*args, "--out", str(tmp_path / "one"))
    seqlab(*args, "--out", str(tmp_path / "two"), nproc=2)
    assert_same_weights(tmp_path / "one", tmp_path / "two")


# ------------------------------------------------------------------------------------------------ resume, restart
@pytest.mark.parametrize("first,then", [(2, 1), (1, 2)])
def test_a_run_resumes_with_another_number_of_processes(text, alone, tmp_path, first, then):
    cut = tmp_path / "cut"
    seqlab("lm", "train", str(text), "--out", str(cut), *LM, "--minutes", "0.02", nproc=first)  # stopped by the clock
    assert weights(cut)["step"] < 200
    seqlab("lm", "train", "--resume", str(cut), "--no-progress", nproc=then)
    assert_same_weights(alone, cut)


def test_a_rank_killed_under_torchrun_max_restarts_costs_nothing_but_time(text, alone, tmp_path):
    run = tmp_path / "killed"
    launcher = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "--max-restarts",
         "1", "-m", "seqlab", "lm", "train", str(text), "--out", str(run), *LM],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (run / "checkpoints" / "last.safetensors").exists():  # the first checkpoint, at step 20
        assert launcher.poll() is None and time.monotonic() < deadline, "the run ended before a rank could be killed"
        time.sleep(0.02)
    killed = rank_pid(launcher.pid, 1)
    os.kill(killed, signal.SIGKILL)
    _, err = launcher.communicate(timeout=300)
    assert launcher.returncode == 0, err
    assert weights(run)["step"] == 200
    assert_same_weights(alone, run)


def rank_pid(launcher: int, rank: int) -> int:
    """The process of ``rank`` among the launcher's children (its environment says RANK)."""
    children = Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split()
    for pid in map(int, children):
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in env:
            return pid
    raise AssertionError(f"no process of rank {rank} among {children}")


# ------------------------------------------------------------------------------------------------ bad input
def test_processes_that_cannot_share_the_batch_are_refused_before_any_starts(text, tmp_path, capsys):
    run = tmp_path / "never"
    assert main(["lm", "train", str(text), "--out", str(run), "--batch", "6", "--nproc", "4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--nproc 4: the global batch of 6 cannot be split into 4 equal shards" in err
    assert not run.exists()
    with pytest.raises(SystemExit):
        main(["lm", "train", str(text), "--nproc", "0"])


def test_a_failure_on_a_rank_is_one_line_naming_it(tmp_path):
    out = seqlab("lm", "train", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "r"), nproc=2, check=False)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1, out.stderr  # both ranks fail alike; the first to fail speaks
    assert re.match(r"seqlab lm: rank [01]: error: .*missing.txt: no such file", out.stderr), out.stderr
    assert not (tmp_path / "r").exists()


def test_a_shard_is_a_rank_s_rows_of_every_tensor():
    x, lengths = torch.arange(20).reshape(5, 4), torch.tensor([4, 3, 2, 1, 1])
    parts = [shard((x, lengths, True, {"y": lengths}), World(r, 2)) for r in range(2)]
    assert torch.equal(torch.cat([p[0] for p in parts]), x) and parts[0][0].shape[0] == 3
    assert all(p[2] is True and torch.equal(p[3]["y"], p[1]) for p in parts)
    assert shard(x, World(5, 6)).shape == (0, 4)  # fewer rows than processes: the last go idle


# ------------------------------------------------------------------------------------------------ bfloat16
@pytest.mark.parametrize("cls", [LSTM, GRU, RNN])
def test_bf16_autocast_runs_the_bptt_products_in_bf16_and_keeps_states_and_gradients_f32(cls):
    torch.manual_seed(0)
    m = cls(16, 32, 2, batch_first=True, backend="bptt")
    x, lengths = torch.randn(6, 20, 16), torch.tensor([20, 17, 9, 20, 1, 5])
    y32, _ = m(x, lengths=lengths)
    y32.square().mean().backward()
    g32 = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, h = m(x, lengths=lengths)
    y.square().mean().backward()
    assert y.dtype == torch.float32 and all(s.dtype == torch.float32 for s in (h if isinstance(h, tuple) else (h,)))
    torch.testing.assert_close(y, y32, atol=3e-2, rtol=0)  # bfloat16 products: 8 bits of mantissa
    assert (y[4, 1:] == 0).all()  # padding stays exact
    for p, g in zip(m.parameters(), g32, strict=True):
        assert p.grad.dtype == torch.float32
        assert (p.grad - g).norm() < 3e-2 * g.norm()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the products really are in bfloat16: not the f32 result
        assert not torch.equal(m(x, lengths=lengths)[0], y32)


def test_precision_is_refused_in_one_line_where_the_machine_cannot_run_it(monkeypatch):
    monkeypatch.setattr("seqlab.train.bf16_native", lambda: False)
    with pytest.raises(ValueError, match="no native bfloat16"):
        check_precision("bf16")
    with pytest.raises(ValueError, match="fp16 needs a CUDA GPU"):
        check_precision("fp16")
    with pytest.raises(ValueError, match="--precision must be one of 32, bf16, fp16"):
        TrainConfig(precision="16")


def test_a_bf16_run_trains_near_the_f32_run_and_its_checkpoints_are_f32(monkeypatch, tmp_path, text):
    monkeypatch.setattr("seqlab.train.bf16_native", lambda: True)  # emulated here when the CPU lacks it: slow, exact
    args = ["lm", "train", str(text), *LM, "--steps", "60", "--model", "gru", "--threads", "1"]
    assert main([*args, "--out", str(tmp_path / "f32")]) == 0
    assert main([*args, "--out", str(tmp_path / "bf16"), "--precision", "bf16"]) == 0
    tensors, meta = checkpoint.load(tmp_path / "bf16" / "checkpoints" / "last.safetensors")
    assert all(v.dtype == torch.float32 for k, v in tensors.items() if k.startswith("model."))
    _, f32 = checkpoint.load(tmp_path / "f32" / "checkpoints" / "last.safetensors")
    assert abs(meta["metrics"]["val_loss"] - f32["metrics"]["val_loss"]) < 0.02 * f32["metrics"]["val_loss"]
    assert np.isfinite(meta["metrics"]["val_loss"])


def test_timegan_trains_under_bf16_autocast_with_float32_weights(monkeypatch, tmp_path):
    from seqlab.gan.task import GANConfig, train_gan

    monkeypatch.setattr("seqlab.train.bf16_native", lambda: True)
    cfg = GANConfig(n=64, hidden=8, layers=2, batch=16, steps=4, eval_every=4, precision="bf16")
    _, run = train_gan(cfg, tmp_path / "gan", echo=lambda s: None)
    tensors, _ = checkpoint.load(run / "checkpoints" / "last.safetensors")
    assert all(v.dtype == torch.float32 and v.isfinite().all() for k, v in tensors.items() if k.startswith("model."))
    monkeypatch.undo()
    monkeypatch.setattr("seqlab.train.bf16_native", lambda: False)
    with pytest.raises(ValueError, match="no native bfloat16"):
        train_gan(GANConfig(precision="bf16"), tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
