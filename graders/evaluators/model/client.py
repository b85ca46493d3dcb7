"""Transport for model graders: shared clients, a per-endpoint concurrency limit, retries and an on-disk cache.

Spec §9.2 makes the model client pluggable: any OpenAI-compatible Chat Completions endpoint. Everything here is
resolved once at compile (`resolve_route` reads `OPENAI_BASE_URL`/`OPENAI_API_KEY` then) and shared at run time:

- one set of `AsyncOpenAI` clients and one semaphore per (endpoint, key, concurrency limit, event loop), so the
  limit holds across every sample of a batch and every model sub-grader of a `multi` that talks to the same server;
- retries only for transient failures (connect errors, timeouts, 429, 5xx), with exponential backoff, full jitter
  and `Retry-After`. The SDK's own retry loop also retries 408/409, so it is switched off (`max_retries=0`);
- a sqlite cache of completed calls; the caller decides what is worth caching (never failures).
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import json
import os
import random
import sqlite3
import threading
import time
import weakref
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import openai
from openai.types.chat import ChatCompletion

from ...options import ModelClientOptions

T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
NO_KEY = "no-key"
"""Sent when no key is configured: keyless local servers ignore it, OpenAI answers 401 (a server error, §9.3)."""


@dataclass(frozen=True, slots=True)
class Route:
    """Where one grader model's requests go, resolved once at compile."""

    base_url: str
    api_key: str


def resolve_route(model: str, opts: ModelClientOptions) -> Route:
    """The endpoint for `model`: the first matching `models.endpoints` entry, else the defaults.

    Defaults are `models.base_url`/`models.api_key`, else `OPENAI_BASE_URL`/`OPENAI_API_KEY`, else OpenAI. An
    override that moves a model to another server without naming a key sends none, so the OpenAI key never leaks.
    """
    base = opts.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    key = opts.api_key or os.environ.get("OPENAI_API_KEY") or ""
    for ep in opts.endpoints:
        if ep.model == model or fnmatch.fnmatchcase(model, ep.model):
            if ep.base_url:
                base, key = ep.base_url, ep.api_key or ""
            elif ep.api_key:
                key = ep.api_key
            break
    return Route(base.rstrip("/"), key)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Per-request timeout and the transient-failure retry schedule (options `models.*`)."""

    timeout_s: float
    max_retries: int
    backoff_s: float
    backoff_max_s: float

    @classmethod
    def from_options(cls, opts: ModelClientOptions) -> RetryPolicy:
        return cls(opts.timeout_s, opts.max_retries, opts.backoff_s, opts.backoff_max_s)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry `attempt` (1-based): the server's `Retry-After` if given, else full jitter."""
        if retry_after is not None:
            return min(self.backoff_max_s, retry_after * (1.0 + 0.1 * random.random()))
        return random.uniform(0.0, min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1)))


class ModelCallError(Exception):
    """A call that failed for good (after retries, or at once for a non-transient error): §9.3 server error."""

    def __init__(self, text: str, *, status: int | None, attempts: int) -> None:
        super().__init__(text)
        self.text = text
        self.status = status
        self.attempts = attempts

    @property
    def rejects_response_format(self) -> bool:
        """The server does not support the structured-output mode asked for (see `names_response_format`)."""
        return self.status is not None and names_response_format(self.text)


def names_response_format(text: str) -> bool:
    """An HTTP error whose message names the response format is a deterministic rejection of that mode, not a
    transient failure: OpenAI-style servers answer 400, llama-cpp-python's server a 500 validation error."""
    low = text.lower()
    return "response_format" in low or "json_schema" in low


def _retry_after(headers: Any) -> float | None:
    """`retry-after-ms` (OpenAI) or `Retry-After` as seconds or an HTTP date."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(raw).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _status_text(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"].get("message", body)
    elif isinstance(body, dict):
        body = body.get("message", body)
    text = body if isinstance(body, str) else json.dumps(body) if body is not None else exc.message
    return f"HTTP {exc.status_code}: {text}"


SHARD_CONNECTIONS = 8
"""Requests in flight per SDK client. The SDK's connection pool scans every connection on each request, so one
client with hundreds of connections spends milliseconds per request; shards keep that scan short."""


class Endpoint:
    """The clients and the one concurrency limiter shared by every grader calling this server on one event loop.

    Clients are shards of one logical client (same endpoint, key and settings), created on first use and picked
    round-robin; the limiter alone decides how many requests are in flight.
    """

    def __init__(self, route: Route, max_concurrency: int) -> None:
        self.route = route
        self.limiter = asyncio.Semaphore(max_concurrency)
        self._shards: list[openai.AsyncOpenAI | None] = [None] * -(-max_concurrency // SHARD_CONNECTIONS)
        self._next = 0

    def client(self) -> openai.AsyncOpenAI:
        """The next shard, created on first use (plain-http endpoints skip building an unused TLS context)."""
        i = self._next
        self._next = (i + 1) % len(self._shards)
        shard = self._shards[i]
        if shard is None:
            http = {"verify": False} if self.route.base_url.startswith("http://") else {}
            shard = self._shards[i] = openai.AsyncOpenAI(
                base_url=self.route.base_url,
                api_key=self.route.api_key or NO_KEY,
                max_retries=0,
                http_client=openai.DefaultAsyncHttpxClient(**http),
            )
        return shard

    async def complete(self, request: dict[str, Any], policy: RetryPolicy) -> tuple[ChatCompletion, int]:
        """One Chat Completions call with retries; returns the completion and the number of attempts made."""
        return await self.post("/chat/completions", request, ChatCompletion, policy)

    async def post(self, path: str, request: dict[str, Any], cast_to: type[T], policy: RetryPolicy) -> tuple[T, int]:
        """One call of any JSON endpoint (chat completions, embeddings) with transient-only retries.

        `request` is the complete JSON body. It goes through the SDK's generic `post` (same auth, errors and
        response parsing as `chat.completions.create`) because `create` re-walks the body, response schema
        included, through its TypedDict transform on every call: milliseconds of CPU per request under load, and
        pass-through params (U38, e.g. vLLM's `top_k`) need no `extra_body` split. The limiter is held only while
        a request is in flight, never during a backoff sleep.
        """
        attempt = 0
        options: Any = {"timeout": policy.timeout_s}
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                async with self.limiter:
                    completion = await self.client().post(path, cast_to=cast_to, body=request, options=options)
                if not isinstance(completion, cast_to):
                    raise ModelCallError(
                        f"the server's reply to {path} is not a {cast_to.__name__}: {str(completion)[:300]}",
                        status=None,
                        attempts=attempt,
                    )
                return completion, attempt
            except openai.APIStatusError as exc:
                text = _status_text(exc)
                transient = (exc.status_code == 429 or exc.status_code >= 500) and not names_response_format(text)
                if not transient or attempt > policy.max_retries:
                    raise ModelCallError(_after(text, attempt), status=exc.status_code, attempts=attempt) from None
                retry_after = _retry_after(exc.response.headers)
            except openai.APITimeoutError:
                if attempt > policy.max_retries:
                    text = f"request timed out after {policy.timeout_s:g} s"
                    raise ModelCallError(_after(text, attempt), status=None, attempts=attempt) from None
            except openai.APIConnectionError as exc:
                if attempt > policy.max_retries:
                    text = f"connection error to {self.route.base_url}: {exc.__cause__ or exc}"
                    raise ModelCallError(_after(text, attempt), status=None, attempts=attempt) from None
            except openai.APIError as exc:  # a malformed reply body: not transient
                raise ModelCallError(f"invalid reply: {exc}", status=None, attempts=attempt) from None
            await asyncio.sleep(policy.delay(attempt, retry_after))


def _after(text: str, attempts: int) -> str:
    return text if attempts == 1 else f"{text} (after {attempts} attempts)"


_endpoints: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Route, int], Endpoint]] = (
    weakref.WeakKeyDictionary()
)
_endpoints_lock = threading.Lock()


def endpoint_for(route: Route, max_concurrency: int) -> Endpoint:
    """The shared `Endpoint` for this route on the running loop (clients and semaphores are loop-bound)."""
    loop = asyncio.get_running_loop()
    with _endpoints_lock:
        per_loop = _endpoints.get(loop)
        if per_loop is None:
            per_loop = _endpoints[loop] = {}
        ep = per_loop.get((route, max_concurrency))
        if ep is None:
            ep = per_loop[(route, max_concurrency)] = Endpoint(route, max_concurrency)
        return ep


# -- structured-output mode memory (auto fallback, remembered per endpoint + model) --------------------------

_modes: dict[tuple[str, str], str] = {}


def remembered_mode(route: Route, model: str) -> str | None:
    return _modes.get((route.base_url, model))


def remember_mode(route: Route, model: str, mode: str) -> None:
    _modes[(route.base_url, model)] = mode


# -- cache -----------------------------------------------------------------------------------------------------


def cache_key(route: Route, model: str, messages: list[dict[str, Any]], params: dict[str, Any], schema: Any) -> str:
    """Stable digest of everything that determines a grade's model call (the key itself is never stored)."""
    payload = json.dumps(
        [route.base_url, model, messages, params, schema], sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class ResultCache:
    """A small sqlite key → JSON store; safe to share between the caller's thread and the background loop."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM calls WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        text = json.dumps(value, ensure_ascii=False)
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO calls (key, value) VALUES (?, ?)", (key, text))


_caches: dict[str, ResultCache] = {}
_caches_lock = threading.Lock()


def open_cache(path: str) -> ResultCache:
    """The process-wide cache for `path` (one connection per file)."""
    real = os.path.abspath(os.path.expanduser(path))
    with _caches_lock:
        cache = _caches.get(real)
        if cache is None:
            os.makedirs(os.path.dirname(real) or ".", exist_ok=True)
            cache = _caches[real] = ResultCache(real)
        return cache
