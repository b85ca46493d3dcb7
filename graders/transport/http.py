"""The HTTP layer under every model call: `post_json(path, body, timeout_s) -> Reply`, nothing more.

`Transport` is the whole interface the rest of the transport needs, so the client behind it can change without
touching retries, limits or graders. Two clients implement it, chosen by `models.transport`: `lean` (lean.py, the
default: keep-alive HTTP/1.1 on asyncio protocols) and `openai_sdk` (sdk.py, the official SDK's async client).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import ModelCallError
from .routing import Route


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
    """The request got no HTTP answer: the connection failed, or no answer came within the timeout. `stale`:
    a kept-alive connection was closed by the server before any byte of the answer (safe to send again)."""

    def __init__(self, text: str, *, timeout: bool, stale: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.timeout = timeout
        self.stale = stale


class Transport(Protocol):
    """What the transport needs from an HTTP client."""

    async def post_json(self, path: str, body: dict[str, Any], timeout_s: float) -> Reply:
        """POST `body` as JSON to `path` under the route's base URL; raises `NoReply` when nothing answered."""
        ...


def make_transport(kind: str, route: Route, max_concurrency: int) -> Transport:
    """The `models.transport` client for one route (on the running event loop); a base URL that is no HTTP(S)
    URL (say, from `OPENAI_BASE_URL`) is the server error of every call to it."""
    if not route.base_url.lower().startswith(("http://", "https://")):
        raise ModelCallError(f"the model endpoint {route.base_url!r} is not an http(s) URL", status=None, attempts=0)
    if kind == "openai_sdk":
        from .sdk import OpenAISDKTransport

        return OpenAISDKTransport(route, max_concurrency)
    from .lean import LeanTransport

    return LeanTransport(route.target())
