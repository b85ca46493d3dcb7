"""One metric interface for `text_similarity` (spec §7), in the manner of sacrebleu's `metrics/` package.

A metric is built once per compiled grader (tokenizer, smoothing, scorer chosen from the options) and records in
`signature` exactly how its scores are computed, so every response can say which variant produced it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any, ClassVar

from ...options import Options


class MetricUnavailable(Exception):
    """The metric cannot run here (no WordNet, no embeddings client): `flag` is the error key to set."""

    def __init__(self, flag: str, message: str) -> None:
        super().__init__(message)
        self.flag = flag
        self.message = message


class Metric(ABC):
    """Scores one (hypothesis = `input`, reference) pair; `score_many` is the bulk path (§7.1: order matters)."""

    names: ClassVar[tuple[str, ...]]
    async_native: ClassVar[bool] = False

    def __init__(self, metric: str, options: Options) -> None:
        self.metric = metric
        self.signature: dict[str, Any] = {"metric": metric}

    @abstractmethod
    def score(self, hypothesis: str, reference: str) -> float: ...

    def score_many(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        score = self.score
        return [score(h, r) for h, r in pairs]

    async def ascore_many(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        return self.score_many(pairs)


def library_version(package: str) -> str:
    """`package==version` for signatures; scores depend on library versions (§7.4 names the calibrated ones)."""
    try:
        return f"{package}=={version(package)}"
    except PackageNotFoundError:
        return f"{package} (version unknown)"
