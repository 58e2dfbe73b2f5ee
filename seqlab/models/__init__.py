"""Task models, each built from seqlab.layers and taking a backbone name."""

from .classifier import Classifier
from .lm import LanguageModel

__all__ = ["Classifier", "LanguageModel"]
