"""`multi` (spec §11): named sub-graders combined by the `calculate_output` formula.

Sub-graders run through the same registry as top-level graders, concurrently when any of them is async-native
(§11.3 allows it), and in bulk through each sub-grader's own `evaluate_many`. Flags, usage and details are merged
per §11.4 with U41–U44.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ..formula import FormulaEvalError, FormulaParseError, parse_formula
from ..namespaces import Namespaces
from ..options import Options
from ..response import DETAILS_KEY, FLAG_KEYS, Outcome, add_usage
from ..schema import MultiGrader
from . import build_evaluator
from .base import Evaluator, aevaluate_guarded, aevaluate_many_guarded, evaluate_guarded, evaluate_many_guarded


class MultiEvaluator(Evaluator):
    type = "multi"

    def __init__(self, config: MultiGrader, options: Options) -> None:
        super().__init__(config, options)
        self._subs: dict[str, Evaluator] = {k: build_evaluator(sub, options) for k, sub in config.graders.items()}
        self.async_native = any(e.async_native for e in self._subs.values())  # type: ignore[misc]
        by_name = options.multi.sub_rewards_keys == "name"
        self._labels = {k: (sub.name or k) if by_name else k for k, sub in config.graders.items()}
        self._by_key = all(k == label for k, label in self._labels.items())
        self._fail_whole = options.multi.sub_error_policy == "fail_whole"
        self._first_model = options.multi.sampled_model_name == "first"
        self._eval_flag = options.formula.eval_error_flag
        self._explain = options.explain
        try:
            self._formula = parse_formula(config.calculate_output, options.formula, frozenset(config.graders))
            self._formula_error: str | None = None
        except FormulaParseError as exc:  # unreachable through validation, kept for configs built by hand
            self._formula_error = str(exc)

    # -- evaluation ---------------------------------------------------------------------------------------------

    def evaluate(self, ns: Namespaces) -> Outcome:
        if self.async_native:
            return super().evaluate(ns)
        return self._combine({k: evaluate_guarded(e, ns) for k, e in self._subs.items()})

    async def aevaluate(self, ns: Namespaces) -> Outcome:
        keys = list(self._subs)
        results = await asyncio.gather(*(aevaluate_guarded(self._subs[k], ns) for k in keys))
        return self._combine(dict(zip(keys, results)))

    def evaluate_many(self, batch: Sequence[Namespaces]) -> list[Outcome]:
        if self.async_native:
            return super().evaluate_many(batch)
        columns = {k: evaluate_many_guarded(e, batch) for k, e in self._subs.items()}
        return [self._combine({k: col[i] for k, col in columns.items()}) for i in range(len(batch))]

    async def aevaluate_many(self, batch: Sequence[Namespaces]) -> list[Outcome]:
        keys = list(self._subs)
        cols = await asyncio.gather(*(aevaluate_many_guarded(self._subs[k], batch) for k in keys))
        columns = dict(zip(keys, cols))
        return [self._combine({k: col[i] for k, col in columns.items()}) for i in range(len(batch))]

    def close(self) -> None:
        for sub in self._subs.values():
            sub.close()

    # -- §11.4 merging ------------------------------------------------------------------------------------------

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
        errors: dict[str, Any] | None = None
        lines: list[str] = []
        usage: dict[str, dict[str, int]] | None = None
        sampled: str | None = None
        for key, o in outcomes.items():
            if o.errors:
                errors = errors if errors is not None else {}
                for flag in FLAG_KEYS:
                    if o.errors.get(flag):
                        errors[flag] = True
                        text_key = DETAILS_KEY.get(flag)
                        text = o.errors.get(text_key) if text_key else None
                        if text_key and text is not None:
                            errors[text_key] = f"{errors[text_key]}\n{key}: {text}" if text_key in errors else f"{key}: {text}"
                lines.append(f"{key}: {o.error_text()}")
            if o.usage:
                usage = usage if usage is not None else {}
                for model, u in o.usage.items():
                    add_usage(usage, model, u)
            if sampled is None and o.sampled_model_name and self._first_model:
                sampled = o.sampled_model_name
        details: dict[str, Any] | None = None
        if self._explain or errors:
            details = {"sub_graders": {k: _sub_detail(o) for k, o in outcomes.items()}}
        score, formula_problem = self._score(outcomes, errors is not None)
        if formula_problem is not None:
            flag, text = formula_problem
            errors = errors if errors is not None else {}
            errors[flag] = True
            lines.append(f"calculate_output: {text}")
            details = details or {}
        if lines and details is not None:
            details["error"] = "\n".join(lines)
        return Outcome(score, errors, usage, sampled, sub_rewards, details)

    def _score(self, outcomes: dict[str, Outcome], any_failed: bool) -> tuple[float, tuple[str, str] | None]:
        if self._formula_error is not None:
            return 0.0, ("formula_parse_error", self._formula_error)
        if any_failed and self._fail_whole:
            return 0.0, None
        try:
            return self._formula.evaluate({k: o.score for k, o in outcomes.items()}), None
        except FormulaEvalError as exc:
            return 0.0, (self._eval_flag, str(exc))


def _sub_detail(o: Outcome) -> dict[str, Any]:
    detail: dict[str, Any] = {"reward": o.score}
    if o.errors:
        detail["errors"] = dict(o.errors)
    if o.details:
        detail.update(o.details)
    return detail
