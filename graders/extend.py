"""Extension points: the supported ways to plug your own parts into a compiled grader.

- `set_embedder(compiled, embedder, name)`: score `cosine` with a local embedding model instead of an
  `/embeddings` endpoint (§7.3, U25), e.g. a sentence-transformers model you installed.

Everything here is public and stable; what it reaches into (metrics, evaluators) is not.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .engine import CompiledGrader
    from .evaluators.base import Evaluator


class Embedder(Protocol):
    """A local embedding model: texts in, one vector per text out, in order."""

    def embed(self, texts: list[str]) -> list[list[float]]: ...


def set_embedder(compiled: CompiledGrader, embedder: Embedder, name: str) -> None:
    """Make every `cosine` metric of `compiled` (itself, or its sub-graders in a `multi`) use `embedder`.

    `name` is recorded as the model in each response's `details["metric"]`; vectors already embedded by the
    endpoint are forgotten. Raises `ValueError` when the grader has no cosine metric.
    """
    from .evaluators.text_similarity.cosine import Cosine

    found = [metric for metric in _metrics(compiled.evaluator) if isinstance(metric, Cosine)]
    if not found:
        raise ValueError(f"grader {compiled.name!r} ({compiled.type}) has no text_similarity cosine metric")
    for metric in found:
        metric.set_embedder(embedder, name)


def _metrics(evaluator: Evaluator) -> Iterator[object]:
    metric = getattr(evaluator, "metric", None)
    if metric is not None:
        yield metric
    for runner in getattr(evaluator, "subs", {}).values():
        yield from _metrics(runner.evaluator)
