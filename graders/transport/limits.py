"""Requests and tokens per minute (`models.max_rpm`, `models.max_tpm`), and the pause a 429 puts on an endpoint.

One `RateLimiter` per budget (route and scope, see `RateLimits`) for the whole process: it holds no event-loop
object (a lock, monotonic timestamps), so every sample, sub-grader, loop and thread calling that endpoint draws
from the same budget and it is never multiplied.

Each limit is a GCRA (the generic cell rate algorithm, a token bucket kept as one timestamp): a request of cost
`c` moves the bucket's "theoretical arrival time" `tat` on by `c × 60 / limit` seconds and may go once
`tat - burst` is past, where `burst` is one second (at most 1/60 of the limit goes at once). Waiting requests
queue in arrival order and only the first one watches the clock, so a long queue costs nothing and nobody
starves. A request's token cost is estimated before it is sent (text characters / 4 plus its completion cap, no
tokenizer: none can be downloaded at run time) and corrected once the reply's usage is known; since queued
requests are admitted against the bucket as it is when their turn comes, corrections reach them too.

A 429 (with `Retry-After`, or the retry delay when it has none) pauses the whole budget: nothing is admitted or
sent until the pause is over, and then the queue goes on at the limit's pace, not as a stampede.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
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

    def opens(self) -> float:
        """When the next request may go."""
        return self.tat - self.tolerance

    def take(self, cost: float, now: float) -> None:
        self.tat = max(self.tat, now) + cost * self.interval


class RateLimiter:
    """The budget shared by everything in the process that calls one endpoint (see the module docstring)."""

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._requests = _Gcra(limits.max_rpm) if limits.max_rpm else None
        self._tokens = _Gcra(limits.max_tpm) if limits.max_tpm else None
        self._limited = self._requests is not None or self._tokens is not None
        self.counts_tokens = self._tokens is not None
        """Whether requests' tokens are counted (a `max_tpm`): only then are they estimated and corrected."""
        self._queue: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()
        self.paused_until = 0.0

    def _opens(self, now: float) -> float:
        start = max(now, self.paused_until)
        if self._requests is not None:
            start = max(start, self._requests.opens())
        if self._tokens is not None:
            start = max(start, self._tokens.opens())
        return start

    def _leave(self, turn: asyncio.Future[None]) -> None:
        """Take `turn` out of the queue (under the lock); if it was first, hand the turn to the next waiter."""
        if not (self._queue and self._queue[0][1] is turn):
            self._queue = deque(entry for entry in self._queue if entry[1] is not turn)
            return
        self._queue.popleft()
        while self._queue:
            loop, nxt = self._queue[0]
            try:
                loop.call_soon_threadsafe(_give_turn, nxt)
                return
            except RuntimeError:  # that waiter's loop is closed: it will never run
                self._queue.popleft()

    async def acquire(self, tokens: float) -> float:
        """Wait until a request costing `tokens` (estimated) may be sent, and count it; returns the seconds
        waited."""
        began = time.monotonic()
        if not self._limited and self.paused_until <= began:
            return 0.0
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._queue.append((loop, turn))
            first = len(self._queue) == 1
        try:
            if not first:
                await turn
            while True:
                now = time.monotonic()
                with self._lock:
                    start = self._opens(now)
                    if start <= now:
                        if self._requests is not None:
                            self._requests.take(1, now)
                        if self._tokens is not None:
                            self._tokens.take(tokens, now)
                        self._leave(turn)
                        return now - began
                await asyncio.sleep(start - now)
        except BaseException:
            with self._lock:
                self._leave(turn)
            raise

    async def hold(self) -> float:
        """Wait out a pause that began after this request was admitted; returns the seconds waited."""
        began = now = time.monotonic()
        while self.paused_until > now:
            await asyncio.sleep(self.paused_until - now)
            now = time.monotonic()
        return now - began

    def correct(self, delta_tokens: float) -> None:
        """Count `delta_tokens` more (or fewer) than estimated for a request already sent."""
        if self._tokens is not None and delta_tokens:
            with self._lock:
                self._tokens.tat += delta_tokens * self._tokens.interval

    def pause(self, seconds: float) -> None:
        """Hold every request on this budget for `seconds` (a 429 said the endpoint is over its limit)."""
        if seconds > 0:
            with self._lock:
                self.paused_until = max(self.paused_until, time.monotonic() + seconds)


def _give_turn(turn: asyncio.Future[None]) -> None:
    if not turn.done():
        turn.set_result(None)


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
