"""Sequence classification of texts and time series: the task (task.py), the ``seqlab classify`` command (cli.py),
the UCR/UEA benchmark (bench.py) and the scikit-learn estimator (estimator.py)."""

from .task import (
    ClassifyConfig,
    ClassifyTask,
    Inputs,
    evaluate,
    load,
    metrics,
    model_from,
    predict_proba,
    read_config,
    train_classifier,
    write_predictions,
)

__all__ = [
    "ClassifyConfig",
    "ClassifyTask",
    "Inputs",
    "evaluate",
    "load",
    "metrics",
    "model_from",
    "predict_proba",
    "read_config",
    "train_classifier",
    "write_predictions",
]
