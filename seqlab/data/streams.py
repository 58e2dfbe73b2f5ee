"""Token ids on disk, and the batches truncated BPTT reads from them.

The corpus is encoded once, one document at a time, into a flat memory-mapped array in the run directory
(uint16 when the vocabulary fits, else uint32), so a corpus larger than memory still trains. The validation split
is the contiguous tail (char-rnn's convention), so no sentence is split between train and validation twice.

Batches as char-rnn/torch-rnn make them: the training split is cut into B equal streams; window w of every stream
is T tokens starting at w·T, with targets one token ahead. Consecutive windows continue each stream, so the hidden
state is carried across them and detached (truncated backpropagation through time). After the last window the
streams start over and the state is reset. Window k of training is a pure function of k: resuming at step k reads
exactly what an uninterrupted run would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import DataError
from .text import TextSource
from .tokenizers import Tokenizer


@dataclass
class TokenFile:
    """tokens.bin + tokens.json in a run directory: n ids, of which the first ``split`` are training."""

    path: Path
    dtype: str
    n: int
    split: int
    val_chars: int  # characters in the validation text, for bits per character with any tokenizer

    def array(self) -> np.memmap:
        return np.memmap(self.path, dtype=self.dtype, mode="r", shape=(self.n,))

    @classmethod
    def load(cls, folder: Path) -> TokenFile:
        try:
            meta = json.loads((folder / "tokens.json").read_text())
            return cls(folder / "tokens.bin", meta["dtype"], meta["n"], meta["split"], meta["val_chars"])
        except (OSError, ValueError, KeyError) as e:
            raise DataError(f"{folder}: token files missing or corrupt ({e})") from None


def encode_corpus(source: TextSource, tokenizer: Tokenizer, folder: Path, val_fraction: float) -> TokenFile:
    """Encode every document of ``source`` into folder/tokens.bin; the last ``val_fraction`` of ids validate."""
    if not 0 < val_fraction < 1:
        raise DataError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction}")
    dtype = "uint16" if tokenizer.vocab_size <= 1 << 16 else "uint32"
    path = folder / "tokens.bin"
    n = 0
    with open(path, "wb") as f:
        for doc in source.documents():
            ids = np.asarray(tokenizer.encode(doc), dtype=dtype)
            f.write(ids.tobytes())
            n += len(ids)
    if n == 0:
        raise DataError(f"{source.name}: no text in the corpus")
    split = round(n * (1 - val_fraction))
    arr = np.memmap(path, dtype=dtype, mode="r", shape=(n,))
    val_chars = count_chars(tokenizer, arr[split:])
    meta = {"dtype": dtype, "n": n, "split": split, "val_chars": val_chars}
    (folder / "tokens.json").write_text(json.dumps(meta))
    return TokenFile(path, dtype, n, split, val_chars)


def count_chars(tokenizer: Tokenizer, ids) -> int:
    """Characters the ids decode to, streamed in blocks (a character may straddle a block)."""
    from .tokenizers import Decoder

    dec = Decoder(tokenizer)
    total = 0
    for start in range(0, len(ids), 1 << 16):
        total += sum(len(dec(int(i))) for i in ids[start : start + (1 << 16)])
    return total


class Streams:
    """B parallel streams over ids[lo:hi] cut into windows of T; ``window(k)`` -> (x, y, reset)."""

    def __init__(self, ids: np.ndarray, lo: int, hi: int, B: int, T: int, what: str = "training"):
        self.ids, self.B, self.T = ids, B, T
        self.L = (hi - lo - 1) // B  # one more token than inputs: the last target
        self.windows = self.L // T
        if self.windows < 1:
            raise DataError(
                f"the {what} split has {hi - lo} tokens, fewer than batch x seq_len + 1 = {B * T + 1}; "
                "use a smaller --batch or --seq-len, or more text"
            )
        self.starts = lo + np.arange(B) * self.L

    def window(self, k: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
        w = k % self.windows
        rows = np.stack([self.ids[s + w * self.T : s + w * self.T + self.T + 1] for s in self.starts])
        block = torch.from_numpy(rows.astype(np.int64))
        return block[:, :-1], block[:, 1:], w == 0
