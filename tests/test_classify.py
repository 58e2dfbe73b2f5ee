"""Sequence classification: masked pooling, padded == alone, metrics against scikit-learn, the training run (early
stopping, exact resume), the command line with its errors, and the scikit-learn-style estimator."""

import csv
import json
import re

import numpy as np
import pytest
import torch

from seqlab import checkpoint, classify
from seqlab.classify import ClassifyConfig, metrics, predict_proba, train_classifier
from seqlab.classify.estimator import SequenceClassifier, to_table
from seqlab.cli import main
from seqlab.layers import LSTM, Pool
from seqlab.models import Classifier

TINY = {"model": "gru", "regime": "standard", "hidden": 12, "batch": 8, "epochs": 15, "patience": None, "lr": 1e-2,
        "warmup": 5}  # fmt: skip


def toy_series(n=60, seed=0, channels=2):
    """Class k: a sine of frequency 0.3 + 0.6 k in channel 0 (noise elsewhere), lengths 8..30."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for i in range(n):
        k, T = i % 3, int(rng.integers(8, 31))
        t = np.arange(T)
        s = 0.3 * rng.standard_normal((channels, T))
        s[0] += np.sin(t * (0.3 + 0.6 * k) + rng.uniform(0, 6))
        X.append(s.astype(np.float32))
        y.append(["low", "mid", "high"][k])
    return X, y


def write_long_csv(path, X, y, ids=None):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "t", *[f"c{j}" for j in range(X[0].shape[0])], "label"])
        for i, (s, label) in enumerate(zip(X, y, strict=True)):
            for t in range(s.shape[1]):
                w.writerow([ids[i] if ids else f"s{i}", t, *[f"{v:.5f}" for v in s[:, t]], label])


# ------------------------------------------------------------------------------------------------ model
@pytest.mark.parametrize("model", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("pooling", ["last", "mean", "max", "attention", "concat"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padded_row_equals_the_sequence_alone(model, pooling, bidirectional):
    torch.manual_seed(0)
    net = Classifier(4, channels=3, model=model, hidden=8, layers=2, bidirectional=bidirectional, pooling=pooling)
    net.eval().double()
    lengths = torch.tensor([6, 1, 9, 4])
    x = torch.randn(4, 9, 3, dtype=torch.float64)
    for b, n in enumerate(lengths):
        x[b, n:] = 1e3  # garbage in the padding must not reach any result
    batch = net(x, lengths)
    for b, n in enumerate(lengths):
        alone = net(x[b : b + 1, :n], lengths[b : b + 1])
        torch.testing.assert_close(batch[b : b + 1], alone, rtol=1e-10, atol=1e-10)


def test_text_classifier_padded_equals_alone():
    torch.manual_seed(0)
    net = Classifier(3, vocab_size=20, embed=5, hidden=6, pooling="attention").eval()
    ids = torch.randint(0, 20, (3, 7))
    lengths = torch.tensor([7, 2, 5])
    batch = net(ids, lengths)
    for b, n in enumerate(lengths):
        torch.testing.assert_close(batch[b], net(ids[b : b + 1, :n], lengths[b : b + 1])[0])


def test_last_pooling_reads_each_directions_final_state():
    torch.manual_seed(0)
    lstm = LSTM(3, 5, bidirectional=True, batch_first=True)
    x, lengths = torch.randn(3, 8, 3), torch.tensor([8, 3, 5])
    h, (h_n, _) = lstm(x, lengths=lengths)
    pooled = Pool("last", 10, directions=2)(h, lengths)
    torch.testing.assert_close(pooled, torch.cat([h_n[0], h_n[1]], dim=1))


def test_mean_max_and_attention_pooling_against_their_definitions():
    torch.manual_seed(0)
    h, lengths = torch.randn(2, 5, 4), torch.tensor([5, 2])
    torch.testing.assert_close(Pool("mean", 4)(h, lengths)[1], h[1, :2].mean(0))
    torch.testing.assert_close(Pool("max", 4)(h, lengths)[1], h[1, :2].amax(0))
    att = Pool("attention", 4)
    w = torch.softmax(att.score(h[1, :2]), dim=0)
    torch.testing.assert_close(att(h, lengths)[1], (w * h[1, :2]).sum(0))
    cat = Pool("concat", 4)(h, lengths)
    torch.testing.assert_close(cat[1], torch.cat([h[1, 1], h[1, :2].amax(0), h[1, :2].mean(0)]))
    with pytest.raises(ValueError, match="pooling must be one of"):
        Pool("sum", 4)


def test_predictions_do_not_depend_on_the_batch():
    X, y = toy_series(20)
    table = to_table(X, y)
    cfg = ClassifyConfig(**TINY)
    inputs = classify.Inputs.fit(table, np.arange(20), cfg)
    data = inputs.prepare(table)
    torch.manual_seed(0)
    model = classify.model_from(cfg, inputs)
    whole = predict_proba(model, data, batch=256)
    for batch in (1, 3, 7):
        np.testing.assert_allclose(predict_proba(model, data, batch=batch), whole, rtol=1e-5, atol=1e-6)
    order = np.random.default_rng(0).permutation(20)
    np.testing.assert_allclose(predict_proba(model, data.subset(order)), whole[order], rtol=1e-5, atol=1e-6)


def test_metrics_agree_with_scikit_learn():
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, log_loss, precision_recall_fscore_support

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    y[y == 3] = 2  # class 3 never occurs: macro-F1 averages the classes present
    proba = rng.dirichlet(np.ones(4), 200)
    proba[np.arange(200), y] += rng.uniform(0, 1, 200)
    proba /= proba.sum(1, keepdims=True)
    m = metrics(y, proba, 4)
    pred = proba.argmax(1)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro", labels=np.unique(y)))
    assert np.array_equal(m["confusion"], confusion_matrix(y, pred, labels=range(4)))
    p, r, f, _ = precision_recall_fscore_support(y, pred, labels=range(4), zero_division=0)
    np.testing.assert_allclose(m["precision"], p)
    np.testing.assert_allclose(m["recall"], r)
    np.testing.assert_allclose(m["f1"], f)
    assert m["loss"] == pytest.approx(log_loss(y, proba, labels=range(4)))


# ------------------------------------------------------------------------------------------------ training
def test_training_learns_writes_its_run_and_reloads(tmp_path):
    X, y = toy_series(90)
    torch.manual_seed(0)
    model, inputs, run = train_classifier(ClassifyConfig(**{**TINY, "epochs": 40}), to_table(X, y), tmp_path / "r",
                                          progress=False, echo=lambda s: None)  # fmt: skip
    for name in ("config.json", "report.txt", "confusion.png", "loss.png", "metrics.jsonl"):
        assert (run / name).is_file(), name
    assert list(inputs.labels.classes) == ["high", "low", "mid"]
    Xt, yt = toy_series(60, seed=1)
    test = inputs.prepare(to_table(Xt, yt))
    assert metrics(test.y, predict_proba(model, test), 3)["accuracy"] > 0.85
    again, _, _ = classify.load(run)
    np.testing.assert_array_equal(predict_proba(again, test), predict_proba(model, test))
    best = json.loads((run / "config.json").read_text())
    assert best["task"] == "classify" and best["inputs"]["channels"] == 2


def test_patience_stops_after_evaluations_without_progress(tmp_path):
    X, y = toy_series(30)
    cfg = ClassifyConfig(**{**TINY, "lr": 0.0, "min_lr": 0.0, "patience": 2, "epochs": 50})  # nothing can improve
    _, _, run = train_classifier(cfg, to_table(X, y), tmp_path / "r", progress=False, echo=lambda s: None)
    evals = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "val_loss" in r]
    assert len(evals) == 3  # the first is the best so far, then two without progress
    _, meta = checkpoint.load(run / "checkpoints" / "best.safetensors")
    assert meta["step"] == evals[0]["step"]


def test_best_checkpoint_ranks_by_accuracy_then_loss():
    rank = classify.ClassifyTask.objective
    assert rank({"val_accuracy": 0.9, "val_loss": 0.5}) < rank({"val_accuracy": 0.8, "val_loss": 0.1})
    assert rank({"val_accuracy": 0.9, "val_loss": 0.2}) < rank({"val_accuracy": 0.9, "val_loss": 0.5})


def test_resumed_run_equals_an_uninterrupted_one(tmp_path, check_resume):
    X, y = toy_series(40)
    path = tmp_path / "train.csv"
    write_long_csv(path, X, y)
    check_resume(["classify", "train", str(path), "--time-column", "t", "--hidden", "8", "--batch", "8", "--steps",
                  "60", "--eval-every", "10", "--dropout", "0.3", "--no-progress", "--threads", "1"], 60)  # fmt: skip


# ------------------------------------------------------------------------------------------------ command line
def test_cli_train_eval_predict_on_series(tmp_path, capsys):
    X, y = toy_series(60)
    train_path, test_path = tmp_path / "train.csv", tmp_path / "test.csv"
    write_long_csv(train_path, X, y)
    Xt, yt = toy_series(12, seed=5)
    write_long_csv(test_path, Xt, yt, ids=[f"q{i}" for i in range(12)])
    run = tmp_path / "run"
    args = ["classify", "train", str(train_path), "--out", str(run), "--time-column", "t", "--hidden", "12",
            "--epochs", "8", "--no-bidirectional", "--pooling", "attention", "--no-progress",
            "--test", str(test_path)]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "test " in out and "macro-F1" in out and (run / "test-test" / "confusion.png").is_file()
    assert json.loads((run / "config.json").read_text())["config"]["bidirectional"] is False
    assert main(["classify", "eval", str(run), str(test_path)]) == 0
    assert "precision  recall" in capsys.readouterr().out
    preds = tmp_path / "preds.csv"
    assert main(["classify", "predict", str(run), str(test_path), "--out", str(preds)]) == 0
    with open(preds) as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == [f"q{i}" for i in range(12)]
    assert set(rows[0]) == {"id", "label", "p_high", "p_low", "p_mid"}
    for r in rows:
        p = {k[2:]: float(v) for k, v in r.items() if k.startswith("p_")}
        assert sum(p.values()) == pytest.approx(1, abs=1e-4) and r["label"] == max(p, key=p.get)
    before = preds.read_bytes()
    assert main(["classify", "predict", str(run), str(test_path), "--out", str(preds)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err and preds.read_bytes() == before


def test_cli_text_classification_with_each_tokenizer(tmp_path, capsys):
    rng = np.random.default_rng(0)
    good, bad = ["great", "lovely", "fine", "superb"], ["awful", "poor", "dull", "grim"]
    rows = []
    for i in range(80):
        label = "pos" if i % 2 else "neg"
        words = rng.choice(good if label == "pos" else bad, 2).tolist() + rng.choice(["the", "a", "film"], 2).tolist()
        rows.append((" ".join(rng.permutation(words)), label))
    path = tmp_path / "reviews.tsv"
    path.write_text("label\ttext\n" + "".join(f"{lab}\t{t}\n" for t, lab in rows))
    new = tmp_path / "new.jsonl"
    new.write_text('{"text": "a great superb film"}\n{"text": "grim and dull \u00e9"}\n')  # é: never seen in training
    for tokenizer in ("char", "word", "bpe"):
        run = tmp_path / f"run-{tokenizer}"
        assert main(["classify", "train", str(path), "--out", str(run), "--tokenizer", tokenizer, "--vocab-size", "300",
                     "--hidden", "16", "--epochs", "25", "--lr", "0.01", "--no-progress"]) == 0  # fmt: skip
        assert "validation accuracy 1.0000" in capsys.readouterr().out
        preds = tmp_path / f"p-{tokenizer}.csv"
        assert main(["classify", "predict", str(run), str(new), "--out", str(preds)]) == 0
        with open(preds) as f:
            assert [r["label"] for r in csv.DictReader(f)] == ["pos", "neg"]


@pytest.mark.parametrize(
    "content, extra, message",
    [
        ("text,label\na,x\nb,x\n", [], "at least two classes"),
        ("text,label\na,x\nb,y\nc\n", [], "line 4 of .*: 1 fields, the header has 2"),
        ("txt,label\na,x\nb,y\n", [], "neither a text column 'text'"),
        ("text,label\na,x\nb,y\n", ["--model", "tcn"], "model must be one of rnn, .*, gru-fcn; got 'tcn'"),
        ("text,label\na,x\nb,y\n", ["--pooling", "sum"], "pooling must be one of last, mean, max, attention"),
        ("id,x,label\n1,0.5,a\n1,nan,a\n2,1,b\n", [], "series '1' of .*: nan at time step 1, channel 0"),
    ],
)
def test_cli_training_errors_are_one_line_and_exit_2(tmp_path, capsys, content, extra, message):
    path = tmp_path / "d.csv"
    path.write_text(content)
    assert main(["classify", "train", str(path), "--out", str(tmp_path / "run"), "--no-progress", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("seqlab classify: error:")
    assert re.search(message, err), err
    assert path.read_text() == content and not (tmp_path / "run").exists()


def test_cli_errors_at_evaluation_and_prediction(tmp_path, capsys):
    X, y = toy_series(30)
    train_path = tmp_path / "train.csv"
    write_long_csv(train_path, X, y)
    run = tmp_path / "run"
    assert main(["classify", "train", str(train_path), "--out", str(run), "--hidden", "4", "--epochs", "1",
                 "--time-column", "t", "--no-progress"]) == 0  # fmt: skip
    capsys.readouterr()
    unseen = tmp_path / "unseen.csv"
    write_long_csv(unseen, X[:2], ["low", "ultra"])
    assert main(["classify", "eval", str(run), str(unseen)]) == 2
    assert "series 's1' of" in (err := capsys.readouterr().err) and "label 'ultra' was never seen" in err
    three = tmp_path / "three.csv"
    write_long_csv(three, [np.ones((3, 5), np.float32)], ["low"])
    assert main(["classify", "predict", str(run), str(three), "--out", str(tmp_path / "p.csv")]) == 2
    assert "3 channels, expected 2 as the model" in capsys.readouterr().err
    text = tmp_path / "text.csv"
    text.write_text("text,label\nhello,low\n")
    assert main(["classify", "predict", str(run), str(text), "--out", str(tmp_path / "p.csv")]) == 2
    assert "holds text, the model reads series" in capsys.readouterr().err
    assert main(["classify", "eval", str(tmp_path), str(unseen)]) == 2
    assert "not a seqlab run" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()
    assert main(["classify", "train", str(train_path), "--out", str(run), "--no-progress"]) == 2
    assert "exists; choose another --out" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ estimator
def test_estimator_follows_scikit_learns_protocol():
    from sklearn.base import clone, is_classifier
    from sklearn.model_selection import cross_val_score

    clf = SequenceClassifier(hidden=12, epochs=40, patience=None, lr=1e-2, batch=8)
    assert is_classifier(clf)
    twin = clone(clf)
    assert twin.get_params() == clf.get_params() and twin is not clf
    assert clf.set_params(hidden=10).hidden == 10
    X, y = toy_series(90)
    scores = cross_val_score(clone(clf), X, np.array(y), cv=3)
    assert scores.mean() > 0.8
    with pytest.raises(ValueError, match="not fitted"):
        clf.predict(X)


def test_estimator_takes_3d_arrays_lists_and_text():
    rng = np.random.default_rng(0)
    X3 = rng.normal(size=(40, 1, 12)).astype(np.float32)
    y = np.arange(40) % 2
    X3[y == 1, 0, 6:] += 2.0  # class 1 steps up halfway
    clf = SequenceClassifier(hidden=8, epochs=30, ensemble=2, batch=8).fit(X3, y)  # the default fcn, small regime
    assert clf.classes_.tolist() == [0, 1] and clf.n_channels_ == 1
    proba = clf.predict_proba(X3)
    assert proba.shape == (40, 2) and np.allclose(proba.sum(1), 1)
    assert clf.score(X3, y) > 0.9
    ragged = [x[:, : 6 + i % 7] for i, x in enumerate(X3)]  # list of unequal (channels, length) arrays
    assert clf.predict(ragged).shape == (40,)
    texts = ["yes please", "no thanks", "yes indeed", "no way"] * 10
    labels = [t.split()[0] for t in texts]
    text_clf = SequenceClassifier(model="gru", regime="standard", hidden=8, epochs=10, patience=None, lr=1e-2)
    text_clf.fit(texts, labels)
    assert text_clf.predict(["yes sir", "no sir"]).tolist() == ["yes", "no"]
    assert text_clf.history_ and "val_accuracy" in text_clf.history_[-1]


def test_estimator_refuses_mismatched_inputs():
    from seqlab.data.text import DataError

    with pytest.raises(DataError, match="y has 2 labels for 3 sequences"):
        SequenceClassifier().fit(np.ones((3, 1, 4)), [0, 1])
    with pytest.raises(DataError, match="text 1 of X: empty text"):
        SequenceClassifier().fit(["a", ""], [0, 1])


# ------------------------------------------------------------------------------------------------ benchmark
def test_benchmark_reads_aeons_bundled_splits_and_writes_its_table(tmp_path):
    from seqlab.classify import bench as classify_bench
    from seqlab.data.archives import load_ucr

    train = load_ucr("ItalyPowerDemand", "train")
    assert len(train.items) == 67 and {s.shape for s in train.items} == {(24, 1)} and set(train.labels) == {"1", "2"}
    vowels = load_ucr("JapaneseVowels", "test")
    assert len(vowels.items) == 370 and len({len(s) for s in vowels.items}) > 5 and vowels.items[0].shape[1] == 12
    cfg = ClassifyConfig(hidden=8, epochs=2, ensemble=1)
    methods = ["default", "MiniRocket"]
    rows = classify_bench.run(["ItalyPowerDemand"], 1, tmp_path, cfg, echo=lambda s: None, methods=methods)
    assert [r["method"] for r in rows] == methods and all(0 <= r["accuracy"] <= 1 for r in rows)
    assert rows[1]["accuracy"] > 0.9  # MiniRocket on ItalyPowerDemand: about 96%
    table = (tmp_path / "table.md").read_text()
    assert "| data set | default | MiniRocket | default - baseline |" in table
    gap = 100 * (rows[0]["accuracy"] - rows[1]["accuracy"])
    assert f"| ItalyPowerDemand | {100 * rows[0]['accuracy']:.1f} (0.0) | " in table and f"{gap:+.1f} |" in table
    assert (tmp_path / "ItalyPowerDemand-default-seed0" / "config.json").is_file()
    again = classify_bench.run(["ItalyPowerDemand"], 1, tmp_path, cfg, echo=lambda s: None, methods=methods)
    assert [r["accuracy"] for r in again] == [r["accuracy"] for r in rows]  # the finished pieces are reused
    assert [r["fit_s"] for r in again] == [r["fit_s"] for r in rows]
