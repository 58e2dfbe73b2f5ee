"""Baselines a character language model has to beat, in bits per character on the same validation text.

- xz: LZMA at its strongest preset. ``xz_bpc(val)`` compresses the validation text alone; ``xz_bpc(val, train)``
  charges only the bytes the validation text adds after the training text, i.e. xz allowed to learn from the
  training split as the model does.
- A character n-gram with interpolated Kneser-Ney smoothing (Chen & Goodman 1998, one discount per order), trained
  on the training text: the classic statistical model of text.
"""

from __future__ import annotations

import lzma
import math
from collections import Counter

PRESET = 9 | lzma.PRESET_EXTREME


def xz_bpc(val: str, train: str = "") -> float:
    if not val:
        raise ValueError("empty validation text")
    val_bytes = val.encode("utf-8")
    if not train:
        return 8 * len(lzma.compress(val_bytes, preset=PRESET)) / len(val)
    train_bytes = train.encode("utf-8")
    extra = len(lzma.compress(train_bytes + val_bytes, preset=PRESET)) - len(lzma.compress(train_bytes, preset=PRESET))
    return 8 * extra / len(val)


class KneserNey:
    """Interpolated Kneser-Ney over characters, order n (context of n - 1 characters).

    P(c | h) = max(N(hc) - D, 0) / N(h·) + D · T(h·) / N(h·) · P(c | h[1:])
    where N counts occurrences at the top order and continuation counts (distinct left neighbours) below it,
    T(h·) is the number of distinct characters seen after h, and D = n1 / (n1 + 2 n2) from the count-of-counts.
    The base is uniform over the training characters plus one unknown.
    """

    def __init__(self, text: str, order: int = 5):
        self.n = order
        self.vocab = len(set(text)) + 1
        grams = [Counter(text[i : i + k] for i in range(len(text) - k + 1)) for k in range(1, order + 1)]
        self.counts: list[Counter] = []  # counts[k-1]: count of k-grams as this order uses them
        for k in range(1, order + 1):
            if k == order:
                self.counts.append(grams[k - 1])
            else:  # continuation count: how many distinct characters precede the k-gram
                cont: Counter = Counter()
                for g in grams[k]:
                    cont[g[1:]] += 1
                self.counts.append(cont)
        self.context_total: list[Counter] = []
        self.context_types: list[Counter] = []
        self.discount: list[float] = []
        for c in self.counts:
            total, types = Counter(), Counter()
            for g, v in c.items():
                total[g[:-1]] += v
                types[g[:-1]] += 1
            self.context_total.append(total)
            self.context_types.append(types)
            n1 = sum(1 for v in c.values() if v == 1)
            n2 = sum(1 for v in c.values() if v == 2)
            self.discount.append(n1 / (n1 + 2 * n2) if n1 + n2 else 0.5)

    def prob(self, context: str, char: str) -> float:
        p = 1.0 / self.vocab
        for k in range(1, self.n + 1):  # from unigram up to the full context
            h = context[len(context) - (k - 1) :] if k > 1 else ""
            if k > 1 and len(h) < k - 1:
                break
            total = self.context_total[k - 1].get(h, 0)
            if total == 0:
                continue  # unseen context: keep the lower order's estimate
            d = self.discount[k - 1]
            count = self.counts[k - 1].get(h + char, 0)
            p = max(count - d, 0) / total + d * self.context_types[k - 1][h] / total * p
        return p

    def bpc(self, text: str) -> float:
        bits = 0.0
        for i, ch in enumerate(text):
            bits -= math.log2(self.prob(text[max(0, i - self.n + 1) : i], ch))
        return bits / len(text)
