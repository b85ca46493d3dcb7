"""Shared infrastructure for everything that calls a model server (model graders, cosine's embeddings).

- `routing`: which server and key each model uses (`Route`, `resolve_route`), from `models.*` options;
- `http`: the HTTP client behind one small interface (`Transport.post_json -> Reply`), the openai SDK today;
- `retry`: transient-only retries with full jitter and `Retry-After`;
- `endpoint`: per-loop endpoints with the shared concurrency limit, and per-server memory (the structured-output
  mode each model accepts, keyed by URL and key);
- `cache`: the sqlite cache of completed calls.

Grader families import only from this package, never from one another.
"""

from ..errors import ModelCallError
from .cache import ResultCache, cache_key, open_cache
from .endpoint import ENDPOINTS, Endpoint, Endpoints, Server, endpoint_for
from .http import NoReply, OpenAISDKTransport, Reply, Transport
from .retry import RetryPolicy, is_transient, names_response_format, retry_after
from .routing import DEFAULT_BASE_URL, NO_KEY, Route, resolve_route

__all__ = [
    "DEFAULT_BASE_URL",
    "ENDPOINTS",
    "NO_KEY",
    "Endpoint",
    "Endpoints",
    "ModelCallError",
    "NoReply",
    "OpenAISDKTransport",
    "Reply",
    "ResultCache",
    "RetryPolicy",
    "Route",
    "Server",
    "Transport",
    "cache_key",
    "endpoint_for",
    "is_transient",
    "names_response_format",
    "open_cache",
    "resolve_route",
    "retry_after",
]
