"""seqlab: learn from sequences of any length with exact, fast recurrent networks."""

from .layers import GRU, LSTM, RNN, Recording, layer_class, record
from .models import LanguageModel

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "ClassifyConfig",
    "LMConfig",
    "LanguageModel",
    "Recording",
    "generate",
    "layer_class",
    "record",
    "train_classifier",
    "train_lm",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    # The language-model workflow pulls in tokenizers and safetensors; load it on first use, not with the layers.
    if name in ("LMConfig", "train_lm", "generate"):
        from . import lm

        return getattr(lm, name)
    if name in ("ClassifyConfig", "train_classifier"):
        from . import classify

        return getattr(classify, name)
    if name == "SequenceClassifier":
        from .estimator import SequenceClassifier

        return SequenceClassifier
    raise AttributeError(f"module 'seqlab' has no attribute {name!r}")
