"""Tokenizers: characters (default), words, and byte-level BPE trained on the corpus with HF ``tokenizers``.

All three save to and load from one JSON file in the run, and decode incrementally (``Decoder``), so a sampler can
stream text however long it runs: a token may end inside a multi-byte character, and nothing is printed twice.
"""

from __future__ import annotations

import codecs
import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from .errors import DataError

KINDS = ("char", "word", "bpe")
WORD_RE = re.compile(r"\w+|\s+|[^\w\s]", re.UNICODE)  # whitespace runs are tokens, so decoding is lossless


class Tokenizer:
    """Abstract: ``encode(str) -> list[int]``, ``token_bytes(id) -> bytes``, ``vocab_size``, ``to_json()``."""

    kind: str

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def token_bytes(self, i: int) -> bytes:
        raise NotImplementedError

    def to_json(self) -> dict:
        raise NotImplementedError

    def decode(self, ids: Iterable[int]) -> str:
        return b"".join(self.token_bytes(i) for i in ids).decode("utf-8", "replace")

    def encode_any(self, text: str) -> list[int]:
        """``encode``, where a piece never seen in training takes the id ``vocab_size``, one past the vocabulary (a
        classifier's embedding has a row for it). Only characters can be unseen: words map to <unk>, and byte-level
        BPE encodes anything."""
        return self.encode(text)

    def spec(self) -> dict:
        """What tokenizer.json holds, and tokenizer_from_json reads back."""
        return {"kind": self.kind, **self.to_json()}

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.spec(), ensure_ascii=False))


class Decoder:
    """Incremental decoding for streaming: bytes of a character split across tokens wait for the rest."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.utf8 = codecs.getincrementaldecoder("utf-8")("replace")

    def __call__(self, i: int) -> str:
        return self.utf8.decode(self.tokenizer.token_bytes(i))


class CharTokenizer(Tokenizer):
    """One token per Unicode character seen in training, sorted. Characters never seen have no id."""

    kind = "char"

    def __init__(self, chars: list[str]):
        self.chars = chars
        self.index = {c: i for i, c in enumerate(chars)}

    @classmethod
    def train(cls, docs: Iterable[str]) -> CharTokenizer:
        seen: set[str] = set()
        for d in docs:
            seen.update(d)
        return cls(sorted(seen))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.index[c] for c in text]
        except KeyError:
            missing = sorted({c for c in text if c not in self.index})
            raise DataError(f"characters not in the vocabulary: {''.join(missing)!r}") from None

    def encode_any(self, text: str) -> list[int]:
        return [self.index.get(c, len(self.chars)) for c in text]

    def token_bytes(self, i: int) -> bytes:
        return self.chars[i].encode("utf-8", "surrogatepass")

    def to_json(self) -> dict:
        return {"chars": self.chars}


class WordTokenizer(Tokenizer):
    """Words, single punctuation marks and whitespace runs; the ``vocab_size - 1`` most frequent, then <unk>."""

    kind = "word"
    UNK = "\ufffd"  # how an unknown word decodes

    def __init__(self, words: list[str]):
        self.words = words  # words[0] is <unk>
        self.index = {w: i for i, w in enumerate(words)}

    @classmethod
    def train(cls, docs: Iterable[str], vocab_size: int) -> WordTokenizer:
        counts: Counter[str] = Counter()
        for d in docs:
            counts.update(WORD_RE.findall(d))
        # Ties broken by the word itself, so the vocabulary does not depend on document order.
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: max(vocab_size - 1, 1)]
        return cls([cls.UNK] + [w for w, _ in ranked])

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        return [self.index.get(w, 0) for w in WORD_RE.findall(text)]

    def token_bytes(self, i: int) -> bytes:
        return self.words[i].encode("utf-8", "surrogatepass")

    def to_json(self) -> dict:
        return {"words": self.words}


def _gpt2_bytes_to_unicode_inverse() -> dict[str, int]:
    """Byte-level BPE writes each byte as a printable character (GPT-2's table); this maps it back to the byte."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars, n = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + n)] = b
            n += 1
    return chars


class BPETokenizer(Tokenizer):
    """Byte-level BPE (GPT-2 style) trained on the corpus with HF tokenizers: any text encodes, nothing is unknown."""

    kind = "bpe"

    def __init__(self, hf):
        self.hf = hf
        alphabet = _gpt2_bytes_to_unicode_inverse()
        vocab = hf.get_vocab()
        self.bytes = [b""] * len(vocab)
        for token, i in vocab.items():
            self.bytes[i] = bytes(alphabet[c] for c in token)

    @classmethod
    def train(cls, docs: Iterable[str], vocab_size: int) -> BPETokenizer:
        from tokenizers import Tokenizer as HF
        from tokenizers import decoders, models, pre_tokenizers, trainers

        hf = HF(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
        )
        hf.train_from_iterator(docs, trainer)
        return cls(hf)

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text).ids

    def token_bytes(self, i: int) -> bytes:
        return self.bytes[i]

    def to_json(self) -> dict:
        return {"hf": json.loads(self.hf.to_str())}


def train_tokenizer(kind: str, docs_factory, vocab_size: int) -> Tokenizer:
    """docs_factory() yields the documents (it may be called more than once)."""
    if kind == "char":
        tok = CharTokenizer.train(docs_factory())
    elif kind == "word":
        tok = WordTokenizer.train(docs_factory(), vocab_size)
    elif kind == "bpe":
        tok = BPETokenizer.train(docs_factory(), vocab_size)
    else:
        raise DataError(f"unknown tokenizer {kind!r}; expected one of {', '.join(KINDS)}")
    if tok.vocab_size < 2:
        raise DataError("the corpus has no text to learn a vocabulary from")
    return tok


def tokenizer_from_json(spec: dict) -> Tokenizer:
    """The tokenizer that ``spec()`` describes (a run's tokenizer.json, or export.json's)."""
    kind = spec["kind"]
    if kind == "char":
        return CharTokenizer(spec["chars"])
    if kind == "word":
        return WordTokenizer(spec["words"])
    if kind == "bpe":
        from tokenizers import Tokenizer as HF

        return BPETokenizer(HF.from_str(json.dumps(spec["hf"])))
    raise DataError(f"unknown tokenizer kind {kind!r}")


def load_tokenizer(path: Path) -> Tokenizer:
    try:
        return tokenizer_from_json(json.loads(path.read_text()))
    except DataError as e:
        raise DataError(f"{path}: {e}") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: not a readable seqlab tokenizer ({e})") from None
