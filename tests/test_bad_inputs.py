"""Nothing a user types can break a run: a table of bad inputs over every command, each refused with one line, a
non-zero exit, no traceback and no file left behind; one writer per run; a corrupt checkpoint found; Ctrl-C saves.

Add a row here whenever a flag appears.
"""

import os
import signal

import numpy as np
import pytest
import torch

from seqlab import checkpoint, runs
from seqlab.cli import main
from seqlab.train import Interrupted, Task, TrainConfig, train

TEXT = "The quick brown fox jumps over the lazy dog. " * 40


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Small valid inputs and one small trained run of each kind the table needs."""
    root = tmp_path_factory.mktemp("inputs")
    (root / "c.txt").write_text(TEXT)
    (root / "short.txt").write_text("abc")
    (root / "t.csv").write_text("text,label\n" + "yes please,yes\nno thanks,no\n" * 6)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 2, 10)).astype(np.float32)
    np.savez(root / "s.npz", X=X, y=np.array(["a", "b"] * 12), lengths=rng.integers(4, 11, 24))
    np.save(root / "f.npy", (np.sin(np.arange(80) / 3) + rng.normal(0, 0.1, 80)).astype(np.float32))
    (root / "bad.npz").write_text("not a zip archive")
    (root / "folder").mkdir()
    quiet = ["--no-progress", "--threads", "1"]
    small_lm = [
        "--steps",
        "4",
        "--eval-every",
        "4",
        "--hidden",
        "8",
        "--layers",
        "1",
        "--batch",
        "2",
        "--seq-len",
        "16",
    ]
    assert main(["lm", "train", str(root / "c.txt"), *small_lm, "--out", str(root / "lm"), *quiet]) == 0
    assert main(["autoencode", "train", str(root / "s.npz"), "--steps", "4", "--hidden", "4", "--code", "2",
                 "--ahead", "1", "--out", str(root / "ae"), *quiet]) == 0  # fmt: skip
    return root


def bad(files):
    f = {k: str(files / k) for k in ("c.txt", "short.txt", "t.csv", "s.npz", "f.npy", "bad.npz", "folder", "lm", "ae")}
    return [
        (["lm", "train", f["c.txt"], "--batch", "0"], "--batch must be at least 1"),
        (["lm", "train", f["c.txt"], "--seq-len", "0"], "--seq-len must be at least 1"),
        (["lm", "train", f["c.txt"], "--eval-every", "0"], "--eval-every must be at least 1"),
        (["lm", "train", f["c.txt"], "--hidden", "0"], "--hidden must be at least 1"),
        (["lm", "train", f["c.txt"], "--lr", "-1"], "--lr must be at least 0"),
        (["lm", "train", f["c.txt"], "--lr", "nan"], "--lr must be a finite number"),
        (["lm", "train", f["c.txt"], "--clip", "-1"], "--clip must be positive"),
        (["lm", "train", f["c.txt"], "--clip", "0"], "--clip must be positive"),
        (["lm", "train", f["c.txt"], "--steps", "-3"], "--steps must be at least 1"),
        (["lm", "train", f["c.txt"], "--dropout", "1.5"], "--dropout must lie in [0, 1)"),
        (["lm", "train", f["c.txt"], "--val-fraction", "0"], "--val-fraction must lie in (0, 1)"),
        (["lm", "train", f["c.txt"], "--minutes", "-1"], "--minutes must be positive"),
        (["lm", "train", f["short.txt"], "--steps", "5"], "fewer than batch x seq_len + 1"),
        (["lm", "train", f["c.txt"], "--out", f["lm"]], "exists; choose another --out"),
        (["lm", "train", "--resume", f["ae"]], "a autoencode run, not a lm run"),
        (["lm", "sample", f["lm"], "--length", "-5"], "must be at least 1, got -5"),
        (["lm", "sample", f["lm"], "--temperature", "nan"], "temperature must be positive, got nan"),
        (["lm", "sample", f["lm"], "--top-p", "2"], "top_p must lie in (0, 1]"),
        (["lm", "sample", f["lm"], "--num-samples", "0"], "must be at least 1"),
        (["lm", "sample", f["ae"]], "a autoencode run, not a lm run"),
        (["lm", "sample", f["folder"]], "not a seqlab run"),
        (["lm", "eval", f["lm"], f["folder"]], "folder"),
        (["classify", "train", f["s.npz"], "--batch", "0"], "--batch must be at least 1"),
        (["classify", "train", f["s.npz"], "--epochs", "0"], "--epochs must be at least 1"),
        (["classify", "train", f["s.npz"], "--val-fraction", "1"], "--val-fraction must lie in [0, 1)"),
        (["classify", "train", f["s.npz"], "--dropout", "-0.1"], "--dropout must lie in [0, 1)"),
        (["classify", "train", f["s.npz"], "--model", "mamba"], "model must be one of"),
        (["classify", "train", f["s.npz"], "--ensemble", "0"], "--ensemble must be at least 1"),
        (["classify", "train", f["s.npz"], "--augment", "warp"], "augment must be none or a comma list"),
        (["classify", "train", f["s.npz"], "--regime", "tiny"], "regime must be one of"),
        (["classify", "train", f["t.csv"], "--augment", "jitter"], "augmentation (jitter, scale, slice) is for series"),
        (["classify", "train", f["folder"]], "folder"),
        (["classify", "train", f["bad.npz"]], "bad.npz"),
        (["classify", "bench", "--seeds", "0"], "must be at least 1"),
        (["forecast", "train", f["f.npy"], "--horizon", "0"], "--horizon must be at least 1"),
        (["forecast", "train", f["f.npy"], "--context", "0"], "--context must be at least 1"),
        (["forecast", "train", f["f.npy"], "--season", "0"], "--season must be at least 1"),
        (["forecast", "train", f["f.npy"], "--scheduled-sampling", "2"], "is a probability in [0, 1]"),
        (["forecast", "train", f["f.npy"], "--horizon", "60"], "too short"),
        (["forecast", "train", "--resume", f["lm"]], "a lm run, not a forecast run"),
        (["autoencode", "train", f["s.npz"], "--false-alarm", "1"], "--false-alarm must lie in (0, 1)"),
        (["autoencode", "train", f["s.npz"], "--false-alarm", "0"], "--false-alarm must lie in (0, 1)"),
        (["autoencode", "train", f["s.npz"], "--smooth", "11"], "--smooth 11 is longer than the shortest series"),
        (["autoencode", "train", f["s.npz"], "--anomaly-label", "b"], "12 training series are labelled 'b'"),
        (["autoencode", "train", f["s.npz"], "--detector", "pca"], "detector"),
        (["autoencode", "train", f["s.npz"], "--ahead", "0"], "--ahead must be at least 1"),
        (["autoencode", "embed", f["ae"], f["s.npz"], "--out", f["folder"] + "/c.npy"], "has no codes"),
        (["autoencode", "score", f["ae"], f["s.npz"], "--out", f["folder"] + "/x.csv", "--step-labels", f["f.npy"]],
         "step labels for 1 series; the data has 24"),
        (["autoencode", "train", f["s.npz"], "--code", "0"], "--code must be at least 1"),
        (["autoencode", "train", f["c.txt"]], "c.txt"),
        (["autoencode", "score", f["ae"], f["s.npz"], "--out", f["folder"] + "/x.csv", "--normal-label", "5"],
         "--normal-label '5' is not a label of the data"),
        (["gan", "train", "sines", "--steps", "0"], "--steps must be at least 1"),
        (["gan", "train", "sines", "--gamma", "nan"], "--gamma must be a finite number"),
        (["gan", "train", "sines", "--layers", "1"], "layers must be at least 2"),
        (["gan", "eval", f["ae"], "--repeats", "0"], "must be at least 1"),
        (["gan", "sample", f["ae"], "--n", "0", "--out", f["folder"] + "/x.npz"], "must be at least 1"),
        (["lab", "adding", "--seeds", "0"], "must be at least 1"),
        (["lab", "adding", "--lengths", "0"], "expected positive integers"),
        (["lab", "adding", "--steps", "0"], "must be at least 1"),
        (["bench", "--repeats", "0"], "--repeats must be at least 1"),
        (["inspect", f["folder"], "--text", "abc"], "not a seqlab run"),
    ]  # fmt: skip


def listing(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_every_bad_input_is_one_line_a_non_zero_exit_and_leaves_nothing_behind(files, capsys, monkeypatch):
    monkeypatch.chdir(files)  # default run directories would land here
    before = listing(files)
    capsys.readouterr()
    for argv, message in bad(files):
        try:
            code = main([*argv, "--threads", "1"])
        except SystemExit as e:  # argparse's refusal of a flag's value, also one line (seqlab.cli.Parser)
            code = e.code
        err = capsys.readouterr().err
        assert code == 2, (argv, code, err)
        assert message in err and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
        assert listing(files) == before, (argv, set(listing(files)) ^ set(before))


# ------------------------------------------------------------------------------------------------ one writer
def test_a_second_writer_of_a_run_is_refused_naming_the_process(files, tmp_path, capsys):
    run = tmp_path / "lm"
    small = ["--steps", "2", "--eval-every", "2", "--hidden", "8", "--layers", "1", "--batch", "2", "--seq-len", "16"]
    assert main(["lm", "train", str(files / "c.txt"), *small, "--out", str(run), "--no-progress"]) == 0
    capsys.readouterr()
    before = (run / "metrics.jsonl").read_text()
    with runs.writing(run):
        assert main(["lm", "train", "--resume", str(run), "--no-progress"]) == 2
    assert f"is being written by process {os.getpid()}" in capsys.readouterr().err
    assert (run / "metrics.jsonl").read_text() == before


def test_the_debris_of_interrupted_writes_is_removed_under_the_lock(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    debris = [tmp_path / ".config.ab12.tmp.json", tmp_path / "checkpoints" / ".last.x9.tmp.safetensors"]
    for p in debris:
        p.write_bytes(b"half a file")
    (tmp_path / "keep.txt").write_text("mine")
    with runs.writing(tmp_path):
        assert not any(p.exists() for p in debris)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_a_failed_start_removes_only_what_it_wrote(tmp_path, capsys):
    """A start that fails before its first checkpoint leaves no stub; the same --out then works."""
    (tmp_path / "t.txt").write_text("abc")
    out = tmp_path / "run"
    assert main(["lm", "train", str(tmp_path / "t.txt"), "--steps", "5", "--out", str(out), "--no-progress"]) == 2
    assert not out.exists()
    out.mkdir()  # an empty folder of the user's own is used, and kept if the start fails
    assert main(["lm", "train", str(tmp_path / "t.txt"), "--steps", "5", "--out", str(out), "--no-progress"]) == 2
    assert out.is_dir() and not any(out.iterdir())


# ------------------------------------------------------------------------------------------------ integrity
def test_a_checkpoint_whose_bytes_rotted_is_refused(tmp_path):
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, {"model.w": torch.randn(4, 4), "state.h": torch.zeros(2)}, {"step": 3})
    assert checkpoint.load(path)[1] == {"step": 3}
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x40  # one bit of one tensor
    path.write_bytes(bytes(data))
    with pytest.raises(checkpoint.CheckpointError, match="corrupt checkpoint"):
        checkpoint.load(path)


def test_non_finite_weights_are_refused_on_load(tmp_path):
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    checkpoint.save(tmp_path / "c.safetensors", {f"model.{k}": v for k, v in model.state_dict().items()}, {})
    with pytest.raises(checkpoint.CheckpointError, match="not finite"):
        checkpoint.restore(*checkpoint.load(tmp_path / "c.safetensors"), torch.nn.Linear(2, 2))


# ------------------------------------------------------------------------------------------------ Ctrl-C
class Regression(Task):
    """A least-squares fit whose batches are a pure function of the step; SIGINT arrives during training step
    ``stop_at`` (0-based), as a Ctrl-C would."""

    def __init__(self, stop_at: int | None = None):
        torch.manual_seed(0)
        self.model, self.tokens_per_step, self.stop_at, self.steps = torch.nn.Linear(3, 1), 1, stop_at, 0

    def batch(self, step):
        x = torch.randn(8, 3, generator=torch.Generator().manual_seed(step))
        return x, x.sum(1, keepdim=True)

    def error(self, batch):
        x, y = batch
        return ((self.model(x) - y) ** 2).mean()

    def loss(self, batch):
        if self.steps == self.stop_at:
            os.kill(os.getpid(), signal.SIGINT)
        self.steps += 1
        return self.error(batch)

    def evaluate(self):
        return {"val_loss": float(self.error(self.batch(10_000)))}


def test_ctrl_c_finishes_the_step_saves_and_resuming_equals_an_uninterrupted_run(tmp_path):
    cfg = TrainConfig(steps=30, eval_every=10, log_every=5, warmup=5)
    quiet = {"progress": False, "echo": lambda s: None}
    train(Regression(), cfg, tmp_path / "whole", **quiet)
    with pytest.raises(Interrupted) as stop:
        train(Regression(stop_at=13), cfg, tmp_path / "cut", **quiet)
    assert stop.value.step == 14  # the step in flight when the signal came was finished and kept
    assert checkpoint.load(tmp_path / "cut" / "checkpoints" / "last.safetensors")[1]["step"] == 14
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    train(Regression(), cfg, tmp_path / "cut", resume=True, **quiet)
    a, _ = checkpoint.load(tmp_path / "whole" / "checkpoints" / "last.safetensors")
    b, _ = checkpoint.load(tmp_path / "cut" / "checkpoints" / "last.safetensors")
    for k in ("model.weight", "model.bias"):
        assert torch.equal(a[k], b[k]), k
