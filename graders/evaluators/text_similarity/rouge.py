"""`rouge_1`…`rouge_5`, `rouge_l` (§7.2, U23): rouge-score 0.1.2's numbers, computed faster.

The reference is `RougeScorer([k]).score(target=reference, prediction=input)[k]`. The fast path reproduces it
step for step — the same tokenizer (lower-case, keep `[a-z0-9]` runs, Porter-stem tokens longer than 3 when
asked), `Counter` n-grams and the same precision / recall / F arithmetic — but takes the LCS length from
rapidfuzz's bit-parallel `LCSseq` instead of a pure-Python table. `tests/test_rouge_fast.py` checks the two agree
exactly on thousands of random and adversarial pairs. `tokenizer="unicode"` keeps `\\w` runs of any script, so
CJK or Thai text is not scored 0 as rouge-score scores it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from functools import lru_cache

from rapidfuzz.distance import LCSseq

from ...options import Options
from .base import Metric, library_version

_ASCII_TOKEN = re.compile(r"[a-z0-9]+")
_UNICODE_TOKEN = re.compile(r"\w+")


@lru_cache(maxsize=1)
def _stem() -> Callable[[str], str]:
    from nltk.stem import porter

    return lru_cache(maxsize=65536)(porter.PorterStemmer().stem)


def rouge_tokenizer(kind: str, stemmer: bool) -> Callable[[str], list[str]]:
    """rouge-score's `tokenize.tokenize`, or its Unicode-aware variant."""
    pattern = _ASCII_TOKEN if kind == "rouge_score" else _UNICODE_TOKEN
    findall = pattern.findall
    if not stemmer:
        return lambda text: findall(text.lower())
    stem = _stem()
    if kind == "rouge_score":
        return lambda text: [t for t in (stem(x) if len(x) > 3 else x for x in findall(text.lower())) if _ASCII_TOKEN.fullmatch(t)]
    return lambda text: [stem(x) if len(x) > 3 else x for x in findall(text.lower())]


def _fmeasure(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _ngrams(tokens: list[str], n: int) -> Counter[tuple[str, ...]]:
    if n == 1:
        return Counter((t,) for t in tokens)
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def rouge_n(target: list[str], prediction: list[str], n: int) -> tuple[float, float, float]:
    """(precision, recall, f) exactly as rouge-score's `_score_ngrams`."""
    t, p = _ngrams(target, n), _ngrams(prediction, n)
    overlap = sum(min(count, p[g]) for g, count in t.items())
    precision = overlap / max(sum(p.values()), 1)
    recall = overlap / max(sum(t.values()), 1)
    return precision, recall, _fmeasure(precision, recall)


def rouge_l(target: list[str], prediction: list[str]) -> tuple[float, float, float]:
    """(precision, recall, f) exactly as rouge-score's `_score_lcs`, LCS length from rapidfuzz."""
    if not target or not prediction:
        return 0.0, 0.0, 0.0
    lcs = LCSseq.similarity(target, prediction)
    precision = lcs / len(prediction)
    recall = lcs / len(target)
    return precision, recall, _fmeasure(precision, recall)


_MEASURE_INDEX = {"precision": 0, "recall": 1, "fmeasure": 2}


class Rouge(Metric):
    names = ("rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5", "rouge_l")

    def __init__(self, metric: str, options: Options) -> None:
        super().__init__(metric, options)
        opts = options.text_similarity.rouge
        self._tokenize = rouge_tokenizer(opts.tokenizer, opts.stemmer)
        self._index = _MEASURE_INDEX[opts.measure]
        self._n = None if metric == "rouge_l" else int(metric[-1])
        self.signature.update(
            {
                "rouge_type": "rougeL" if self._n is None else f"rouge{self._n}",
                "measure": opts.measure,
                "stemmer": opts.stemmer,
                "tokenizer": opts.tokenizer,
                "reference": library_version("rouge-score"),
                "lcs": None if self._n else library_version("rapidfuzz") + " LCSseq",
            }
        )

    def score(self, hypothesis: str, reference: str) -> float:
        target, prediction = self._tokenize(reference), self._tokenize(hypothesis)
        scores = rouge_l(target, prediction) if self._n is None else rouge_n(target, prediction, self._n)
        return scores[self._index]


def reference_rouge(metric: str, hypothesis: str, reference: str, *, stemmer: bool = False, measure: str = "fmeasure") -> float:
    """The rouge-score library itself, kept callable as the reference implementation (RapidFuzz-style)."""
    key = "rougeL" if metric == "rouge_l" else f"rouge{metric[-1]}"
    return getattr(_reference_scorer(key, stemmer).score(target=reference, prediction=hypothesis)[key], measure)


@lru_cache(maxsize=32)
def _reference_scorer(key: str, stemmer: bool):  # type: ignore[no-untyped-def]
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer([key], use_stemmer=stemmer)
