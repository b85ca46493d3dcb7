"""Typed grader configs (spec §4, §6–§11): one pydantic model per `type`, a union discriminated on `type`.

The models are strict (a JSON string is never coerced to a number) and keep unknown fields (U6 decides in
`validation` whether they are rejected). Where a type may appear (§4) and the rules beyond types and enums (§12.2)
live in `validation`; parse a config through `validation.parse_grader`, not these models directly.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

GraderType = Literal["string_check", "text_similarity", "python", "score_model", "label_model", "multi"]

GRADER_TYPES: tuple[str, ...] = get_args(GraderType)

# §4: where each type is allowed.
TOP_LEVEL_TYPES: tuple[str, ...] = ("string_check", "text_similarity", "python", "score_model", "multi")
MULTI_SUB_TYPES: tuple[str, ...] = ("string_check", "text_similarity", "python", "score_model", "label_model")
EVALS_TYPES: tuple[str, ...] = ("string_check", "text_similarity", "python", "score_model", "label_model")

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


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", frozen=True)


class _Grader(_Model):
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


class InputText(_Model):
    type: Literal["input_text"]
    text: str


class OutputText(_Model):
    type: Literal["output_text"]
    text: str


class InputImage(_Model):
    type: Literal["input_image"]
    image_url: str
    detail: Literal["high", "low", "auto"] | None = None


class AudioData(_Model):
    data: str
    format: Literal["mp3", "wav"]


class InputAudio(_Model):
    type: Literal["input_audio"]
    input_audio: AudioData


ContentPart = Annotated[Union[InputText, OutputText, InputImage, InputAudio], Field(discriminator="type")]
Content = Union[str, ContentPart, list[Union[str, ContentPart]]]


class Message(_Model):
    """§9.1 one input message; `content` is templated (§5.2)."""

    role: Role
    type: Literal["message"] | None = None
    content: Content


class SamplingParams(_Model):
    """§9.1; note the spelling `max_completions_tokens`."""

    seed: int | None = None
    top_p: float | None = None
    temperature: float | None = None
    max_completions_tokens: Annotated[int, Field(ge=1)] | None = None
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
    Field(discriminator="type"),
]
MultiGrader.model_rebuild()

GraderConfig = Union[
    StringCheckGrader, TextSimilarityGrader, PythonGrader, ScoreModelGrader, LabelModelGrader, MultiGrader
]

GRADER_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyGrader)
