"""`text_similarity` (§7): render `input` and `reference`, score them with the chosen metric, clamp to [0, 1].

Each metric family is one module behind `base.Metric`; `METRICS` maps every `evaluation_metric` to its class.
The metric's signature (library, tokenizer, smoothing, measure…) goes into each response's local `details`.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from ...errors import GradingFailure, InputTooLarge, MetricUnavailable, TemplateError, failure_outcome
from ...namespaces import Namespaces
from ...options import Options
from ...response import Outcome, Usage, freeze
from ...schema import SIMILARITY_METRICS, TextSimilarityGrader
from ...templates import compile_template
from ..base import AsyncEvaluator, Evaluator, SyncEvaluator
from .base import AsyncMetric, Metric, _MetricBase

_FAMILIES: dict[str, str] = {
    "fuzzy_match": "fuzzy:FuzzyMatch",
    "bleu": "bleu:Bleu",
    "gleu": "bleu:Gleu",
    "meteor": "meteor:Meteor",
    "rouge": "rouge:Rouge",
    "cosine": "cosine:Cosine",
}
METRICS: dict[str, str] = {name: _FAMILIES[name.partition("_")[0] if name.startswith("rouge_") else name] for name in SIMILARITY_METRICS}
"""Every `evaluation_metric` of the schema → `module:class` of its family."""


def build_metric(name: str, options: Options) -> Metric | AsyncMetric:
    module, _, cls = METRICS[name].partition(":")
    metric: Metric | AsyncMetric = getattr(importlib.import_module(f"{__name__}.{module}"), cls)(name, options)
    return metric


def build(config: TextSimilarityGrader, options: Options) -> Evaluator:
    """The evaluator for the grader's metric: sync for the library metrics, async for cosine's embeddings."""
    metric = build_metric(config.evaluation_metric, options)
    if isinstance(metric, AsyncMetric):
        return AsyncTextSimilarityEvaluator(config, options, metric)
    return TextSimilarityEvaluator(config, options, metric)


def _clamp(value: float) -> float:
    """§7.1: the range is 0–1; sacrebleu gives 1.0000000000000004 for identical strings."""
    return 0.0 if value < 0.0 else 1.0 if value > 1.0 else value


Rendered = tuple[str, str] | Outcome


class _Scoring:
    """Rendering and turning scores or failures into outcomes, shared by both kinds."""

    type = "text_similarity"
    config: TextSimilarityGrader

    def _setup(self, config: TextSimilarityGrader, options: Options, metric: Metric | AsyncMetric) -> None:
        self._input = compile_template(config.input, options.template)
        self._reference = compile_template(config.reference, options.template)
        self.metric = metric
        self._explain = options.explain
        self._max_chars = options.text_similarity.max_chars
        # The metric's own size limit, if it has one (fuzzy_match's partial scorers), looked up once.
        self._metric_limit = metric.too_large if type(metric).too_large is not _MetricBase.too_large else None
        self._signature: dict[str, Any] | None = None
        self._frozen: dict[str, Any] = {}

    @property
    def _details(self) -> dict[str, Any]:
        """`{"metric": signature}`, frozen once and shared by every response (refrozen if the metric changes it)."""
        signature = self.metric.signature
        if signature is not self._signature:
            self._signature, self._frozen = signature, freeze({"metric": signature})
        return self._frozen

    def _render(self, ns: Namespaces) -> Rendered:
        try:
            pair = self._input.render(ns), self._reference.render(ns)
        except TemplateError as exc:
            return failure_outcome(exc)
        limit = self._max_chars
        if len(pair[0]) > limit or len(pair[1]) > limit:
            return self._failure(self._too_long(pair))
        problem = self._metric_limit(*pair) if self._metric_limit is not None else None
        return pair if problem is None else self._failure(problem)

    def _too_long(self, pair: tuple[str, str]) -> InputTooLarge:
        """`text_similarity.max_chars`, which keeps every metric's cost bounded, naming `input` first if both exceed."""
        field, text = ("input", pair[0]) if len(pair[0]) > self._max_chars else ("reference", pair[1])
        return InputTooLarge(
            field, f"{field} is {len(text):,} characters; {self.config.evaluation_metric} scores at most {self._max_chars:,}", "text_similarity.max_chars"
        )

    def _outcome(self, pair: tuple[str, str], score: float) -> Outcome:
        if self._explain:
            return Outcome(_clamp(score), details={"input": pair[0], "reference": pair[1], **self._details})
        return Outcome(_clamp(score), details=self._details)

    def _failure(self, exc: Exception) -> Outcome:
        """§7.1: a metric library raising is other_error, reward 0; a metric that cannot run names its own flag."""
        if not isinstance(exc, GradingFailure):
            exc = MetricUnavailable(f"{self.config.evaluation_metric} failed: {type(exc).__name__}: {exc}")
        return failure_outcome(exc, dict(self._details))

    def _merge(self, rendered: list[Rendered], scores: list[float] | Exception) -> list[Outcome]:
        if isinstance(scores, Exception):
            failure = self._failure(scores)
            return [p if isinstance(p, Outcome) else failure for p in rendered]
        it = iter(scores)
        return [p if isinstance(p, Outcome) else self._outcome(p, next(it)) for p in rendered]


class TextSimilarityEvaluator(_Scoring, SyncEvaluator):
    """A library metric (fuzzy_match, bleu, gleu, meteor, rouge_*), scored in bulk through `score_many`."""

    metric: Metric

    def __init__(self, config: TextSimilarityGrader, options: Options, metric: Metric) -> None:
        SyncEvaluator.__init__(self, config, options)
        self._setup(config, options, metric)

    def evaluate(self, ns: Namespaces) -> Outcome:
        pair = self._render(ns)
        return pair if isinstance(pair, Outcome) else self._one(pair)

    def evaluate_many(self, batch: Sequence[Namespaces]) -> list[Outcome]:
        rendered = [self._render(ns) for ns in batch]
        pairs = [p for p in rendered if not isinstance(p, Outcome)]
        try:
            scores = self.metric.score_many(pairs)
        except Exception:  # noqa: BLE001 - score one by one so only the failing pair fails
            return [p if isinstance(p, Outcome) else self._one(p) for p in rendered]
        return self._merge(rendered, scores)

    def _one(self, pair: tuple[str, str]) -> Outcome:
        try:
            return self._outcome(pair, self.metric.score(*pair))
        except Exception as exc:  # noqa: BLE001
            return self._failure(exc)


class AsyncTextSimilarityEvaluator(_Scoring, AsyncEvaluator):
    """cosine: the texts of a batch are embedded together (and each distinct text once), then scored."""

    metric: AsyncMetric

    def __init__(self, config: TextSimilarityGrader, options: Options, metric: AsyncMetric) -> None:
        AsyncEvaluator.__init__(self, config, options)
        self._setup(config, options, metric)

    async def aevaluate(self, ns: Namespaces) -> Outcome:
        return (await self.aevaluate_many([ns]))[0]

    async def aevaluate_many(self, batch: Sequence[Namespaces]) -> list[Outcome]:
        rendered = [self._render(ns) for ns in batch]
        pairs = [p for p in rendered if not isinstance(p, Outcome)]
        try:
            if self.metric.report_usage:
                with_usage = await self.metric.ascore_many_with_usage(pairs)
                it = iter(with_usage)
                return [p if isinstance(p, Outcome) else self._with_usage(p, *next(it)) for p in rendered]
            return self._merge(rendered, await self.metric.ascore_many(pairs))
        except Exception as exc:  # noqa: BLE001
            return self._merge(rendered, exc)

    def _with_usage(self, pair: tuple[str, str], score: float, usage: dict[str, Usage] | None) -> Outcome:
        """U25 report_usage: embedding tokens appear in `model_grader_token_usage_per_model`."""
        outcome = self._outcome(pair, score)
        sampled = next(iter(usage), None) if usage else None
        return Outcome(outcome.score, usage=usage, sampled_model_name=sampled, details=outcome.details)
