"""`fuzzy_match` (spec §7.2, U19): a rapidfuzz scorer / 100; default `WRatio` with `default_process`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process, utils

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


class FuzzyMatch(Metric):
    names = ("fuzzy_match",)

    def __init__(self, metric: str, options: Options) -> None:
        super().__init__(metric, options)
        variant = options.text_similarity.fuzzy_match.scorer
        self._scorer, self._processor = SCORERS[variant]
        self.signature.update(
            {"scorer": self._scorer.__name__, "processor": "default_process" if self._processor else None, "variant": variant, "library": library_version("rapidfuzz")}
        )

    def score(self, hypothesis: str, reference: str) -> float:
        return self._scorer(hypothesis, reference, processor=self._processor) / 100.0

    def score_many(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """rapidfuzz's pairwise bulk scorer (C++ loop, both cores); identical values to `score`."""
        if len(pairs) < 64:
            return super().score_many(pairs)
        hyps = [h for h, _ in pairs]
        refs = [r for _, r in pairs]
        scores = process.cpdist(hyps, refs, scorer=self._scorer, processor=self._processor, workers=-1, dtype=np.float64)
        return [float(s) / 100.0 for s in scores]
