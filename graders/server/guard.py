"""The checks every request passes before any grading code sees it, as one plain ASGI layer.

- **Host**: the `Host` header must name this server (loopback names when bound to loopback; an IP literal, a
  loopback name or an `--allowed-host` otherwise), with the server's port if it has one. A web page that points a
  DNS name of its own at 127.0.0.1 (DNS rebinding) sends its own name, and is refused.
- **Content type**: a POST must be `application/json`. Browsers send cross-origin POSTs without a preflight only
  for form and text types, and no CORS headers are ever sent, so a web page cannot make a request this server
  accepts, nor read an answer.
- **API key** (when the server has one): `Authorization: Bearer <key>` or `api-key: <key>`, compared in constant
  time; otherwise 401 in OpenAI's envelope.
- **Body size**: a `Content-Length` over the limit is refused with 413 before the body is read (a body without
  one is counted as it arrives, in `app.read_body`).

`GET /health` and the playground's page and assets (`open_paths`) need no key: they hold no data.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any

from .envelope import error_body

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
OPEN_PATHS = frozenset({"/health"})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _split_host(value: str) -> tuple[str, int | None]:
    """`name[:port]` / `[v6][:port]` → (lower-cased name without brackets, port or None)."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    try:
        return name, int(port) if port else None
    except ValueError:
        return "", None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


class HostPolicy:
    """Which `Host` headers name this server."""

    def __init__(self, bind_host: str, port: int, allowed: Iterable[str] = ()) -> None:
        self.port = port
        self.loopback = is_loopback(bind_host)
        self.names = {_split_host(bind_host)[0] or bind_host.lower(), *LOOPBACK_NAMES}
        self.extra = {_split_host(h) for h in allowed}

    def allows(self, header: str | None) -> bool:
        if not header:
            return False
        name, port = _split_host(header)
        if (name, port) in self.extra or (name, None) in self.extra:
            return True
        if port is not None and port != self.port:
            return False
        if name in self.names:
            return True
        return not self.loopback and _is_ip(name)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class Guard:
    """ASGI middleware applying the module's checks, then calling `app`.

    `fast_routes` maps exact POST paths to their ASGI endpoints, which get the request straight after the checks;
    everything else (other routes, 404, 405, lifespan) goes to `app`. The two grading routes carry nearly all the
    traffic, and skipping the router's middleware and pattern match there is a measurable share of a string_check.
    """

    def __init__(
        self,
        app: ASGIApp,
        hosts: HostPolicy,
        api_key: str | None,
        max_body_bytes: int,
        fast_routes: Mapping[str, ASGIApp] | None = None,
        open_paths: frozenset[str] = OPEN_PATHS,
    ) -> None:
        self.app = app
        self.open_paths = open_paths
        self.hosts = hosts
        self._key_digest = _digest(api_key) if api_key else None
        self.max_body_bytes = max_body_bytes
        self.fast_routes = fast_routes or {}
        self._good_hosts: set[bytes] = set()

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = dict(scope["headers"])
        problem = self._check(scope, headers)
        if problem is not None:
            status, message, type_, code, extra = problem
            await _reply(send, status, error_body(message, type_, code), extra)
            return
        endpoint = self.fast_routes.get(scope["path"]) if scope["method"] == "POST" else None
        await (endpoint or self.app)(scope, receive, send)

    def _host_ok(self, host: bytes | None) -> bool:
        if host in self._good_hosts:
            return True
        ok = self.hosts.allows(host.decode("latin-1") if host is not None else None)
        if ok and host is not None and len(self._good_hosts) < 64:
            self._good_hosts.add(host)
        return ok

    def _check(self, scope: Scope, headers: dict[bytes, bytes]) -> tuple[int, str, str, str, list[tuple[bytes, bytes]]] | None:
        if not self._host_ok(headers.get(b"host")):
            return 403, "The Host header does not name this server; requests through other names are refused.", "invalid_request_error", "host_not_allowed", []
        path = scope["path"]
        if path in self.open_paths and scope["method"] in ("GET", "HEAD"):
            return None
        if self._key_digest is not None and not self._key_ok(headers):
            return 401, "Incorrect API key provided. Send the server's key as 'Authorization: Bearer <key>'.", "invalid_request_error", "invalid_api_key", [(b"www-authenticate", b"Bearer")]
        if scope["method"] == "POST":
            content_type = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
            if content_type != b"application/json":
                return 415, "The request body must be JSON, sent with 'Content-Type: application/json'.", "invalid_request_error", "unsupported_media_type", []
            length = headers.get(b"content-length")
            if length is not None:
                try:
                    size = int(length)
                except ValueError:
                    return 400, "The Content-Length header is not a number.", "invalid_request_error", "invalid_content_length", []
                if size > self.max_body_bytes:
                    return 413, too_large(self.max_body_bytes), "invalid_request_error", "request_too_large", []
        return None

    def _key_ok(self, headers: dict[bytes, bytes]) -> bool:
        raw = headers.get(b"authorization")
        if raw is not None:
            scheme, _, token = raw.decode("latin-1").partition(" ")
            given = token.strip() if scheme.lower() == "bearer" else ""
        else:
            given = headers.get(b"api-key", b"").decode("latin-1").strip()
        return hmac.compare_digest(_digest(given), self._key_digest or b"")


def too_large(limit: int) -> str:
    return f"The request body is larger than this server's limit of {limit} bytes (graders serve --max-body-bytes)."


async def _reply(send: Callable[[Any], Awaitable[None]], status: int, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
