"""Language models: a text in, a run directory out, text generated from it (task.py), the ``seqlab lm`` and
``seqlab inspect`` commands (cli.py, units.py), the benchmark against xz and n-grams (bench.py, baselines.py), and
the comparison of backbones at one budget (compare.py)."""

from .task import LMConfig, LMTask, evaluate_text, generate, load, model_from, read_config, train_lm

__all__ = ["LMConfig", "LMTask", "evaluate_text", "generate", "load", "model_from", "read_config", "train_lm"]
