"""scikit-learn's estimator checks on SequenceClassifier: every one runs, and only the few that contradict its design
(a row of a 2-D X is one series, of any length) may fail; those are listed, with the reason, in its docstring."""

import inspect

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn", minversion="1.6")  # expected_failed_checks came with 1.6

from sklearn.datasets import make_blobs
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import parametrize_with_checks

from seqlab.classify.estimator import SequenceClassifier

# Each key is named in SequenceClassifier's docstring with the same reason (checked below).
EXPECTED_FAILED = {
    "check_classifiers_train": "predict(X.T) must fail, but X.T is n_features series of length n_samples",
    "check_n_features_in_after_fitting": "predict(X[:, [1]]) must fail, but those are series of length 1",
}
# A passing check that is listed fails too (1.8 on), so the list cannot outlive its reason.
STRICT = {"xfail_strict": True} if "xfail_strict" in inspect.signature(parametrize_with_checks).parameters else {}


def tiny(**kw) -> SequenceClassifier:
    """Small enough for CI (the whole file in ~30 s on one thread), big enough to pass the accuracy bar (0.83 on
    sklearn's blobs) of check_classifiers_train, so that it fails for the listed reason and no other."""
    return SequenceClassifier(hidden=8, epochs=5, patience=None, batch=16, lr=1e-2, bidirectional=False, **kw)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machines are shared; tiny models gain nothing from more
    yield
    torch.set_num_threads(threads)


@parametrize_with_checks([tiny()], expected_failed_checks=lambda estimator: EXPECTED_FAILED, **STRICT)
def test_scikit_learn_check(estimator, check):
    check(estimator)


def test_the_expected_failures_are_the_documented_ones():
    doc = SequenceClassifier.__doc__
    listed = [line.split("``")[1] for line in doc.splitlines() if line.strip().startswith("- ``check_")]
    assert sorted(listed) == sorted(EXPECTED_FAILED)


def test_what_check_classifiers_train_checks_holds_but_for_the_transpose():
    X, y = make_blobs(n_samples=300, random_state=0)  # the check's data: 3 classes, 2 features (series of length 2)
    X = (X - X.mean(0)) / X.std(0)
    with pytest.raises(ValueError, match="y has 299 labels for 300 sequences"):
        tiny().fit(X, y[:-1])
    clf = tiny().fit(X, y)
    pred = clf.predict(X)
    assert clf.classes_.tolist() == [0, 1, 2] and pred.shape == (300,)
    assert (pred == y).mean() > 0.83
    proba = clf.predict_proba(X)
    np.testing.assert_array_equal(proba.argmax(1), pred)
    np.testing.assert_allclose(proba.sum(1), 1)
    np.testing.assert_array_equal(tiny().fit(X.tolist(), y.tolist()).predict(X), pred)  # lists == arrays
    # The documented exceptions: a 2-D X of another width is series of another length.
    assert clf.n_features_in_ == 2
    assert clf.predict(X.T).shape == (2,)
    assert clf.predict(X[:, [1]]).shape == (300,)


def test_n_features_in_is_set_for_2d_arrays_only():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 1, 6)).astype(np.float32)
    y = np.arange(20) % 2
    clf = tiny().fit(X[:, 0], y)
    assert clf.n_features_in_ == 6 and clf.n_channels_ == 1
    clf.fit(X, y)  # 3-D: features are not columns; a refit drops the earlier fit's value
    assert not hasattr(clf, "n_features_in_") and clf.n_channels_ == 1
    assert not hasattr(tiny().fit([x[:, : 3 + i % 4] for i, x in enumerate(X)], y), "n_features_in_")


def test_class_weight_takes_none_and_dicts():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(16, 5)), np.arange(16) % 2  # noise: nothing to learn but the weights
    np.testing.assert_array_equal(
        tiny(class_weight=None).fit(X, y).predict_proba(X), tiny(class_weight="none").fit(X, y).predict_proba(X)
    )
    np.testing.assert_array_equal(  # a dict of ones is no weighting; a label it does not name weighs 1
        tiny(class_weight={0: 1.0}).fit(X, y).predict_proba(X), tiny().fit(X, y).predict_proba(X)
    )
    for heavy in (0, 1):  # past the warm-up, the heavy class takes (nearly) every prediction
        weighted = tiny(class_weight={heavy: 100.0, 1 - heavy: 1.0}).set_params(epochs=60, ensemble=1).fit(X, y)
        assert (weighted.predict(X) == heavy).mean() > 0.8
    with pytest.raises(ValueError, match="class_weight of 1 must be a finite number >= 0"):
        tiny(class_weight={0: 1.0, 1: -2.0}).fit(X, y)


def test_missing_values_name_their_place_or_are_imputed():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(16, 5)), np.arange(16) % 2
    bad = X.copy()
    bad[3, 2] = np.nan
    assert not get_tags(tiny()).input_tags.allow_nan
    with pytest.raises(ValueError, match="series 3 of X: NaN at time step 2, channel 0"):
        tiny().fit(bad, y)
    clf = tiny(missing="impute")
    assert get_tags(clf).input_tags.allow_nan
    assert clf.fit(bad, y).predict(bad).shape == (16,)
