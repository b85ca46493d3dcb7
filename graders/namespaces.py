"""The `sample` and `item` namespaces a grade sees (§5.3, §5.4).

`sample` built from `/run`'s `model_sample` is lazy: `output_json` is parsed and `choices` built only when a
template or a python grader reads them, so a string_check over millions of rows never pays for JSON parsing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ._json import dumps, dumps_value, loads
from .errors import RequestError, json_type
from .options import SampleOptions

SAMPLE_KEYS: tuple[str, ...] = (  # §5.4, in the order of the captured payload
    "choices",
    "output_text",
    "output_json",
    "output_tools",
    "output_reasoning_summary",
    "output_audio",
)
_JSON_START = frozenset('{["-0123456789tfn')
# The JSON of a built sample whose text is not JSON (no output_json, no tools), split around the two copies of
# the text; `ModelSample.json_parts` sends it with nulls there, and a test checks it against `ModelSample.data()`.
_PLAIN_SAMPLE = (
    b'{"choices":[{"index":0,"message":{"role":"assistant","content":',
    b',"tool_calls":[]},"finish_reason":"stop"}],"output_text":',
    b',"output_json":null,"output_tools":[],"output_reasoning_summary":null,"output_audio":null}',
)
_SLIM_SAMPLE = _PLAIN_SAMPLE[0] + b"null" + _PLAIN_SAMPLE[1] + b"null" + _PLAIN_SAMPLE[2]
MISSING: Any = object()
"""Sentinel for an absent optional request field (e.g. the legacy `reference_answer`)."""


def _may_be_json(text: str) -> bool:
    """Whether `text` can parse as JSON at all, judged by its first non-space character."""
    stripped = text.lstrip()
    return bool(stripped) and stripped[0] in _JSON_START


def parse_output_json(text: str, scope: str) -> Any:
    """§5.4: `model_sample` parsed as JSON if it is JSON, else None; U9 decides whether non-objects count.

    Strict JSON (§5.7): the text `NaN`, a lone-surrogate escape or nesting past the limit is not JSON here.
    """
    if not _may_be_json(text):
        return None
    try:
        value = loads(text)
    except ValueError:
        return None
    if scope == "objects_only" and not isinstance(value, dict):
        return None
    return value


def _looks_like_tool_calls(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(c, dict) and isinstance(c.get("function"), dict) for c in value)
    )


class ModelSample(Mapping[str, Any]):
    """`sample` for a `/run` `model_sample` string (§5.4), computing each key on first access."""

    __slots__ = ("text", "_opts", "_cache")

    def __init__(self, text: str, opts: SampleOptions) -> None:
        self.text = text
        self._opts = opts
        self._cache: dict[str, Any] | None = None

    @property
    def json_parsed(self) -> bool:
        """Whether `model_sample` parsed as JSON (U12 needs to tell a JSON `null` from a parse failure)."""
        return self["output_json"] is not None or self.text.strip() == "null"

    def _build(self) -> dict[str, Any]:
        opts = self._opts
        text = self.text
        output_json = parse_output_json(text, opts.output_json_scope)
        tools: list[Any] = []
        if opts.tools_from_model_sample:
            raw = output_json if output_json is not None else parse_output_json(text, "any_json")
            if _looks_like_tool_calls(raw):
                tools = raw
        data: dict[str, Any] = {
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "tool_calls": tools},
                    "finish_reason": "stop",
                }
            ],
            "output_text": text,
            "output_json": output_json,
            "output_tools": tools,
            "output_reasoning_summary": None,
            "output_audio": None,
        }
        for key in opts.extra_keys:
            data[key] = None if key == "model" else []
        self._cache = data
        return data

    def __getitem__(self, key: str) -> Any:
        if key == "output_text":
            return self.text
        data = self._cache if self._cache is not None else self._build()
        return data[key]

    def __iter__(self) -> Iterator[str]:
        data = self._cache if self._cache is not None else self._build()
        return iter(data)

    def __len__(self) -> int:
        data = self._cache if self._cache is not None else self._build()
        return len(data)

    def data(self) -> dict[str, Any]:
        """The built namespace itself (not a copy): for serialising, which copies anyway."""
        return self._cache if self._cache is not None else self._build()

    def json_parts(self) -> tuple[bytes, bytes]:
        """(the namespace as JSON with `null` where the text goes, the text as JSON): the text, which can be most
        of a row, is sent once and put back in both places by the receiver. Raises `Unsendable` naming the part
        that JSON cannot hold (§5.7)."""
        text = dumps_value(self.text, "sample.output_text")
        if not self._opts.extra_keys and not _may_be_json(self.text):
            return _SLIM_SAMPLE, text
        data = self.data()
        message = {**data["choices"][0]["message"], "content": None}
        slim = {**data, "choices": [{**data["choices"][0], "message": message}, *data["choices"][1:]], "output_text": None}
        return dumps_value(slim, "sample"), text

    def json(self) -> bytes:
        """The whole namespace as JSON bytes (the text in both of its places)."""
        return dumps(self.data())


def structured_sample(sample: Mapping[str, Any], opts: SampleOptions, param: str = "sample") -> dict[str, Any]:
    """Local extension (§5.4): a caller-supplied sample; missing keys are derived as for `model_sample`."""
    if not isinstance(sample, Mapping):
        raise RequestError(f"Invalid type for '{param}': expected an object, but got {json_type(sample)} instead.", param)
    out = dict(sample)
    choices = out.get("choices", MISSING)
    message: Any = None
    if choices is not MISSING:
        if not isinstance(choices, list):
            raise RequestError(
                f"Invalid type for '{param}.choices': expected an array, but got {json_type(choices)} instead.",
                f"{param}.choices",
            )
        if choices and isinstance(choices[0], Mapping):
            message = choices[0].get("message")
    if "output_text" in out:
        text = out["output_text"]
    else:
        content = message.get("content") if isinstance(message, Mapping) else None
        text = content if isinstance(content, str) else ""
        out["output_text"] = text
    if not isinstance(text, str):
        raise RequestError(
            f"Invalid type for '{param}.output_text': expected a string, but got {json_type(text)} instead.",
            f"{param}.output_text",
        )
    if "output_json" not in out:
        out["output_json"] = parse_output_json(text, opts.output_json_scope)
    if "output_tools" not in out:
        calls = message.get("tool_calls") if isinstance(message, Mapping) else None
        out["output_tools"] = list(calls) if isinstance(calls, list) else []
    if choices is MISSING:
        out["choices"] = [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "tool_calls": out["output_tools"]},
                "finish_reason": "stop",
            }
        ]
    out.setdefault("output_reasoning_summary", None)
    out.setdefault("output_audio", None)
    for key in opts.extra_keys:
        out.setdefault(key, None if key == "model" else [])
    ordered = {k: out[k] for k in SAMPLE_KEYS if k in out}
    ordered.update((k, v) for k, v in out.items() if k not in ordered)
    return ordered


def unknown_sample_keys(sample: Any) -> list[str]:
    """Keys of a structured `sample` that no hosted sample has (§5.4): passed on, but most likely a typo
    (`output_txt`), which leaves the real key derived from the others."""
    if not isinstance(sample, Mapping):
        return []
    return [k for k in sample if k not in SAMPLE_KEYS and k not in ("model", "input_tools")]


class Namespaces:
    """What one grade reads: `sample` (§5.4) and `item` (§5.3)."""

    __slots__ = ("sample", "item")

    def __init__(self, sample: Mapping[str, Any], item: dict[str, Any]) -> None:
        self.sample = sample
        self.item = item


def build_namespaces(
    model_sample: Any,
    item: Any,
    sample: Any,
    opts: SampleOptions,
    *,
    missing_item: str = "empty",
    reference_answer: Any = MISSING,
) -> Namespaces:
    """Validate one request's data and build its namespaces; raises `RequestError` naming the bad field."""
    if item.__class__ is dict and model_sample.__class__ is str and sample is None:
        return Namespaces(ModelSample(model_sample, opts), item)
    if item is None:
        if reference_answer is not MISSING:
            item = {"reference_answer": reference_answer}
        elif missing_item == "error":
            raise RequestError("Missing required parameter: 'item'.", "item", "missing_required_parameter")
        else:
            item = {}
    elif not isinstance(item, Mapping):
        raise RequestError(f"Invalid type for 'item': expected an object, but got {json_type(item)} instead.", "item")
    if sample is not None:
        if model_sample is not None:
            raise RequestError(
                "Invalid value for 'sample': give either 'model_sample' or 'sample', not both.", "sample", "invalid_value"
            )
        return Namespaces(structured_sample(sample, opts), item)
    if not isinstance(model_sample, str):
        if model_sample is None:
            raise RequestError("Missing required parameter: 'model_sample'.", "model_sample", "missing_required_parameter")
        raise RequestError(
            f"Invalid type for 'model_sample': expected a string, but got {json_type(model_sample)} instead.",
            "model_sample",
        )
    return Namespaces(ModelSample(model_sample, opts), item)
