"""Text sources, tokenizers and the token streams that feed the models."""

from .errors import DataError
from .streams import Streams, TokenFile, encode_corpus
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
