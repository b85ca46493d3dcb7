"""The wire shapes: `Outcome` (what every evaluator returns) and `GraderRunResponse` (what `/run` returns), §3.

This is the only module that knows the 24 error keys, their order and defaults, and the key order of the response.
Responses are lean: they hold the outcome and build the wire dict only when asked (`model_dump`), so bulk scoring
pays for a few attribute stores per row, not for 30-key dicts nobody reads.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
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


class FrozenDict(dict):
    """A dict that refuses every change: the containers of an `Outcome`, shared by the responses of many samples.

    It is a real `dict` (JSON encoders, `isinstance` checks and `==` work as before); `dict(d)` or `d.copy()` gives
    a plain, changeable copy.
    """

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("a grade's results are read-only; copy them first, e.g. dict(response.details)")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse

    def __reduce__(self) -> Any:
        return (FrozenDict, (dict(self),))

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: Any) -> FrozenDict:
        return self


class FrozenList(list):
    """A list that refuses every change (see `FrozenDict`); `list(x)` gives a changeable copy."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("a grade's results are read-only; copy them first, e.g. list(value)")

    __setitem__ = __delitem__ = append = extend = insert = pop = remove = clear = sort = reverse = _refuse
    __iadd__ = __imul__ = _refuse

    def __reduce__(self) -> Any:
        return (FrozenList, (list(self),))

    def __copy__(self) -> FrozenList:
        return self

    def __deepcopy__(self, memo: Any) -> FrozenList:
        return self


FREEZE_DEPTH = 64
"""Nesting kept in local details; anything deeper (a judge's reply nested without end) is kept as its text."""


def freeze(value: Any, depth: int = 0) -> Any:
    """`value` with every dict and list replaced by a read-only copy, all the way down (tuples keep their type)."""
    cls = value.__class__
    if cls is FrozenDict or cls is FrozenList or cls is str or cls is float or cls is int or value is None or cls is bool:
        return value
    if isinstance(value, (dict, list, tuple)):
        if depth >= FREEZE_DEPTH:
            return f"<nested deeper than {FREEZE_DEPTH} levels>"
        if isinstance(value, dict):
            return FrozenDict({k: freeze(v, depth + 1) for k, v in value.items()})
        if isinstance(value, tuple):
            return tuple(freeze(v, depth + 1) for v in value)
        return FrozenList([freeze(v, depth + 1) for v in value])
    return value


_EMPTY = FrozenDict()


class Outcome:
    """The one internal result of an evaluation (design: the flow of one grade).

    Outcomes are immutable, all the way down: evaluators share one instance between samples (a plain pass, a
    pool failure) and one details dict between rows, so a caller who changes what a response holds must never
    change the next response. Attributes cannot be set; `errors`, `usage`, `sub_rewards` and `details` are
    read-only (`FrozenDict`); `replace` makes a changed copy.
    `errors` holds only the keys that are set (flags → True, text keys → str); everything absent takes its §3.3
    default when the wire dict is built. `details` is local trace data (rendered templates, metric signature,
    judge steps, grader stdout): it never enters the hosted wire shape.
    """

    __slots__ = ("score", "errors", "usage", "sampled_model_name", "sub_rewards", "details")

    score: float
    errors: dict[str, Any] | None
    usage: dict[str, Usage] | None
    sampled_model_name: str | None
    sub_rewards: dict[str, float] | None
    details: dict[str, Any] | None

    def __init__(
        self,
        score: float = 0.0,
        errors: dict[str, Any] | None = None,
        usage: dict[str, Usage] | None = None,
        sampled_model_name: str | None = None,
        sub_rewards: dict[str, float] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        _SET_SCORE(self, score)
        _SET_ERRORS(self, errors if errors is None or errors.__class__ is FrozenDict else FrozenDict(errors))
        _SET_USAGE(self, usage if usage is None or usage.__class__ is FrozenDict else freeze(usage))
        _SET_SAMPLED(self, sampled_model_name)
        _SET_SUB_REWARDS(self, sub_rewards if sub_rewards is None or sub_rewards.__class__ is FrozenDict else FrozenDict(sub_rewards))
        _SET_DETAILS(self, details if details is None or details.__class__ is FrozenDict else freeze(details))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"outcomes are immutable; use replace({name}=...) for a changed copy")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("outcomes are immutable")

    def replace(self, **changes: Any) -> Outcome:
        """A copy with some fields changed (the containers given are frozen like the constructor's)."""
        fields = {k: getattr(self, k) for k in self.__slots__}
        fields.update(changes)
        return Outcome(**fields)

    def __reduce__(self) -> Any:
        return (Outcome, tuple(getattr(self, k) for k in self.__slots__))

    def __copy__(self) -> Outcome:
        return self

    def __deepcopy__(self, memo: Any) -> Outcome:
        return self

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Outcome) and all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__ if k == "score" or getattr(self, k) is not None)
        return f"Outcome({shown})"

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


# The slots' own setters, bound once: an outcome is built for almost every grade, and these skip the attribute
# lookup that `object.__setattr__` repeats (Outcome refuses plain assignment).
_SET_SCORE, _SET_ERRORS, _SET_USAGE, _SET_SAMPLED, _SET_SUB_REWARDS, _SET_DETAILS = (
    Outcome.__dict__[name].__set__ for name in Outcome.__slots__
)


class Merged:
    """Several outcomes' flags, texts, usage and sampled model combined (§11.4); the score is the caller's."""

    __slots__ = ("errors", "error_lines", "usage", "sampled_model_name")

    def __init__(
        self, errors: dict[str, Any] | None, error_lines: list[str], usage: dict[str, Usage] | None, sampled: str | None
    ) -> None:
        self.errors = errors
        self.error_lines = error_lines
        self.usage = usage
        self.sampled_model_name = sampled


def merge_outcomes(outcomes: dict[str, Outcome], *, first_sampled_model: bool = True) -> Merged:
    """§11.4 for `multi`: every flag any sub-grader set; each text key as one `"<key>: <text>"` line per failing
    sub-grader, joined by newlines (U43); usage summed per model; the first sub-grader's sampled model in key
    order, or none (U44)."""
    errors: dict[str, Any] | None = None
    lines: list[str] = []
    usage: dict[str, Usage] | None = None
    sampled: str | None = None
    for key, o in outcomes.items():
        if o.errors:
            errors = errors if errors is not None else {}
            for flag in FLAG_KEYS:
                if o.errors.get(flag):
                    errors[flag] = True
                    text_key = DETAILS_KEY.get(flag)
                    text = o.errors.get(text_key) if text_key else None
                    if text_key and text is not None:
                        errors[text_key] = f"{errors[text_key]}\n{key}: {text}" if text_key in errors else f"{key}: {text}"
            lines.append(f"{key}: {o.error_text()}")
        if o.usage:
            usage = usage if usage is not None else {}
            for model, u in o.usage.items():
                add_usage(usage, model, u)
        if sampled is None and o.sampled_model_name and first_sampled_model:
            sampled = o.sampled_model_name
    return Merged(errors, lines, usage, sampled)


class GraderRunResponse:
    """`GraderRunResponse` (§3.2): `model_dump()` is the exact wire JSON with the observed key order.

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
        """The local trace, read-only (it may be shared with other responses): `dict(...)` to change a copy."""
        return self.outcome.details or _EMPTY

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

    def model_dump(self, *, mode: Literal["json", "python"] | str = "python", include_details: bool = False) -> dict[str, Any]:
        """The wire dict in the §3.2 key order; `include_details` appends the local trace under `"details"`.

        `mode` is pydantic's: the wire fields are plain JSON values either way; in `"json"` mode the local trace
        is made JSON-safe too (tuples to lists, other objects to their repr), in `"python"` mode it is copied as is.
        """
        mode = _check_mode(mode)
        out = {
            "reward": float(self.reward),
            "metadata": self.metadata,
            "sub_rewards": self.sub_rewards,
            "model_grader_token_usage_per_model": self.model_grader_token_usage_per_model,
        }
        if include_details:
            out["details"] = _dump(self.details, mode)
        return out

    def model_dump_json(self, *, indent: int | None = None, include_details: bool = False) -> str:
        """`model_dump(mode="json")` as a JSON string (non-ASCII kept)."""
        return json.dumps(self.model_dump(mode="json", include_details=include_details), indent=indent, ensure_ascii=False)

    def __repr__(self) -> str:
        flags = [k for k in FLAG_KEYS if (self.outcome.errors or {}).get(k)]
        return f"GraderRunResponse(reward={self.reward!r}, name={self.name!r}, type={self.type!r}, errors={flags})"


def _check_mode(mode: str) -> str:
    if mode not in ("json", "python"):
        raise ValueError(f"mode must be 'json' or 'python', got {mode!r}")
    return mode


def _dump(value: Any, mode: str) -> Any:
    """A copy of local trace data; in json mode made JSON-safe (tuples to lists, unknown objects to their repr)."""
    if isinstance(value, dict):
        return {(str(k) if mode == "json" else k): _dump(v, mode) for k, v in value.items()}
    if isinstance(value, list):
        return [_dump(v, mode) for v in value]
    if isinstance(value, tuple):
        return [_dump(v, mode) for v in value] if mode == "json" else tuple(_dump(v, mode) for v in value)
    if mode == "python" or value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


class ResponseFormat:
    """The response options resolved once per compiled grader (U4, §3.3 `response.error_keys`)."""

    __slots__ = ("token_usage_format", "error_keys", "no_errors")

    def __init__(self, token_usage_format: str = "object", error_keys: tuple[str, ...] = ERROR_KEYS) -> None:
        self.token_usage_format = token_usage_format
        self.error_keys = error_keys
        self.no_errors: dict[str, Any] = {k: None if k in TEXT_ERROR_KEYS else False for k in error_keys}
        """`errors` of a response with nothing set, built once (copied per response: callers may mutate it)."""

    @classmethod
    def from_options(cls, token_usage_format: str, error_keys: str) -> ResponseFormat:
        return cls(token_usage_format, ERROR_KEYS if error_keys == "observed24" else SCHEMA_ERROR_KEYS)


_FLOATS: dict[float, bytes] = {}
_dumps_str: Callable[[str], bytes] = lambda text: json.dumps(text, ensure_ascii=False).encode()
"""orjson's dumps once a `ResponseEncoder` exists: the single-response path never imports orjson."""
_FLOAT_CACHE = 1 << 16


def _float(x: float) -> bytes:
    """A float exactly as `json.dumps` writes it (shortest repr; orjson spells exponents differently).

    Rewards repeat (0.0, 1.0, a chunk's shared execution time), so texts are cached; zero is not, since 0.0 and
    -0.0 are equal keys with different texts.
    """
    text = _FLOATS.get(x)
    if text is not None:
        return text
    if not x:
        return b"-0.0" if math.copysign(1.0, x) < 0 else b"0.0"
    if not math.isfinite(x):
        return b"NaN" if x != x else (b"Infinity" if x > 0 else b"-Infinity")
    text = float.__repr__(x).encode()
    if len(_FLOATS) < _FLOAT_CACHE:
        _FLOATS[x] = text
    return text


def _value(value: Any) -> bytes:
    """One JSON value as compact `json.dumps(..., ensure_ascii=False)` bytes."""
    cls = value.__class__
    if cls is str:
        try:
            return _dumps_str(value)
        except (TypeError, UnicodeEncodeError):  # a lone surrogate (input read with surrogateescape): escaped like the standard library
            return json.dumps(value).encode()
    if cls is float:
        return _float(value)
    if value is True:
        return b"true"
    if value is False:
        return b"false"
    if value is None:
        return b"null"
    if cls is dict:
        return b"{" + b",".join(_value(str(k)) + b":" + _value(v) for k, v in value.items()) + b"}"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


class ResponseEncoder:
    """Wire JSON lines for one compiled grader, byte-equal to compact ``json.dumps(model_dump(), ensure_ascii=False)``.

    Bulk output pays for the parts that vary per row only: the name, type and the 24-key errors object of a row
    without errors are encoded once, and a failed row's errors object is written straight from its set flags.
    """

    __slots__ = ("_fmt", "_head", "_no_errors", "_keys", "_labels", "_plain")

    def __init__(self, name: str, type: str, fmt: ResponseFormat) -> None:
        global _dumps_str
        import orjson

        _dumps_str = orjson.dumps
        self._fmt = fmt
        self._head = b',"metadata":{"name":' + _value(name) + b',"type":' + _value(type) + b',"errors":'
        self._keys = [(k, _value(k) + b":", b"null" if k in TEXT_ERROR_KEYS else b"false") for k in fmt.error_keys]
        self._no_errors = b"{" + b",".join(q + d for _, q, d in self._keys) + b"}"
        self._labels: dict[str, bytes] = {}
        # A clean row without sub-rewards or usage: everything but the two numbers is constant.
        self._plain = (self._head + self._no_errors + b',"execution_time":',
                       b',"scores":{},"token_usage":null,"sampled_model_name":null},"sub_rewards":{},"model_grader_token_usage_per_model":{}}')

    def errors(self, set_: dict[str, Any] | None) -> bytes:
        """The errors object: every key of the format in order, set values from `set_`, defaults elsewhere."""
        if not set_:
            return self._no_errors
        return b"{" + b",".join(q + (_value(set_[k]) if k in set_ else d) for k, q, d in self._keys) + b"}"

    def _scores(self, scores: dict[str, float] | None) -> bytes:
        if not scores:
            return b"{}"
        labels = self._labels
        parts = []
        for key, value in scores.items():
            label = labels.get(key)
            if label is None:
                label = labels[key] = _value(key) + b":"
            parts.append(label + (_float(value) if value.__class__ is float else _value(value)))
        return b"{" + b",".join(parts) + b"}"

    def encode(self, response: GraderRunResponse, *, include_details: bool = False) -> bytes:
        """One response as JSON bytes (no newline)."""
        outcome = response.outcome
        elapsed = response.execution_time
        if not (outcome.errors or outcome.sub_rewards or outcome.usage or include_details) and outcome.sampled_model_name is None and elapsed.__class__ is float:
            head, tail = self._plain
            return b'{"reward":' + _float(float(response.reward)) + head + _float(elapsed) + tail
        scores = self._scores(outcome.sub_rewards)
        if outcome.usage:
            per_model = _value(response.model_grader_token_usage_per_model)
            usage = _value(response.token_usage)
        else:
            per_model, usage = b"{}", b"null"
        name = outcome.sampled_model_name
        out = b"".join(
            (
                b'{"reward":',
                _float(float(response.reward)),
                self._head,
                self.errors(outcome.errors),
                b',"execution_time":',
                _value(response.execution_time),
                b',"scores":',
                scores,
                b',"token_usage":',
                usage,
                b',"sampled_model_name":',
                b"null" if name is None else _value(name),
                b'},"sub_rewards":',
                scores,
                b',"model_grader_token_usage_per_model":',
                per_model,
            )
        )
        if include_details:
            return out + b',"details":' + _value(_dump(response.details, "json")) + b"}"
        return out + b"}"


class GraderValidateResponse:
    """`/validate` success (§3.5): the grader echoed in the order sent, a generated `name` appended last.

    `warnings` are local: lines naming what the service accepts but what will not work as written (a python
    `source` that does not compile, U47 `warn`; a template reference that can never resolve). They are never part
    of the echo, whose shape stays the hosted one.
    """

    __slots__ = ("grader", "warnings")

    def __init__(self, grader: dict[str, Any] | None = None, warnings: tuple[str, ...] = ()) -> None:
        self.grader: dict[str, Any] = grader if grader is not None else {}
        self.warnings: tuple[str, ...] = tuple(warnings)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GraderValidateResponse) and (self.grader, self.warnings) == (other.grader, other.warnings)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = f", warnings={list(self.warnings)!r}" if self.warnings else ""
        return f"GraderValidateResponse(grader={self.grader!r}{shown})"

    def model_dump(self, *, mode: Literal["json", "python"] | str = "python") -> dict[str, Any]:
        """`{"grader": echo}`, a copy; `mode` as in pydantic (json mode makes any non-JSON value JSON-safe)."""
        return {"grader": _dump(self.grader, _check_mode(mode))}

    def model_dump_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=indent, ensure_ascii=False)
