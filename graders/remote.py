"""A small client for any endpoint that speaks the graders API (hosted, Azure, a colleague's `graders serve`).

Used by `graders parity record`. Retries only transient failures (connect errors, timeouts, 429, 5xx), with
exponential backoff and full jitter, and a server's `Retry-After` / `retry-after-ms` wins: the model client's
`RetryPolicy` and header reading (§9.2). The key travels only in the `Authorization` header, never into what is
recorded.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from .transport.retry import RetryPolicy, retry_after

RUN_PATH = "/fine_tuning/alpha/graders/run"


@dataclass(frozen=True)
class Reply:
    """One request's final answer: the HTTP status and the JSON body (or the transport error if none came)."""

    status: int | None
    body: Any
    attempts: int
    error: str | None = None


def public_url(url: str) -> str:
    """`url` without user, password, query or fragment: what may be written into a recording."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


class GradersClient:
    """POSTs `/run` bodies to `base_url` with bounded concurrency and transient-only retries."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout_s: float = 120.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        concurrency: int = 8,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.policy = RetryPolicy(timeout_s, max_retries, backoff_s, backoff_max_s)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(timeout=timeout_s, headers=headers, limits=httpx.Limits(max_connections=concurrency))
        self._limit = asyncio.Semaphore(concurrency)

    async def post(self, path: str, body: dict[str, Any]) -> Reply:
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            try:
                async with self._limit:
                    response = await self._http.post(self.base_url + path, json=body)
                transient = response.status_code == 429 or response.status_code >= 500
                if not transient or attempt > self.policy.max_retries:
                    try:
                        payload = response.json()
                    except ValueError:
                        payload = {"text": response.text[:2000]}
                    return Reply(response.status_code, payload, attempt)
                wait = retry_after(response.headers)
            except httpx.TransportError as exc:
                if attempt > self.policy.max_retries:
                    return Reply(None, None, attempt, f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self.policy.delay(attempt, wait))

    async def run(self, body: dict[str, Any]) -> Reply:
        return await self.post(RUN_PATH, body)

    async def aclose(self) -> None:
        await self._http.aclose()
