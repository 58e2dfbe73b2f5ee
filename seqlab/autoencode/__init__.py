"""Anomaly detectors and sequence autoencoders: training, scores and codes (task.py), the ``seqlab autoencode``
command (cli.py), the anomaly scores' metrics (metrics.py), the practitioner's baselines (baselines.py) and the
benchmark (bench.py)."""

from .task import (
    AutoencodeConfig,
    average_precision,
    detection,
    embed,
    load,
    read_config,
    score,
    train_autoencoder,
)

__all__ = [
    "AutoencodeConfig",
    "average_precision",
    "detection",
    "embed",
    "load",
    "read_config",
    "score",
    "train_autoencoder",
]
