"""Sequence GANs (TimeGAN): the run and sampling (task.py), its own three-phase training loop (loop.py), the paper's
post-hoc metrics (metrics.py), the ``seqlab gan`` command (cli.py) and the benchmark (bench.py)."""

from .metrics import discriminative_score, post_hoc_accuracy, predictive_score
from .task import GANConfig, evaluate, load, sample, sines, train_gan

__all__ = [
    "GANConfig",
    "discriminative_score",
    "evaluate",
    "load",
    "post_hoc_accuracy",
    "predictive_score",
    "sample",
    "sines",
    "train_gan",
]
