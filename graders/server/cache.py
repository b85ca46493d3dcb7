"""A bounded least-recently-used cache of compiled graders, keyed by the config's JSON and the request's options.

The key is the re-serialised JSON itself (key order kept: a `multi`'s key order decides its response), not a digest
of it: hashing bytes is what the dict does anyway, and a compiled grader holds its whole config already.

A config seen before is neither revalidated nor rebuilt: its templates stay compiled and its python workers, model
clients and metric state stay warm. An invalid config is cached as its validation error, so it is not revalidated
either. An evicted grader is closed once no request is still using it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from ..engine import CompiledGrader
from ..errors import GraderValidationError

# How a compiled grader runs on the server: inline on the event loop (microseconds of CPU), awaited (python and
# model graders, which wait on workers or the network), or in a thread (CPU-bound text metrics).
INLINE, ASYNC, THREAD = "inline", "async", "thread"
_INLINE_TYPES = frozenset({"string_check", "multi"})
_THREAD_TYPES = frozenset({"text_similarity"})


def grader_types(config: object) -> set[str]:
    """Every grader type in a config tree."""
    types = {config.type}  # type: ignore[attr-defined]
    for sub in (getattr(config, "graders", None) or {}).values():
        types |= grader_types(sub)
    return types


def execution_mode(compiled: CompiledGrader) -> str:
    types = grader_types(compiled.config)
    if types & _THREAD_TYPES:
        return THREAD
    return INLINE if types <= _INLINE_TYPES else ASYNC


@dataclass(eq=False)
class Entry:
    """One cached config: its compiled grader and how it runs, or the validation error it raised."""

    compiled: CompiledGrader | None
    error: GraderValidationError | None
    mode: str = INLINE
    named: bool = True
    users: int = 0
    evicted: bool = field(default=False, repr=False)


class GraderCache:
    """Thread-safe LRU of `Entry` by key; `lease`/`release` bracket each use so eviction never closes a grader
    that a request is running."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("the grader cache needs room for at least one grader")
        self.maxsize = maxsize
        self._entries: OrderedDict[bytes, Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def lease_cached(self, key: bytes) -> Entry | None:
        """The entry for `key` if it is cached (then the caller must `release` it), else None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            entry.users += 1
            self.hits += 1
            return entry

    def lease(self, key: bytes, build: Callable[[], CompiledGrader]) -> Entry:
        """The entry for `key`, built on a miss (outside the lock); the caller must `release` it."""
        entry = self.lease_cached(key)
        if entry is not None:
            return entry
        with self._lock:
            self.misses += 1
        try:
            compiled = build()
            entry = Entry(compiled, None, execution_mode(compiled), compiled.config.name is not None)
        except GraderValidationError as exc:
            entry = Entry(None, exc)
        with self._lock:
            existing = self._entries.get(key)
            if existing is not None:  # another request built the same config meanwhile: keep the first
                self._entries.move_to_end(key)
                existing.users += 1
                _close(entry)
                return existing
            entry.users += 1
            self._entries[key] = entry
            while len(self._entries) > self.maxsize:
                _, old = self._entries.popitem(last=False)
                old.evicted = True
                if old.users == 0:
                    _close(old)
        return entry

    def release(self, entry: Entry) -> None:
        with self._lock:
            entry.users -= 1
            closing = entry.evicted and entry.users == 0
        if closing:
            _close(entry)

    def clear(self) -> None:
        with self._lock:
            entries, self._entries = list(self._entries.values()), OrderedDict()
        for entry in entries:
            entry.evicted = True
            if entry.users == 0:
                _close(entry)


def _close(entry: Entry) -> None:
    if entry.compiled is not None:
        entry.compiled.close()
