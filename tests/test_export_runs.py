"""``seqlab export RUN`` for every task, and its torch-free runtime against PyTorch on the same inputs: classify
probabilities on unequal lengths, greedy generation token for token, forecasts and anomaly scores; a process that
runs an export without importing torch; the bad inputs (no checkpoint, not a run, a newer run, an existing folder,
wrong shapes and dtypes)."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from seqlab import autoencode, forecast, lm
from seqlab.classify import task as classify
from seqlab.cli import main
from seqlab.export.runtime import load

TEXT = "The quick brown fox jumps over the lazy dog; the dog sleeps, the fox runs.\n" * 40


def train(args: list[str], out: Path) -> Path:
    assert main([*args, "--out", str(out), "--no-progress", "--threads", "1"]) == 0
    return out


def export(run: Path, *extra: str) -> Path:
    assert main(["export", str(run), *extra]) == 0
    return run / "export"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("export")


# ------------------------------------------------------------------------------------------------ lm
@pytest.mark.parametrize("model,tokenizer", [("lstm", "char"), ("gru", "bpe"), ("transformer", "char")])
def test_lm_greedy_generation_and_logits_equal_pytorch(root, model, tokenizer):
    corpus = root / "corpus.txt"
    corpus.write_text(TEXT)
    args = ["lm", "train", str(corpus), "--model", model, "--hidden", "32", "--embed", "16", "--layers", "2",
            "--steps", "30", "--seq-len", "12", "--batch", "4", "--eval-every", "30", "--tokenizer", tokenizer,
            *(["--vocab-size", "300"] if tokenizer == "bpe" else [])]  # fmt: skip
    run = train(args, root / f"lm-{model}")
    folder = export(run)
    net, tok, _ = lm.load(run)
    want = "".join(lm.generate(net, tok, "The q", 200, greedy=True))
    rt = load(folder)
    assert rt.generate("The q", 200, greedy=True) == want  # 200 tokens, every one the same
    ids = np.array([tok.encode(TEXT[:50]), tok.encode(TEXT[60:110])], np.int64)  # longer than the training window
    with torch.no_grad():
        logits = net(torch.from_numpy(ids))[0].numpy()
    np.testing.assert_allclose(rt.logits(ids), logits, rtol=1e-4, atol=1e-4)
    sampled = rt.generate("The ", 40, temperature=0.8, top_k=5, top_p=0.9, seed=3)
    assert sampled == rt.generate("The ", 40, temperature=0.8, top_k=5, top_p=0.9, seed=3) and sampled


def test_lm_step_state_is_constant_in_size(root):
    rt = load(root / "lm-lstm" / "export")
    state = rt.start_state(1)
    assert sorted(state) == ["c", "h"] and state["h"].shape == (2, 1, 32)
    attention = load(root / "lm-transformer" / "export").start_state(1)
    assert attention["k"].shape[3] == 0 and attention["pos"].dtype == np.int64  # an empty cache to start


# ------------------------------------------------------------------------------------------------ classify
def series_csv(path: Path, n: int = 45, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "t", "a", "b", "label"])
        for i in range(n):
            lab = i % 3
            for t in range(int(rng.integers(6, 25))):
                w.writerow(
                    [f"s{i}", t, np.sin(t * (lab + 1) / 3) + 5 + rng.normal() * 0.1, rng.normal() * 3, f"c{lab}"]
                )


@pytest.mark.parametrize("model", [["--model", "gru"], ["--model", "lstm", "--layers", "2", "--pooling", "last"],
                                   ["--model", "fcn"], ["--model", "transformer", "--hidden", "16"]])  # fmt: skip
def test_classify_probabilities_equal_pytorch_on_unequal_lengths(root, model):
    data = root / "classes.csv"
    series_csv(data)
    run = train(["classify", "train", str(data), "--time-column", "t", "--hidden", "12", "--epochs", "2", *model],
                root / f"classify-{model[1]}")  # fmt: skip
    rt = load(export(run))
    net, inputs, _ = classify.load(run)
    rng = np.random.default_rng(1)
    xs = [(rng.normal(size=(int(T), 2)) * 3 + 5).astype(np.float32) for T in (7, 30, 1, 19, 30, 4)]
    scaled = inputs.series(xs, [f"x{i}" for i in range(len(xs))])
    with torch.no_grad():  # each sequence alone, in PyTorch
        want = np.concatenate([torch.softmax(net(torch.from_numpy(s)[None], torch.tensor([len(s)])), -1).numpy()
                               for s in scaled])  # fmt: skip
    np.testing.assert_allclose(rt.predict_proba(xs), want, atol=1e-5)
    assert list(rt.predict(xs)) == list(inputs.labels.classes[want.argmax(1)])


def test_classify_text(root):
    data = root / "texts.csv"
    with open(data, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(40):
            w.writerow(["good fine great nice"[i % 7 :] if i % 2 else "bad awful poor sad"[i % 5 :], i % 2])
    run = train(["classify", "train", str(data), "--hidden", "12", "--epochs", "2"], root / "classify-text")
    rt = load(export(run))
    net, inputs, _ = classify.load(run)
    texts = ["great fine", "awful", "zebra§ unseen characters"]
    with torch.no_grad():
        want = np.concatenate([torch.softmax(net(torch.from_numpy(inputs.encode_text(t))[None],
                                                 torch.tensor([len(t)])), -1).numpy() for t in texts])  # fmt: skip
    np.testing.assert_allclose(rt.predict_proba(texts), want, atol=1e-5)


def test_int8_export_records_sizes_and_stays_close(root):
    run = root / "classify-lstm"
    out = root / "int8"
    assert main(["export", str(run), "--out", str(out), "--quantize", "int8"]) == 0
    meta = json.loads((out / "export.json").read_text())
    assert meta["quantized"] == "int8" and meta["sizes"]["model.onnx"]["int8"] < meta["sizes"]["model.onnx"]["float32"]
    xs = [np.full((9, 2), 5.0, np.float32), np.ones((3, 2), np.float32)]
    np.testing.assert_allclose(load(out).predict_proba(xs), load(run / "export").predict_proba(xs), atol=0.05)


# ------------------------------------------------------------------------------------------------ forecast
def sales_csv(path: Path, covariate: bool = False) -> None:
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["store", "month", "sales", *(["promo"] if covariate else [])])
        for i in range(3):
            for t in range(110):
                promo = float((t + i) % 5 == 0)
                y = 50 * (i + 1) + 10 * np.sin(t / 2) + 0.3 * t + 8 * promo + rng.normal()
                w.writerow([f"s{i}", t, y, *([promo] if covariate else [])])


@pytest.mark.parametrize("extra", [["--model", "lstm"], ["--model", "gru", "--ensemble", "2", "--loss", "gaussian"],
                                   ["--model", "transformer", "--output", "autoregressive", "--hidden", "16"],
                                   ["--model", "gru", "--covariates", "promo", "--loss", "mse"],
                                   ["--model", "esrnn", "--season", "4", "--ensemble", "2"]])  # fmt: skip
def test_forecasts_equal_pytorch(root, extra):
    data = root / f"sales-{len(extra)}.csv"
    sales_csv(data, covariate="--covariates" in extra)
    run = train(["forecast", "train", str(data), "--id-column", "store", "--time-column", "month", "--hidden", "16",
                 "--context", "20", "--horizon", "6", "--steps", "20", "--eval-every", "10", *extra],
                root / f"forecast-{'-'.join(extra[1:4])}")  # fmt: skip
    rt = load(export(run))
    net, cfg, _ = forecast.load(run)
    series = forecast.load_data(str(data), cfg)
    H = cfg.horizon
    if series.n_covariates:  # the last H rows are the future: their covariates known
        ends = [len(t) - H for t in series.targets]
        got = rt.forecast([t[:e] for t, e in zip(series.targets, ends, strict=True)], series.covariates)
    else:
        ends = [len(t) for t in series.targets]
        got = rt.forecast(series.targets)
    want = forecast.task.forecast(net, series, ends, cfg)
    np.testing.assert_allclose(got.mean, want.mean, rtol=1e-4, atol=1e-4)
    if got.quantiles is not None:
        np.testing.assert_allclose(got.quantiles, want.quantiles, rtol=1e-4, atol=1e-4)
    assert (got.quantiles is None) == (cfg.output == "autoregressive" or "mse" in extra)
    short = rt.forecast([t[:5] for t in series.targets], None if not series.n_covariates else
                        [c[: 5 + H] for c in series.covariates])  # fmt: skip
    assert np.isfinite(short.mean).all()  # a history shorter than the context is padded, as seqlab pads it


# ------------------------------------------------------------------------------------------------ autoencode
def waves(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.stack([np.sin(np.arange(T) / 3 + k), np.cos(np.arange(T) / 5)], 1).astype(np.float32) * 2 + 1
            for k, T in enumerate(rng.integers(40, 70, n))]  # fmt: skip


@pytest.mark.parametrize("detector", [["--detector", "forecast", "--ahead", "3"],
                                      ["--detector", "reconstruct", "--model", "lstm", "--window", "24"]])  # fmt: skip
def test_anomaly_scores_equal_pytorch(root, detector):
    X = waves(40)
    lengths = np.array([len(x) for x in X])
    padded = np.zeros((len(X), 2, lengths.max()), np.float32)
    for i, x in enumerate(X):
        padded[i, :, : len(x)] = x.T
    data = root / "waves.npz"
    np.savez(data, X=padded, lengths=lengths)
    run = train(["autoencode", "train", str(data), "--hidden", "12", "--epochs", "2", "--smooth", "3", *detector],
                root / f"autoencode-{detector[1]}")  # fmt: skip
    rt = load(export(run))
    test = waves(5, seed=4)
    test[1][20:24] += 4.0  # an anomaly
    padded_test = np.zeros((5, 2, max(len(x) for x in test)), np.float32)
    for i, x in enumerate(test):
        padded_test[i, :, : len(x)] = x.T
    np.savez(root / "test.npz", X=padded_test, lengths=np.array([len(x) for x in test]))
    want = autoencode.score(run, root / "test.npz")
    got = rt.score(test)
    for a, b in zip(want["steps"], got["steps"], strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["scores"], want["scores"], rtol=1e-4, atol=1e-5)
    assert (got["anomaly"] == want["anomaly"]).all()
    if detector[1] == "reconstruct":
        codes = autoencode.embed(run, root / "test.npz")[0]
        np.testing.assert_allclose(rt.embed(test), codes, atol=1e-5)
    else:
        with pytest.raises(ValueError, match="no codes"):
            rt.embed(test)


# ------------------------------------------------------------------------------------------------ no torch
def test_the_runtime_reproduces_pytorch_in_a_process_without_torch(root, tmp_path):
    """The runtime's outputs, computed where torch is never imported, equal PyTorch's computed here."""
    xs = [np.linspace(0, 8, 5 + 4 * i, dtype=np.float32)[:, None].repeat(2, 1) + 5 for i in range(3)]
    np.savez(tmp_path / "in.npz", *xs)
    code = (
        "import sys, json, numpy as np\n"
        "from seqlab.export.runtime import load\n"
        f"xs = list(np.load({str(tmp_path / 'in.npz')!r}).values())\n"
        f"p = load({str(root / 'classify-gru' / 'export')!r}).predict_proba(xs)\n"
        f"t = load({str(root / 'lm-lstm' / 'export')!r}).generate('The q', 200, greedy=True)\n"
        f"f = load({str(root / 'forecast-lstm' / 'export')!r}).forecast([np.arange(30.0) + 50])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        f"np.savez({str(tmp_path / 'out.npz')!r}, p=p, f=f.mean, q=f.quantiles)\n"
        f"open({str(tmp_path / 'text.json')!r}, 'w').write(json.dumps(t))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    got = np.load(tmp_path / "out.npz")
    net, inputs, _ = classify.load(root / "classify-gru")
    with torch.no_grad():
        want = [torch.softmax(net(torch.from_numpy(s)[None], torch.tensor([len(s)])), -1)[0].numpy()
                for s in inputs.series(xs, ["a", "b", "c"])]  # fmt: skip
    np.testing.assert_allclose(got["p"], np.stack(want), atol=1e-5)
    model, tok, _ = lm.load(root / "lm-lstm")
    assert json.loads((tmp_path / "text.json").read_text()) == "".join(
        lm.generate(model, tok, "The q", 200, greedy=True)
    )
    net, cfg, _ = forecast.load(root / "forecast-lstm")
    hist = torch.from_numpy((np.arange(30.0) + 50)[-cfg.context :, None].astype(np.float32))[None]
    z, mean, std = forecast.task.normalize(torch.cat([hist, torch.zeros(1, cfg.horizon, 1)], 1), cfg.context)
    with torch.no_grad():
        q = net(z[:, : cfg.context])[0] * std[..., None] + mean[..., None]
    np.testing.assert_allclose(got["q"], q.numpy(), rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------------------------ bad input
def test_bad_runs_and_folders_are_one_line(root, tmp_path, capsys):
    assert main(["export", str(tmp_path)]) == 2
    assert "not a seqlab run" in capsys.readouterr().err
    run = root / "classify-gru"
    newer = tmp_path / "newer"
    newer.mkdir()
    meta = json.loads((run / "config.json").read_text())
    (newer / "config.json").write_text(json.dumps({**meta, "format": 99}))
    assert main(["export", str(newer)]) == 2
    assert "newer seqlab" in capsys.readouterr().err
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text(json.dumps(meta))
    assert main(["export", str(bare)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "best.safetensors" in err and not (bare / "export").exists()
    before = (run / "export" / "export.json").read_text()
    assert main(["export", str(run)]) == 2  # the export exists
    assert "--force" in capsys.readouterr().err and (run / "export" / "export.json").read_text() == before
    assert main(["export", str(run), "--force"]) == 0
    assert not [p for p in run.iterdir() if p.name.startswith(".export")]  # nothing left behind


def test_a_gan_run_is_refused(tmp_path, capsys):
    run = tmp_path / "gan"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"task": "gan", "config": {}}))
    assert main(["export", str(run)]) == 2
    assert "a gan run" in capsys.readouterr().err


def test_the_runtime_names_expected_shapes_and_dtypes(root):
    rt = load(root / "classify-gru" / "export")
    with pytest.raises(ValueError, match=r"x of shape \(B, T, 2\) float32, got float64"):
        rt.run("model.onnx", x=np.zeros((1, 4, 2)), lengths=np.array([4]))
    with pytest.raises(ValueError, match=r"expected \(T, 2\)"):
        rt.predict_proba([np.zeros((4, 3), np.float32)])
    with pytest.raises(ValueError, match="not finite"):
        rt.predict_proba([np.full((4, 2), np.nan, np.float32)])
    with pytest.raises(ValueError, match="missing input lengths"):
        rt.run("model.onnx", x=np.zeros((1, 4, 2), np.float32))
    with pytest.raises(ValueError, match="not a seqlab export"):
        load(root)


def test_a_scanned_cell_refuses_a_trace_over_time_and_traces_one_step(root, capsys):
    from seqlab.layers import MinGRU

    layer = MinGRU(3, 4, batch_first=True).eval()
    with pytest.raises(RuntimeError, match="logcumsumexp"):
        torch.jit.trace(layer, (torch.randn(2, 5, 3),), check_trace=False)
    traced = torch.jit.trace(layer, (torch.randn(2, 1, 3),), check_trace=False)
    x = torch.randn(4, 1, 3)
    torch.testing.assert_close(traced(x)[0], layer(x)[0])
    corpus = root / "corpus.txt"
    corpus.write_text(TEXT)
    run = train(["lm", "train", str(corpus), "--model", "mingru", "--hidden", "16", "--embed", "8", "--steps", "2",
                 "--seq-len", "8", "--batch", "2", "--eval-every", "2"], root / "lm-mingru")  # fmt: skip
    capsys.readouterr()
    assert main(["export", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot be exported" in err and not (run / "export").exists()
    assert not [p for p in run.iterdir() if p.name.startswith(".export")]


def test_bench_reports_three_engines_and_the_same_metric(root, capsys):
    from seqlab.export.bench import bench_export

    corpus = root / "corpus.txt"
    result = bench_export(root / "lm-lstm", root / "lm-lstm" / "export", corpus, echo=print)
    out = capsys.readouterr().out
    assert all(name in out for name in ("PyTorch eager", "onnxruntime float32", "onnxruntime int8", "bits/char"))
    bits = result["metric"][1]
    assert bits["float32"] == pytest.approx(bits["torch"], abs=1e-4) and abs(bits["int8"] - bits["torch"]) < 0.1
    assert result["sizes"]["int8"] < result["sizes"]["float32"]
    classified = bench_export(root / "classify-gru", root / "classify-gru" / "export", root / "classes.csv")
    accuracy = classified["metric"][1]
    assert accuracy["float32"] == accuracy["torch"] and all(v > 0 for v in classified["latency_batch"].values())
