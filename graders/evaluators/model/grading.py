"""The flow shared by score_model and label_model: render, call, read the reply, set the §9.3 flags.

One grade (§5.2, §9.2, §9.3, §10):

1. Render the messages; a template error is returned before any call, so no tokens are spent (§5.2).
2. Look the call up in the cache (`models.cache_path`), keyed by endpoint, model, rendered messages, sampling
   params and schema. Only grades that succeeded are stored: failures are retried on the next run.
3. Call the endpoint through the grader's `ModelClient` (route, rate budget, shared concurrency limit and
   retries in `graders.transport`). With `models.response_format = "auto"`, an error that rejects the
   structured-output mode switches to the next mode (json_schema → json_object → text), remembered per endpoint
   + model and reported in `details["response_format_fallback"]`.
4. Read the reply: refusal → `model_grader_refusal_error`, `finish_reason == "length"` →
   `model_grader_exceeded_max_tokens_error`, output that does not fit the schema → `model_grader_parse_error`
   (raw text trimmed into the details). Usage and `sampled_model_name` (the model the server reports) come from
   every completed call, including those three failures (§9.3, §3.4).

The local `details` (never the wire) keep the judge visible: the rendered `messages`, the `raw` reply, the parsed
`result` and `steps`, `attempts`, `latency_s` and `wait_s`.
"""

from __future__ import annotations

import math
from typing import Any

from ...errors import ModelCallError, ParseProblem, TemplateError, failure_outcome
from ...namespaces import Namespaces
from ...options import Options
from ...response import Outcome, Usage
from ...transport import STATS, ModelClient, cache_key, open_cache
from ..base import AsyncEvaluator
from .prompt import MessagesTemplate
from .schemas import MODES, parse_output, request_for

RAW_LIMIT = 1000
"""Characters of a model's raw reply kept in error details."""
RAW_DETAIL_LIMIT = 16384
"""Characters of a model's raw reply kept in `details["raw"]`."""


def trimmed(text: str | None, limit: int = RAW_LIMIT) -> str:
    if text is None:
        return "<no content>"
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_of(completion: dict[str, Any]) -> Usage | None:
    """The §3.2 usage object of one Chat Completions reply, or None when the server reported none."""
    u = completion.get("usage")
    if not isinstance(u, dict):
        return None
    details = u.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    prompt, completion_tokens = _int(u.get("prompt_tokens")), _int(u.get("completion_tokens"))
    total = u.get("total_tokens")
    return {
        "prompt_tokens": prompt,
        "total_tokens": _int(total) if total is not None else prompt + completion_tokens,
        "completion_tokens": completion_tokens,
        "cached_tokens": cached,
    }


class ModelGraderEvaluator(AsyncEvaluator):
    """Base of the two model graders; subclasses give the params, the schema and `score_result`."""

    def __init__(self, config: Any, options: Options) -> None:
        super().__init__(config, options)
        client_opts = options.models
        self._messages = MessagesTemplate(config.input, self.template)
        self._client = ModelClient(config.model, client_opts)
        self._forced_mode = None if client_opts.response_format == "auto" else client_opts.response_format
        self._cache = open_cache(client_opts.cache_path) if client_opts.cache_path else None
        self._params = self.sampling_params()
        self._schema = self.response_schema()

    # -- subclass hooks -----------------------------------------------------------------------------------------

    def sampling_params(self) -> dict[str, Any]:
        raise NotImplementedError

    def response_schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def score_result(self, result: Any) -> tuple[float, dict[str, Any]]:
        """The reward for the reply's `result` and what to record about it; raises `ParseProblem`."""
        raise NotImplementedError

    # -- evaluation ---------------------------------------------------------------------------------------------

    async def aevaluate(self, ns: Namespaces) -> Outcome:
        try:
            messages = self._messages.render(ns)
        except TemplateError as exc:
            return failure_outcome(exc)
        key = None
        if self._cache is not None:
            key = cache_key(self._client.route, self.config.model, messages, self._params, self._schema)
            hit = self._cache.get(key)
            if hit is not None:
                STATS.cache_hit(self.config.model)
                return self._read(hit["completion"], hit["mode"], {"messages": messages, "cache": "hit"})
        trace: dict[str, Any] = {"messages": messages}
        try:
            completion, mode = await self._call(messages, trace)
        except ModelCallError as exc:
            return failure_outcome(exc, trace)
        outcome = self._read(completion, mode, trace)
        if self._cache is not None and key is not None and not outcome.errors:
            self._cache.put(key, {"completion": completion, "mode": mode})
        return outcome

    async def _call(self, messages: list[dict[str, Any]], trace: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """The completed call and the response-format mode it used; `trace` gets the fallbacks, attempts,
        latency and waiting time."""
        model = self.config.model
        server = self._client.server
        mode = self._forced_mode or server.remembered_mode(model) or MODES[0]
        while True:
            request = {"model": model, **request_for(mode, messages, self._schema), **self._params}
            try:
                call = await self._client.call("/chat/completions", request)
            except ModelCallError as exc:
                if self._forced_mode is None and exc.rejects_response_format and mode != MODES[-1]:
                    fallback = MODES[MODES.index(mode) + 1]
                    server.remember_mode(model, fallback)
                    trace.setdefault("response_format_fallback", []).append(f"{mode} rejected: {exc.text}")
                    mode = fallback
                    continue
                raise
            trace["attempts"] = call.attempts
            trace["latency_s"] = round(call.latency_s, 6)
            trace["wait_s"] = round(call.wait_s, 6)
            if mode != MODES[0] and "response_format_fallback" not in trace and self._forced_mode is None:
                trace["response_format_fallback"] = [f"{mode} (remembered for this endpoint and model)"]
            return call.json, mode

    def _read(self, completion: dict[str, Any], mode: str, trace: dict[str, Any]) -> Outcome:
        """§9.3: the reply turned into a reward or a flag, with usage and the reported model either way."""
        reported = completion.get("model")
        sampled = reported if isinstance(reported, str) and reported else self.config.model
        usage = usage_of(completion)
        details: dict[str, Any] = {"response_format": mode, **trace}
        choices = completion.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
        message = choice.get("message") if choice is not None else None
        if not isinstance(message, dict):
            outcome = Outcome.fail("model_grader_parse_error", "the reply has no choices", details=details)
        else:
            content = message.get("content")
            text = content if isinstance(content, str) else None
            details["raw"] = None if text is None else trimmed(text, RAW_DETAIL_LIMIT)
            refusal = message.get("refusal")
            if refusal:
                outcome = Outcome.fail("model_grader_refusal_error", trimmed(str(refusal)), details=details)
            elif choice is not None and choice.get("finish_reason") == "length":
                outcome = Outcome.fail(
                    "model_grader_exceeded_max_tokens_error", "the grader model stopped at its token cap", details=details
                )
            else:
                outcome = self._parse(text, mode, details)
        return outcome.replace(usage={sampled: usage} if usage is not None else None, sampled_model_name=sampled)

    def _parse(self, text: str | None, mode: str, details: dict[str, Any]) -> Outcome:
        if not text:
            return Outcome.fail("model_grader_parse_error", "the reply has no content", details=details)
        try:
            value = parse_output(text, mode)
        except ValueError as exc:
            return Outcome.fail("model_grader_parse_error", f"invalid JSON ({exc}): {trimmed(text)}", details=details)
        if not isinstance(value, dict) or "result" not in value:
            return Outcome.fail("model_grader_parse_error", f"no 'result' in the reply: {trimmed(text)}", details=details)
        if "steps" in value:
            details["steps"] = value["steps"]
        details["result"] = value["result"]
        try:
            score, about = self.score_result(value["result"])
        except ParseProblem as exc:
            return failure_outcome(ParseProblem(f"{exc.text}: {trimmed(text)}"), details)
        details.update(about)
        return Outcome(score, details=details)


def finite_number(value: Any) -> float:
    """`value` as a float if it is a JSON number (not a bool, not NaN/inf); raises `ParseProblem`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ParseProblem(f"'result' is not a finite number ({value!r})")
    return float(value)
