"""`string_check` (spec §6): eq / ne / like / ilike over the two rendered strings, exactly 0.0 or 1.0."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache

from ..namespaces import Namespaces
from ..options import Options
from ..response import Outcome
from ..schema import StringCheckGrader
from ..errors import TemplateError, failure_outcome
from .base import SyncEvaluator


@lru_cache(maxsize=4096)
def _like_pattern(reference: str, flags: int) -> re.Pattern[str]:
    """U15: SQL wildcards (`%` any run, `_` one character), found anywhere in the input like plain `like`."""
    body = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in reference)
    return re.compile(body, flags | re.S)


def comparison(operation: str, options: Options) -> Callable[[str, str], bool]:
    """The §6 rule for one operation, with U15 (wildcards) and U16 (ilike folding) applied."""
    opts = options.string_check
    fold = str.lower if opts.ilike_fold == "lower" else str.casefold
    if operation == "eq":
        return str.__eq__
    if operation == "ne":
        return str.__ne__
    if opts.like_wildcards:
        if operation == "like":
            return lambda a, b: _like_pattern(b, 0).search(a) is not None
        return lambda a, b: _like_pattern(fold(b), 0).search(fold(a)) is not None
    if operation == "like":
        return lambda a, b: b in a
    return lambda a, b: fold(b) in fold(a)


class StringCheckEvaluator(SyncEvaluator):
    """Renders `input` and `reference` (§5.2), then compares them without trimming or normalisation (§6)."""

    type = "string_check"

    def __init__(self, config: StringCheckGrader, options: Options) -> None:
        super().__init__(config, options)
        self._input = self.template(config.input)
        self._reference = self.template(config.reference)
        self._compare = comparison(config.operation, options)
        self._explain = options.explain

    def evaluate(self, ns: Namespaces) -> Outcome:
        try:
            rendered_input = self._input.render(ns)
            rendered_reference = self._reference.render(ns)
        except TemplateError as exc:
            return failure_outcome(exc)
        passed = self._compare(rendered_input, rendered_reference)
        if self._explain:
            details = {"input": rendered_input, "reference": rendered_reference, "operation": self.config.operation}
            return Outcome(1.0 if passed else 0.0, details=details)
        return _PASS if passed else _FAIL

    def evaluate_many(self, batch: Sequence[Namespaces]) -> list[Outcome]:
        if self._explain:
            return [self.evaluate(ns) for ns in batch]
        render_input, render_reference, compare = self._input.render, self._reference.render, self._compare
        out = []
        for ns in batch:
            try:
                out.append(_PASS if compare(render_input(ns), render_reference(ns)) else _FAIL)
            except TemplateError as exc:
                out.append(failure_outcome(exc))
        return out


# Outcomes are never mutated once returned, so every plain pass and fail can share one object.
_PASS = Outcome(1.0)
_FAIL = Outcome(0.0)
