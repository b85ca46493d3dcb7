"""What bounds one server's work: requests in flight, the body size and the time a request may take.

`/run` and `/validate` are refused with 429 and `Retry-After` when the server is full, which OpenAI's SDK honours.
`/get_reward` waits for a slot instead, because OpenRLHF's reward client ignores `Retry-After` and retries a
refused batch after a fixed second, five times, then drops it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """The server's bounds; every field is a `graders serve` flag."""

    max_body_bytes: int = 16 * 1024 * 1024
    """Largest request body accepted; larger ones get 413 before the body is read."""
    request_timeout_s: float = 300.0
    """Longest a request may take, queueing included (above `python.timeout_s`, so python timeouts stay flags)."""
    max_in_flight: int = 256
    """Requests graded at once; past this `/run` and `/validate` get 429, `/get_reward` queues."""
    retry_after_s: int = 1
    """The `Retry-After` sent with a 429."""


class InFlight:
    """A counter of requests being served on one event loop, with a queue for callers willing to wait."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.limit = limit
        self.active = 0
        self._waiters: list[asyncio.Future[None]] = []

    def try_enter(self) -> bool:
        """Take a slot if one is free and nobody is queued for it."""
        if self.active >= self.limit or self._waiters:
            return False
        self.active += 1
        return True

    async def enter(self) -> None:
        """Take a slot, waiting in line for one if the server is full."""
        if self.try_enter():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter.done() and not waiter.cancelled():
                self.leave()  # the slot was handed over just as the caller gave up: pass it on
            raise

    def leave(self) -> None:
        """Give a slot back, to the first caller in line if there is one."""
        while self._waiters:
            waiter = self._waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                return
        self.active -= 1
