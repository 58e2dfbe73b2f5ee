"""Text sources, tokenizers and the token streams that feed the models."""

from .errors import DataError
from .text import BUILTIN, TextSource, open_source
from .tokenizers import Decoder, Tokenizer, load_tokenizer, train_tokenizer

__all__ = [
    "BUILTIN",
    "DataError",
    "Decoder",
    "Streams",
    "TextSource",
    "TokenFile",
    "Tokenizer",
    "encode_corpus",
    "load_tokenizer",
    "open_source",
    "train_tokenizer",
]


def __getattr__(name: str):
    # The token streams hold torch tensors; they load on first use, so the tokenizers serve seqlab.export.runtime,
    # which runs where torch is not installed.
    if name in ("Streams", "TokenFile", "encode_corpus"):
        from . import streams

        return getattr(streams, name)
    raise AttributeError(f"module 'seqlab.data' has no attribute {name!r}")
