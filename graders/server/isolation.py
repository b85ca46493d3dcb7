"""Python graders sent to the server run only at the sandbox's full level (§8.4, the local promise).

A request to a server is a grader config from someone else, so the server never lets python code run with less
than full isolation unless its operator says so (`--allow-weak-isolation`). Without it, python graders (also inside
a `multi`) are answered with `python_grader_server_error` of type `sandbox_unavailable`; every other type works.
"""

from __future__ import annotations

from ..engine import CompiledGrader
from ..evaluators.base import AsyncEvaluator, Runner
from ..evaluators.python import PythonEvaluator
from ..namespaces import Namespaces
from ..options import Options
from ..response import Outcome

FULL_LEVEL = "bubblewrap"
REFUSAL = (
    "python graders need the sandbox's full isolation on this server, which is not available here "
    "(install bubblewrap: apt-get install bubblewrap), and the server was not started with --allow-weak-isolation"
)


_PROBE = {"type": "python", "name": "isolation-probe", "source": "def grade(sample, item):\n    return 1.0\n"}
_answers: dict[Options, bool] = {}


def full_isolation_available(options: Options) -> bool:
    """Whether python workers started with these options get the full sandbox: one real worker started at
    `python.isolation = "strict"` grades a trivial sample (the sandbox proves its level before it runs code)."""
    strict = options.with_values({"python.isolation": "strict"})
    if strict not in _answers:
        with CompiledGrader(_PROBE, strict) as probe:
            response = probe.run("probe")
        _answers[strict] = not response.failed and response.details.get("sandbox") == FULL_LEVEL
    return _answers[strict]


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
