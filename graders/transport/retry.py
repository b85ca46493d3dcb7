"""Which failures are worth another attempt and how long to wait (options `models.*`).

Only transient failures are retried: connection errors, timeouts, HTTP 429 and 5xx, except an error that names the
response format (a deterministic rejection of the structured-output mode, which model graders answer by falling
back). The delay is exponential with full jitter; a server's `Retry-After` / `retry-after-ms` wins, capped.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from ..options import ModelClientOptions


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Per-request timeout and the transient-failure retry schedule."""

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


def names_response_format(text: str) -> bool:
    """An HTTP error whose message names the response format rejects that mode for good: OpenAI-style servers answer
    400, llama-cpp-python's server a 500 validation error, which must not be retried as transient."""
    low = text.lower()
    return "response_format" in low or "json_schema" in low


def is_transient(status: int, text: str) -> bool:
    return (status == 429 or status >= 500) and not names_response_format(text)


def retry_after(headers: Mapping[str, str]) -> float | None:
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
