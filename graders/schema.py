"""Typed grader configs (§4, §6–§11): one class per `type`, a union discriminated on `type`, and their parser.

Each config class declares its fields as annotations; `parse_config` checks JSON data against them and builds the
objects, or raises `GraderValidationError` naming the field with the hosted wording (§12.1). The rules are those of
a strict JSON schema: a string is never coerced to a number, an integer is a number but a boolean is not, unknown
fields are kept in `extra` (U6 decides in `validation` whether they are rejected). Where a type may appear (§4) and
the rules beyond types and enums (§12.2) live in `validation`; parse a config through `validation.parse_grader`.

This is a small checker rather than pydantic on purpose: configs are plain JSON with a handful of shapes, and
`graders run` on one string_check should not pay for building a validation library's schemas at start-up.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, Union, get_args

from .errors import GraderValidationError, invalid_type, invalid_value, missing
from .errors import join_path as _join
from .errors import json_type

GraderType = Literal["string_check", "text_similarity", "python", "score_model", "label_model", "multi"]

GRADER_TYPES: tuple[str, ...] = get_args(GraderType)

# §4: where each type is allowed: label_model only inside multi or in Evals, multi never inside multi or in Evals.
TOP_LEVEL_TYPES: tuple[str, ...] = tuple(t for t in GRADER_TYPES if t != "label_model")
MULTI_SUB_TYPES: tuple[str, ...] = tuple(t for t in GRADER_TYPES if t != "multi")
EVALS_TYPES: tuple[str, ...] = MULTI_SUB_TYPES

StringCheckOperation = Literal["eq", "ne", "like", "ilike"]
SimilarityMetric = Literal[
    "cosine",
    "fuzzy_match",
    "bleu",
    "gleu",
    "meteor",
    "rouge_1",
    "rouge_2",
    "rouge_3",
    "rouge_4",
    "rouge_5",
    "rouge_l",
]
SIMILARITY_METRICS: tuple[str, ...] = get_args(SimilarityMetric)
Role = Literal["user", "assistant", "system", "developer"]
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]


class AtLeast:
    """`Annotated[int, AtLeast(1)]`: a lower bound on a number."""

    def __init__(self, bound: float) -> None:
        self.bound = bound


class Tagged:
    """`Annotated[Union[...], Tagged("type")]`: a union of config classes told apart by their `type` field."""

    def __init__(self, key: str) -> None:
        self.key = key


class Config:
    """A parsed config node: its fields as attributes (read-only), unknown fields in `extra`."""

    extra: dict[str, Any]
    _hints: ClassVar[dict[str, Any] | None] = None

    def __init__(self, **values: Any) -> None:
        extra = values.pop("extra", None) or {}
        for name in self.field_names():
            object.__setattr__(self, name, values.pop(name, getattr(type(self), name, None)))
        if values:
            raise TypeError(f"{type(self).__name__} has no fields {sorted(values)}")
        object.__setattr__(self, "extra", dict(extra))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    @classmethod
    def hints(cls) -> dict[str, Any]:
        """The evaluated field annotations, in declaration order (computed on first use)."""
        if cls.__dict__.get("_hints") is None:
            all_hints = typing.get_type_hints(cls, include_extras=True)
            names = [n for klass in reversed(cls.__mro__) for n in getattr(klass, "__annotations__", {})]
            ordered = dict.fromkeys(n for n in names if n not in ("extra", "_hints"))
            cls._hints = {n: all_hints[n] for n in ordered}
        return cls.__dict__["_hints"]

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(cls.hints())

    def dump(self, *, exclude_none: bool = False) -> dict[str, Any]:
        """Known fields then unknown ones, as plain JSON values (nested configs dumped too)."""
        out = {name: _dump(getattr(self, name), exclude_none) for name in self.field_names()}
        out.update(self.extra)
        return {k: v for k, v in out.items() if v is not None} if exclude_none else out

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.dump() == other.dump()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.field_names())
        return f"{type(self).__name__}({fields})"


def _dump(value: Any, exclude_none: bool) -> Any:
    if isinstance(value, Config):
        return value.dump(exclude_none=exclude_none)
    if isinstance(value, list):
        return [_dump(v, exclude_none) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v, exclude_none) for k, v in value.items()}
    return value


class _Grader(Config):
    name: str | None = None


class StringCheckGrader(_Grader):
    """§6."""

    type: Literal["string_check"]
    input: str
    reference: str
    operation: StringCheckOperation


class TextSimilarityGrader(_Grader):
    """§7.1. `pass_threshold` is required only in Evals and ignored elsewhere (U18)."""

    type: Literal["text_similarity"]
    input: str
    reference: str
    evaluation_metric: SimilarityMetric
    pass_threshold: float | None = None


class PythonGrader(_Grader):
    """§8."""

    type: Literal["python"]
    source: str
    image_tag: str | None = None
    pass_threshold: float | None = None


class InputText(Config):
    type: Literal["input_text"]
    text: str


class OutputText(Config):
    type: Literal["output_text"]
    text: str


class InputImage(Config):
    type: Literal["input_image"]
    image_url: str
    detail: Literal["high", "low", "auto"] | None = None


class AudioData(Config):
    data: str
    format: Literal["mp3", "wav"]


class InputAudio(Config):
    type: Literal["input_audio"]
    input_audio: AudioData


ContentPart = Annotated[Union[InputText, OutputText, InputImage, InputAudio], Tagged("type")]
Content = Union[str, ContentPart, list[Union[str, ContentPart]]]


class Message(Config):
    """§9.1 one input message; `content` is templated (§5.2)."""

    role: Role
    type: Literal["message"] | None = None
    content: Content


class SamplingParams(Config):
    """§9.1; note the spelling `max_completions_tokens`."""

    seed: int | None = None
    top_p: float | None = None
    temperature: float | None = None
    max_completions_tokens: Annotated[int, AtLeast(1)] | None = None
    reasoning_effort: ReasoningEffort | None = None


class ScoreModelGrader(_Grader):
    """§9. `range` defaults to [0, 1]; its shape (exactly two numbers, min < max) is checked in validation."""

    type: Literal["score_model"]
    model: str
    input: list[Message]
    range: list[float] | None = None
    sampling_params: SamplingParams | None = None
    pass_threshold: float | None = None

    @property
    def bounds(self) -> tuple[float, float]:
        return (self.range[0], self.range[1]) if self.range else (0.0, 1.0)


class LabelModelGrader(_Grader):
    """§10. `sampling_params` is untyped upstream and passed through (U38)."""

    type: Literal["label_model"]
    model: str
    input: list[Message]
    labels: list[str]
    passing_labels: list[str]
    sampling_params: dict[str, Any] | None = None


class MultiGrader(_Grader):
    """§11: `graders` is a named map whose keys are the formula's variables."""

    type: Literal["multi"]
    graders: dict[str, AnyGrader]
    calculate_output: str


AnyGrader = Annotated[
    Union[StringCheckGrader, TextSimilarityGrader, PythonGrader, ScoreModelGrader, LabelModelGrader, MultiGrader],
    Tagged("type"),
]

GraderConfig = Union[
    StringCheckGrader, TextSimilarityGrader, PythonGrader, ScoreModelGrader, LabelModelGrader, MultiGrader
]

# -- parsing ----------------------------------------------------------------------------------------------------


def parse_config(data: Any) -> GraderConfig:
    """The typed config for JSON `data` whose `type` is a known grader type (checked before, §12.2 check 1).

    Every field is checked; of the problems found, a missing field or a wrong JSON type is reported before a wrong
    value, and otherwise the first in field order (§12.2 checks 2 and 3).
    """
    problems: list[GraderValidationError] = []
    config = _value(data, AnyGrader, "", problems)
    if problems:
        raise next((p for p in problems if p.code != "invalid_value"), problems[0])
    return config


_Problems = list[GraderValidationError]


def _quoted(values: tuple[Any, ...]) -> str:
    shown = [repr(v) for v in values]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


def _words(hint: Any) -> list[str]:
    """The JSON types a hint accepts, as the hosted messages word them."""
    origin = typing.get_origin(hint)
    if origin is Annotated:
        return _words(get_args(hint)[0]) if not isinstance(get_args(hint)[1], Tagged) else ["an object"]
    if origin is Union or origin is types.UnionType:
        out: list[str] = []
        for arg in get_args(hint):
            out += [w for w in _words(arg) if w not in out]
        return out
    if origin is Literal:
        return [json_type(get_args(hint)[0])]
    if origin is list:
        return ["an array"]
    if origin is dict or (isinstance(hint, type) and issubclass(hint, Config)):
        return ["an object"]
    if hint is type(None):
        return []
    return [{str: "a string", float: "a number", int: "an integer", bool: "a boolean"}.get(hint, "a value")]


def _expected(hint: Any) -> str:
    words = _words(hint)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


_BAD = object()


def _value(value: Any, hint: Any, path: str, problems: _Problems) -> Any:
    """`value` checked against `hint`; a problem is recorded (and `_BAD` returned) instead of raised."""
    where = path or "grader"
    origin = typing.get_origin(hint)
    if origin is Annotated:
        inner, marker = get_args(hint)[0], get_args(hint)[1]
        if isinstance(marker, Tagged):
            return _tagged(value, inner, marker.key, path, problems)
        checked = _value(value, inner, path, problems)
        if isinstance(marker, AtLeast) and checked is not _BAD and checked < marker.bound:
            problems.append(invalid_value(where, f"input should be greater than or equal to {marker.bound:g}, got {value!r}."))
            return _BAD
        return checked
    if origin is Union or origin is types.UnionType:
        return _union(value, get_args(hint), path, problems)
    if origin is Literal:
        allowed = get_args(hint)
        if isinstance(value, str) and value in allowed:
            return value
        problems.append(invalid_value(where, f"{value!r} is not supported; expected {_quoted(allowed)}."))
        return _BAD
    if origin is list:
        if not isinstance(value, list):
            problems.append(invalid_type(where, "an array", value))
            return _BAD
        (item,) = get_args(hint)
        return [_value(v, item, _join(path, i), problems) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            problems.append(invalid_type(where, "an object", value))
            return _BAD
        item = get_args(hint)[1]
        return {k: _value(v, item, _join(path, k), problems) for k, v in value.items()}
    if isinstance(hint, type) and issubclass(hint, Config):
        return _config(value, hint, path, problems)
    if hint is Any or _fits(value, hint):
        return float(value) if hint is float else value
    problems.append(invalid_type(where, _expected(hint), value))
    return _BAD


def _fits(value: Any, hint: Any) -> bool:
    if hint is type(None):
        return value is None
    if isinstance(value, bool):
        return hint is bool
    if hint is float:
        return isinstance(value, (int, float))
    return isinstance(value, hint)


_KIND_OF_WORD = {"a string": "string", "a number": "number", "an integer": "number", "a boolean": "boolean",
                 "an array": "array", "an object": "object", "null": "null"}  # fmt: skip
"""The JSON kind behind each type word: what picks the branch of an untagged union (an integer is a number)."""


def _union(value: Any, options: tuple[Any, ...], path: str, problems: _Problems) -> Any:
    """An untagged union: the branch is the one whose JSON kind the value has (their kinds never overlap here)."""
    kind = _KIND_OF_WORD.get(json_type(value), "other")
    for option in options:
        if option is type(None):
            if value is None:
                return None
            continue
        if any(_KIND_OF_WORD[w] == kind for w in _words(option)):
            return _value(value, option, path, problems)
    words: list[str] = []
    for option in options:
        words += [w for w in _words(option) if w not in words]
    expected = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
    problems.append(invalid_type(path or "grader", expected, value))
    return _BAD


def _tag_of(cls: type[Config], key: str) -> str:
    return str(get_args(cls.hints()[key])[0])


def _tagged(value: Any, union: Any, key: str, path: str, problems: _Problems) -> Any:
    classes = {_tag_of(cls, key): cls for cls in get_args(union)}
    if not isinstance(value, Mapping):
        problems.append(invalid_type(path or "grader", "an object", value))
        return _BAD
    if key not in value:
        problems.append(missing(_join(path, key)))
        return _BAD
    cls = classes.get(value[key]) if isinstance(value[key], str) else None
    if cls is None:
        expected = ", ".join(repr(t) for t in classes)
        problems.append(invalid_value(_join(path, key), f"{value[key]!r} is not supported; expected one of {expected}."))
        return _BAD
    return _config(value, cls, path, problems)


def _config(value: Any, cls: type[Config], path: str, problems: _Problems) -> Any:
    if not isinstance(value, Mapping):
        problems.append(invalid_type(path or "grader", "an object", value))
        return _BAD
    hints = cls.hints()
    values: dict[str, Any] = {}
    before = len(problems)
    for name, hint in hints.items():
        if name in value:
            values[name] = _value(value[name], hint, _join(path, name), problems)
        elif not hasattr(cls, name):
            problems.append(missing(_join(path, name)))
    if len(problems) > before:
        return _BAD
    extra = {k: v for k, v in value.items() if k not in hints}
    return cls(**values, extra=extra)
