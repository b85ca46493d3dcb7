"""One server as graders see it: a concurrency limit shared by everything calling it, transient-only retries, and
what was learned about it (the structured-output mode it accepts).

Clients and semaphores are bound to an event loop, so each loop gets its own `Endpoint` per route; what is learned
about a server outlives loops and lives in its `Server`, keyed by the whole `Route` (URL and key), since two keys
on one URL can be two accounts with different models.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any

from ..errors import ModelCallError
from .http import NoReply, OpenAISDKTransport, Transport
from .retry import RetryPolicy, is_transient, names_response_format, retry_after
from .routing import Route


class Server:
    """What this process learned about one route: the response-format mode each model ended up with."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self._modes: dict[str, str] = {}
        self._lock = threading.Lock()

    def remembered_mode(self, model: str) -> str | None:
        with self._lock:
            return self._modes.get(model)

    def remember_mode(self, model: str, mode: str) -> None:
        with self._lock:
            self._modes[model] = mode


class Endpoint:
    """The limiter and client shared by every grader calling one route on one event loop."""

    def __init__(self, server: Server, max_concurrency: int) -> None:
        self.server = server
        self.route = server.route
        self.limiter = asyncio.Semaphore(max_concurrency)
        self.transport: Transport = OpenAISDKTransport(server.route, max_concurrency)

    async def call(self, path: str, body: dict[str, Any], policy: RetryPolicy) -> tuple[Any, int]:
        """POST `body` (the complete JSON request) with transient-only retries; returns the reply's JSON and the
        attempts made, or raises `ModelCallError`. The limiter is held only while a request is in flight, never
        during a backoff sleep."""
        attempt = 0
        while True:
            attempt += 1
            wait_hint: float | None = None
            try:
                async with self.limiter:
                    reply = await self.transport.post_json(path, body, policy.timeout_s)
            except NoReply as exc:
                if attempt > policy.max_retries:
                    raise ModelCallError(_after(exc.text, attempt), status=None, attempts=attempt) from None
            else:
                if 200 <= reply.status < 300:
                    if not isinstance(reply.json, dict):
                        text = f"the server's reply to {path} is not a JSON object: {str(reply.json)[:300]}"
                        raise ModelCallError(text, status=None, attempts=attempt)
                    return reply.json, attempt
                text = reply.error_text()
                if not is_transient(reply.status, text) or attempt > policy.max_retries:
                    raise ModelCallError(
                        _after(text, attempt),
                        status=reply.status,
                        attempts=attempt,
                        rejects_response_format=names_response_format(text),
                    )
                wait_hint = retry_after(reply.headers)
            await asyncio.sleep(policy.delay(attempt, wait_hint))


def _after(text: str, attempts: int) -> str:
    return text if attempts == 1 else f"{text} (after {attempts} attempts)"


class Endpoints:
    """The process's servers (one per route, for its lifetime) and their endpoints (one per route, limit and loop)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._servers: dict[Route, Server] = {}
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Route, int], Endpoint]] = (
            weakref.WeakKeyDictionary()
        )

    def server(self, route: Route) -> Server:
        with self._lock:
            server = self._servers.get(route)
            if server is None:
                server = self._servers[route] = Server(route)
            return server

    def endpoint(self, route: Route, max_concurrency: int) -> Endpoint:
        """The shared `Endpoint` for this route on the running loop."""
        server = self.server(route)
        loop = asyncio.get_running_loop()
        with self._lock:
            per_loop = self._per_loop.get(loop)
            if per_loop is None:
                per_loop = self._per_loop[loop] = {}
            ep = per_loop.get((route, max_concurrency))
            if ep is None:
                ep = per_loop[(route, max_concurrency)] = Endpoint(server, max_concurrency)
            return ep


ENDPOINTS = Endpoints()
"""Every endpoint of this process: graders on the same route share limits and what was learned."""


def endpoint_for(route: Route, max_concurrency: int) -> Endpoint:
    return ENDPOINTS.endpoint(route, max_concurrency)
