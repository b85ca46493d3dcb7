"""The one error vocabulary: what is raised for a bad request, what a grade that fails sets, and bad rows as values.

Three kinds of failure, three shapes:

- **A bad request** (an invalid grader config, a `model_sample` that is not a string): `GraderValidationError`, the
  HTTP 400 of §12.1 with its envelope. `RequestError` is the same error found in one request's data rather than in
  the config; in a batch it costs only its row.
- **A grade that cannot produce a score** (§3.3): an evaluator never raises for it, it returns an `Outcome` with a
  flag set. Where the failure is found deep inside (a template, a metric, a model call), it travels as a
  `GradingFailure` subclass naming its flag, and `failure_outcome` is the one place it becomes an `Outcome`:

  | failure | flag it sets | raised by |
  | --- | --- | --- |
  | `TemplateError` | `invalid_variable_error` (U12 may choose `sample_parse_error`) | templates (§5.5) |
  | `InvalidInput` | `other_error`, "invalid row: …" naming the field (§5.7) | templates, the python grader's encoder |
  | `MetricUnavailable` | `other_error` (U25 may choose `model_grader_server_error`) | text_similarity metrics (§7) |
  | `InputTooLarge` | `other_error`, naming the field and the limit's option | evaluators bounding their cost |
  | `ModelCallError` | `model_grader_server_error` | the transport (§9.3) |
  | `ParseProblem` | `model_grader_parse_error` | model graders reading a reply (§9.3, §10) |
  | anything else an evaluator raises | `other_error`, the traceback in local details | a bug, never a grade |

  The python grader's failures arrive as worker replies, not exceptions, and are turned into outcomes with
  `Outcome.fail` in its evaluator (§8.3); `multi` merges its sub-graders' flags in `response.merge_outcomes`.
- **A row that cannot be graded** (a JSONL line that is not JSON, a row that is not an object): a `BadRow` value.
  A reader yields it in place of the row and the engine answers it with a flagged response; nothing is raised.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .response import Outcome


class GraderValidationError(ValueError):
    """An invalid grader config or request: HTTP 400 with the OpenAI error envelope (§12.1)."""

    status_code: ClassVar[int] = 400

    def __init__(self, message: str, param: str | None, code: str = "invalid_value") -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.type = "invalid_request_error"

    def envelope(self) -> dict[str, Any]:
        """The hosted HTTP 400 body: `{"error": {"message", "type", "param", "code"}}`."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def __str__(self) -> str:
        return f"{self.status_code}: {self.message}"


class RequestError(GraderValidationError):
    """A malformed field of one request's data (`model_sample`, `sample`, `item`): `param` names it."""

    def __init__(self, message: str, param: str, code: str = "invalid_type") -> None:
        super().__init__(message, param, code)


def json_type(value: Any) -> str:
    """The JSON type of a Python value with its article, as in the hosted messages (§12.1)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return f"a {type(value).__name__}"


def join_path(prefix: str, key: str | int) -> str:
    """A `param` path one step deeper: `a.b`, `a[0]` (§12.1: relative to the grader, U45)."""
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else key


def invalid_type(path: str, expected: str, value: Any) -> GraderValidationError:
    return GraderValidationError(
        f"Invalid type for '{path}': expected {expected}, but got {json_type(value)} instead.", path, "invalid_type"
    )


def invalid_value(path: str, reason: str) -> GraderValidationError:
    return GraderValidationError(f"Invalid value for '{path}': {reason}", path, "invalid_value")


def missing(path: str) -> GraderValidationError:
    return GraderValidationError(f"Missing required parameter: '{path}'.", path, "missing_required_parameter")


class GradingFailure(Exception):
    """A grade that cannot produce a score; `flag` is the §3.3 error key it sets and `text` says why."""

    default_flag: ClassVar[str] = "other_error"

    def __init__(self, text: str, flag: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.flag = flag or self.default_flag

    def trace(self) -> dict[str, Any]:
        """What the local details should record about this failure besides its text."""
        return {}


class TemplateError(GradingFailure):
    """A reference that cannot be rendered for this sample (§5.5)."""

    default_flag = "invalid_variable_error"


class InvalidInput(TemplateError):
    """A value of the row that no grade may use (§5.7): text that is not valid Unicode, a number JSON cannot hold
    (NaN, ±Infinity), nesting past the limit. The row is refused like a `BadRow`: `other_error`, "invalid row: …",
    the field in `details["param"]`."""

    default_flag = "other_error"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"invalid row: '{field}' {problem}")
        self.field = field

    def trace(self) -> dict[str, Any]:
        return {"param": self.field}


class MetricUnavailable(GradingFailure):
    """A text_similarity metric that cannot run here (no WordNet, no embeddings endpoint) or whose call failed."""


class InputTooLarge(GradingFailure):
    """One input of a grade past a size limit that keeps the grade's cost bounded: `other_error` naming the field
    (`input`, `reference`, `sample`, `item`) and the option that sets the limit."""

    def __init__(self, field: str, text: str, option: str) -> None:
        super().__init__(f"{text} ({option})")
        self.field = field
        self.option = option

    def trace(self) -> dict[str, Any]:
        return {"param": self.field, "limit": self.option}


class ParseProblem(GradingFailure):
    """A model's reply that is JSON but whose `result` does not fit the grader (§9.3, §10)."""

    default_flag = "model_grader_parse_error"


class ModelCallError(GradingFailure):
    """A model call that failed for good (after retries, or at once when not transient): §9.3 server error.

    `rejects_response_format` is the transport's verdict that the server refused the structured-output mode asked
    for, which model graders answer by falling back to the next mode rather than failing.
    """

    default_flag = "model_grader_server_error"

    def __init__(self, text: str, *, status: int | None, attempts: int, rejects_response_format: bool = False) -> None:
        super().__init__(text)
        self.status = status
        self.attempts = attempts
        self.rejects_response_format = rejects_response_format

    def trace(self) -> dict[str, Any]:
        return {"attempts": self.attempts}


def failure_outcome(exc: BaseException, details: dict[str, Any] | None = None) -> Outcome:
    """The one way a failure becomes a grade: its flag and text for a `GradingFailure`, else an `other_error`
    that names the exception and keeps the traceback in local details (an evaluator raising is a bug)."""
    if isinstance(exc, GradingFailure):
        trace = {**(details or {}), **exc.trace()}
        return Outcome.fail(exc.flag, exc.text, details=trace or None)
    import traceback

    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-8))
    text = f"internal error: {type(exc).__name__}: {exc}"
    return Outcome.fail("other_error", text, details={**(details or {}), "traceback": tb})


class BadRow:
    """A batch row that cannot be graded, as a value: readers yield it in the row's place (e.g. a JSONL line that is
    not JSON) and the engine answers it with `other_error`, the reason and the field in local details."""

    __slots__ = ("reason", "param")

    def __init__(self, reason: str, param: str = "row") -> None:
        self.reason = reason
        self.param = param

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BadRow) and (self.reason, self.param) == (other.reason, other.param)

    def __hash__(self) -> int:
        return hash((self.reason, self.param))

    def __repr__(self) -> str:
        return f"BadRow({self.reason!r}, {self.param!r})"

    @classmethod
    def from_error(cls, error: GraderValidationError) -> BadRow:
        return cls(error.message, error.param or "row")

    def outcome(self) -> Outcome:
        return Outcome.fail("other_error", f"invalid row: {self.reason}", details={"param": self.param})
