"""graders: run OpenAI-style graders locally, with the hosted `/run` and `/validate` shapes (§3).

    import graders
    resp = graders.run({"type": "string_check", "input": "{{ sample.output_text }}",
                        "reference": "{{ item.answer }}", "operation": "eq"}, "Paris", {"answer": "Paris"})
    resp.reward, resp.model_dump()

The names below are the public API (docs/api.md); extension points live in `graders.extend`. Everything else is
internal and importable from its own module. Names are loaded on first use, so `import graders` costs little and
a grader type that is not used costs nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import CompiledGrader, arun, compile, run
    from .errors import GraderValidationError
    from .evals import passed, result_counts
    from .options import OptionError, Options
    from .parity import check_cases
    from .response import ERROR_KEYS, GraderRunResponse, GraderValidateResponse
    from .validation import validate

_EXPORTS: dict[str, str] = {
    "run": "engine",
    "arun": "engine",
    "compile": "engine",
    "CompiledGrader": "engine",
    "validate": "validation",
    "Options": "options",
    "OptionError": "options",
    "GraderRunResponse": "response",
    "GraderValidateResponse": "response",
    "ERROR_KEYS": "response",
    "GraderValidationError": "errors",
    "passed": "evals",
    "result_counts": "evals",
    "check_cases": "parity",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """PEP 562: import a public name's module on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'graders' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
