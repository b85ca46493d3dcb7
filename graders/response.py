"""The wire shapes: `Outcome` (what every evaluator returns) and `GraderRunResponse` (what `/run` returns), spec §3.

This is the only module that knows the 24 error keys, their order and defaults, and the key order of the response.
Responses are lean: they hold the outcome and build the wire dict only when asked (`model_dump`), so bulk scoring
pays for a few attribute stores per row, not for 30-key dicts nobody reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

# §3.2 key order, observed in a hosted python-grader response. The flags that carry text are "details" keys.
ERROR_KEYS: tuple[str, ...] = (
    "formula_parse_error",
    "sample_parse_error",
    "sample_parse_error_details",
    "truncated_observation_error",
    "unresponsive_reward_error",
    "invalid_variable_error",
    "invalid_variable_error_details",
    "other_error",
    "python_grader_server_error",
    "python_grader_server_error_type",
    "python_grader_runtime_error",
    "python_grader_runtime_error_details",
    "model_grader_server_error",
    "model_grader_refusal_error",
    "model_grader_refusal_error_details",
    "model_grader_parse_error",
    "model_grader_parse_error_details",
    "model_grader_exceeded_max_tokens_error",
    "model_grader_server_error_details",
    "endpoint_grader_internal_error",
    "endpoint_grader_internal_error_details",
    "endpoint_grader_server_error",
    "endpoint_grader_server_error_details",
    "endpoint_grader_safety_check_error",
)

# §3.3: keys present in real responses but not declared by the schema (marked † there).
UNDECLARED_ERROR_KEYS: frozenset[str] = frozenset(
    {
        "sample_parse_error_details",
        "invalid_variable_error_details",
        "model_grader_refusal_error_details",
        "model_grader_parse_error_details",
        "model_grader_exceeded_max_tokens_error",
        "endpoint_grader_internal_error",
        "endpoint_grader_internal_error_details",
        "endpoint_grader_server_error",
        "endpoint_grader_server_error_details",
        "endpoint_grader_safety_check_error",
    }
)
SCHEMA_ERROR_KEYS: tuple[str, ...] = tuple(k for k in ERROR_KEYS if k not in UNDECLARED_ERROR_KEYS)

TEXT_ERROR_KEYS: frozenset[str] = frozenset(k for k in ERROR_KEYS if k.endswith(("_details", "_type")))
FLAG_KEYS: tuple[str, ...] = tuple(k for k in ERROR_KEYS if k not in TEXT_ERROR_KEYS)

# The text key that explains each flag, where the hosted shape has one.
DETAILS_KEY: dict[str, str] = {
    "sample_parse_error": "sample_parse_error_details",
    "invalid_variable_error": "invalid_variable_error_details",
    "python_grader_server_error": "python_grader_server_error_type",
    "python_grader_runtime_error": "python_grader_runtime_error_details",
    "model_grader_server_error": "model_grader_server_error_details",
    "model_grader_refusal_error": "model_grader_refusal_error_details",
    "model_grader_parse_error": "model_grader_parse_error_details",
    "endpoint_grader_internal_error": "endpoint_grader_internal_error_details",
    "endpoint_grader_server_error": "endpoint_grader_server_error_details",
}

USAGE_KEYS: tuple[str, ...] = ("prompt_tokens", "total_tokens", "completion_tokens", "cached_tokens")
"""§3.2 token counters, in the OpenAPI example's order."""

Usage = dict[str, int]


def add_usage(into: dict[str, Usage], model: str, usage: Usage) -> None:
    """Add one call's counters to the per-model totals (§3.4, §11.4)."""
    total = into.get(model)
    if total is None:
        into[model] = {k: int(usage.get(k, 0) or 0) for k in USAGE_KEYS}
    else:
        for k in USAGE_KEYS:
            total[k] += int(usage.get(k, 0) or 0)


def sum_usage(per_model: dict[str, Usage]) -> Usage:
    """All models' counters added together, for `metadata.token_usage`."""
    return {k: sum(u.get(k, 0) for u in per_model.values()) for k in USAGE_KEYS}


@dataclass(slots=True)
class Outcome:
    """The one internal result of an evaluation (design: the flow of one grade).

    Outcomes are never mutated once returned (evaluators may share one instance between samples).
    `errors` holds only the keys that are set (flags → True, text keys → str); everything absent takes its §3.3
    default when the wire dict is built. `details` is local trace data (rendered templates, metric signature,
    judge steps, grader stdout): it never enters the hosted wire shape.
    """

    score: float = 0.0
    errors: dict[str, Any] | None = None
    usage: dict[str, Usage] | None = None
    sampled_model_name: str | None = None
    sub_rewards: dict[str, float] | None = None
    details: dict[str, Any] | None = None

    @classmethod
    def fail(cls, flag: str, text: str | None = None, *, details: dict[str, Any] | None = None) -> Outcome:
        """A failed grade: `flag` set, its details/type key filled with `text` where the shape has one, reward 0.0.

        Flags without a text key (e.g. `other_error`) keep `text` in `details["error"]`, so it is never lost.
        """
        if flag not in FLAG_KEYS:
            raise ValueError(f"unknown error flag {flag!r}")
        errors: dict[str, Any] = {flag: True}
        key = DETAILS_KEY.get(flag)
        if text is not None:
            if key is not None:
                errors[key] = text
            details = {"error": text, **(details or {})}
        return cls(0.0, errors, details=details)

    @property
    def failed(self) -> bool:
        return bool(self.errors)

    def error_text(self) -> str | None:
        """The most specific human-readable reason this outcome failed, if any."""
        if not self.errors:
            return None
        if self.details and isinstance(self.details.get("error"), str):
            return self.details["error"]
        for key in ERROR_KEYS:
            if key in TEXT_ERROR_KEYS and self.errors.get(key):
                return str(self.errors[key])
        return ", ".join(k for k in FLAG_KEYS if self.errors.get(k))


class GraderRunResponse:
    """`GraderRunResponse` (spec §3.2): `model_dump()` is the exact wire JSON with the observed key order.

    Attributes mirror the wire fields; `details` is the local trace, included only with
    ``model_dump(include_details=True)``.
    """

    __slots__ = ("reward", "name", "type", "execution_time", "outcome", "_fmt")

    def __init__(
        self,
        reward: float,
        name: str,
        type: str,
        execution_time: float,
        outcome: Outcome,
        fmt: ResponseFormat,
    ) -> None:
        self.reward = reward
        self.name = name
        self.type = type
        self.execution_time = execution_time
        self.outcome = outcome
        self._fmt = fmt

    @property
    def errors(self) -> dict[str, Any]:
        """All error keys with their §3.3 defaults, in the observed order."""
        set_ = self.outcome.errors
        if not set_:
            return self._fmt.no_errors.copy()
        return {k: set_.get(k, None if k in TEXT_ERROR_KEYS else False) for k in self._fmt.error_keys}

    @property
    def failed(self) -> bool:
        return bool(self.outcome.errors)

    @property
    def sub_rewards(self) -> dict[str, float]:
        return dict(self.outcome.sub_rewards or {})

    @property
    def details(self) -> dict[str, Any]:
        return self.outcome.details or {}

    @property
    def sampled_model_name(self) -> str | None:
        return self.outcome.sampled_model_name

    @property
    def model_grader_token_usage_per_model(self) -> dict[str, Usage]:
        return {m: dict(u) for m, u in (self.outcome.usage or {}).items()}

    @property
    def token_usage(self) -> Usage | int | None:
        """§3.4 with U4 `response.token_usage_format`: null without model calls."""
        per_model = self.outcome.usage
        if not per_model or self._fmt.token_usage_format == "null":
            return None
        total = sum_usage(per_model)
        return total["total_tokens"] if self._fmt.token_usage_format == "integer" else total

    @property
    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "errors": self.errors,
            "execution_time": self.execution_time,
            "scores": self.sub_rewards,
            "token_usage": self.token_usage,
            "sampled_model_name": self.outcome.sampled_model_name,
        }

    def model_dump(self, mode: str = "json", *, include_details: bool = False) -> dict[str, Any]:
        """The wire dict in the §3.2 key order; `include_details` appends the local trace under `"details"`."""
        out = {
            "reward": float(self.reward),
            "metadata": self.metadata,
            "sub_rewards": self.sub_rewards,
            "model_grader_token_usage_per_model": self.model_grader_token_usage_per_model,
        }
        if include_details:
            out["details"] = _jsonable(self.details)
        return out

    def model_dump_json(self, *, indent: int | None = None, include_details: bool = False) -> str:
        return json.dumps(self.model_dump(include_details=include_details), indent=indent, ensure_ascii=False)

    def __repr__(self) -> str:
        flags = [k for k in FLAG_KEYS if (self.outcome.errors or {}).get(k)]
        return f"GraderRunResponse(reward={self.reward!r}, name={self.name!r}, type={self.type!r}, errors={flags})"


def _jsonable(value: Any) -> Any:
    """Local trace data made JSON-safe (tuples to lists, unknown objects to their repr)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """The response options resolved once per compiled grader (U4, §3.3 `response.error_keys`)."""

    token_usage_format: Literal["object", "integer", "null"] = "object"
    error_keys: tuple[str, ...] = ERROR_KEYS
    no_errors: dict[str, Any] = field(init=False, repr=False, compare=False, hash=False)
    """`errors` of a response with nothing set, built once (copied per response: callers may mutate it)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "no_errors", {k: None if k in TEXT_ERROR_KEYS else False for k in self.error_keys})

    @classmethod
    def from_options(cls, token_usage_format: str, error_keys: str) -> ResponseFormat:
        return cls(token_usage_format, ERROR_KEYS if error_keys == "observed24" else SCHEMA_ERROR_KEYS)  # type: ignore[arg-type]


@dataclass(slots=True)
class GraderValidateResponse:
    """`/validate` success (spec §3.5): the grader echoed in the order sent, a generated `name` appended last."""

    grader: dict[str, Any] = field(default_factory=dict)

    def model_dump(self, mode: str = "json") -> dict[str, Any]:
        return {"grader": self.grader}

    def model_dump_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self.model_dump(), indent=indent, ensure_ascii=False)
