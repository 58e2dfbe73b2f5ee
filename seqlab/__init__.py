"""seqlab: learn from sequences of any length with exact, fast recurrent networks.

The floors, bottom to top (docs/architecture.md): cells/ (the recurrent math) -> layers/ (drop-in modules) ->
models/ (backbone.py, the one factory, and the task heads) -> data/ -> train.py, checkpoint.py, runs.py (one loop,
one checkpoint format, one run life cycle) -> one folder per task (lm/, classify/, forecast/, autoencode/, gan/,
lab/) -> cli.py (dispatch only). Lower floors never import higher ones.
"""

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "ClassifyConfig",
    "LMConfig",
    "LanguageModel",
    "MinGRU",
    "MinLSTM",
    "Recording",
    "SequenceClassifier",
    "generate",
    "layer_class",
    "record",
    "train_classifier",
    "train_lm",
]
__version__ = "0.1.0"


LAYERS = ("GRU", "LSTM", "RNN", "MinGRU", "MinLSTM", "Recording", "layer_class", "record")


def __getattr__(name: str):
    # Everything loads on first use: ``import seqlab.export.runtime`` must not import torch (it runs where there is
    # none), and the language-model workflow pulls in tokenizers and safetensors, which the layers do not need.
    if name in LAYERS:
        from . import layers

        return getattr(layers, name)
    if name == "LanguageModel":
        from .models import LanguageModel

        return LanguageModel
    if name in ("LMConfig", "train_lm", "generate"):
        from . import lm

        return getattr(lm, name)
    if name in ("ClassifyConfig", "train_classifier"):
        from . import classify

        return getattr(classify, name)
    if name == "SequenceClassifier":
        from .classify.estimator import SequenceClassifier

        return SequenceClassifier
    raise AttributeError(f"module 'seqlab' has no attribute {name!r}")
