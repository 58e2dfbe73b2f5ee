"""Sequence autoencoders: codes and anomaly scores (task.py), the ``seqlab autoencode`` command (cli.py) and the
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
