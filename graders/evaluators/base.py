"""The one small interface every grader type implements, in one of two kinds, and the adapter that gives it both.

An evaluator is built once per compiled grader (templates compiled, metric chosen, sandbox or client bound) and
then evaluates many samples. It never raises for a grading failure: it returns an `Outcome` with flags set.

Each evaluator is written in the kind that suits its work: `SyncEvaluator` (CPU-bound: string_check, most
metrics) or `AsyncEvaluator` (network or worker bound: model graders, cosine, the python pool). `adapt` wraps it
once, at compile, in a `Runner` with all four entry points: the other kind comes from a facade (a sync evaluator
runs inline under `await`; an async one runs on the process's background loop when called synchronously), and
every entry point is guarded so that one sample whose evaluation raises fails alone (`errors.failure_outcome`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from ..errors import failure_outcome
from ..namespaces import Namespaces
from ..options import Options
from ..response import Outcome
from ..templates import Template, compile_template


class Evaluator(ABC):
    """What both kinds share: the validated config, the options in force, template compiling and `close`."""

    type: ClassVar[str]

    def __init__(self, config: Any, options: Options) -> None:
        self.config = config
        self.options = options

    def template(self, source: str) -> Template:
        """Compile one templated field with this grader's template options."""
        return compile_template(source, self.options.template)

    def close(self) -> None:
        """Release workers, clients or files held by this evaluator."""


class SyncEvaluator(Evaluator):
    """An evaluator that computes in the caller's thread; `evaluate_many` is the bulk path (one per input, in order)."""

    @abstractmethod
    def evaluate(self, ns: Namespaces) -> Outcome: ...

    def evaluate_many(self, batch: Sequence[Namespaces]) -> list[Outcome]:
        evaluate = self.evaluate
        return [evaluate(ns) for ns in batch]


class AsyncEvaluator(Evaluator):
    """An evaluator that waits on a server or a worker; `aevaluate_many` overlaps the samples of a batch."""

    @abstractmethod
    async def aevaluate(self, ns: Namespaces) -> Outcome: ...

    async def aevaluate_many(self, batch: Sequence[Namespaces]) -> list[Outcome]:
        import asyncio

        return list(await asyncio.gather(*(self.aevaluate(ns) for ns in batch)))


class UnavailableEvaluator(SyncEvaluator):
    """Stands in for a grader type whose module or dependency is missing: a clear `other_error`, never a score."""

    def __init__(self, config: Any, options: Options, reason: str) -> None:
        super().__init__(config, options)
        self.reason = reason

    def evaluate(self, ns: Namespaces) -> Outcome:
        return Outcome.fail("other_error", f"grader type '{self.config.type}' is not available: {self.reason}")


class Runner(ABC):
    """One evaluator of either kind with both kinds of entry point, each guarded (one raising sample fails alone).

    The evaluator's methods are looked up on every call, so an evaluator replaced or patched after compile is used.
    """

    is_async: ClassVar[bool]

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator

    @abstractmethod
    def run(self, ns: Namespaces) -> Outcome: ...

    @abstractmethod
    def run_many(self, batch: Sequence[Namespaces]) -> list[Outcome]: ...

    @abstractmethod
    async def arun(self, ns: Namespaces) -> Outcome: ...

    @abstractmethod
    async def arun_many(self, batch: Sequence[Namespaces]) -> list[Outcome]: ...

    def close(self) -> None:
        self.evaluator.close()


class _SyncRunner(Runner):
    is_async = False
    evaluator: SyncEvaluator

    def run(self, ns: Namespaces) -> Outcome:
        try:
            return self.evaluator.evaluate(ns)
        except Exception as exc:  # noqa: BLE001 - one broken evaluation must not cost the others
            return failure_outcome(exc)

    def run_many(self, batch: Sequence[Namespaces]) -> list[Outcome]:
        """The bulk path; if it raises or miscounts, each sample again on its own so only the bad one fails."""
        try:
            out = self.evaluator.evaluate_many(batch)
            if len(out) == len(batch):
                return out
        except Exception:  # noqa: BLE001
            pass
        return [self.run(ns) for ns in batch]

    async def arun(self, ns: Namespaces) -> Outcome:
        return self.run(ns)

    async def arun_many(self, batch: Sequence[Namespaces]) -> list[Outcome]:
        return self.run_many(batch)


class _AsyncRunner(Runner):
    is_async = True
    evaluator: AsyncEvaluator

    def run(self, ns: Namespaces) -> Outcome:
        from .._loop import run_sync

        return run_sync(self.arun(ns))

    def run_many(self, batch: Sequence[Namespaces]) -> list[Outcome]:
        from .._loop import run_sync

        return run_sync(self.arun_many(batch))

    async def arun(self, ns: Namespaces) -> Outcome:
        try:
            return await self.evaluator.aevaluate(ns)
        except Exception as exc:  # noqa: BLE001
            return failure_outcome(exc)

    async def arun_many(self, batch: Sequence[Namespaces]) -> list[Outcome]:
        try:
            out = await self.evaluator.aevaluate_many(batch)
            if len(out) == len(batch):
                return out
        except Exception:  # noqa: BLE001
            pass
        import asyncio

        return list(await asyncio.gather(*(self.arun(ns) for ns in batch)))


def adapt(evaluator: Evaluator) -> Runner:
    """The runner for `evaluator`, chosen once by its kind."""
    if isinstance(evaluator, AsyncEvaluator):
        return _AsyncRunner(evaluator)
    if isinstance(evaluator, SyncEvaluator):
        return _SyncRunner(evaluator)
    raise TypeError(f"{type(evaluator).__name__} must subclass SyncEvaluator or AsyncEvaluator")
