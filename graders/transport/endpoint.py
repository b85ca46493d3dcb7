"""One server as graders see it: the client and concurrency limit shared by everything calling it, its rate
budget, transient-only retries, and what was learned about it (the structured-output mode it accepts).

Clients and semaphores are bound to an event loop, so each loop gets its own `Endpoint` per route; rate budgets
(limits.py) and what is learned about a server outlive loops. The memory lives in its `Server`, keyed by the whole
`Route` (URL, key, style), since two keys on one URL can be two accounts with different models.

`ModelClient` is what graders hold: one model's route, budget and retry policy, fixed at compile.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

from ..errors import ModelCallError
from ..options import ModelClientOptions
from .http import NoReply, Transport, make_transport
from .limits import RateLimiter, estimate_tokens, limiter_for, used_tokens
from .retry import RetryPolicy, is_transient, names_response_format, retry_after
from .routing import RateLimits, Route, resolve_limits, resolve_route
from .stats import STATS


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


@dataclass(frozen=True, slots=True)
class Call:
    """A completed call: the reply's JSON object, the attempts it took, the answered request's round trip and
    the seconds spent waiting before sending (rate budget, 429 pauses, concurrency slots)."""

    json: dict[str, Any]
    attempts: int
    latency_s: float
    wait_s: float


class Endpoint:
    """The concurrency limit and HTTP client shared by every grader calling one route on one event loop."""

    def __init__(self, server: Server, max_concurrency: int, transport: str) -> None:
        self.server = server
        self.route = server.route
        self.slots = asyncio.Semaphore(max_concurrency)
        self.transport: Transport = make_transport(transport, server.route, max_concurrency)

    async def call(self, path: str, body: dict[str, Any], policy: RetryPolicy, rate: RateLimiter) -> Call:
        """POST `body` (the complete JSON request) with transient-only retries within the rate budget; returns
        the `Call` or raises `ModelCallError`. A concurrency slot is held only while a request is in flight,
        never during a backoff sleep or a wait for the budget."""
        model = str(body.get("model", ""))
        estimate = estimate_tokens(body) if rate.counts_tokens else 0
        attempt = 0
        waited = 0.0
        while True:
            attempt += 1
            wait = await rate.acquire(estimate)
            queued = time.perf_counter()
            await self.slots.acquire()
            try:
                if rate.paused_until:
                    await rate.hold()
                sent = time.perf_counter()
                wait += sent - queued
                waited += wait
                reply = await self.transport.post_json(path, body, policy.timeout_s)
            except NoReply as exc:
                STATS.attempt(model, retry=attempt > 1, rate_limited=False, wait_s=wait, latency_s=time.perf_counter() - sent)
                if attempt > policy.max_retries:
                    STATS.failed(model)
                    raise ModelCallError(_after(exc.text, attempt), status=None, attempts=attempt) from None
                delay = policy.delay(attempt, None)
            else:
                latency = time.perf_counter() - sent
                ok = 200 <= reply.status < 300 and isinstance(reply.json, dict)
                STATS.attempt(model, retry=attempt > 1, rate_limited=reply.status == 429, wait_s=wait,
                              latency_s=latency, reply=reply.json if ok else None)  # fmt: skip
                if ok:
                    if rate.counts_tokens:
                        used = used_tokens(reply.json)
                        if used is not None:
                            rate.correct(used - estimate)
                    return Call(reply.json, attempt, latency, waited)
                if 200 <= reply.status < 300:
                    STATS.failed(model)
                    text = f"the server's reply to {path} is not a JSON object: {str(reply.json)[:300]}"
                    raise ModelCallError(text, status=None, attempts=attempt)
                rate.correct(-estimate)  # an error answer spent no tokens
                text = reply.error_text()
                if not is_transient(reply.status, text) or attempt > policy.max_retries:
                    STATS.failed(model)
                    raise ModelCallError(
                        _after(text, attempt),
                        status=reply.status,
                        attempts=attempt,
                        rejects_response_format=names_response_format(text),
                    )
                delay = policy.delay(attempt, retry_after(reply.headers))
                if reply.status == 429:
                    rate.pause(delay)  # the endpoint is over its limit: everyone waits, not only this request
            finally:
                self.slots.release()
            await asyncio.sleep(delay)


def _after(text: str, attempts: int) -> str:
    return text if attempts == 1 else f"{text} (after {attempts} attempts)"


class Endpoints:
    """The process's servers (one per route, for its lifetime) and their endpoints (one per route, limit,
    transport and loop)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._servers: dict[Route, Server] = {}
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Route, int, str], Endpoint]] = (
            weakref.WeakKeyDictionary()
        )

    def server(self, route: Route) -> Server:
        with self._lock:
            server = self._servers.get(route)
            if server is None:
                server = self._servers[route] = Server(route)
            return server

    def endpoint(self, route: Route, max_concurrency: int, transport: str = "lean") -> Endpoint:
        """The shared `Endpoint` for this route on the running loop."""
        server = self.server(route)
        loop = asyncio.get_running_loop()
        with self._lock:
            per_loop = self._per_loop.get(loop)
            if per_loop is None:
                per_loop = self._per_loop[loop] = {}
            key = (route, max_concurrency, transport)
            ep = per_loop.get(key)
            if ep is None:
                ep = per_loop[key] = Endpoint(server, max_concurrency, transport)
            return ep


ENDPOINTS = Endpoints()
"""Every endpoint of this process: graders on the same route share limits and what was learned."""


class ModelClient:
    """How one model is called, fixed when a grader is compiled: its route, rate budget, retry policy,
    concurrency limit and HTTP client kind (`models.*`)."""

    def __init__(self, model: str, opts: ModelClientOptions) -> None:
        self.model = model
        self.route = resolve_route(model, opts)
        self.limits: RateLimits = resolve_limits(model, opts)
        self.policy = RetryPolicy.from_options(opts)
        self.server = ENDPOINTS.server(self.route)
        self._rate = limiter_for(self.route, self.limits)
        self._concurrency = opts.max_concurrency
        self._transport = opts.transport
        self._loop: asyncio.AbstractEventLoop | None = None
        self._endpoint: Endpoint | None = None

    def endpoint(self) -> Endpoint:
        """The shared endpoint on the running loop (remembered for the last loop used)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._endpoint is None:
            self._endpoint = ENDPOINTS.endpoint(self.route, self._concurrency, self._transport)
            self._loop = loop
        return self._endpoint

    async def call(self, path: str, body: dict[str, Any]) -> Call:
        """POST `body` to `path` on this model's endpoint (see `Endpoint.call`)."""
        return await self.endpoint().call(path, body, self.policy, self._rate)
