"""Structured-output schemas for model graders and the fallback for servers that reject them.

- score_model (§9.2, U33 `score_model.response_schema`): `cookbook` is the OpenAI cookbook RFT notebook's strict
  `float_score_classification` schema (`steps` + numeric `result`); U34 `score_model.range_in_schema` fills the
  grader's range into the `result` description instead of the cookbook's RANGE_MIN/RANGE_MAX placeholders.
  `minimal` asks for `result` alone.
- label_model (§10, U37 `label_model.response_schema`): `result` constrained to `labels` by an enum, with
  (`enum_steps`) or without (`enum_only`) `steps`.

Response-format modes, in fallback order: `json_schema` (strict schema), `json_object` (JSON mode, the schema
written into the prompt), `text` (no response format, the schema in the prompt, JSON extracted from the text).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from ...options import LabelModelOptions, ScoreModelOptions

MODES: tuple[str, ...] = ("json_schema", "json_object", "text")

_STEPS: dict[str, Any] = {
    "type": "array",
    "description": "A sequence of steps outlining the reasoning process.",
    "items": {
        "type": "object",
        "properties": {
            "description": {"type": "string", "description": "Detailed description of the reasoning in this step."},
            "conclusion": {"type": "string", "description": "The conclusion of the reasoning in this step."},
        },
        "required": ["description", "conclusion"],
        "additionalProperties": False,
    },
}


def _number(x: float) -> str:
    return format(x, "g") if float(x).is_integer() else repr(float(x))


def score_schema(bounds: tuple[float, float], opts: ScoreModelOptions) -> dict[str, Any]:
    """The `json_schema` object (name, strict, schema) for one score_model grader (§9.2, U33, U34)."""
    low, high = (_number(bounds[0]), _number(bounds[1])) if opts.range_in_schema else ("RANGE_MIN", "RANGE_MAX")
    result = {
        "type": "number",
        "description": f"The float score assigned to the response. This should be in inclusive range {low} to {high}.",
    }
    if opts.response_schema == "minimal":
        properties: dict[str, Any] = {"result": {"type": "number"}}
    else:
        properties = {"steps": _STEPS, "result": result}
    return {
        "name": "float_score_classification",
        "strict": True,
        "schema": {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False},
    }


def label_schema(labels: list[str], opts: LabelModelOptions) -> dict[str, Any]:
    """The `json_schema` object for one label_model grader (§10, U37)."""
    result = {"type": "string", "enum": list(labels), "description": "The label assigned to the response."}
    properties: dict[str, Any] = {"steps": _STEPS, "result": result} if opts.response_schema == "enum_steps" else {"result": result}
    return {
        "name": "label_classification",
        "strict": True,
        "schema": {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False},
    }


def instruction(schema: dict[str, Any]) -> str:
    """The prompt text that carries the schema in `json_object` and `text` modes."""
    return (
        "Reply with one JSON object and nothing else. It must conform to this JSON schema:\n"
        + json.dumps(schema["schema"], ensure_ascii=False)
    )


def with_instruction(messages: list[dict[str, Any]], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages with the schema instruction added: appended to a leading system/developer string message,
    else as a new first system message (many chat templates accept a system message only in first place)."""
    text = instruction(schema)
    first = messages[0] if messages else None
    if first is not None and first["role"] in ("system", "developer") and isinstance(first["content"], str):
        return [{"role": first["role"], "content": f"{first['content']}\n\n{text}"}, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


def request_for(mode: str, messages: list[dict[str, Any]], schema: dict[str, Any]) -> dict[str, Any]:
    """`messages` and `response_format` keyword arguments for one mode."""
    if mode == "json_schema":
        return {"messages": messages, "response_format": {"type": "json_schema", "json_schema": schema}}
    if mode == "json_object":
        return {"messages": with_instruction(messages, schema), "response_format": {"type": "json_object"}}
    return {"messages": with_instruction(messages, schema)}


def parse_output(text: str, mode: str) -> Any:
    """The JSON value in a reply: the whole text in `json_schema` mode (a strict server guarantees it); in the
    fallback modes, also a fenced block or the first JSON object embedded in prose. Raises `ValueError`."""
    try:
        return orjson.loads(text)  # the common case, fast; anything it refuses gets the standard parser's verdict
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(text)
    except ValueError:
        if mode == "json_schema":
            raise
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    raise ValueError("no JSON object found in the reply")
