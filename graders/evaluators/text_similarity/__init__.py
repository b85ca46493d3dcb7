"""`text_similarity` (spec §7): render `input` and `reference`, score them with the chosen metric, clamp to [0, 1].

Each metric family is one module behind `base.Metric`; `METRICS` maps every `evaluation_metric` to its class.
The metric's signature (library, tokenizer, smoothing, measure…) goes into each response's local `details`.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from ...namespaces import Namespaces
from ...options import Options
from ...response import Outcome
from ...schema import TextSimilarityGrader
from ...templates import TemplateError
from ..base import Evaluator, template_failure
from .base import Metric, MetricUnavailable

METRICS: dict[str, str] = {
    "fuzzy_match": "fuzzy:FuzzyMatch",
    "bleu": "bleu:Bleu",
    "gleu": "bleu:Gleu",
    "meteor": "meteor:Meteor",
    **{f"rouge_{k}": "rouge:Rouge" for k in ("1", "2", "3", "4", "5", "l")},
    "cosine": "cosine:Cosine",
}


def build_metric(name: str, options: Options) -> Metric:
    module, _, cls = METRICS[name].partition(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)(name, options)


def _clamp(value: float) -> float:
    """§7.1: the range is 0–1; sacrebleu gives 1.0000000000000004 for identical strings."""
    return 0.0 if value < 0.0 else 1.0 if value > 1.0 else value


class TextSimilarityEvaluator(Evaluator):
    type = "text_similarity"

    def __init__(self, config: TextSimilarityGrader, options: Options) -> None:
        super().__init__(config, options)
        self._input = self.template(config.input)
        self._reference = self.template(config.reference)
        self.metric = build_metric(config.evaluation_metric, options)
        self.async_native = self.metric.async_native  # type: ignore[misc]
        self._explain = options.explain
        self._details = {"metric": self.metric.signature}

    def _render(self, ns: Namespaces) -> tuple[str, str] | Outcome:
        try:
            return self._input.render(ns), self._reference.render(ns)
        except TemplateError as exc:
            return template_failure(exc)

    def _outcome(self, pair: tuple[str, str], score: float) -> Outcome:
        if self._explain:
            return Outcome(_clamp(score), details={"input": pair[0], "reference": pair[1], **self._details})
        return Outcome(_clamp(score), details=self._details)

    def _failure(self, exc: Exception) -> Outcome:
        if isinstance(exc, MetricUnavailable):
            return Outcome.fail(exc.flag, exc.message, details=dict(self._details))
        return Outcome.fail("other_error", f"{self.config.evaluation_metric} failed: {type(exc).__name__}: {exc}", details=dict(self._details))

    def evaluate(self, ns: Namespaces) -> Outcome:
        if self.async_native:
            return super().evaluate(ns)
        pair = self._render(ns)
        return pair if isinstance(pair, Outcome) else self._one(pair)

    async def aevaluate(self, ns: Namespaces) -> Outcome:
        return (await self.aevaluate_many([ns]))[0]

    def evaluate_many(self, batch: Sequence[Namespaces]) -> list[Outcome]:
        if self.async_native:
            return super().evaluate_many(batch)
        rendered = [self._render(ns) for ns in batch]
        pairs = [p for p in rendered if not isinstance(p, Outcome)]
        try:
            scores = self.metric.score_many(pairs)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - score one by one so only the failing pair fails
            return [p if isinstance(p, Outcome) else self._one(p) for p in rendered]
        return self._merge(rendered, scores)

    async def aevaluate_many(self, batch: Sequence[Namespaces]) -> list[Outcome]:
        rendered = [self._render(ns) for ns in batch]
        pairs = [p for p in rendered if not isinstance(p, Outcome)]
        try:
            if getattr(self.metric, "report_usage", False):
                with_usage = await self.metric.ascore_many_with_usage(pairs)  # type: ignore[attr-defined]
                it = iter(with_usage)
                return [p if isinstance(p, Outcome) else self._with_usage(p, *next(it)) for p in rendered]
            scores: Any = await self.metric.ascore_many(pairs)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001
            scores = exc
        return self._merge(rendered, scores)

    def _with_usage(self, pair: tuple[str, str], score: float, usage: dict[str, Any] | None) -> Outcome:
        """U25 report_usage: embedding tokens appear in `model_grader_token_usage_per_model`."""
        outcome = self._outcome(pair, score)
        return Outcome(outcome.score, usage=usage, sampled_model_name=next(iter(usage), None) if usage else None, details=outcome.details)

    def _one(self, pair: tuple[str, str]) -> Outcome:
        """One pair; §7.1: a metric library raising is other_error, reward 0."""
        try:
            return self._outcome(pair, self.metric.score(*pair))
        except Exception as exc:  # noqa: BLE001
            return self._failure(exc)

    def _merge(self, rendered: list[Any], scores: Any) -> list[Outcome]:
        if isinstance(scores, Exception):
            failure = self._failure(scores)
            return [p if isinstance(p, Outcome) else failure for p in rendered]
        it = iter(scores)
        return [p if isinstance(p, Outcome) else self._outcome(p, next(it)) for p in rendered]
