"""The fast ROUGE path equals the rouge-score library exactly (RapidFuzz-style differential test, §7.2 U23)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graders import Options
from graders.evaluators.text_similarity.rouge import Rouge, reference_rouge

TYPES = ["rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5", "rouge_l"]
VOCAB = ["the", "cat", "sat", "on", "a", "mat", "The", "CAT", "running", "runs", "quickly", "quick", "x",
         "don't", "co-op", "U.S.A.", "3.14", "naïve", "東京", "İstanbul", "K", "ß", "!!!", "", "\t", "\n", "a1b2"]  # fmt: skip


def fast(metric: str, stemmer: bool, measure: str):
    opts = Options().with_values({"text_similarity.rouge.stemmer": stemmer, "text_similarity.rouge.measure": measure})
    return Rouge(metric, opts).score


def random_text(rng: random.Random) -> str:
    n = rng.choice([0, 1, 2, 5, 12, 40])
    return rng.choice([" ", "  ", "\n", ", "]).join(rng.choice(VOCAB) for _ in range(n))


@pytest.mark.parametrize("stemmer", [False, True])
@pytest.mark.parametrize("measure", ["fmeasure", "precision", "recall"])
def test_seeded_random_pairs_identical(stemmer, measure):
    rng = random.Random(20261122 + stemmer)
    pairs = [(random_text(rng), random_text(rng)) for _ in range(180)]
    pairs += [(t, t) for t, _ in pairs[:30]] + [(t, t + " " + t) for t, _ in pairs[30:50]]
    for metric in TYPES:
        score = fast(metric, stemmer, measure)
        for hyp, ref in pairs:
            assert score(hyp, ref) == reference_rouge(metric, hyp, ref, stemmer=stemmer, measure=measure), (metric, hyp, ref)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60), st.text(max_size=60), st.sampled_from(TYPES))
def test_arbitrary_unicode_identical(hyp, ref, metric):
    assert fast(metric, False, "fmeasure")(hyp, ref) == reference_rouge(metric, hyp, ref)


def test_long_texts_identical():
    rng = random.Random(7)
    words = [rng.choice(VOCAB[:12]) for _ in range(1500)]
    hyp, ref = " ".join(words[:700]), " ".join(words[300:])
    for metric in TYPES:
        assert fast(metric, True, "fmeasure")(hyp, ref) == reference_rouge(metric, hyp, ref, stemmer=True)
