"""A sqlite cache of completed model calls (`models.cache_path`); the caller decides what is worth caching (never
failures), and the key is a digest of everything that determines a call's result."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from typing import Any

from .routing import Route


def cache_key(route: Route, model: str, messages: list[dict[str, Any]], params: dict[str, Any], schema: Any) -> str:
    """Stable digest of the server (for Azure the deployment's URL), model, rendered messages, sampling params and
    schema (the API key is neither part of it nor stored: it changes who pays, not the reply)."""
    payload = json.dumps(
        [route.location, model, messages, params, schema], sort_keys=True, ensure_ascii=False, separators=(",", ":")
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
    real = os.path.abspath(path)
    with _caches_lock:
        cache = _caches.get(real)
        if cache is None:
            os.makedirs(os.path.dirname(real) or ".", exist_ok=True)
            cache = _caches[real] = ResultCache(real)
        return cache
