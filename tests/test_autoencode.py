"""Anomaly detectors and sequence autoencoders: padded == alone and chunked == whole for both models, the k-ahead
errors against a naive loop, the Gaussian score against its formula, the held-out split, thresholds that keep
their stated false-alarm rate on fresh normal data, runs from before the detectors, the command line, bad input."""

import csv
import json

import numpy as np
import pytest
import torch

from seqlab import autoencode
from seqlab.autoencode import AutoencodeConfig, average_precision, detection, train_autoencoder
from seqlab.autoencode.bench import family, table_of
from seqlab.autoencode.task import Normal, errors, split, windows
from seqlab.cli import main
from seqlab.data.sequences import SequenceSet
from seqlab.models.autoencoder import NextStep, SequenceAutoencoder, aligned

SMALL = {"hidden": 16, "code": 8, "epochs": 40, "patience": None, "batch": 16, "lr": 1e-2, "warmup": 5}
QUIET = {"progress": False, "echo": lambda s: None}


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


@pytest.mark.parametrize("model", ["rnn", "lstm", "gru", "mingru"])
def test_next_step_is_causal_and_chunked_equals_whole(model):
    torch.manual_seed(0)
    net = NextStep(2, model, hidden=6, layers=2, ahead=3).double().eval()
    x = torch.randn(2, 11, 2, dtype=torch.float64)
    whole, _ = net(x)
    assert whole.shape == (2, 11, 3, 2)
    state, prev, parts = None, None, []
    for s in (0, 4, 8):
        out, state = net(x[:, s : s + 4], state=state, prev=prev)
        parts.append(out)
        prev = x[:, s + 3 : s + 4]
    torch.testing.assert_close(torch.cat(parts, 1), whole)
    changed = x.clone()
    changed[:, 6] += 5.0  # predictions made at steps <= 6 read only x_{<6}
    moved, _ = net(changed)
    torch.testing.assert_close(moved[:, :7], whole[:, :7])
    assert not torch.allclose(moved[:, 7:], whole[:, 7:])


def test_aligned_errors_against_a_loop():
    pred, x = torch.randn(2, 7, 3, 2, dtype=torch.float64), torch.randn(2, 7, 2, dtype=torch.float64)
    e = aligned(pred, x)
    for t in range(7):
        for k in range(3):
            if t < k:
                assert e[:, t, k].isnan().all()
            else:
                torch.testing.assert_close(e[:, t, k], x[:, t] - pred[:, t - k, k])


@pytest.mark.parametrize("model", ["lstm", "gru", "minlstm"])
def test_forecast_errors_chunked_padded_equal_each_sequence_alone(model):
    torch.manual_seed(0)
    net = NextStep(2, model, hidden=5, ahead=2).eval()
    rng = np.random.default_rng(0)
    data = SequenceSet([rng.normal(size=(n, 2)).astype(np.float32) for n in (9, 23, 4, 17)], None, list("abcd"))
    whole = errors(net, data, window=1000)
    for window in (3, 5):
        for got, want in zip(errors(net, data, window), whole, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    for i in range(len(data)):
        alone = errors(net, data.subset([i]), window=1000)[0]
        np.testing.assert_allclose(alone, whole[i], rtol=1e-5, atol=1e-6)
        assert whole[i].shape == (len(data.x[i]), 4) and np.isnan(whole[i][0]).all() and np.isfinite(whole[i][2]).all()


def test_reconstruct_errors_tile_long_series_into_windows():
    torch.manual_seed(0)
    net = SequenceAutoencoder(2, "gru", hidden=5, code=3).eval()
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(n, 2)).astype(np.float32) for n in (7, 25, 13)]  # batched longest first, put back in order
    got = errors(net, SequenceSet(xs, None, list("abc")), window=10)
    for x, g in zip(xs, got, strict=True):
        pieces = [errors(net, SequenceSet([x[s : s + 10]], None, ["a"]), window=10)[0] for s in range(0, len(x), 10)]
        np.testing.assert_allclose(g, np.concatenate(pieces), rtol=1e-5, atol=1e-6)


def test_windows_tile_for_scoring_and_cover_for_training():
    x = np.arange(23)[:, None]
    tiles = windows([x], 10, 10)
    assert [len(p) for p in tiles] == [10, 10, 3] and np.array_equal(np.concatenate(tiles), x)
    train = windows([x, x[:7]], 10, 4)
    assert [p[0, 0] for p in train[:-1]] == [0, 4, 8, 12, 13] and train[-2][-1, 0] == 22 and len(train[-1]) == 7
    assert [(p[0, 0], len(p)) for p in windows([x[:10], x[:11]], 10, 2)] == [(0, 10), (0, 10), (1, 10)]


def test_gaussian_score_is_the_mahalanobis_distance():
    rng = np.random.default_rng(0)
    e = rng.multivariate_normal([1.0, -1.0], [[2.0, 0.6], [0.6, 1.0]], size=5000)
    normal = Normal.fit([e[:2500], e[2500:]])
    d = np.array([[3.0, 0.0], [1.0, -1.0]])
    cov = np.cov(e.T)
    want = [float((v - e.mean(0)) @ np.linalg.inv(cov) @ (v - e.mean(0))) for v in d]
    np.testing.assert_allclose(normal(d), want, rtol=1e-4)
    assert normal(np.array([[np.nan, 0.0]]))[0] == 0.0  # no prediction: no evidence


def test_held_out_split_by_series_or_by_time():
    many = table_of([np.ones((1, 20))] * 10)
    got = split(many, AutoencodeConfig(val_fraction=0.2))
    assert (len(got.train), len(got.held), got.held_from) == (8, 2, [0, 0])
    few = table_of([np.arange(50.0)[None]])
    got = split(few, AutoencodeConfig(val_fraction=0.2))  # the end held out, read after the steps before it
    assert len(got.train[0]) == 40 and len(got.held[0]) == 50 and got.held_from == [40]


def test_detection_metrics_on_known_cases():
    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.2, 0.9, 0.8, 0.3, 0.25])
    m = detection(y, s, threshold=0.5)
    assert (m["precision"], m["recall"]) == (1.0, pytest.approx(2 / 3)) and m["f1"] == pytest.approx(0.8)
    assert average_precision(np.array([1, 0, 1]), np.array([3.0, 2.0, 1.0])) == pytest.approx((1 + 2 / 3) / 2)


@pytest.fixture(scope="module")
def forecaster(tmp_path_factory):
    torch.manual_seed(0)
    X, _ = family(120, 1)
    _, run = train_autoencoder(AutoencodeConfig(**{**SMALL, "epochs": 30}), table_of(X),
                               tmp_path_factory.mktemp("f") / "r", **QUIET)  # fmt: skip
    return run


def test_forecaster_finds_and_locates_anomalies_and_keeps_its_false_alarm_rate(forecaster):
    normal, _ = family(40, 2)
    odd, labels = family(40, 3, "spike")
    odd2, labels2 = family(40, 4, "flat")
    steps = [np.zeros(x.shape[1], bool) for x in normal] + labels + labels2
    result = autoencode.score(forecaster, table_of(normal + odd + odd2, ["n"] * 40 + ["a"] * 80), normal_label="n",
                              step_labels=steps)  # fmt: skip
    assert result["metrics"]["auc_pr"] > 0.9
    loc = result["localisation"]
    assert loc["step_auc_pr"] > 0.3 and loc["range_recall"] > 0.5  # about 0.08 and 0 by chance
    hits = [
        any(a <= t < b for a, b in result["intervals"][i] for t in np.flatnonzero(steps[i])) for i in range(40, 120)
    ]
    assert np.mean(hits) > 0.7
    flagged = np.concatenate(result["flags"][:40]).mean()  # fresh normal series: near the stated 1%
    assert flagged < 0.05


def test_reconstruct_detector_embeds_and_scores(tmp_path):
    torch.manual_seed(0)
    X, _ = family(60, 1)
    cfg = AutoencodeConfig(**{**SMALL, "epochs": 20, "detector": "reconstruct", "window": 64})
    _, run = train_autoencoder(cfg, table_of(X), tmp_path / "r", **QUIET)
    normal, _ = family(20, 2)
    test, _ = family(20, 3, "shift")
    result = autoencode.score(run, table_of(normal + test, ["n"] * 20 + ["a"] * 20), normal_label="n")
    assert [len(s) for s in result["steps"]] == [x.shape[1] for x in normal + test]
    assert result["metrics"]["auc_pr"] > 0.8  # 0.5 by chance
    codes, _ = autoencode.embed(run, table_of(test))
    assert codes.shape == (20, 8) and np.isfinite(codes).all()


def test_runs_from_before_the_detectors_score_as_they_did(tmp_path):
    """An old run: a whole-sequence autoencoder whose config has none of the new fields and one threshold; its step
    scores are the squared errors averaged over channels."""
    torch.manual_seed(0)
    X, _ = family(20, 1)
    cfg = AutoencodeConfig(**{**SMALL, "epochs": 2, "detector": "reconstruct", "window": 10_000, "smooth": 1})
    model, run = train_autoencoder(cfg, table_of(X), tmp_path / "r", **QUIET)
    meta = json.loads((run / "config.json").read_text())
    for key in ("detector", "window", "smooth", "ahead", "false_alarm", "anomaly_label"):
        del meta["config"][key]
    meta["config"]["quantile"] = 0.99
    for key in ("normal", "step_threshold"):
        del meta[key]
    (run / "config.json").write_text(json.dumps(meta))
    result = autoencode.score(run, table_of(X[:3]))
    x = torch.from_numpy(((X[0].T - np.array(meta["mean"])) / np.array(meta["std"])).astype(np.float32))[None]
    with torch.no_grad():
        want = ((model.eval()(x, torch.tensor([x.shape[1]]), teacher=False) - x) ** 2).mean(2)[0].numpy()
    np.testing.assert_allclose(result["steps"][0], want, rtol=1e-4, atol=1e-6)
    assert result["step_threshold"] == result["threshold"] == meta["threshold"]


def test_cli_train_score_embed(tmp_path, capsys):
    X, _ = family(40, 0)
    odd, labels = family(4, 9, "spike")
    X += odd
    lengths = np.array([x.shape[1] for x in X])
    padded = np.zeros((len(X), 2, lengths.max()), np.float32)
    for i, x in enumerate(X):
        padded[i, :, : x.shape[1]] = x
    np.savez(tmp_path / "d.npz", X=padded[:40], lengths=lengths[:40])
    np.savez(tmp_path / "t.npz", X=padded, lengths=lengths, y=np.array(["ok"] * 40 + ["spike"] * 4))
    y = np.zeros(padded.shape[::2], np.int64)
    for i, lab in enumerate(labels):
        y[40 + i, : len(lab)] = lab
    np.save(tmp_path / "y.npy", y)
    run = tmp_path / "run"
    args = ["autoencode", "train", str(tmp_path / "d.npz"), "--out", str(run), "--no-progress", "--anomaly-label",
            "spike", "--smooth", "3"]  # fmt: skip
    assert main(args + [f"--{k}={v}" for k, v in SMALL.items() if v is not None] + ["--epochs", "5"]) == 0
    assert "thresholds: step" in capsys.readouterr().out
    out = tmp_path / "s.csv"
    assert main(["autoencode", "score", str(run), str(tmp_path / "t.npz"), "--out", str(out), "--normal-label", "ok",
                 "--step-labels", str(tmp_path / "y.npy"), "--plot", str(tmp_path / "s.png")]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "precision" in printed and "range-based precision" in printed and (tmp_path / "s.png").is_file()
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 44 and set(rows[0]) == {"id", "score", "anomaly", "intervals"}
    with open(tmp_path / "s-steps.csv") as f:
        steps = list(csv.DictReader(f))
    assert len(steps) == int(lengths.sum()) and set(steps[0]) == {"id", "t", "score", "anomaly"}
    with open(tmp_path / "s-intervals.csv") as f:
        spans = list(csv.DictReader(f))
    flagged = {(r["id"], int(r["t"])) for r in steps if r["anomaly"] == "1"}
    assert flagged == {(r["id"], t) for r in spans for t in range(int(r["start"]), int(r["end"]))}
    assert sum(int(r["intervals"]) for r in rows) == len(spans)
    assert main(["autoencode", "score", str(run), str(tmp_path / "t.npz"), "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    (tmp_path / "s2-intervals.csv").write_text("mine")  # a file beside --out is never replaced without --force
    assert main(["autoencode", "score", str(run), str(tmp_path / "t.npz"), "--out", str(tmp_path / "s2.csv")]) == 2
    assert "s2-intervals.csv exists" in capsys.readouterr().err
    assert (tmp_path / "s2-intervals.csv").read_text() == "mine" and not (tmp_path / "s2.csv").exists()
    np.save(tmp_path / "one.npy", y[40])  # one series' labels as a 1-D array
    assert main(["autoencode", "score", str(run), str(tmp_path / "t.npz"), "--out", str(tmp_path / "s3.csv"),
                 "--step-labels", str(tmp_path / "one.npy")]) == 2  # fmt: skip
    assert "step labels for 1 series; the data has 44" in capsys.readouterr().err
    run2 = tmp_path / "run2"
    assert main(["autoencode", "train", str(tmp_path / "d.npz"), "--out", str(run2), "--no-progress", "--detector",
                 "reconstruct", "--epochs", "2", "--code", "4"]) == 0  # fmt: skip
    assert main(["autoencode", "embed", str(run2), str(tmp_path / "t.npz"), "--out", str(tmp_path / "c.csv")]) == 0
    assert (tmp_path / "c.csv").read_text().splitlines()[0] == "id," + ",".join(f"z{k}" for k in range(4))


def test_bad_input_is_one_line(tmp_path, capsys):
    np.savez(tmp_path / "three.npz", X=np.zeros((4, 3, 10), np.float32))
    np.savez(tmp_path / "two.npz", X=np.zeros((4, 2, 40), np.float32))
    run = tmp_path / "run"
    assert main(["autoencode", "train", str(tmp_path / "two.npz"), "--out", str(run), "--epochs", "1", "--ahead", "1",
                 "--no-progress"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["autoencode", "score", str(run), str(tmp_path / "three.npz"), "--out", str(tmp_path / "s.csv")]) == 2
    assert "3 channels, expected 2 as the model" in capsys.readouterr().err
    np.save(tmp_path / "y.npy", np.zeros((3, 40)))
    assert main(["autoencode", "score", str(run), str(tmp_path / "two.npz"), "--out", str(tmp_path / "s.csv"),
                 "--step-labels", str(tmp_path / "y.npy")]) == 2  # fmt: skip
    assert "step labels for 3 series; the data has 4" in capsys.readouterr().err
    (tmp_path / "empty.npy").write_bytes(b"")
    assert main(["autoencode", "score", str(run), str(tmp_path / "two.npz"), "--out", str(tmp_path / "s.csv"),
                 "--step-labels", str(tmp_path / "empty.npy")]) == 2  # fmt: skip
    assert "not a valid .npy file" in capsys.readouterr().err
    config = json.loads((run / "config.json").read_text())
    del config["threshold"]  # as a run whose training stopped before its thresholds were set
    (run / "config.json").write_text(json.dumps(config))
    assert main(["autoencode", "score", str(run), str(tmp_path / "two.npz"), "--out", str(tmp_path / "s.csv")]) == 2
    assert "training did not finish" in capsys.readouterr().err
    nan = np.zeros((4, 2, 10), np.float32)
    nan[2, 1, 7] = np.nan
    np.savez(tmp_path / "nan.npz", X=np.pad(nan, ((0, 0), (0, 0), (0, 30))))
    assert main(["autoencode", "train", str(tmp_path / "nan.npz"), "--out", str(tmp_path / "r2"), "--no-progress"]) == 2
    assert "series 2 of" in (err := capsys.readouterr().err) and "time step 7, channel 1" in err
    assert main(["autoencode", "train", str(tmp_path / "two.npz"), "--score", "median", "--out",
                 str(tmp_path / "r3")]) == 2  # fmt: skip
    assert "score must be one of mean, max" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists() and not (tmp_path / "s.csv").exists()
    np.savez(tmp_path / "tiny.npz", X=np.zeros((3, 2, 6), np.float32))
    assert main(["autoencode", "train", str(tmp_path / "tiny.npz"), "--out", str(tmp_path / "r4"), "--epochs", "1",
                 "--ahead", "8"]) == 2  # fmt: skip
    assert "too little held-out normal data" in capsys.readouterr().err and not (tmp_path / "r4").exists()
