"""OpenAI's error envelope (§12.1) for every refusal the server makes, so SDKs raise their usual error classes."""

from __future__ import annotations

from typing import Any

from .._json import dumps


def error_body(message: str, type_: str = "invalid_request_error", code: str | None = None, param: str | None = None) -> bytes:
    """`{"error": {"message", "type", "param", "code"}}` as JSON bytes."""
    return dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


def envelope_of(error: Any) -> bytes:
    """The body of a `GraderValidationError` (its own §12.1 envelope)."""
    return dumps(error.envelope())
