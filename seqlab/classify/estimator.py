"""``SequenceClassifier``: the classifier behind ``seqlab classify`` as a scikit-learn-style estimator.

    clf = SequenceClassifier(model="gru", epochs=100).fit(X_train, y_train)
    clf.predict(X_test), clf.predict_proba(X_test), clf.score(X_test, y_test)

X is what aeon and sktime use: a 3-D array (n, channels, length), a 2-D array (n, length), or a list of
(channels, length_i) arrays of unequal length — or a list of strings for text. y holds labels of any type.

With scikit-learn installed the class is a real ``BaseEstimator`` and ``ClassifierMixin``, so ``clone``,
``cross_val_score``, ``GridSearchCV`` and pipelines take it, and ``check_estimator`` passes but for the checks listed
in the class's docstring; without it, ``get_params``/``set_params`` and ``score`` behave the same way, and y is
checked by the small stand-ins below. scikit-learn is never required.
"""

from __future__ import annotations

import inspect
import tempfile
from pathlib import Path

import numpy as np

from ..data.errors import DataError
from ..data.sequences import series_from_arrays
from ..data.tables import Table
from ..train import using_threads
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
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import column_or_1d

    _BASES: tuple[type, ...] = (ClassifierMixin, BaseEstimator)
except ImportError:
    _BASES = (_Params,)

    class NotFittedError(ValueError, AttributeError):
        """scikit-learn's exception of the same name."""

    def column_or_1d(y, *, warn: bool = False) -> np.ndarray:
        y = np.asarray(y)
        return y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y  # to_table refuses any other 2-D y

    def check_classification_targets(y: np.ndarray) -> None:
        if y.dtype.kind == "f" and not np.array_equal(y, np.round(y)):
            raise ValueError("Unknown label type: continuous (a regression target, not classes)")


_D = ClassifyConfig  # defaults: the same as the command line's


def _is_sparse(X) -> bool:
    try:
        from scipy.sparse import issparse
    except ImportError:
        return False  # without SciPy nothing is a sparse matrix
    return issparse(X)


def _same_shapes(items) -> bool:
    try:
        return len({np.shape(x) for x in items}) <= 1
    except ValueError:
        return False  # an item is ragged itself: series_from_arrays names it


def check_input(X, who: str = "SequenceClassifier"):
    """X as given -> a list of strings (text), a list of series of unequal shapes, or a numeric array (n, length)
    or (n, channels, length). Malformed X is refused here in scikit-learn's words (its checks match on them);
    what series_from_arrays checks per series (channel counts, empty series, non-numbers) is left to it."""
    if _is_sparse(X):
        raise TypeError("Sparse data was passed for X, but dense data is required. Use '.toarray()' to convert to a "
                        "dense NumPy array.")  # fmt: skip
    if isinstance(X, np.ndarray) and X.ndim == 1 and X.dtype.kind in "OU":
        X = list(X)  # a 1-D array of objects or strings holds series or texts, one per entry
    if isinstance(X, (list, tuple)) and X and all(isinstance(s, str) for s in X):
        return [str(s) for s in X]  # np.str_ too
    if isinstance(X, (list, tuple)) and not _same_shapes(X):
        for i, x in enumerate(X):
            if np.iscomplexobj(x):
                raise ValueError(f"Complex data not supported (series {i} of X)")
        return list(X)
    X = np.asarray(X)  # equal-shaped lists, objects with __array__, data frames
    if np.iscomplexobj(X):
        raise ValueError("Complex data not supported")  # before float32 would drop the imaginary part quietly
    if X.dtype == object:
        X = X.astype(np.float64)  # numbers stored as objects; anything else raises numpy's TypeError or ValueError
    if X.ndim >= 1 and len(X) == 0:
        raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required by {who}.")
    if X.ndim < 2:
        raise ValueError(f"Expected 2D array, got {'scalar' if X.ndim == 0 else '1D'} array instead (shape {X.shape}): "
                         "a 2-D X holds one series per row. Reshape your data: X.reshape(1, -1) if it is one series, "
                         "X.reshape(-1, 1) if it is series of length 1.")  # fmt: skip
    if 0 in X.shape[1:]:
        raise ValueError(f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is required by {who}: "
                         "a series needs at least one channel and one step.")  # fmt: skip
    return X


def to_table(X, y=None) -> Table:
    """Python inputs -> the table that files are read into (text when X is a list of strings)."""
    X = check_input(X)
    if isinstance(X, list) and all(isinstance(s, str) for s in X):
        for i, s in enumerate(X):
            if not s:
                raise DataError(f"text {i} of X: empty text")
        table = Table("text", X, None, [f"text {i} of X" for i in range(len(X))], [str(i) for i in range(len(X))])
    else:
        series, names = series_from_arrays(X)
        table = Table("series", series, None, names, [str(i) for i in range(len(series))])
    if y is not None:
        y = np.asarray(y)
        if y.ndim != 1:
            raise DataError(f"y: expected one label per sequence, got an array of shape {y.shape}")
        if len(y) != len(table.items):
            raise DataError(f"y has {len(y)} labels for {len(table.items)} sequences in X")
        table.labels = y.tolist()
    return table


def refuse_missing(table: Table) -> None:
    """NaN or Inf in a series -> an error naming it, in the words scikit-learn's checks look for (NaN, inf)."""
    for s, name in zip(table.items, table.names, strict=True):
        bad = ~np.isfinite(s)
        if bad.any():
            t, c = np.argwhere(bad)[0]
            value = "NaN" if np.isnan(s[t, c]) else s[t, c]  # inf or -inf
            raise DataError(f"{name}: {value} at time step {t}, channel {c} (missing='impute' interpolates)")


class SequenceClassifier(*_BASES):
    """A classifier for sequences of any length, with the command line's defaults. Every argument is a
    ClassifyConfig field of the same name (``random_state`` is its ``seed``; ``class_weight`` also takes None for
    "none"); ``threads`` sets torch's threads while fitting and predicting (None: the cores this process may use,
    so that it is never oversubscribed); ``verbose`` prints the training log and progress bar.

    Attributes after ``fit``: ``classes_``, ``model_`` (the torch module, best checkpoint), ``inputs_`` (labels,
    scaling or tokenizer), ``history_`` (the metrics log), ``n_channels_`` (series), ``n_features_in_`` (only when
    X was a 2-D array: its number of columns, which is the training series' length; predict takes any length).

    scikit-learn's ``check_estimator`` passes except for these checks, which contradict the design — a row of a
    2-D X is one series, of any length, and a 2-D X of another width is series of another length, not an error:

    - ``check_classifiers_train``: it requires ``predict(X.T)`` to fail; X.T is n_features series of length
      n_samples, which this classifier reads. (What else it checks is tested in tests/test_estimator_checks.py.)
    - ``check_n_features_in_after_fitting``: it requires ``predict(X[:, [1]])`` to fail with "X has 1 features,
      but ... is expecting 4 features"; those are series of length 1, which this classifier reads.

    ``class_weight`` takes None, "balanced" or a dict {label: weight}; labels it does not name weigh 1.
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
        class_weight: str | None = _D.class_weight,
        regime: str = _D.regime,
        ensemble: int | None = _D.ensemble,
        augment: str = _D.augment,
        batch: int = _D.batch,
        epochs: int | None = _D.epochs,
        patience: int | None = _D.patience,
        val_fraction: float = _D.val_fraction,
        lr: float | None = _D.lr,
        weight_decay: float = _D.weight_decay,
        backend: str = _D.backend,
        random_state: int = 0,
        threads: int | None = None,
        verbose: bool = False,
    ):
        self.model, self.hidden, self.layers, self.bidirectional = model, hidden, layers, bidirectional
        self.pooling, self.heads, self.dropout, self.embed, self.tokenizer = pooling, heads, dropout, embed, tokenizer
        self.vocab_size, self.max_len, self.missing, self.class_weight = vocab_size, max_len, missing, class_weight
        self.batch, self.epochs, self.patience, self.val_fraction = batch, epochs, patience, val_fraction
        self.lr, self.weight_decay, self.backend = lr, weight_decay, backend
        self.regime, self.ensemble, self.augment = regime, ensemble, augment
        self.random_state, self.threads, self.verbose = random_state, threads, verbose

    def __sklearn_tags__(self):  # scikit-learn >= 1.6 asks for these; earlier versions keep their defaults
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True  # (n, channels, length)
        tags.input_tags.allow_nan = self.missing == "impute"
        # input_tags.string stays False: it means arrays of categorical strings, while a list of strings here is
        # text, one document each, and an object array holding a dict must still be refused.
        return tags

    def _config(self) -> ClassifyConfig:
        params = self.get_params()
        params["seed"] = params.pop("random_state")
        params.pop("verbose")
        params.pop("threads")
        params["class_weight"] = params["class_weight"] or "none"
        return ClassifyConfig(**params)

    def _labels(self, y) -> np.ndarray:
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        y = column_or_1d(y, warn=True)  # (n, 1) -> (n,), with scikit-learn's DataConversionWarning
        check_classification_targets(y)  # continuous y: "Unknown label type: continuous"
        return y

    def fit(self, X, y):
        from ..train import read_metrics

        cfg = self._config()
        X = check_input(X, type(self).__name__)
        table = to_table(X, self._labels(y))
        classes = np.unique(table.labels)
        if len(classes) < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes in the data, but the data "
                             f"contains only one class: {classes.tolist()}")  # fmt: skip
        if table.kind == "series" and self.missing == "refuse":
            refuse_missing(table)
        echo = print if self.verbose else (lambda s: None)
        with tempfile.TemporaryDirectory(prefix="seqlab-fit-") as tmp, using_threads(self.threads):
            run = Path(tmp) / "run"
            self.model_, self.inputs_, _ = train_classifier(cfg, table, run, progress=self.verbose, echo=echo)
            self.history_ = read_metrics(run)
        self.classes_ = self.inputs_.labels.classes
        # A refit keeps no attribute of an earlier fit that this one does not set.
        columns = X.shape[1] if isinstance(X, np.ndarray) and X.ndim == 2 else None  # the series' length
        for name, value in (("n_channels_", self.inputs_.channels), ("n_features_in_", columns)):
            if value is None:
                vars(self).pop(name, None)
            else:
                setattr(self, name, value)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """(n, K) probabilities, columns in the order of ``classes_``."""
        if not hasattr(self, "model_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                                 "appropriate arguments before using this estimator.")  # fmt: skip
        table = to_table(X)
        if table.kind == "series" and self.inputs_.series.missing == "refuse":
            refuse_missing(table)
        with using_threads(self.threads):
            return predict_proba(self.model_, self.inputs_.prepare(table, labelled=False))

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)  # first: it says so when the estimator is not fitted
        return self.classes_[proba.argmax(1)]

    def score(self, X, y, sample_weight=None) -> float:
        """Mean accuracy (weighted by ``sample_weight`` when given), as scikit-learn's classifiers."""
        hit = (self.predict(X) == np.asarray(y)).astype(np.float64)
        return float(np.average(hit, weights=sample_weight))
