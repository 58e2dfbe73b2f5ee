"""``SequenceClassifier``: the classifier behind ``seqlab classify`` as a scikit-learn-style estimator.

    clf = SequenceClassifier(model="gru", epochs=100).fit(X_train, y_train)
    clf.predict(X_test), clf.predict_proba(X_test), clf.score(X_test, y_test)

X is what aeon and sktime use: a 3-D array (n, channels, length), a 2-D array (n, length), or a list of
(channels, length_i) arrays of unequal length — or a list of strings for text. y holds labels of any type.

With scikit-learn installed the class is a real ``BaseEstimator`` and ``ClassifierMixin``, so ``clone``,
``cross_val_score``, ``GridSearchCV`` and pipelines take it; without it, ``get_params``/``set_params`` and ``score``
behave the same way. scikit-learn is never required.
"""

from __future__ import annotations

import inspect
import tempfile
from pathlib import Path

import numpy as np

from ..data.errors import DataError
from ..data.sequences import series_from_arrays
from ..data.tables import Table
from .task import ClassifyConfig, predict_proba, train_classifier


class _Params:
    """scikit-learn's parameter protocol, for when scikit-learn is not installed: the constructor's arguments."""

    @classmethod
    def _get_param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict:
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        for name, value in params.items():
            if name not in self._get_param_names():
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}")
            setattr(self, name, value)
        return self


try:
    from sklearn.base import BaseEstimator, ClassifierMixin

    _BASES: tuple[type, ...] = (ClassifierMixin, BaseEstimator)
except ImportError:
    _BASES = (_Params,)

_D = ClassifyConfig  # defaults: the same as the command line's


def to_table(X, y=None) -> Table:
    """Python inputs -> the table that files are read into (text when X is a list of strings)."""
    if isinstance(X, (list, tuple)) and X and all(isinstance(s, str) for s in X):
        for i, s in enumerate(X):
            if not s:
                raise DataError(f"text {i} of X: empty text")
        table = Table("text", list(X), None, [f"text {i} of X" for i in range(len(X))], [str(i) for i in range(len(X))])
    else:
        series, names = series_from_arrays(X)
        table = Table("series", series, None, names, [str(i) for i in range(len(series))])
    if y is not None:
        y = list(np.asarray(y).tolist())
        if len(y) != len(table.items):
            raise DataError(f"y has {len(y)} labels for {len(table.items)} sequences in X")
        table.labels = y
    return table


class SequenceClassifier(*_BASES):
    """A recurrent classifier for sequences of any length. Every argument is a ClassifyConfig field of the same
    name (``random_state`` is its ``seed``); ``verbose`` prints the training log and progress bar.

    Attributes after ``fit``: ``classes_``, ``model_`` (the torch module, best checkpoint), ``inputs_`` (labels,
    scaling or tokenizer), ``history_`` (the metrics log), ``n_channels_`` (series).
    """

    def __init__(
        self,
        model: str = _D.model,
        hidden: int = _D.hidden,
        layers: int = _D.layers,
        bidirectional: bool = _D.bidirectional,
        pooling: str = _D.pooling,
        heads: int = _D.heads,
        dropout: float = _D.dropout,
        embed: int = _D.embed,
        tokenizer: str = _D.tokenizer,
        vocab_size: int = _D.vocab_size,
        max_len: int | None = _D.max_len,
        missing: str = _D.missing,
        class_weight: str = _D.class_weight,
        batch: int = _D.batch,
        epochs: int = _D.epochs,
        patience: int | None = _D.patience,
        val_fraction: float = _D.val_fraction,
        lr: float = _D.lr,
        weight_decay: float = _D.weight_decay,
        backend: str = _D.backend,
        random_state: int = 0,
        verbose: bool = False,
    ):
        self.model, self.hidden, self.layers, self.bidirectional = model, hidden, layers, bidirectional
        self.pooling, self.heads, self.dropout, self.embed, self.tokenizer = pooling, heads, dropout, embed, tokenizer
        self.vocab_size, self.max_len, self.missing, self.class_weight = vocab_size, max_len, missing, class_weight
        self.batch, self.epochs, self.patience, self.val_fraction = batch, epochs, patience, val_fraction
        self.lr, self.weight_decay, self.backend = lr, weight_decay, backend
        self.random_state, self.verbose = random_state, verbose

    def _config(self) -> ClassifyConfig:
        params = self.get_params()
        params["seed"] = params.pop("random_state")
        params.pop("verbose")
        return ClassifyConfig(**params)

    def fit(self, X, y):
        from ..train import read_metrics

        table = to_table(X, y)
        echo = print if self.verbose else (lambda s: None)
        with tempfile.TemporaryDirectory(prefix="seqlab-fit-") as tmp:
            run = Path(tmp) / "run"
            self.model_, self.inputs_, _ = train_classifier(
                self._config(), table, run, progress=self.verbose, echo=echo
            )
            self.history_ = read_metrics(run)
        self.classes_ = self.inputs_.labels.classes
        if self.inputs_.kind == "series":
            self.n_channels_ = self.inputs_.channels
        return self

    def predict_proba(self, X) -> np.ndarray:
        """(n, K) probabilities, columns in the order of ``classes_``."""
        if not hasattr(self, "model_"):
            raise ValueError(f"this {type(self).__name__} is not fitted yet; call fit(X, y) first")
        return predict_proba(self.model_, self.inputs_.prepare(to_table(X), labelled=False))

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)  # first: it says so when the estimator is not fitted
        return self.classes_[proba.argmax(1)]

    def score(self, X, y, sample_weight=None) -> float:
        """Mean accuracy (weighted by ``sample_weight`` when given), as scikit-learn's classifiers."""
        hit = (self.predict(X) == np.asarray(y)).astype(np.float64)
        return float(np.average(hit, weights=sample_weight))
