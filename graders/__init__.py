"""graders: run OpenAI-style graders locally, with the hosted `/run` and `/validate` shapes (see the spec, §3).

    import graders
    resp = graders.run({"type": "string_check", "input": "{{ sample.output_text }}",
                        "reference": "{{ item.answer }}", "operation": "eq"}, "Paris", {"answer": "Paris"})
    resp.reward, resp.model_dump()
"""

from .engine import CompiledGrader, arun, compile, run
from .formula import FormulaEvalError, FormulaParseError, parse_formula
from .options import OptionError, Options
from .response import ERROR_KEYS, GraderRunResponse, GraderValidateResponse, Outcome
from .validation import GraderValidationError, validate

__all__ = [
    "ERROR_KEYS",
    "CompiledGrader",
    "FormulaEvalError",
    "FormulaParseError",
    "GraderRunResponse",
    "GraderValidateResponse",
    "GraderValidationError",
    "OptionError",
    "Options",
    "Outcome",
    "arun",
    "compile",
    "parse_formula",
    "run",
    "validate",
]
