"""`models.transport = "openai_sdk"`: the official `openai` SDK's async client behind `Transport`.

For setups the lean client does not cover (HTTP proxies from the environment, the SDK's own TLS and connection
settings). It is called through the SDK's generic `post`, which sends the body as given and returns the
reply's JSON untouched (no per-call TypedDict walk over the request, no model objects built from the reply); Azure
routes use `AsyncAzureOpenAI`, which addresses the deployment and signs with `api-key`.
"""

from __future__ import annotations

from typing import Any

from .http import NoReply, Reply
from .routing import NO_KEY, Route

RAW_RESPONSE = {"X-Stainless-Raw-Response": "true"}
"""The SDK's own switch for returning the raw response (status and headers) instead of a parsed object."""

SHARD_CONNECTIONS = 8
"""Requests in flight per SDK client. The SDK's connection pool (httpcore's) scans every connection on each
request and release, so one client with hundreds of connections spends milliseconds per request; shards keep
that scan short."""


class OpenAISDKTransport:
    """`Transport` over shards of the openai SDK's async client (the SDK's own retries are off: ours decide)."""

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
            route = self.route
            plain = route.base_url.startswith("http://")
            http = openai.DefaultAsyncHttpxClient(verify=False) if plain else openai.DefaultAsyncHttpxClient()
            if route.api_style == "azure":
                shard = openai.AsyncAzureOpenAI(
                    azure_endpoint=route.base_url, azure_deployment=route.deployment, api_version=route.api_version,
                    api_key=route.api_key or NO_KEY, max_retries=0, http_client=http,
                )  # fmt: skip
            else:
                shard = openai.AsyncOpenAI(
                    base_url=route.base_url, api_key=route.api_key or NO_KEY, max_retries=0, http_client=http
                )
            self._shards[i] = shard
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
