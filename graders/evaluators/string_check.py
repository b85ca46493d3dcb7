"""`string_check` (§6): eq / ne / like / ilike over the two rendered strings, exactly 0.0 or 1.0.

Every operation is linear in the texts (U15's wildcards included), so string_check needs no size limit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

from ..namespaces import Namespaces
from ..options import Options
from ..response import Outcome
from ..schema import StringCheckGrader
from ..errors import TemplateError, failure_outcome
from .base import SyncEvaluator


@lru_cache(maxsize=4096)
def like_matcher(reference: str) -> Callable[[str], bool]:
    """U15: whether `reference`, with SQL wildcards (`%` any run, `_` one character), is found anywhere in a text.

    Never a backtracking regular expression (`%a%a%a%ab` against 200 characters took 11 s that way): the pieces
    between `%`s are found left to right, each at its leftmost place after the one before, which is enough for a
    pattern whose only variable-length wildcard is `%`. A piece without `_` is a `str.find` (linear); one with `_`
    is found by bit-parallel shift-and, one pass over the text whatever the text holds.
    """
    pieces = [(piece, _shift_and_table(piece) if "_" in piece else None) for piece in reference.split("%") if piece]

    def match(text: str) -> bool:
        pos = 0
        for piece, table in pieces:
            if table is None:
                found = text.find(piece, pos)
                if found < 0:
                    return False
                pos = found + len(piece)
            else:
                pos = _shift_and_end(text, pos, table, len(piece))
                if pos < 0:
                    return False
        return True

    return match


def _shift_and_table(piece: str) -> tuple[int, dict[str, int]]:
    """(mask of the `_` positions, mask per character of the positions it matches, `_` included)."""
    wild = sum(1 << i for i, c in enumerate(piece) if c == "_")
    table: dict[str, int] = {}
    for i, c in enumerate(piece):
        if c != "_":
            table[c] = table.get(c, wild) | (1 << i)
    return wild, table


def _shift_and_end(text: str, start: int, table: tuple[int, dict[str, int]], size: int) -> int:
    """The end of the leftmost match of the piece at or after `start`, or -1."""
    wild, masks = table
    goal = 1 << (size - 1)
    state = 0
    get = masks.get
    for i in range(start, len(text)):
        state = ((state << 1) | 1) & get(text[i], wild)
        if state & goal:
            return i + 1
    return -1


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
            return lambda a, b: like_matcher(b)(a)
        return lambda a, b: like_matcher(fold(b))(fold(a))
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
