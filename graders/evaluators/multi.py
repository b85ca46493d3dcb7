"""`multi` (§11): named sub-graders combined by the `calculate_output` formula.

Sub-graders run through the same registry and adapter as top-level graders, concurrently when any of them is
async (§11.3 allows it), and in bulk through each sub-grader's own bulk path. Flags, usage and texts are merged by
`response.merge_outcomes` (§11.4, U43, U44); the score and U41/U42 are decided here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ..formula import FormulaEvalError, FormulaParseError, parse_formula
from ..namespaces import Namespaces
from ..options import Options
from ..response import Outcome, merge_outcomes
from ..schema import MultiGrader
from . import build_evaluator
from .base import AsyncEvaluator, Evaluator, Runner, SyncEvaluator, adapt


def build(config: MultiGrader, options: Options) -> Evaluator:
    """A sync multi when every sub-grader is sync (no event loop involved), else an async one that runs its
    sub-graders concurrently (§11.3 allows it)."""
    subs = {k: adapt(build_evaluator(sub, options)) for k, sub in config.graders.items()}
    if any(r.is_async for r in subs.values()):
        return AsyncMultiEvaluator(config, options, subs)
    return MultiEvaluator(config, options, subs)


class _Combiner:
    """The §11.4 combination of sub-outcomes, shared by both kinds of multi."""

    type = "multi"

    def _setup(self, config: MultiGrader, options: Options, subs: dict[str, Runner]) -> None:
        self.subs = subs
        """The sub-graders' runners by their `graders` key."""
        by_name = options.multi.sub_rewards_keys == "name"
        self._labels = {k: (sub.name or k) if by_name else k for k, sub in config.graders.items()}
        self._by_key = all(k == label for k, label in self._labels.items())
        self._fail_whole = options.multi.sub_error_policy == "fail_whole"
        self._first_model = options.multi.sampled_model_name == "first"
        self._eval_flag = options.formula.eval_error_flag
        self._explain = options.explain
        self._source = config.calculate_output
        try:
            self._formula = parse_formula(config.calculate_output, options.formula, frozenset(config.graders))
            self._formula_error: str | None = None
        except FormulaParseError as exc:  # unreachable through validation, kept for configs built by hand
            self._formula_error = str(exc)

    def close(self) -> None:
        for sub in self.subs.values():
            sub.close()

    def _combine(self, outcomes: dict[str, Outcome]) -> Outcome:
        if not self._explain and self._formula_error is None:
            for o in outcomes.values():
                if o.errors or o.usage or o.sampled_model_name:
                    break
            else:  # the common case: nothing to merge but the scores
                env = {k: o.score for k, o in outcomes.items()}
                sub_rewards = env if self._by_key else {self._labels[k]: v for k, v in env.items()}
                try:
                    return Outcome(self._formula.evaluate(env), sub_rewards=sub_rewards)
                except FormulaEvalError:
                    pass  # reported with its flag by the full merge below
        sub_rewards = {self._labels[k]: o.score for k, o in outcomes.items()}
        merged = merge_outcomes(outcomes, first_sampled_model=self._first_model)
        errors, lines = merged.errors, merged.error_lines
        details: dict[str, Any] | None = None
        if self._explain or errors:
            details = {"sub_graders": {k: _sub_detail(o) for k, o in outcomes.items()}}
        score, formula_problem = self._score(outcomes, errors is not None)
        if self._explain and details is not None:
            details["formula"] = {
                "calculate_output": self._source,
                "variables": {k: o.score for k, o in outcomes.items()},
                "result": score if formula_problem is None else formula_problem[1],
            }
        if formula_problem is not None:
            flag, text = formula_problem
            errors = errors if errors is not None else {}
            errors[flag] = True
            lines.append(f"calculate_output: {text}")
            details = details or {}
        if lines and details is not None:
            details["error"] = "\n".join(lines)
        return Outcome(score, errors, merged.usage, merged.sampled_model_name, sub_rewards, details)

    def _score(self, outcomes: dict[str, Outcome], any_failed: bool) -> tuple[float, tuple[str, str] | None]:
        if self._formula_error is not None:
            return 0.0, ("formula_parse_error", self._formula_error)
        if any_failed and self._fail_whole:
            return 0.0, None
        try:
            return self._formula.evaluate({k: o.score for k, o in outcomes.items()}), None
        except FormulaEvalError as exc:
            return 0.0, (self._eval_flag, str(exc))


class MultiEvaluator(_Combiner, SyncEvaluator):
    """A multi of sync sub-graders: each sub-grader's bulk path over the whole batch, then one combine per row."""

    def __init__(self, config: MultiGrader, options: Options, subs: dict[str, Runner]) -> None:
        SyncEvaluator.__init__(self, config, options)
        self._setup(config, options, subs)

    def evaluate(self, ns: Namespaces) -> Outcome:
        return self._combine({k: r.run(ns) for k, r in self.subs.items()})

    def evaluate_many(self, batch: Sequence[Namespaces]) -> list[Outcome]:
        columns = {k: r.run_many(batch) for k, r in self.subs.items()}
        return [self._combine({k: col[i] for k, col in columns.items()}) for i in range(len(batch))]


class AsyncMultiEvaluator(_Combiner, AsyncEvaluator):
    """A multi with at least one async sub-grader: the sub-graders of a sample (and of a batch) run concurrently."""

    def __init__(self, config: MultiGrader, options: Options, subs: dict[str, Runner]) -> None:
        AsyncEvaluator.__init__(self, config, options)
        self._setup(config, options, subs)

    async def aevaluate(self, ns: Namespaces) -> Outcome:
        keys = list(self.subs)
        results = await asyncio.gather(*(self.subs[k].arun(ns) for k in keys))
        return self._combine(dict(zip(keys, results)))

    async def aevaluate_many(self, batch: Sequence[Namespaces]) -> list[Outcome]:
        keys = list(self.subs)
        cols = await asyncio.gather(*(self.subs[k].arun_many(batch) for k in keys))
        columns = dict(zip(keys, cols))
        return [self._combine({k: col[i] for k, col in columns.items()}) for i in range(len(batch))]


def _sub_detail(o: Outcome) -> dict[str, Any]:
    detail: dict[str, Any] = {"reward": o.score}
    if o.errors:
        detail["errors"] = dict(o.errors)
    if o.details:
        detail.update(o.details)
    return detail
