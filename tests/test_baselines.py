"""The baselines the language-model benchmark compares with."""

import math

import pytest

from seqlab.lm.baselines import KneserNey, xz_bpc

TEXT = "abracadabra, said the cadaver to the candelabra. " * 40


@pytest.mark.parametrize("order", [1, 3, 5])
def test_kneser_ney_is_a_distribution_in_every_context(order):
    m = KneserNey(TEXT, order)
    chars = sorted(set(TEXT))
    for context in ("", "a", "abr", "the c", "zzzz", "cadav"):
        unseen = m.prob(context, "\x00")  # every character never seen in training shares this one mass
        assert math.isclose(sum(m.prob(context, c) for c in chars) + unseen, 1.0, rel_tol=1e-9), context


def test_kneser_ney_learns_and_longer_contexts_help_where_the_text_repeats():
    bpc = {order: KneserNey(TEXT, order).bpc(TEXT[:49]) for order in (1, 3, 5)}
    assert bpc[5] < bpc[3] < bpc[1] < math.log2(len(set(TEXT)) + 1)
    # A reordered sentence: order 3 already knows every transition, and order 5 pays for its unseen contexts.
    reordered = "abracadabra, said the candelabra to the cadaver. "
    assert KneserNey(TEXT, 3).bpc(reordered) < KneserNey(TEXT, 1).bpc(reordered)


def test_xz_learns_from_the_training_text():
    val = TEXT[:300]
    assert xz_bpc(val, TEXT) < 0.5 * xz_bpc(val)
    with pytest.raises(ValueError, match="empty validation text"):
        xz_bpc("")
