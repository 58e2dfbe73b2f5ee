"""Task models, each built from seqlab.layers and taking a backbone name."""

from .classifier import Classifier, Ensemble
from .lm import LanguageModel

__all__ = ["Classifier", "Ensemble", "LanguageModel"]
