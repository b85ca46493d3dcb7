"""Shared infrastructure for everything that calls a model server (model graders, cosine's embeddings).

- `routing`: which server, key and address style each model uses (`Route`, `resolve_route`) and its rate budget
  (`RateLimits`), from `models.*` options;
- `http`: the HTTP client behind one small interface (`Transport.post_json -> Reply`): `lean` (lean.py, the
  default) or the openai SDK (sdk.py), chosen by `models.transport`;
- `limits`: requests and tokens per minute per endpoint, process-wide, and the pause after a 429;
- `retry`: transient-only retries with full jitter and `Retry-After`;
- `endpoint`: per-loop endpoints with the shared concurrency limit, per-server memory (the structured-output
  mode each model accepts, keyed by URL and key), and `ModelClient`, what a compiled grader holds;
- `stats`: per-model counters (requests, retries, tokens, ...) for batch summaries;
- `cache`: the sqlite cache of completed calls.

Grader families import only from this package, never from one another.
"""

from ..errors import ModelCallError
from .cache import ResultCache, cache_key, open_cache
from .endpoint import ENDPOINTS, Call, Endpoint, Endpoints, ModelClient, Server
from .http import NoReply, Reply, Transport, make_transport
from .limits import RateLimiter, estimate_tokens, limiter_for
from .retry import RetryPolicy, is_transient, names_response_format, retry_after
from .routing import DEFAULT_BASE_URL, NO_KEY, RateLimits, Route, Target, resolve_limits, resolve_route
from .stats import STATS, TransportStats

__all__ = [
    "DEFAULT_BASE_URL",
    "ENDPOINTS",
    "NO_KEY",
    "STATS",
    "Call",
    "Endpoint",
    "Endpoints",
    "ModelCallError",
    "ModelClient",
    "NoReply",
    "RateLimiter",
    "RateLimits",
    "Reply",
    "ResultCache",
    "RetryPolicy",
    "Route",
    "Server",
    "Target",
    "Transport",
    "TransportStats",
    "cache_key",
    "estimate_tokens",
    "is_transient",
    "limiter_for",
    "make_transport",
    "names_response_format",
    "open_cache",
    "resolve_limits",
    "resolve_route",
    "retry_after",
]
