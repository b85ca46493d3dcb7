"""Evals-style pass/fail (§13): `passed` for one result, and `result_counts` for a run.

The engine is not an Evals server; these helpers give a local run the same verdicts Evals would.
"""

from __future__ import annotations

from collections.abc import Iterable

from .engine import CompiledGrader
from .response import GraderRunResponse


def passed(grader: CompiledGrader, response: GraderRunResponse) -> bool | None:
    """§13: string_check and label_model pass at 1.0; others at `score >= pass_threshold`.

    A grader error never passes. Without a threshold, python and score_model give None unless
    `evals.default_pass_threshold` (U49) is set.
    """
    if response.failed:
        return False
    kind = grader.type
    if kind in ("string_check", "label_model"):
        return response.reward == 1.0
    threshold = getattr(grader.config, "pass_threshold", None)
    if threshold is None:
        threshold = grader.options.evals.default_pass_threshold
    if threshold is None:
        return None
    return response.reward >= threshold


def result_counts(grader: CompiledGrader, responses: Iterable[GraderRunResponse]) -> dict[str, int]:
    """§13 `result_counts`: errored results are counted apart from failed ones."""
    counts = {"total": 0, "errored": 0, "failed": 0, "passed": 0}
    for response in responses:
        counts["total"] += 1
        if response.failed:
            counts["errored"] += 1
        elif passed(grader, response):
            counts["passed"] += 1
        else:
            counts["failed"] += 1
    return counts
