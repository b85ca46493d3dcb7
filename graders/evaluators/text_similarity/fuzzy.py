"""`fuzzy_match` (§7.2, U19): a rapidfuzz scorer / 100; by default plain `fuzz.ratio`, no processor.

rapidfuzz's `ratio` is bit-parallel but still quadratic (1 MB against 1 MB takes tens of seconds), and
`partial_ratio` (the `partial` scorer, and `WRatio` when one text is 1.5× the other) grows faster still, so each
grade is bounded by input sizes (`text_similarity.max_chars`, `text_similarity.fuzzy_match.max_partial_chars`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process, utils

from ...errors import InputTooLarge
from ...options import Options
from .base import Metric, library_version

# U19 candidates (calibration Table A): scorer and whether `utils.default_process` is applied.
SCORERS: dict[str, tuple[Callable[..., float], Any]] = {
    "ratio": (fuzz.ratio, None),
    "ratio_dp": (fuzz.ratio, utils.default_process),
    "wratio": (fuzz.WRatio, None),
    "wratio_dp": (fuzz.WRatio, utils.default_process),
    "token_set_dp": (fuzz.token_set_ratio, utils.default_process),
    "token_sort_dp": (fuzz.token_sort_ratio, utils.default_process),
    "partial": (fuzz.partial_ratio, None),
}
_PARTIAL_ALWAYS = frozenset({"partial"})
_PARTIAL_WHEN_UNEVEN = frozenset({"wratio", "wratio_dp"})
WRATIO_PARTIAL_AT = 1.5
"""rapidfuzz's `WRatio` switches to `partial_ratio` once the longer text is this many times the shorter one."""


class FuzzyMatch(Metric):
    names = ("fuzzy_match",)

    def __init__(self, metric: str, options: Options) -> None:
        super().__init__(metric, options)
        opts = options.text_similarity.fuzzy_match
        variant = opts.scorer
        self._variant = variant
        self._scorer, self._processor = SCORERS[variant]
        self._max_partial = opts.max_partial_chars
        self.signature.update(
            {"scorer": self._scorer.__name__, "processor": "default_process" if self._processor else None, "variant": variant, "library": library_version("rapidfuzz")}
        )

    def too_large(self, hypothesis: str, reference: str) -> InputTooLarge | None:
        """`partial_ratio` costs about the cube of the shorter text: that one is bounded by `max_partial_chars`."""
        variant = self._variant
        if variant not in _PARTIAL_ALWAYS and variant not in _PARTIAL_WHEN_UNEVEN:
            return None
        short, long_ = sorted((len(hypothesis), len(reference)))
        if short <= self._max_partial:
            return None
        if variant in _PARTIAL_WHEN_UNEVEN:
            if self._processor is not None:
                short, long_ = sorted((len(self._processor(hypothesis)), len(self._processor(reference))))
            if short <= self._max_partial or not short or long_ / short < WRATIO_PARTIAL_AT:
                return None
        field = "input" if len(hypothesis) <= len(reference) else "reference"
        return InputTooLarge(
            field,
            f"{field} is {short:,} characters; fuzzy_match with scorer {variant!r} compares a text this long against "
            f"every window of the other (partial_ratio) and accepts at most {self._max_partial:,}",
            "text_similarity.fuzzy_match.max_partial_chars",
        )

    def score(self, hypothesis: str, reference: str) -> float:
        return self._scorer(hypothesis, reference, processor=self._processor) / 100.0

    def score_many(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """rapidfuzz's pairwise bulk scorer (a C++ loop in this thread); identical values to `score`. One thread:
        bulk runs already use every core through shards, and its own threads cost 2-4 µs a pair on a busy machine,
        several times a 10-word `ratio`."""
        if len(pairs) < 64:
            return super().score_many(pairs)
        hyps = [h for h, _ in pairs]
        refs = [r for _, r in pairs]
        scores = process.cpdist(hyps, refs, scorer=self._scorer, processor=self._processor, workers=1, dtype=np.float64)
        return [float(s) / 100.0 for s in scores]
