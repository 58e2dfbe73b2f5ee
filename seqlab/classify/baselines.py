"""The classifiers a practitioner already has, fitted on exactly the bench's splits: aeon's MiniRocket,
MultiRocket-Hydra and 1-NN DTW for series, TF-IDF and logistic regression (scikit-learn) for text.

    pred, fit_s, predict_s = fit_predict("MiniRocket", train_items, train_labels, test_items, seed=0, threads=2)

Items are (T_i, C) arrays as seqlab's tables hold them. MiniRocket and MultiRocket-Hydra take equal lengths only:
on unequal-length data they get what aeon's users do, every series zero-padded to the longest (aeon's Padder); 1-NN
DTW reads unequal lengths as they are. aeon is an optional extra, imported on first use.
"""

from __future__ import annotations

import time

import numpy as np

from ..data.errors import DataError

BASELINES = ("MiniRocket", "MultiRocket-Hydra", "1-NN DTW")
EQUAL_LENGTH_ONLY = ("MiniRocket", "MultiRocket-Hydra")


def _make(name: str, seed: int, threads: int):
    try:
        from aeon.classification.convolution_based import MiniRocketClassifier, MultiRocketHydraClassifier
        from aeon.classification.distance_based import KNeighborsTimeSeriesClassifier
    except ImportError:
        raise DataError("the baselines are aeon's classifiers: pip install 'seqlab[aeon]'") from None
    if name == "MiniRocket":
        return MiniRocketClassifier(n_jobs=threads, random_state=seed)
    if name == "MultiRocket-Hydra":
        return MultiRocketHydraClassifier(n_jobs=threads, random_state=seed)
    if name == "1-NN DTW":
        return KNeighborsTimeSeriesClassifier(distance="dtw", n_neighbors=1, n_jobs=threads)
    raise ValueError(f"baseline must be one of {', '.join(BASELINES)}; got {name!r}")


def as_collection(items: list[np.ndarray], length: int | None) -> np.ndarray | list[np.ndarray]:
    """(T_i, C) arrays -> aeon's layout: (n, C, length), zero-padded to ``length``, or a list of (C, T_i) when
    ``length`` is None."""
    if length is None:
        return [np.ascontiguousarray(s.T, dtype=np.float64) for s in items]
    out = np.zeros((len(items), items[0].shape[1], length))
    for i, s in enumerate(items):
        out[i, :, : len(s)] = s.T
    return out


def fit_predict(name: str, train: list[np.ndarray], labels, test: list[np.ndarray], seed: int = 0,
                threads: int = 1) -> tuple[np.ndarray, float, float]:  # fmt: skip
    """Fit baseline ``name`` on ``train`` (with ``labels``), predict ``test``: (predicted labels, fit seconds,
    predict seconds)."""
    lengths = {len(s) for s in train} | {len(s) for s in test}
    length = max(lengths) if name in EQUAL_LENGTH_ONLY or len(lengths) == 1 else None
    model = _make(name, seed, threads)
    start = time.perf_counter()
    model.fit(as_collection(train, length), np.asarray(labels))
    fitted = time.perf_counter()
    pred = model.predict(as_collection(test, length))
    return np.asarray(pred), fitted - start, time.perf_counter() - fitted


TEXT_BASELINE = "TF-IDF + LR"


def tfidf_lr(train: list[str], labels, test: list[str]) -> tuple[np.ndarray, float, float]:
    """A text classifier's first baseline: TF-IDF of words and word pairs (sublinear term frequency) and a logistic
    regression with scikit-learn's defaults. (predicted labels, fit seconds, predict seconds)."""
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
    except ImportError:
        raise DataError("the text baseline is scikit-learn's: pip install 'seqlab[sklearn]'") from None
    model = make_pipeline(TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2)), LogisticRegression(max_iter=2000))
    start = time.perf_counter()
    model.fit(train, np.asarray(labels))
    fitted = time.perf_counter()
    pred = model.predict(test)
    return np.asarray(pred), fitted - start, time.perf_counter() - fitted
