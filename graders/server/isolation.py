"""Python graders sent to the server run only at the sandbox's full level (§8.4, the local promise).

A request to a server is a grader config from someone else, so the server never lets python code run with less
than full isolation unless its operator says so (`--allow-weak-isolation`). Without it, python graders (also inside
a `multi`) are answered with `python_grader_server_error` of type `sandbox_unavailable`; every other type works.
"""

from __future__ import annotations

from ..engine import CompiledGrader
from ..evaluators.base import AsyncEvaluator, Runner
from ..evaluators.python import PythonEvaluator
from ..evaluators.python.sandbox import choose_level
from ..namespaces import Namespaces
from ..response import Outcome

FULL_LEVEL = "bubblewrap"
REFUSAL = (
    "python graders need the sandbox's full isolation on this server, which is not available here "
    "(install bubblewrap: apt-get install bubblewrap), and the server was not started with --allow-weak-isolation"
)


def full_isolation_available() -> bool:
    """Whether python workers here get the full sandbox (host read-only, private /tmp, no network, own PIDs)."""
    return choose_level("auto") == FULL_LEVEL


class RefusedPython(AsyncEvaluator):
    """Stands in for a python grader on a server without full isolation: never runs the source."""

    type = "python"

    async def aevaluate(self, ns: Namespaces) -> Outcome:
        return Outcome.fail("python_grader_server_error", "sandbox_unavailable", details={"error": REFUSAL})


def _refuse(runner: Runner) -> None:
    """Swap every python evaluator under `runner` (runners look their evaluator up on each call)."""
    evaluator = runner.evaluator
    if isinstance(evaluator, PythonEvaluator):
        evaluator.close()
        runner.evaluator = RefusedPython(evaluator.config, evaluator.options)
    for sub in getattr(evaluator, "subs", {}).values():  # a multi's runners by key
        _refuse(sub)


def refuse_python(compiled: CompiledGrader) -> CompiledGrader:
    """`compiled` with every python evaluator in its tree replaced by `RefusedPython`."""
    runner = compiled._runner  # noqa: SLF001 - the compiled grader's one runner; no public way to swap its evaluator
    _refuse(runner)
    compiled.evaluator = runner.evaluator
    return compiled
