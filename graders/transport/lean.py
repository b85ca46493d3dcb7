"""The default HTTP client (`models.transport = "lean"`): HTTP/1.1 keep-alive connections on asyncio protocols.

Why not a general client: against a local judge answering in tens of milliseconds, the client's CPU per request
caps the throughput of an RL step. On the development VM (docs/models.md has the figures) httpx 0.28 spends
milliseconds per request once a pool holds dozens of connections (its pool scans every connection, polling each
socket, on every request and release), aiohttp 3.14 about 300 µs, and this client about a third of that: one write
per request (prepared head + orjson body), the reply parsed by llhttp (`httptools`, which handles Content-Length,
chunked bodies and keep-alive rules), the body decoded once by orjson.

What it covers: `http` and `https` (TLS with the system and certifi roots), keep-alive reuse with a retry on a
connection the server closed while idle, gzip/deflate bodies, bodies ended by a closed connection, a deadline per
request. What it does not: HTTP proxies (`models.transport = "openai_sdk"` honours `HTTPS_PROXY`) and HTTP/2.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import zlib
from collections import deque
from collections.abc import Coroutine, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httptools
import orjson

from ..errors import ModelCallError
from .http import NoReply, Reply
from .routing import Target

USER_AGENT = b"graders"
IDLE_S = 30.0
"""An idle connection older than this is closed instead of reused: servers drop idle keep-alive connections
(often after 5 to 75 s), and a request sent on one that is being dropped fails."""

_ssl_lock = threading.Lock()
_ssl_context: ssl.SSLContext | None = None


def tls_context() -> ssl.SSLContext:
    """One verifying TLS context for the process (building one loads the CA roots, milliseconds): the system
    roots plus certifi's, so both a corporate CA and a bare container verify public servers."""
    global _ssl_context
    with _ssl_lock:
        if _ssl_context is None:
            ctx = ssl.create_default_context()
            try:
                import certifi

                ctx.load_verify_locations(certifi.where())
            except (ImportError, OSError):
                pass
            ctx.set_alpn_protocols(["http/1.1"])
            _ssl_context = ctx
        return _ssl_context


class _Headers(Mapping[str, str]):
    """A reply's headers by lower-case name, decoded only if someone reads them (a success reply's rarely are,
    and OpenAI sends a score of them)."""

    __slots__ = ("_raw", "_dict")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._dict: dict[str, str] | None = None

    def _decoded(self) -> dict[str, str]:
        if self._dict is None:
            out: dict[str, str] = {}
            for name, value in self._raw:
                key, text = name.decode("latin-1").lower(), value.decode("latin-1")
                out[key] = f"{out[key]}, {text}" if key in out else text
            self._dict = out
        return self._dict

    def __getitem__(self, name: str) -> str:
        return self._decoded()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._decoded())

    def __len__(self) -> int:
        return len(self._decoded())


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time; `llhttp` parses what comes back."""

    def __init__(self, pool: LeanTransport) -> None:
        self._pool = pool
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.used = False  # a request completed on it before: only then is a close before any answer stale
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Reply] | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._framed = False  # Content-Length or Transfer-Encoding: the body does not end with the connection
        self._encoding = b""
        self._body: list[bytes] = []
        self._got_bytes = False
        self._headers_done = False
        self._complete = False
        self._keep_alive = False

    # -- asyncio.Protocol ---------------------------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(NoReply(f"invalid HTTP reply from {self._pool.origin}: {exc}", timeout=False))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._headers_done and not self._framed:
            self._finish()  # a body delimited by the end of the connection (HTTP/1.0 style)
            return
        stale = self.used and not self._got_bytes
        text = f"connection error to {self._pool.origin}: {exc or 'the server closed the connection'}"
        self._fail(NoReply(text, timeout=False, stale=stale))

    # -- llhttp callbacks ---------------------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        low = name.lower()
        if low == b"content-length" or low == b"transfer-encoding":
            self._framed = True
        elif low == b"content-encoding":
            self._encoding = value.strip().lower()

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self._keep_alive = self._parser.should_keep_alive()  # llhttp's verdict is only valid during the message

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue, 103 Early Hints): the real one follows
            self._headers = []
            self._framed = False
            self._encoding = b""
            self._headers_done = False
            return
        self._complete = True
        self._finish()

    # -- requests -----------------------------------------------------------------------------------------------

    def _finish(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        status = self._parser.get_status_code()
        body = b"".join(self._body)
        headers = _Headers(self._headers)
        encoding = self._encoding
        try:
            if encoding in (b"gzip", b"x-gzip"):
                body = zlib.decompress(body, 16 + zlib.MAX_WBITS)
            elif encoding == b"deflate":
                body = zlib.decompress(body)
        except zlib.error as exc:
            text = f"invalid reply: undecodable {encoding.decode('latin-1')} body ({exc})"
            waiter.set_result(Reply(status, headers, text))
            return
        try:
            parsed: Any = orjson.loads(body) if body else ""
        except orjson.JSONDecodeError:
            parsed = body.decode("utf-8", "replace")
        waiter.set_result(Reply(status, headers, parsed))

    def _fail(self, exc: NoReply) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def send(self, data: bytes, waiter: asyncio.Future[Reply]) -> None:
        self._waiter = waiter
        self._headers = []
        self._framed = False
        self._encoding = b""
        self._body = []
        self._got_bytes = False
        self._headers_done = False
        self._complete = False
        self._keep_alive = False
        assert self.transport is not None
        self.transport.write(data)

    def closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def reusable(self) -> bool:
        return self._complete and self._keep_alive and not self.closed

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class LeanTransport:
    """`Transport` over a pool of keep-alive connections to one server, for one event loop (most recently used
    connection first, so a burst that shrinks leaves the others to expire)."""

    def __init__(self, target: Target) -> None:
        parts = urlsplit(target.base_url)
        if not parts.hostname:
            raise ModelCallError(f"the model endpoint {target.base_url!r} names no host", status=None, attempts=0)
        if any("\r" in v or "\n" in v for v in target.headers.values()):
            raise ModelCallError("the model endpoint's key contains a line break", status=None, attempts=0)
        self.target = target
        self._tls = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._tls else 80)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self._prefix = parts.path.rstrip("/")
        self._query = f"?{target.query}" if target.query else ""
        headers = [
            f"Host: {parts.netloc.rpartition('@')[2]}",
            "Content-Type: application/json",
            "Accept: application/json",
            "Accept-Encoding: gzip, deflate",
            f"User-Agent: {USER_AGENT.decode()}",
            *(f"{name}: {value}" for name, value in target.headers.items()),
        ]
        self._head = ("\r\n" + "\r\n".join(headers) + "\r\nContent-Length: ").encode("latin-1")
        self._lines: dict[str, bytes] = {}
        self._idle: deque[_Connection] = deque()

    def _request_line(self, path: str) -> bytes:
        line = self._lines.get(path)
        if line is None:
            line = self._lines[path] = f"POST {self._prefix}{path}{self._query} HTTP/1.1".encode("latin-1")
        return line

    def _reuse(self, now: float) -> _Connection | None:
        """The most recently used idle connection still fit for a request, closing the expired ones."""
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and not conn.closing() and now - conn.idle_since < IDLE_S:
                return conn
            conn.close()
        return None

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        conn = _Connection(self)
        try:
            await loop.create_connection(
                lambda: conn, self._host, self._port, ssl=tls_context() if self._tls else None,
                server_hostname=self._host if self._tls else None,
            )  # fmt: skip
        except (OSError, ssl.SSLError) as exc:
            raise NoReply(f"connection error to {self.origin}: {exc}", timeout=False) from None
        return conn

    async def post_json(self, path: str, body: dict[str, Any], timeout_s: float) -> Reply:
        data = orjson.dumps(body)
        message = b"%s%s%d\r\n\r\n%s" % (self._request_line(path), self._head, len(data), data)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        fresh = False
        while True:
            waiter: asyncio.Future[Reply] = loop.create_future()
            timer = loop.call_at(deadline, _expire, waiter, timeout_s)
            conn = None if fresh else self._reuse(loop.time())
            try:
                if conn is None:
                    conn = await _until_deadline(self._connect(loop), waiter)
                conn.send(message, waiter)
                reply = await waiter
            except NoReply as exc:
                if conn is not None:
                    conn.close()
                if exc.stale and not fresh:  # the server closed this kept-alive connection as we sent: once more
                    fresh = True
                    continue
                raise
            except BaseException:
                if conn is not None:
                    conn.close()
                raise
            finally:
                timer.cancel()
            if conn.reusable():
                conn.idle_since = loop.time()
                conn.used = True
                self._idle.append(conn)
            else:
                conn.close()
            return reply


def _expire(waiter: asyncio.Future[Reply], timeout_s: float) -> None:
    if not waiter.done():
        waiter.set_exception(NoReply(f"request timed out after {timeout_s:g} s", timeout=True))


async def _until_deadline(connecting: Coroutine[Any, Any, _Connection], waiter: asyncio.Future[Reply]) -> _Connection:
    """Connecting, given up when the request's deadline fails `waiter` first."""
    task = asyncio.ensure_future(connecting)
    await asyncio.wait((task, waiter), return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        return task.result()
    task.cancel()
    raise waiter.exception() or NoReply("connection attempt abandoned", timeout=True)
