"""Per-model counters of everything the transport did in this process: requests, retries, failures, 429s, time
spent waiting for a rate budget, latency, token usage, cache hits.

`STATS.snapshot()` gives `{model: {counter: value}}` (the model as requested, e.g. the grader's `model` or the
embedding model), and `STATS.since(earlier)` the difference to an earlier snapshot, so a batch reports what it
alone cost while other work shares the process.
"""

from __future__ import annotations

import threading
from typing import Any

COUNTERS = (
    "requests",
    "retries",
    "failures",
    "rate_limited",
    "cache_hits",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "wait_s",
    "latency_s",
)
"""requests: HTTP requests sent (every attempt); retries: attempts after the first; failures: calls that ended
in an error after their retries; rate_limited: 429 answers; cache_hits: grades answered by `models.cache_path`;
*_tokens: the replies' usage; wait_s: seconds spent waiting for a rate budget, a 429 pause or a concurrency slot;
latency_s: seconds requests were in flight (divide by requests for the mean)."""


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class TransportStats:
    """Thread-safe counters, one row per model."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, dict[str, float]] = {}

    def _row(self, model: str) -> dict[str, float]:
        row = self._rows.get(model)
        if row is None:
            row = self._rows[model] = {k: 0 for k in COUNTERS}
        return row

    def attempt(
        self, model: str, *, retry: bool, rate_limited: bool, wait_s: float, latency_s: float, reply: Any = None
    ) -> None:
        """One HTTP attempt; `reply` is the JSON object of a successful one, whose usage is added."""
        usage = reply.get("usage") if isinstance(reply, dict) else None
        with self._lock:
            row = self._rows.get(model) or self._row(model)
            row["requests"] += 1
            row["retries"] += retry
            row["rate_limited"] += rate_limited
            row["wait_s"] += wait_s
            row["latency_s"] += latency_s
            if isinstance(usage, dict):
                prompt, completion = _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))
                total = usage.get("total_tokens")
                details = usage.get("prompt_tokens_details")
                row["prompt_tokens"] += prompt
                row["completion_tokens"] += completion
                row["total_tokens"] += _int(total) if total is not None else prompt + completion
                row["cached_tokens"] += _int(details.get("cached_tokens")) if isinstance(details, dict) else 0

    def failed(self, model: str) -> None:
        with self._lock:
            self._row(model)["failures"] += 1

    def cache_hit(self, model: str) -> None:
        with self._lock:
            self._row(model)["cache_hits"] += 1

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Every model's counters now (copies)."""
        with self._lock:
            return {model: dict(row) for model, row in self._rows.items()}

    def since(self, earlier: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        """The counters accumulated after `earlier` (a `snapshot()`), for the models that did anything."""
        out = {}
        for model, row in self.snapshot().items():
            before = earlier.get(model, {})
            delta = {k: v - before.get(k, 0) for k, v in row.items()}
            if any(delta.values()):
                out[model] = {k: round(v, 6) if isinstance(v, float) else v for k, v in delta.items()}
        return out


STATS = TransportStats()
"""The process's counters (see the module docstring)."""
