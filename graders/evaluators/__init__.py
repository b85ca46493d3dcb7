"""Registry: grader `type` → the builder of its evaluator, imported on first use so unused types cost nothing.

A builder is the evaluator class itself, or a function that picks the class for a config (multi and
text_similarity are sync or async depending on what they contain); either takes `(config, options)`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ..options import Options
from .base import AsyncEvaluator, Evaluator, Runner, SyncEvaluator, UnavailableEvaluator, adapt

Builder = Callable[[Any, Options], Evaluator]

REGISTRY: dict[str, str] = {  # keyed by `schema.GRADER_TYPES`, in its order (a test checks it)
    "string_check": "graders.evaluators.string_check:StringCheckEvaluator",
    "text_similarity": "graders.evaluators.text_similarity:build",
    "python": "graders.evaluators.python:PythonEvaluator",
    "score_model": "graders.evaluators.model.score_model:ScoreModelEvaluator",
    "label_model": "graders.evaluators.model.label_model:LabelModelEvaluator",
    "multi": "graders.evaluators.multi:build",
}


def evaluator_builder(grader_type: str) -> Builder:
    """The builder for a type; raises `ModuleNotFoundError` when its module or a dependency is missing."""
    module_name, _, name = REGISTRY[grader_type].partition(":")
    builder: Builder = getattr(importlib.import_module(module_name), name)
    return builder


def build_evaluator(config: Any, options: Options) -> Evaluator:
    """Build the evaluator for a validated config; a missing implementation yields an `UnavailableEvaluator`."""
    try:
        builder = evaluator_builder(config.type)
    except ModuleNotFoundError as exc:
        hint = f"missing module '{exc.name}'" if exc.name else str(exc)
        return UnavailableEvaluator(config, options, hint)
    return builder(config, options)


__all__ = [
    "REGISTRY",
    "AsyncEvaluator",
    "Evaluator",
    "Runner",
    "SyncEvaluator",
    "adapt",
    "build_evaluator",
    "evaluator_builder",
]
