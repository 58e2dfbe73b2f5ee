"""The small-data regime: chosen from the data's size, every sequence trains, a fixed schedule, augmentation that is
a pure function of the step, and an ensemble whose probabilities are averaged. Threads are set, never
oversubscribed."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from seqlab import checkpoint
from seqlab.classify import task as classify
from seqlab.classify.estimator import SequenceClassifier, to_table
from seqlab.classify.task import ClassifyConfig, ClassifyTask, load, resolve, train_classifier
from seqlab.data import augment
from seqlab.data.errors import DataError
from seqlab.models import Classifier, Ensemble
from seqlab.train import cores, using_threads
from tests.test_classify import toy_series

quiet = lambda s: None  # noqa: E731


# ------------------------------------------------------------------------------------------------ the regime
def test_a_ucr_sized_set_gets_the_small_regime():
    cfg = resolve(ClassifyConfig(), 67, "series", 24.0)  # ItalyPowerDemand's size
    assert (cfg.regime, cfg.val_fraction, cfg.patience, cfg.augment) == ("small", 0.0, None, "jitter,scale")
    assert cfg.lr == classify.LR["small"] and cfg.ensemble == classify.SMALL_ENSEMBLE
    assert cfg.epochs == math.ceil(classify.SMALL_STEPS / 3)  # 3 batches of 32 an epoch
    longer = resolve(ClassifyConfig(), 50, "series", 150.0)  # GunPoint's: fewer members, each its full steps
    assert longer.ensemble == math.floor(classify.FIT_BUDGET / (classify.SMALL_STEPS * 32 * 150))


def test_a_large_set_gets_the_standard_regime():
    cfg = resolve(ClassifyConfig(), classify.SMALL + 1, "series", 10.0)
    assert (cfg.regime, cfg.val_fraction, cfg.patience, cfg.augment) == ("standard", 0.2, 20, "none")
    assert cfg.lr == classify.LR["standard"] and cfg.ensemble == 1 and cfg.epochs == classify.STANDARD_EPOCHS
    texts = resolve(ClassifyConfig(), 4000, "text", 400.0)  # a few thousand reviews: the budget shortens it
    assert texts.epochs == math.ceil(classify.STANDARD_BUDGET / (4000 * 0.8 * 400)) < classify.STANDARD_EPOCHS


def test_long_sequences_get_fewer_members_and_steps_within_the_budget():
    cfg = resolve(ClassifyConfig(), 100, "series", 1460.0)  # ACSF1's size: one member, the budget's steps
    per_step = 32 * 1460
    assert cfg.ensemble == 1
    steps = cfg.epochs * math.ceil(100 / 32)
    assert classify.FIT_BUDGET / per_step <= steps < classify.FIT_BUDGET / per_step + math.ceil(100 / 32)
    short = resolve(ClassifyConfig(), 100, "series", 2.0)
    assert short.ensemble == classify.SMALL_ENSEMBLE and short.epochs * 4 >= classify.SMALL_STEPS


def test_the_budget_counts_the_padding_of_length_sorted_batches():
    assert classify.padded_length([5, 5, 5], 2) == 5.0
    assert classify.padded_length([1, 9, 2, 8], 2) == (2 * 9 + 2 * 2) / 4  # batches (9, 8) and (2, 1)
    assert classify.padded_length([3], 32) == 3.0


def test_what_was_given_is_kept():
    given = ClassifyConfig(ensemble=2, lr=5e-3, epochs=7, augment="slice")
    cfg = resolve(given, 50, "series", 150.0)
    assert (cfg.ensemble, cfg.lr, cfg.epochs, cfg.augment) == (2, 5e-3, 7, "slice")
    assert resolve(ClassifyConfig(regime="standard"), 50, "series", 150.0).regime == "standard"
    assert resolve(ClassifyConfig(regime="small"), 5000, "series", 150.0).regime == "small"


def test_text_is_not_augmented_and_refuses_augmentation():
    assert resolve(ClassifyConfig(), 50, "text", 40.0).augment == "none"
    with pytest.raises(DataError, match=r"augmentation \(jitter, scale, slice\) is for series"):
        resolve(ClassifyConfig(augment="jitter"), 50, "text", 40.0)
    with pytest.raises(ValueError, match="--ensemble must be at least 1"):
        ClassifyConfig(ensemble=0)


def test_small_regime_trains_every_sequence_and_keeps_the_last_model(tmp_path):
    X, y = toy_series(30)
    cfg = ClassifyConfig(hidden=6, epochs=3, ensemble=2, batch=8)
    model, _, run = train_classifier(cfg, to_table(X, y), tmp_path / "r", progress=False, echo=quiet)
    saved = json.loads((run / "config.json").read_text())["config"]
    assert (saved["regime"], saved["val_fraction"], saved["ensemble"], saved["lr"]) == ("small", 0.0, 2, 1e-2)
    evals = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "val_loss" in r]
    assert [e["step"] for e in evals] == [3 * 4]  # one evaluation, at the end of the schedule
    best, _ = checkpoint.load(run / "checkpoints" / "best.safetensors")
    last, _ = checkpoint.load(run / "checkpoints" / "last.safetensors")
    assert all(torch.equal(best[k], last[k]) for k in best if not k.startswith("optimizer"))
    assert isinstance(model, Ensemble) and "training (no validation split)" in (run / "report.txt").read_text()


def test_a_run_from_before_the_regimes_loads_as_it_was_trained(tmp_path):
    X, y = toy_series(30)
    cfg = ClassifyConfig(model="gru", regime="standard", hidden=6, epochs=2, batch=8, patience=None)
    _, _, run = train_classifier(cfg, to_table(X, y), tmp_path / "r", progress=False, echo=quiet)
    path = run / "config.json"
    saved = json.loads(path.read_text())
    for key in ("regime", "ensemble", "augment"):
        del saved["config"][key]  # what config.json held before this change
    path.write_text(json.dumps(saved))
    model, _, loaded = load(run)
    assert isinstance(model, Classifier) and (loaded.regime, loaded.ensemble, loaded.augment) == ("standard", 1, "none")


# ------------------------------------------------------------------------------------------------ ensemble
def test_the_ensemble_averages_its_members_probabilities():
    torch.manual_seed(0)
    net = Ensemble(3, 4, channels=2, model="fcn", hidden=4).double().eval()
    x, lengths = torch.randn(5, 9, 2, dtype=torch.float64), torch.tensor([9, 3, 7, 1, 5])
    with torch.no_grad():
        want = torch.stack([torch.softmax(m(x, lengths), 1) for m in net.members]).mean(0)
        torch.testing.assert_close(torch.softmax(net(x, lengths), 1), want)
        assert net.member_logits(x, lengths).shape == (3, 5, 4) and net.classes == 4
    assert not torch.equal(net.members[0].head.weight, net.members[1].head.weight)  # different initial weights


def test_the_ensemble_loss_is_the_mean_of_its_members_losses():
    X, y = toy_series(12)
    cfg = resolve(ClassifyConfig(hidden=4, ensemble=3, batch=4, augment="none"), 12, "series", 20.0)
    table = to_table(X, y)
    inputs = classify.Inputs.fit(table, np.arange(12), cfg)
    data = inputs.prepare(table)
    model = classify.model_from(cfg, inputs).train()
    task = ClassifyTask(model, data, data, cfg, 3)
    batch = task.batch(0)
    torch.manual_seed(1)  # nothing random in the forward but dropout: seed both passes alike
    loss = task.loss(batch)
    torch.manual_seed(1)
    each = [torch.nn.functional.cross_entropy(m(batch[0], batch[1]), batch[2]) for m in model.members]
    torch.testing.assert_close(loss, torch.stack(each).mean())


# ------------------------------------------------------------------------------------------------ augmentation
def test_augmentation_is_a_pure_function_of_the_generator_and_leaves_its_input_alone():
    rng = np.random.default_rng(0)
    items = [rng.normal(size=(n, 3)).astype(np.float32) for n in (10, 1, 37)]
    copies = [s.copy() for s in items]
    kinds = augment.parse("jitter,scale,slice")
    a = augment.augment(items, kinds, np.random.default_rng([4, 7]))
    b = augment.augment(items, kinds, np.random.default_rng([4, 7]))
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert all(np.array_equal(s, c) for s, c in zip(items, copies, strict=True))
    assert [len(s) for s in a] == [math.ceil(augment.SLICE * n) for n in (10, 1, 37)]


def test_scaling_multiplies_each_channel_and_jitter_adds_small_noise():
    s = np.ones((4000, 2), dtype=np.float64)
    (scaled,) = augment.augment([s], ("scale",), np.random.default_rng(0))
    assert np.allclose(scaled, scaled[0]) and not np.allclose(scaled[0], 1.0)  # one factor per channel
    (noisy,) = augment.augment([s], ("jitter",), np.random.default_rng(0))
    assert abs((noisy - 1).std() - augment.JITTER) < 0.002 and abs((noisy - 1).mean()) < 0.002


def test_a_training_batch_is_a_pure_function_of_its_step():
    """What resuming needs: the same step gives the same augmented batch, in any order and in a new task."""
    X, y = toy_series(20)
    cfg = resolve(ClassifyConfig(hidden=4, batch=4), 20, "series", 20.0)
    table = to_table(X, y)
    inputs = classify.Inputs.fit(table, np.arange(20), cfg)
    data = inputs.prepare(table)
    first, second = (ClassifyTask(Classifier(3, channels=2, hidden=4), data, data, cfg, 3) for _ in range(2))
    later = first.batch(9)
    for step in (3, 9):
        a, b = first.batch(step), second.batch(step)
        assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert all(torch.equal(p, q) for p, q in zip(later, second.batch(9), strict=True))
    plain = ClassifyTask(Classifier(3, channels=2, hidden=4), data, data, replace(cfg, augment="none"), 3)
    assert torch.equal(plain.batch(0)[2], first.batch(0)[2])  # the same sequences ...
    assert not torch.equal(plain.batch(0)[0], first.batch(0)[0])  # ... augmented


# ------------------------------------------------------------------------------------------------ threads
def test_threads_are_set_while_fitting_and_put_back(monkeypatch):
    seen = []
    real = classify.train_classifier

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr("seqlab.classify.estimator.train_classifier", spy)
    before = torch.get_num_threads()
    X, y = toy_series(12)
    SequenceClassifier(hidden=4, epochs=1, ensemble=1, threads=1).fit(X, y)
    SequenceClassifier(hidden=4, epochs=1, ensemble=1).fit(X, y)
    assert seen == [1, cores()] and torch.get_num_threads() == before
    with using_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads must be at least 1"), using_threads(0):
        pass
