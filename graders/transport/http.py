"""The HTTP layer under every model call: `post_json(path, body, timeout_s) -> Reply`, nothing more.

`Transport` is the whole interface the rest of the transport needs, so the client behind it can change without
touching retries, limits or graders. `OpenAISDKTransport` is the client today: the official `openai` SDK's
async client (its auth, connection pooling and error parsing), called through its generic `post`, which sends the
body as given and returns the reply's JSON untouched (no per-call TypedDict walk over the request, no model objects
built from the reply).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .routing import NO_KEY, Route

RAW_RESPONSE = {"X-Stainless-Raw-Response": "true"}
"""The SDK's own switch for returning the raw response (status and headers) instead of a parsed object."""

SHARD_CONNECTIONS = 8
"""Requests in flight per SDK client. The SDK's connection pool scans every connection on each request, so one
client with hundreds of connections spends milliseconds per request; shards keep that scan short."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A server's answer: status, headers (lower-case names) and the body parsed as JSON (the text when not JSON)."""

    status: int
    headers: Mapping[str, str]
    json: Any

    def error_text(self) -> str:
        """`HTTP <status>: <message>` from an OpenAI-style error body, or the body itself."""
        body = self.json
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            body = body["error"].get("message", body)
        elif isinstance(body, dict):
            body = body.get("message", body)
        text = body if isinstance(body, str) else json.dumps(body)
        return f"HTTP {self.status}: {text}"


class NoReply(Exception):
    """The request got no HTTP answer: the connection failed, or no answer came within the timeout."""

    def __init__(self, text: str, *, timeout: bool) -> None:
        super().__init__(text)
        self.text = text
        self.timeout = timeout


class Transport(Protocol):
    """What the transport needs from an HTTP client."""

    async def post_json(self, path: str, body: dict[str, Any], timeout_s: float) -> Reply:
        """POST `body` as JSON to `path` under the route's base URL; raises `NoReply` when nothing answered."""
        ...


class OpenAISDKTransport:
    """`Transport` over shards of the openai SDK's `AsyncOpenAI` (the SDK's own retries are off: ours decide)."""

    def __init__(self, route: Route, max_concurrency: int) -> None:
        self.route = route
        self._shards: list[Any] = [None] * -(-max_concurrency // SHARD_CONNECTIONS)
        self._next = 0

    def _client(self) -> Any:
        """The next shard, created on first use (plain-http endpoints skip building an unused TLS context)."""
        import openai

        i = self._next
        self._next = (i + 1) % len(self._shards)
        shard = self._shards[i]
        if shard is None:
            plain = self.route.base_url.startswith("http://")
            http = openai.DefaultAsyncHttpxClient(verify=False) if plain else openai.DefaultAsyncHttpxClient()
            shard = self._shards[i] = openai.AsyncOpenAI(
                base_url=self.route.base_url, api_key=self.route.api_key or NO_KEY, max_retries=0, http_client=http
            )
        return shard

    async def post_json(self, path: str, body: dict[str, Any], timeout_s: float) -> Reply:
        import openai

        options: Any = {"timeout": timeout_s, "headers": RAW_RESPONSE}
        try:
            raw = await self._client().post(path, cast_to=object, body=body, options=options)
        except openai.APIStatusError as exc:
            body_out = exc.body if exc.body is not None else exc.message
            return Reply(exc.status_code, _lower(exc.response.headers), body_out)
        except openai.APITimeoutError:
            raise NoReply(f"request timed out after {timeout_s:g} s", timeout=True) from None
        except openai.APIConnectionError as exc:
            raise NoReply(f"connection error to {self.route.base_url}: {exc.__cause__ or exc}", timeout=False) from None
        try:
            parsed = raw.parse()
        except (ValueError, openai.APIError) as exc:
            parsed = f"invalid reply: {exc}"
        return Reply(raw.status_code, _lower(raw.headers), parsed)


def _lower(headers: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in headers.items()}
