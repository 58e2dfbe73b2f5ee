"""Sequence autoencoders: padded == alone in both decoding modes, teacher forcing against free running, anomaly metrics
on known cases, training end to end, embed and score from the command line, bad input."""

import csv

import numpy as np
import pytest
import torch

from seqlab import autoencode
from seqlab.autoencode import AutoencodeConfig, average_precision, detection, train_autoencoder
from seqlab.autoencode.bench import synthetic, table_of
from seqlab.cli import main
from seqlab.models.autoencoder import SequenceAutoencoder

SMALL = {"hidden": 16, "code": 8, "epochs": 40, "patience": None, "batch": 16, "lr": 1e-2, "warmup": 5}


@pytest.mark.parametrize("model", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("teacher", [True, False])
def test_padded_row_equals_the_sequence_alone(model, teacher):
    torch.manual_seed(0)
    net = SequenceAutoencoder(3, model, hidden=6, layers=2, code=4).double().eval()
    lengths = torch.tensor([5, 9, 2])
    x = torch.randn(3, 9, 3, dtype=torch.float64)
    for b, n in enumerate(lengths):
        x[b, n:] = 1e3
    batch = net(x, lengths, teacher=teacher)
    for b, n in enumerate(lengths):
        alone = net(x[b : b + 1, :n], lengths[b : b + 1], teacher=teacher)
        torch.testing.assert_close(batch[b : b + 1, :n], alone)
        assert batch[b, n:].abs().sum() == 0


def test_free_running_feeds_the_decoders_own_output_back():
    torch.manual_seed(0)
    net = SequenceAutoencoder(2, "gru", hidden=5, code=3).double().eval()
    x, lengths = torch.randn(1, 6, 2, dtype=torch.float64), torch.tensor([6])
    free = net(x, lengths, teacher=False)
    code = net.encode(x, lengths)
    torch.testing.assert_close(net.reconstruct(code, lengths, x=free), free)  # teacher-forced on its own output
    assert not torch.allclose(net(x, lengths, teacher=True), free)


def test_detection_metrics_on_known_cases():
    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.2, 0.9, 0.8, 0.3, 0.25])
    m = detection(y, s, threshold=0.5)
    assert (m["precision"], m["recall"]) == (1.0, pytest.approx(2 / 3)) and m["f1"] == pytest.approx(0.8)
    assert average_precision(np.array([1, 0, 1]), np.array([3.0, 2.0, 1.0])) == pytest.approx((1 + 2 / 3) / 2)
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    y, s = rng.integers(0, 2, 50), rng.uniform(size=50)
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s))


def test_trained_autoencoder_flags_spikes_and_shifts(tmp_path):
    torch.manual_seed(0)
    cfg = AutoencodeConfig(**{**SMALL, "epochs": 60})
    _, run = train_autoencoder(cfg, table_of(synthetic(150, 1)), tmp_path / "r", progress=False, echo=lambda s: None)
    test = synthetic(40, 2) + synthetic(20, 3, "spike") + synthetic(20, 4, "shift")
    labels = ["normal"] * 40 + ["bad"] * 40
    result = autoencode.score(run, table_of(test, labels), normal_label="normal")
    assert result["metrics"]["auc_pr"] > 0.8
    assert result["scores"][40:].mean() > 2 * result["scores"][:40].mean()
    codes, _ = autoencode.embed(run, table_of(test))
    assert codes.shape == (80, 8) and np.isfinite(codes).all()


def test_cli_train_embed_score(tmp_path, capsys):
    X = synthetic(60, 0) + synthetic(4, 9, "spike")
    lengths = np.array([x.shape[1] for x in X])
    padded = np.zeros((len(X), 2, lengths.max()), np.float32)
    for i, x in enumerate(X):
        padded[i, :, : x.shape[1]] = x
    np.savez(tmp_path / "d.npz", X=padded[:60], lengths=lengths[:60])
    np.savez(tmp_path / "t.npz", X=padded, lengths=lengths, y=np.array(["ok"] * 60 + ["spike"] * 4))
    run = tmp_path / "run"
    args = ["autoencode", "train", str(tmp_path / "d.npz"), "--out", str(run), "--no-progress"]
    args += [f"--{k}={v}" for k, v in SMALL.items() if v is not None]
    assert main(args) == 0
    assert "threshold" in capsys.readouterr().out
    assert main(["autoencode", "embed", str(run), str(tmp_path / "t.npz"), "--out", str(tmp_path / "c.npy")]) == 0
    assert np.load(tmp_path / "c.npy").shape == (64, 8)
    assert main(["autoencode", "embed", str(run), str(tmp_path / "t.npz"), "--out", str(tmp_path / "c.csv")]) == 0
    assert (tmp_path / "c.csv").read_text().splitlines()[0] == "id," + ",".join(f"z{k}" for k in range(8))
    out = tmp_path / "s.csv"
    assert main(["autoencode", "score", str(run), str(tmp_path / "t.npz"), "--out", str(out), "--normal-label", "ok",
                 "--plot", str(tmp_path / "s.png")]) == 0  # fmt: skip
    assert "precision" in capsys.readouterr().out and (tmp_path / "s.png").is_file()
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 64 and set(rows[0]) == {"id", "score", "anomaly"}
    with open(tmp_path / "s-steps.csv") as f:
        assert sum(1 for _ in csv.DictReader(f)) == int(lengths.sum())
    assert main(["autoencode", "score", str(run), str(tmp_path / "t.npz"), "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err


def test_bad_input_is_one_line(tmp_path, capsys):
    np.savez(tmp_path / "three.npz", X=np.zeros((4, 3, 10), np.float32))
    np.savez(tmp_path / "two.npz", X=np.zeros((4, 2, 10), np.float32))
    run = tmp_path / "run"
    assert main(["autoencode", "train", str(tmp_path / "two.npz"), "--out", str(run), "--epochs", "1",
                 "--no-progress"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["autoencode", "score", str(run), str(tmp_path / "three.npz"), "--out", str(tmp_path / "s.csv")]) == 2
    assert "3 channels, expected 2 as the model" in capsys.readouterr().err
    nan = np.zeros((4, 2, 10), np.float32)
    nan[2, 1, 7] = np.nan
    np.savez(tmp_path / "nan.npz", X=nan)
    assert main(["autoencode", "train", str(tmp_path / "nan.npz"), "--out", str(tmp_path / "r2"), "--no-progress"]) == 2
    assert "series 2 of" in (err := capsys.readouterr().err) and "time step 7, channel 1" in err
    assert main(["autoencode", "train", str(tmp_path / "two.npz"), "--score", "median", "--out",
                 str(tmp_path / "r3")]) == 2  # fmt: skip
    assert "score must be one of mean, max" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists()
