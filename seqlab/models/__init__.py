"""Task models, each built from seqlab.layers and taking a backbone name."""

from .lm import LanguageModel

__all__ = ["LanguageModel"]
