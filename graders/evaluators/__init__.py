"""Registry: grader `type` → evaluator class, imported on first use so unused types cost nothing at start-up."""

from __future__ import annotations

import importlib
from typing import Any

from ..options import Options
from .base import Evaluator, UnavailableEvaluator

REGISTRY: dict[str, str] = {
    "string_check": "graders.evaluators.string_check:StringCheckEvaluator",
    "text_similarity": "graders.evaluators.text_similarity:TextSimilarityEvaluator",
    "python": "graders.evaluators.python:PythonEvaluator",
    "score_model": "graders.evaluators.model.score_model:ScoreModelEvaluator",
    "label_model": "graders.evaluators.model.label_model:LabelModelEvaluator",
    "multi": "graders.evaluators.multi:MultiEvaluator",
}


def evaluator_class(grader_type: str) -> type[Evaluator]:
    """The evaluator class for a type; raises `ModuleNotFoundError` when its module or a dependency is missing."""
    module_name, _, class_name = REGISTRY[grader_type].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def build_evaluator(config: Any, options: Options) -> Evaluator:
    """Build the evaluator for a validated config; a missing implementation yields an `UnavailableEvaluator`."""
    try:
        cls = evaluator_class(config.type)
    except ModuleNotFoundError as exc:
        hint = f"missing module '{exc.name}'" if exc.name else str(exc)
        return UnavailableEvaluator(config, options, hint)
    return cls(config, options)


__all__ = ["REGISTRY", "Evaluator", "build_evaluator", "evaluator_class"]
