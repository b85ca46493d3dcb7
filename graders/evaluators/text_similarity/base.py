"""One metric interface for `text_similarity` (§7), in the manner of sacrebleu's `metrics/` package.

A metric is built once per compiled grader (tokenizer, smoothing, scorer chosen from the options) and records in
`signature` exactly how its scores are computed, so every response can say which variant produced it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any, ClassVar

from ...errors import InputTooLarge
from ...options import Options
from ...response import Usage


class _MetricBase:
    names: ClassVar[tuple[str, ...]]

    def __init__(self, metric: str, options: Options) -> None:
        self.metric = metric
        self.signature: dict[str, Any] = {"metric": metric}
        """How scores are computed; replaced (never changed in place) when that changes after compile."""

    def too_large(self, hypothesis: str, reference: str) -> InputTooLarge | None:
        """A limit of this metric's own that the pair exceeds, beyond `text_similarity.max_chars` (none here)."""
        return None


class Metric(_MetricBase, ABC):
    """Scores one (hypothesis = `input`, reference) pair in the caller's thread; `score_many` is the bulk path
    (§7.1: order matters)."""

    @abstractmethod
    def score(self, hypothesis: str, reference: str) -> float: ...

    def score_many(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        score = self.score
        return [score(h, r) for h, r in pairs]


class AsyncMetric(_MetricBase, ABC):
    """A metric that waits on a server (cosine's embeddings); it may report the tokens it spent (U25)."""

    report_usage: bool = False

    @abstractmethod
    async def ascore_many(self, pairs: Sequence[tuple[str, str]]) -> list[float]: ...

    async def ascore_many_with_usage(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[float, dict[str, Usage] | None]]:
        """Each pair's score with the usage (`{model: usage}`) it alone cost; asked only when `report_usage` is on."""
        return [(score, None) for score in await self.ascore_many(pairs)]


def library_version(package: str) -> str:
    """`package==version` for signatures; scores depend on library versions (§7.4 names the calibrated ones)."""
    try:
        return f"{package}=={version(package)}"
    except PackageNotFoundError:
        return f"{package} (version unknown)"
