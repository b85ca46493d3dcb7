"""Requests and tokens per minute (`models.max_rpm`, `models.max_tpm`), and the pause a 429 puts on an endpoint.

One `RateLimiter` per budget (route and scope, see `RateLimits`) for the whole process: it holds no event-loop
object (a lock, monotonic timestamps), so every sample, sub-grader, loop and thread calling that endpoint draws
from the same budget and it is never multiplied.

Each limit is a GCRA (the generic cell rate algorithm, a token bucket kept as one timestamp): a request of cost
`c` moves the bucket's "theoretical arrival time" `tat` on by `c × 60 / limit` seconds and may start once
`tat - burst` is past, where `burst` is one second (1/60 of the limit can go at once). Waiting requests hold
reservations in arrival order, so the pace is even and nobody starves. A request's token cost is estimated
before it is sent (text characters / 4 plus its completion cap, no tokenizer: none can be downloaded at run
time) and corrected once the reply's usage is known.

A 429 (with `Retry-After`, or the retry delay when it has none) pauses the whole budget: requests waiting for a
slot inside the pause take a fresh one after it, so the pace after a pause is the limit's, not a stampede.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from .routing import RateLimits, Route

BURST_S = 1.0
"""Seconds of a limit that may be spent at once."""
COMPLETION_ESTIMATE = 256
"""Completion tokens assumed for a request without a cap (`max_completion_tokens` / `max_tokens`)."""


class _Gcra:
    __slots__ = ("interval", "tolerance", "tat")

    def __init__(self, per_minute: int) -> None:
        self.interval = 60.0 / per_minute
        self.tolerance = max(0.0, BURST_S - self.interval)
        self.tat = 0.0

    def take(self, cost: float, earliest: float) -> float:
        """Reserve `cost` units; returns when the request may start (never before `earliest`)."""
        tat = max(self.tat, earliest)
        self.tat = tat + cost * self.interval
        return max(earliest, tat - self.tolerance)

    def give_back(self, cost: float) -> None:
        self.tat -= cost * self.interval


class RateLimiter:
    """The budget shared by everything in the process that calls one endpoint (see the module docstring)."""

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._requests = _Gcra(limits.max_rpm) if limits.max_rpm else None
        self._tokens = _Gcra(limits.max_tpm) if limits.max_tpm else None
        self._limited = self._requests is not None or self._tokens is not None
        self.paused_until = 0.0
        self._pauses = 0

    def _reserve(self, tokens: float, now: float) -> float:
        with self._lock:
            start = max(now, self.paused_until)
            if self._requests is not None:
                start = max(start, self._requests.take(1, start))
            if self._tokens is not None:
                start = max(start, self._tokens.take(tokens, start))
            return start

    def _give_back(self, tokens: float) -> None:
        with self._lock:
            if self._requests is not None:
                self._requests.give_back(1)
            if self._tokens is not None:
                self._tokens.give_back(tokens)

    async def acquire(self, tokens: float) -> float:
        """Wait until a request costing `tokens` (estimated) may be sent; returns the seconds waited."""
        now = time.monotonic()
        if not self._limited and self.paused_until <= now:
            return 0.0
        began = now
        start = self._reserve(tokens, now)
        pauses = self._pauses
        try:
            while True:
                delay = start - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                now = time.monotonic()
                if self._pauses == pauses or self.paused_until <= now:
                    return now - began
                pauses = self._pauses  # a pause began while this request waited: a new slot after it
                self._give_back(tokens)
                start = self._reserve(tokens, now)
        except asyncio.CancelledError:
            self._give_back(tokens)
            raise

    def correct(self, delta_tokens: float) -> None:
        """Count `delta_tokens` more (or fewer) than estimated for a request already sent."""
        if self._tokens is not None and delta_tokens:
            with self._lock:
                self._tokens.give_back(-delta_tokens)

    def pause(self, seconds: float) -> None:
        """Hold every request on this budget for `seconds` (a 429 said the endpoint is over its limit)."""
        if seconds <= 0:
            return
        with self._lock:
            self.paused_until = max(self.paused_until, time.monotonic() + seconds)
            self._pauses += 1


_limiters: dict[tuple[Route, RateLimits], RateLimiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(route: Route, limits: RateLimits) -> RateLimiter:
    """The process's one limiter for this budget."""
    key = (route, limits)
    with _limiters_lock:
        limiter = _limiters.get(key)
        if limiter is None:
            limiter = _limiters[key] = RateLimiter(limits)
        return limiter


def estimate_tokens(body: dict[str, Any]) -> int:
    """Tokens a Chat Completions or Embeddings request will be counted for, before it is sent: its text's
    characters / 4, plus the completion cap (or `COMPLETION_ESTIMATE`) for a chat request. Images and audio
    are not counted here; the reply's usage corrects the estimate."""
    chars = 0
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                chars += len(content)
            elif isinstance(content, list):
                for part in content:
                    text = part.get("text") if isinstance(part, dict) else None
                    if isinstance(text, str):
                        chars += len(text)
        cap = body.get("max_completion_tokens", body.get("max_tokens"))
        completion = cap if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0 else COMPLETION_ESTIMATE
        return chars // 4 + completion
    texts = body.get("input")
    if isinstance(texts, str):
        return len(texts) // 4
    if isinstance(texts, list):
        return sum(len(t) for t in texts if isinstance(t, str)) // 4
    return 0


def used_tokens(reply: dict[str, Any]) -> int | None:
    """Tokens a reply says it used (`usage.total_tokens`, else prompt + completion), or None."""
    usage = reply.get("usage")
    if not isinstance(usage, dict):
        return None
    total = usage.get("total_tokens")
    if isinstance(total, int) and not isinstance(total, bool):
        return total
    parts = [usage.get("prompt_tokens"), usage.get("completion_tokens")]
    counted = [p for p in parts if isinstance(p, int) and not isinstance(p, bool)]
    return sum(counted) if counted else None
