"""The one small interface every grader type implements (design: the flow of one grade).

An evaluator is built once per compiled grader (templates compiled, metric chosen, sandbox or client bound) and
then evaluates many samples. It never raises for a grading failure: it returns an `Outcome` with flags set.
"""

from __future__ import annotations

import asyncio
import traceback
from abc import ABC
from collections.abc import Sequence
from typing import Any, ClassVar

from .._loop import run_sync
from ..namespaces import Namespaces
from ..options import Options
from ..response import Outcome
from ..templates import Template, TemplateError, compile_template


class Evaluator(ABC):
    """Scores one grader config against namespaces.

    Sync-native evaluators implement `evaluate`; async-native ones (network or worker bound) set
    `async_native = True` and implement `aevaluate`, and the sync side runs on the background loop. Bulk paths
    override `evaluate_many`/`aevaluate_many`; results are always one `Outcome` per input, in order.
    """

    type: ClassVar[str]
    async_native: ClassVar[bool] = False

    def __init__(self, config: Any, options: Options) -> None:
        self.config = config
        self.options = options

    def evaluate(self, ns: Namespaces) -> Outcome:
        if not self.async_native:
            raise NotImplementedError(f"{type(self).__name__} must implement evaluate()")
        return run_sync(self.aevaluate(ns))

    async def aevaluate(self, ns: Namespaces) -> Outcome:
        return self.evaluate(ns)

    def evaluate_many(self, batch: Sequence[Namespaces]) -> list[Outcome]:
        if self.async_native:
            return run_sync(self.aevaluate_many(batch))
        evaluate = self.evaluate
        return [evaluate(ns) for ns in batch]

    async def aevaluate_many(self, batch: Sequence[Namespaces]) -> list[Outcome]:
        if not self.async_native:
            return self.evaluate_many(batch)
        return list(await asyncio.gather(*(self.aevaluate(ns) for ns in batch)))

    def template(self, source: str) -> Template:
        """Compile one templated field with this grader's template options."""
        return compile_template(source, self.options.template)

    def close(self) -> None:
        """Release workers, clients or files held by this evaluator."""


class UnavailableEvaluator(Evaluator):
    """Stands in for a grader type whose module or dependency is missing: a clear `other_error`, never a score."""

    def __init__(self, config: Any, options: Options, reason: str) -> None:
        super().__init__(config, options)
        self.reason = reason

    def evaluate(self, ns: Namespaces) -> Outcome:
        return Outcome.fail("other_error", f"grader type '{self.config.type}' is not available: {self.reason}")


def template_failure(error: TemplateError, details: dict[str, Any] | None = None) -> Outcome:
    """§5.5: an unresolved reference stops the grade with its flag and reward 0.0."""
    return Outcome.fail(error.flag, error.details, details=details)


def bug_outcome(exc: BaseException) -> Outcome:
    """An evaluator raised (a bug, never a grading result): `other_error`, the traceback kept in local details."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-8))
    return Outcome.fail("other_error", f"internal error: {type(exc).__name__}: {exc}", details={"traceback": tb})


def evaluate_guarded(evaluator: Evaluator, ns: Namespaces) -> Outcome:
    """`evaluate`, with a raised exception turned into that sample's `other_error` outcome."""
    try:
        return evaluator.evaluate(ns)
    except Exception as exc:  # noqa: BLE001 - one broken evaluation must not cost the others
        return bug_outcome(exc)


async def aevaluate_guarded(evaluator: Evaluator, ns: Namespaces) -> Outcome:
    try:
        return await evaluator.aevaluate(ns)
    except Exception as exc:  # noqa: BLE001
        return bug_outcome(exc)


def evaluate_many_guarded(evaluator: Evaluator, batch: Sequence[Namespaces]) -> list[Outcome]:
    """The bulk path; if it raises or miscounts, each sample again on its own so only the bad one fails."""
    try:
        out = evaluator.evaluate_many(batch)
        if len(out) == len(batch):
            return out
    except Exception:  # noqa: BLE001
        pass
    return [evaluate_guarded(evaluator, ns) for ns in batch]


async def aevaluate_many_guarded(evaluator: Evaluator, batch: Sequence[Namespaces]) -> list[Outcome]:
    try:
        out = await evaluator.aevaluate_many(batch)
        if len(out) == len(batch):
            return out
    except Exception:  # noqa: BLE001
        pass
    return list(await asyncio.gather(*(aevaluate_guarded(evaluator, ns) for ns in batch)))
