"""The flow shared by score_model and label_model: render, call, read the reply, set the §9.3 flags.

One grade (spec §5.2, §9.2, §9.3, §10):

1. Render the messages; a template error is returned before any call, so no tokens are spent (§5.2).
2. Look the call up in the cache (`models.cache_path`), keyed by endpoint, model, rendered messages, sampling
   params and schema. Only grades that succeeded are stored: failures are retried on the next run.
3. Call the endpoint (shared limiter, retries in `client`). With `models.response_format = "auto"`, a 400 that
   rejects the structured-output mode switches to the next mode (json_schema → json_object → text), remembered
   per endpoint + model and reported in `details["response_format_fallback"]`.
4. Read the reply: refusal → `model_grader_refusal_error`, `finish_reason == "length"` →
   `model_grader_exceeded_max_tokens_error`, output that does not fit the schema → `model_grader_parse_error`
   (raw text trimmed into the details). Usage and `sampled_model_name` (the model the server reports) come from
   every completed call, including those three failures (§9.3, §3.4). `steps` go to `details`, never the wire.
"""

from __future__ import annotations

import math
from typing import Any

from openai.types.chat import ChatCompletion

from ...namespaces import Namespaces
from ...options import Options
from ...response import Outcome
from ...templates import TemplateError
from ..base import Evaluator, template_failure
from .client import (
    ModelCallError,
    RetryPolicy,
    cache_key,
    endpoint_for,
    open_cache,
    remember_mode,
    remembered_mode,
    resolve_route,
)
from .prompt import MessagesTemplate
from .schemas import MODES, parse_output, request_for

RAW_LIMIT = 1000
"""Characters of a model's raw reply kept in error details."""


class ParseProblem(Exception):
    """The reply is JSON but its `result` does not fit the grader (§9.3, §10)."""


def trimmed(text: str | None, limit: int = RAW_LIMIT) -> str:
    if text is None:
        return "<no content>"
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"


def usage_of(completion: ChatCompletion) -> dict[str, int] | None:
    """The §3.2 usage object of one completion, or None when the server reported none."""
    u = completion.usage
    if u is None:
        return None
    details = getattr(u, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) if details is not None else None
    prompt, completion_tokens = u.prompt_tokens or 0, u.completion_tokens or 0
    return {
        "prompt_tokens": prompt,
        "total_tokens": u.total_tokens if u.total_tokens is not None else prompt + completion_tokens,
        "completion_tokens": completion_tokens,
        "cached_tokens": cached or 0,
    }


class ModelGraderEvaluator(Evaluator):
    """Base of the two model graders; subclasses give the params, the schema and `score_result`."""

    async_native = True

    def __init__(self, config: Any, options: Options) -> None:
        super().__init__(config, options)
        client_opts = options.models
        self._messages = MessagesTemplate(config.input, self.template)
        self._route = resolve_route(config.model, client_opts)
        self._policy = RetryPolicy.from_options(client_opts)
        self._concurrency = client_opts.max_concurrency
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
            return template_failure(exc)
        key = None
        if self._cache is not None:
            key = cache_key(self._route, self.config.model, messages, self._params, self._schema)
            hit = self._cache.get(key)
            if hit is not None:
                completion = ChatCompletion.construct(**hit["completion"])  # as the SDK builds replies: unvalidated
                return self._read(completion, hit["mode"], {"cache": "hit"})
        try:
            completion, mode, trace = await self._call(messages)
        except ModelCallError as exc:
            return Outcome.fail("model_grader_server_error", exc.text, details={"attempts": exc.attempts})
        outcome = self._read(completion, mode, trace)
        if key is not None and not outcome.errors:
            self._cache.put(key, {"completion": completion.model_dump(mode="json"), "mode": mode})  # type: ignore[union-attr]
        return outcome

    async def _call(self, messages: list[dict[str, Any]]) -> tuple[ChatCompletion, str, dict[str, Any]]:
        """The completed call, the response-format mode it used and a trace (attempts, fallbacks)."""
        model = self.config.model
        mode = self._forced_mode or remembered_mode(self._route, model) or MODES[0]
        endpoint = endpoint_for(self._route, self._concurrency)
        trace: dict[str, Any] = {}
        while True:
            request = {"model": model, **request_for(mode, messages, self._schema), **self._params}
            try:
                completion, attempts = await endpoint.complete(request, self._policy)
            except ModelCallError as exc:
                if self._forced_mode is None and exc.rejects_response_format and mode != MODES[-1]:
                    fallback = MODES[MODES.index(mode) + 1]
                    remember_mode(self._route, model, fallback)
                    trace.setdefault("response_format_fallback", []).append(f"{mode} rejected: {exc.text}")
                    mode = fallback
                    continue
                raise
            if attempts > 1:
                trace["attempts"] = attempts
            if mode != MODES[0] and "response_format_fallback" not in trace and self._forced_mode is None:
                trace["response_format_fallback"] = [f"{mode} (remembered for this endpoint and model)"]
            return completion, mode, trace

    def _read(self, completion: ChatCompletion, mode: str, trace: dict[str, Any]) -> Outcome:
        """§9.3: the reply turned into a reward or a flag, with usage and the reported model either way."""
        sampled = completion.model or self.config.model
        usage = usage_of(completion)
        details: dict[str, Any] = {"response_format": mode, **trace}
        choice = completion.choices[0] if completion.choices else None
        message = choice.message if choice is not None else None
        text = message.content if message is not None else None
        if choice is None or message is None:
            outcome = Outcome.fail("model_grader_parse_error", "the reply has no choices", details=details)
        elif getattr(message, "refusal", None):
            outcome = Outcome.fail("model_grader_refusal_error", trimmed(message.refusal), details=details)
        elif choice.finish_reason == "length":
            details["raw"] = trimmed(text)
            outcome = Outcome.fail(
                "model_grader_exceeded_max_tokens_error", "the grader model stopped at its token cap", details=details
            )
        else:
            outcome = self._parse(text, mode, details)
        outcome.usage = {sampled: usage} if usage is not None else None
        outcome.sampled_model_name = sampled
        return outcome

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
        try:
            score, about = self.score_result(value["result"])
        except ParseProblem as exc:
            return Outcome.fail("model_grader_parse_error", f"{exc}: {trimmed(text)}", details=details)
        details.update(about)
        return Outcome(score, details=details)


def finite_number(value: Any) -> float:
    """`value` as a float if it is a JSON number (not a bool, not NaN/inf); raises `ParseProblem`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ParseProblem(f"'result' is not a finite number ({value!r})")
    return float(value)
