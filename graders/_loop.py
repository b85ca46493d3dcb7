"""Running coroutines from synchronous code: one long-lived background event loop per process.

Sync entry points (`CompiledGrader.run`, `run_many`) of async-native evaluators (model graders, the python pool)
submit their coroutines here. A single persistent loop keeps connection pools and clients bound to one loop, and
works even when the caller is itself inside a running loop (a notebook).

A forked child (`datasets.map(num_proc=…)`, a `DataLoader` worker, `multiprocessing` with `fork`) inherits the loop
object but not the thread that runs it, so a coroutine sent there would wait forever: the child forgets the loop
and starts its own on first use.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_inherited: list[asyncio.AbstractEventLoop] = []
"""Loops a forked child inherited without their thread: kept referenced, never run or closed here (closing would
touch the selector and wake-up socket the parent's loop still uses)."""


def background_loop() -> asyncio.AbstractEventLoop:
    """The process's background loop, started on first use in a daemon thread."""
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="graders-loop", daemon=True)
            thread.start()
            _loop = loop
        return _loop


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on the background loop and wait for its result."""
    return asyncio.run_coroutine_threadsafe(coro, background_loop()).result()


def _forget_after_fork() -> None:
    """In a forked child: the lock may have been held by a thread that does not exist here, and the loop's thread
    is gone; a new loop (and thread) is made on next use."""
    global _lock, _loop
    _lock = threading.Lock()
    if _loop is not None:
        _inherited.append(_loop)
        _loop = None


os.register_at_fork(after_in_child=_forget_after_fork)
