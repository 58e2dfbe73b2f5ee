"""Sequence GAN: the sines data, the evaluation metrics on known cases, TimeGAN training end to end on tiny data,
synthetic sequences with their own lengths, and the command line."""

import json

import numpy as np
import pytest
import torch

from seqlab import checkpoint, gan
from seqlab.cli import main
from seqlab.data.tables import read_table
from seqlab.gan import GANConfig, discriminative_score, post_hoc_accuracy, predictive_score, sines, train_gan
from seqlab.models.timegan import TimeGAN, moment_loss

TINY = {"n": 200, "hidden": 8, "layers": 2, "batch": 32, "steps": 30, "eval_every": 15}


def test_sines_follow_the_papers_recipe():
    data = sines(50, seed=1)
    assert len(data) == 50 and data[0].shape == (5, 24)
    x = np.stack(data).astype(np.float64)
    assert x.min() >= 0.5 - 1e-6 and x.max() <= 1  # (sin + 1) / 2 of non-negative angles up to 2.4
    s = 2 * x - 1
    phase = np.arcsin(s[:, :, 0])  # t = 0: sin(phase)
    freq = np.arcsin(s[:, :, 1]) - phase  # t = 1: sin(freq + phase)
    assert phase.min() >= 0 and phase.max() <= 0.1 + 1e-6 and freq.min() >= -1e-6 and freq.max() <= 0.1 + 1e-6
    t = np.arange(24)
    np.testing.assert_allclose(x[3, 2], (np.sin(freq[3, 2] * t + phase[3, 2]) + 1) / 2, atol=1e-5)


def test_discriminative_score_is_near_zero_for_identical_sets_and_large_for_different_ones():
    real = [s.T.copy() for s in sines(400, seed=0)]
    same = discriminative_score(real, [s.copy() for s in real], steps=150)
    assert same < 0.1  # identical data: no classifier can beat chance
    flat = [np.full_like(s, 0.5) for s in real]
    assert discriminative_score(real, flat, steps=1000) > 0.4
    torch.manual_seed(5)  # the score runs inside GAN training: it must leave the global generator where it was
    expected = torch.rand(3)
    torch.manual_seed(5)
    discriminative_score(real[:50], flat[:50], steps=2, seed=9)
    predictive_score(real[:50], flat[:50], steps=2, seed=9)
    assert torch.equal(torch.rand(3), expected)


def test_predictive_score_is_better_when_trained_on_the_real_dynamics():
    real = [s.T.copy() for s in sines(300, seed=0)]
    noise = [np.random.default_rng(i).uniform(-1, 1, s.shape).astype(np.float32) for i, s in enumerate(real)]
    assert predictive_score(real, real, steps=300) < predictive_score(real, noise, steps=300)


def test_sample_is_generated_within_each_length():
    torch.manual_seed(0)
    m = TimeGAN(3, hidden=6, layers=2).eval()
    x = m.sample(torch.tensor([4, 9, 1]))
    assert x.shape == (3, 9, 3) and x[0, 4:].abs().max() == 0 and x[2, 1:].abs().max() == 0
    assert x.min() >= 0 and x.max() <= 1


def test_training_end_to_end_and_sequences_keep_their_own_lengths(tmp_path):
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 15, 120)
    X = np.zeros((120, 2, 14), np.float32)
    for i, n in enumerate(lengths):
        X[i, :, :n] = np.sin(np.arange(n) / 2 + rng.uniform(0, 6)) * [[1.0], [3.0]] + [[0.0], [10.0]]
    np.savez(tmp_path / "d.npz", X=X, lengths=lengths)
    _, run = train_gan(GANConfig(**{**TINY, "data": str(tmp_path / "d.npz")}), tmp_path / "run", echo=lambda s: None)
    seqs, got, labels = gan.sample(run, 50, seed=3)
    assert labels is None  # unconditional: the file's labels are not used
    assert set(got.tolist()) <= set(lengths.tolist()) and [len(s) for s in seqs] == got.tolist()
    assert all(np.isfinite(s).all() for s in seqs)
    assert 9.9 - 3.1 <= np.mean([s[:, 1].mean() for s in seqs]) <= 10.1 + 3.1  # back in the data's units
    again, _, _ = gan.sample(run, 50, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(seqs, again, strict=True))
    quick = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    quick = [(r["discriminative_quick"], r["step"]) for r in quick if "discriminative_quick" in r]
    assert [s for _, s in quick] == [15, 30]  # every eval_every joint steps and at the end
    _, meta = checkpoint.load(run / "checkpoints" / "best.safetensors")
    assert meta["step"] == min(quick, key=lambda q: q[0])[1]  # the lowest quick score, the first of ties
    last, _, _ = gan.sample(run, 50, seed=3, which="last")
    assert all(np.array_equal(a, b) for a, b in zip(seqs, last, strict=True)) == (meta["step"] == 30)
    result = gan.evaluate(run, repeats=1, n=60, out=tmp_path / "eval", steps=(20, 20), echo=lambda s: None)
    assert 0 <= result["discriminative"] <= 0.5 and result["predictive"] > 0
    assert (tmp_path / "eval" / "pca-tsne.png").is_file()


def test_cli_train_sample_eval_and_errors(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["gan", "train", "sines", "--out", str(run)] + [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    assert main(args) == 0
    out = tmp_path / "s.npz"
    assert main(["gan", "sample", str(run), "--n", "7", "--out", str(out)]) == 0
    table = read_table(out)
    assert len(table.items) == 7 and table.items[0].shape == (24, 5)
    assert main(["gan", "sample", str(run), "--n", "7", "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["gan", "eval", str(run), "--repeats", "1", "--n", "50", "--disc-steps", "10", "--pred-steps", "10",
                 "--out", str(tmp_path / "e")]) == 0  # fmt: skip
    assert '"discriminative"' in capsys.readouterr().out
    assert main(["gan", "train", "sines", "--layers", "1", "--out", str(tmp_path / "r2")]) == 2
    assert "layers must be at least 2" in capsys.readouterr().err
    (tmp_path / "t.csv").write_text("text,label\nhi,a\nho,b\n")
    assert main(["gan", "train", str(tmp_path / "t.csv"), "--out", str(tmp_path / "r3")]) == 2
    assert "holds text" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists()


@pytest.mark.parametrize("cell", ["lstm", "rnn", "mingru", "minlstm"])
def test_other_cells_train(tmp_path, cell):
    _, run = train_gan(GANConfig(**{**TINY, "cell": cell, "steps": 5}), tmp_path / "r", echo=lambda s: None)
    assert gan.sample(run, 3)[0][0].shape == (24, 5)


def test_moment_loss_is_per_time_step_over_valid_rows():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 10, 3, generator=g) + torch.linspace(0, 1, 10)[None, :, None]  # the mean rises with t
    full = torch.ones(16, 10, 1)
    mu, sd = x.mean(0), x.var(0, unbiased=False).add(1e-6).sqrt()
    x_hat = torch.rand(16, 10, 3, generator=g)
    mu_h, sd_h = x_hat.mean(0), x_hat.var(0, unbiased=False).add(1e-6).sqrt()
    expected = ((sd_h - sd).abs() + (mu_h - mu).abs()).mean()  # the reference code's tf.nn.moments over axis 0
    torch.testing.assert_close(moment_loss(x_hat, x, full), expected)
    assert moment_loss(x, x, full) == 0
    flipped = x.flip(1)  # the same values per channel over all steps, so pooled moments would not see it
    assert moment_loss(flipped, x, full) > 0.3
    lengths = torch.tensor([10, 7, 3, 10] * 4)
    mask = (torch.arange(10)[None] < lengths[:, None]).float()[:, :, None]
    garbage = torch.where(mask.bool(), x_hat, torch.full_like(x_hat, 1e3))
    torch.testing.assert_close(moment_loss(garbage, x, mask), moment_loss(x_hat * mask, x, mask))


def test_post_hoc_accuracy_separates_classes_by_level_and_is_chance_on_noise():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    seqs = [(rng.normal(0, 0.3, (int(rng.integers(4, 12)), 2)) + k).astype(np.float32) for k in y]
    assert post_hoc_accuracy(seqs[:240], y[:240], seqs[240:], y[240:], 3, hidden=8, steps=300) > 0.95
    assert post_hoc_accuracy(seqs[:240], y[:240] % 2, seqs[240:], y[240:] % 2, 2, hidden=8, steps=300) > 0.6
    shuffled = rng.permutation(y)
    assert post_hoc_accuracy(seqs[:240], shuffled[:240], seqs[240:], shuffled[240:], 3, hidden=8, steps=300) < 0.55


def test_conditional_model_reads_the_class():
    torch.manual_seed(0)
    m = TimeGAN(2, hidden=6, layers=2, classes=3).eval()
    lengths = torch.tensor([5, 5])
    a = m.sample(lengths, torch.tensor([0, 1]), torch.Generator().manual_seed(1))
    b = m.sample(lengths, torch.tensor([0, 2]), torch.Generator().manual_seed(1))
    assert torch.equal(a[0], b[0]) and not torch.allclose(a[1], b[1])  # same noise: only the class differs
    with pytest.raises(ValueError, match="needs a class label"):
        m.sample(lengths)


def test_conditional_training_sampling_per_class_and_evaluation(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = np.array(["low", "high"] * 40)
    lengths = np.where(y == "low", rng.integers(4, 7, 80), rng.integers(10, 13, 80))
    X = np.zeros((80, 2, 12), np.float32)
    for i, n in enumerate(lengths):
        X[i, :, :n] = rng.normal(0, 0.1, (2, n)) + (5.0 if y[i] == "high" else 0.0)
    np.savez(tmp_path / "d.npz", X=X, y=y, lengths=lengths)
    run = tmp_path / "run"
    args = ["gan", "train", str(tmp_path / "d.npz"), "--conditional", "--out", str(run)]
    assert main(args + [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items() if k != "n"]) == 0
    seqs, got, labels = gan.sample(run, 40, seed=0)
    assert sorted(set(labels.tolist())) == ["high", "low"]
    for s, n, label in zip(seqs, got, labels, strict=True):  # each keeps a length of its own class
        assert len(s) == n and n in set(lengths[y == label].tolist())
    assert main(["gan", "sample", str(run), "--n", "9", "--label", "high", "--out", str(tmp_path / "h.npz")]) == 0
    table = read_table(tmp_path / "h.npz", labels="required")  # readable as labelled training data
    assert table.labels == ["high"] * 9 and {len(s) for s in table.items} <= {10, 11, 12}
    result = gan.evaluate(run, repeats=1, steps=(20, 20), echo=lambda s: None)
    assert 0 <= result["class_accuracy_synthetic"] <= 1 and 0 <= result["class_accuracy_real"] <= 1
    capsys.readouterr()
    assert main(["gan", "sample", str(run), "--n", "2", "--label", "mid", "--out", str(tmp_path / "m.npz")]) == 2
    assert "not one of the run's classes: high, low" in capsys.readouterr().err
    assert main(["gan", "train", "sines", "--conditional", "--out", str(tmp_path / "r4")]) == 2
    assert "sines have no class labels" in capsys.readouterr().err
    assert not (tmp_path / "m.npz").exists() and not (tmp_path / "r4").exists()


def test_label_needs_a_conditional_run(tmp_path, capsys):
    _, run = train_gan(GANConfig(**{**TINY, "steps": 3}), tmp_path / "r", echo=lambda s: None)
    assert main(["gan", "sample", str(run), "--n", "2", "--label", "a", "--out", str(tmp_path / "a.npz")]) == 2
    assert "--label needs a conditional run" in capsys.readouterr().err
