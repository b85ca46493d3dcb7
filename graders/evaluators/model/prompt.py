"""Rendering a model grader's messages (§5.2, §9.2) and mapping its `sampling_params` (§9.2, U38).

Every templated content field is compiled once: plain strings, `input_text.text`, `output_text.text`,
`input_image.image_url` and `input_audio.input_audio.data`. Rendering a sample either yields the complete
Chat Completions `messages` list or raises `TemplateError`, so a template error stops the grade before any call
and no tokens are spent (§5.2). Roles and multimodal parts pass through unchanged (§9.2), in Chat Completions form.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ...namespaces import Namespaces
from ...schema import InputAudio, InputImage, Message, SamplingParams
from ...templates import Template

PartRenderer = Callable[[Namespaces], Any]


def _part(part: Any, compile_field: Callable[[str], Template]) -> PartRenderer:
    """A renderer for one content part, producing its Chat Completions content part."""
    if isinstance(part, str):
        render = compile_field(part).render
        return lambda ns: {"type": "text", "text": render(ns)}
    if isinstance(part, InputImage):
        render = compile_field(part.image_url).render
        detail = part.detail
        if detail is None:
            return lambda ns: {"type": "image_url", "image_url": {"url": render(ns)}}
        return lambda ns: {"type": "image_url", "image_url": {"url": render(ns), "detail": detail}}
    if isinstance(part, InputAudio):
        render = compile_field(part.input_audio.data).render
        fmt = part.input_audio.format
        return lambda ns: {"type": "input_audio", "input_audio": {"data": render(ns), "format": fmt}}
    render = compile_field(part.text).render  # input_text, output_text
    return lambda ns: {"type": "text", "text": render(ns)}


class MessagesTemplate:
    """The grader's `input` compiled once; `render(ns)` gives the Chat Completions `messages`."""

    def __init__(self, messages: Sequence[Message], compile_field: Callable[[str], Template]) -> None:
        self._messages: list[tuple[str, PartRenderer | list[PartRenderer]]] = []
        for message in messages:
            content = message.content
            if isinstance(content, str):
                self._messages.append((message.role, compile_field(content).render))
            elif isinstance(content, list):
                self._messages.append((message.role, [_part(p, compile_field) for p in content]))
            else:
                self._messages.append((message.role, [_part(content, compile_field)]))

    def render(self, ns: Namespaces) -> list[dict[str, Any]]:
        """The rendered messages; raises `TemplateError` at the first unresolved reference (§5.5)."""
        out = []
        for role, content in self._messages:
            if isinstance(content, list):
                out.append({"role": role, "content": [render(ns) for render in content]})
            else:
                out.append({"role": role, "content": content(ns)})
        return out


def score_model_params(params: SamplingParams | None) -> dict[str, Any]:
    """§9.2: seed/top_p/temperature/reasoning_effort keep their names, `max_completions_tokens` becomes
    `max_completion_tokens`, nulls are not sent."""
    if params is None:
        return {}
    out = params.dump(exclude_none=True)  # includes unknown extra fields, which pass through (U6 ignore)
    if "max_completions_tokens" in out:
        out["max_completion_tokens"] = out.pop("max_completions_tokens")
    return out


def label_model_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """U38 pass-through: every non-null field as given, so the older guide's `max_tokens` is the token cap.

    The score_model spelling `max_completions_tokens` is mapped as in §9.2, since it is no Chat Completions name.
    """
    out = {k: v for k, v in (params or {}).items() if v is not None}
    if "max_completions_tokens" in out:
        out["max_completion_tokens"] = out.pop("max_completions_tokens")
    return out
