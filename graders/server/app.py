"""The server: OpenAI's graders routes with the hosted bodies (§3), OpenRLHF's `/get_reward`, and `GET /health`.

uvicorn serves the app (with uvloop and httptools when installed) and Starlette routes what is not a grading route
(`/health`, 404, 405) and runs the lifespan: both are small, typed and actively maintained. Every request first
passes `guard.Guard` (host, content type, API key, declared body size), which hands the grading routes straight to
their `GradingEndpoint` (in-flight bound, body limit, per-request time limit, envelopes).

- `POST /v1/fine_tuning/alpha/graders/run`: `{"grader", "model_sample" | "sample", "item"?, "reference_answer"?}`
  → the `GraderRunResponse` (§3.2), 200 also when grading failed (flags, §3.2), 400 with the §12.1 envelope for
  an invalid grader or request (`param` as the validation names it). An `options` object may set scoring options
  (`request_options.SCORING_OPTIONS`) for that request only.
- `POST /v1/fine_tuning/alpha/graders/validate`: `{"grader"}` → `{"grader": <echo>}` (§3.5) or the 400.
- `POST /get_reward` (with `--reward-grader`): OpenRLHF's body → `{"rewards", "scores", "extra_logs"}`.
- `GET /health` → `{"status": "ok", ...}`, without an API key.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .._json import dumps
from ..engine import CompiledGrader
from ..integrations.openrlhf import OpenRLHFMapping, OpenRLHFReward
from ..namespaces import MISSING
from ..options import Options
from ..errors import GraderValidationError, invalid_type, missing
from ..validation import generate_name, validate
from .cache import INLINE, THREAD, Entry, GraderCache, execution_mode, grader_types
from .envelope import envelope_of, error_body
from .guard import OPEN_PATHS, Guard, HostPolicy, is_loopback, too_large
from .isolation import full_isolation_available, refuse_python
from .limits import InFlight, Limits
from .playground import Opened, Playground
from .request_options import apply_overrides, request_overrides

log = logging.getLogger("graders.server")

RUN_PATH = "/v1/fine_tuning/alpha/graders/run"
VALIDATE_PATH = "/v1/fine_tuning/alpha/graders/validate"
REWARD_PATH = "/get_reward"
JSON = "application/json"
UVICORN_SETTINGS: dict[str, Any] = {
    "log_level": "warning",
    "access_log": False,
    "server_header": False,
    "proxy_headers": False,  # client addresses are never used, so X-Forwarded-* is never trusted either
    "timeout_keep_alive": 30,
    "lifespan": "on",
}


@dataclass(frozen=True)
class ServerConfig:
    """Everything `graders serve` decides; the environment is read only by the CLI (`GRADERS_API_KEY`)."""

    host: str = "127.0.0.1"
    port: int = 8765
    options: Options = field(default_factory=Options)
    """The server's options (paths, endpoints, limits included); requests may change only scoring options."""
    api_key: str | None = None
    limits: Limits = field(default_factory=Limits)
    cache_size: int = 256
    """Compiled graders kept (least recently used evicted)."""
    allow_weak_isolation: bool = False
    """Run python graders even when the sandbox's full level is not available here."""
    allowed_hosts: tuple[str, ...] = ()
    """Extra `Host` names (e.g. behind a reverse proxy); loopback names and the bound address always work."""
    reward_grader: Any = None
    """The grader config behind `/get_reward` (None: no such route)."""
    reward_mapping: OpenRLHFMapping = field(default_factory=OpenRLHFMapping)
    cpu_threads: int = 2
    """Threads for CPU-bound graders (text metrics), so they never stall the event loop."""
    opened: Opened = field(default_factory=Opened)
    """Grader files and JSONL files the playground offers (`graders ui FILE ...`)."""


class Refusal(Exception):
    """A request refused before grading, with its status and envelope."""

    def __init__(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def _json_response(body: bytes, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(body, status, headers=headers, media_type=JSON)


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw)  # integers past 64 bits, lone surrogates
    except (ValueError, RecursionError):
        raise Refusal(400, error_body("We could not parse the JSON body of your request: it is not valid JSON.", code="invalid_json")) from None


class GraderService:
    """The work behind the routes: cached compiled graders, run the way that keeps the event loop free."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.full_isolation = full_isolation_available(config.options)
        # Without --allow-weak-isolation python graders may only ever run at the full level, never a fallback.
        self.options = config.options if config.allow_weak_isolation else config.options.with_values({"python.isolation": "strict"})
        self.limits = config.limits
        self.cache = GraderCache(config.cache_size)
        self.python_allowed = config.allow_weak_isolation or self.full_isolation
        self.threads = ThreadPoolExecutor(max_workers=config.cpu_threads, thread_name_prefix="graders-cpu")
        self.in_flight = InFlight(config.limits.max_in_flight)
        self.reward: OpenRLHFReward | None = None
        self.reward_mode = INLINE
        if config.reward_grader is not None:
            compiled = self.compile(config.reward_grader, self.options)
            self.reward = OpenRLHFReward(compiled, mapping=config.reward_mapping)
            self.reward_mode = execution_mode(compiled)

    def compile(self, grader: Any, options: Options) -> CompiledGrader:
        compiled = CompiledGrader(grader, options)
        if not self.python_allowed and "python" in grader_types(compiled.config):
            refuse_python(compiled)
        return compiled

    def close(self) -> None:
        self.cache.clear()
        if self.reward is not None:
            self.reward.close()
        self.threads.shutdown(wait=False, cancel_futures=True)

    # -- routes ---------------------------------------------------------------------------------------------------

    async def lease(self, grader: Any, overrides: dict[str, Any]) -> Entry:
        """The cache entry of `grader` built with `overrides` (the caller must `cache.release` it)."""
        key = dumps([grader, dict(sorted(overrides.items()))]) if overrides else dumps(grader)
        entry = self.cache.lease_cached(key)
        if entry is None:  # validating and building (templates, a WordNet load) may take a while: not on the loop
            entry = await self._lease_in_thread(key, partial(self._build, grader, overrides))
        return entry

    async def run(self, body: Any, deadline: float, *, details: bool = False) -> bytes:
        """One `/run`; `deadline` (monotonic) bounds the grades that wait (inline ones take microseconds).

        `details` (the playground's run) grades with `explain` on and adds the local trace to the wire response.
        """
        if not isinstance(body, dict):
            raise invalid_type("body", "an object", body)
        grader = body.get("grader")
        if grader is None:
            raise missing("grader")
        overrides = request_overrides(body.get("options"))
        if details:
            overrides["explain"] = True
        entry = await self.lease(grader, overrides)
        try:
            if entry.error is not None:
                raise entry.error
            compiled = entry.compiled
            assert compiled is not None
            args = (body.get("model_sample"), body.get("item"))
            kwargs = {"sample": body.get("sample"), "reference_answer": body.get("reference_answer", MISSING)}
            if entry.mode == INLINE:
                response = compiled.run(*args, **kwargs)
            elif entry.mode == THREAD:
                work = asyncio.get_running_loop().run_in_executor(self.threads, partial(compiled.run, *args, **kwargs))
                response = await asyncio.wait_for(work, deadline - time.monotonic())
            else:
                response = await asyncio.wait_for(compiled.arun(*args, **kwargs), deadline - time.monotonic())
            if not entry.named:
                response.name = generate_name()  # §3.4: a new name on every request
            return dumps(response.model_dump(mode="json", include_details=True) if details else response.model_dump())
        finally:
            self.cache.release(entry)

    async def _lease_in_thread(self, key: bytes, build: Callable[[], CompiledGrader]) -> Entry:
        """`cache.lease` on a worker thread; if the request is cancelled meanwhile, the lease is still released."""
        future = self.threads.submit(self.cache.lease, key, build)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.add_done_callback(self._release_abandoned)
            raise

    def _release_abandoned(self, future: Future[Entry]) -> None:
        if not future.cancelled() and future.exception() is None:
            self.cache.release(future.result())

    def _build(self, grader: Any, overrides: dict[str, Any]) -> CompiledGrader:
        return self.compile(grader, apply_overrides(self.options, overrides))

    async def validate(self, body: Any, deadline: float) -> bytes:
        if not isinstance(body, dict):
            raise invalid_type("body", "an object", body)
        if body.get("grader") is None:
            raise missing("grader")
        options = apply_overrides(self.options, request_overrides(body.get("options")))
        work = partial(validate, body["grader"], options)  # compiling a large python source takes milliseconds
        echo = await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(self.threads, work), deadline - time.monotonic())
        return dumps(echo.model_dump())

    async def get_reward(self, body: Any, deadline: float) -> bytes:
        assert self.reward is not None
        if not isinstance(body, dict):
            raise invalid_type("body", "an object", body)
        queries = body.get("query")
        if queries is None:
            raise missing("query")
        columns = {"query": queries, "prompts": body.get("prompts"), "labels": body.get("labels")}
        for name, value in columns.items():
            if value is not None and not isinstance(value, list):
                raise invalid_type(name, "an array", value)
        for i, query in enumerate(queries):
            if not isinstance(query, str):
                raise invalid_type(f"query[{i}]", "a string", query)
        for name in ("prompts", "labels"):
            if columns[name] is not None and len(columns[name]) != len(queries):
                raise GraderValidationError(
                    f"Invalid value for '{name}': {len(columns[name])} entries for {len(queries)} queries; give one per query.",
                    name,
                    "invalid_value",
                )
        prompts, labels = columns["prompts"], columns["labels"]
        work: Awaitable[dict[str, Any]]
        if self.reward_mode == THREAD:
            work = asyncio.get_running_loop().run_in_executor(self.threads, self.reward, queries, prompts, labels)
        else:
            work = self.reward.aget_reward(queries, prompts, labels)
        result = await asyncio.wait_for(work, deadline - time.monotonic())
        return dumps(result)


class GradingEndpoint:
    """One POST route as a plain ASGI app (no Request/Response objects on the hot path): read the body within the
    limit, take an in-flight slot (or queue for one), run `work(body, deadline)`, answer JSON or an envelope."""

    def __init__(self, work: Any, service: GraderService, *, queue: bool) -> None:
        self.work = work
        self.service = service
        self.queue = queue
        self.limits = service.limits

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        status, body, headers = await self.handle(receive)
        head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": body})

    async def handle(self, receive: Any) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        limits, in_flight = self.limits, self.service.in_flight
        deadline = time.monotonic() + limits.request_timeout_s
        if self.queue:
            try:
                await asyncio.wait_for(in_flight.enter(), limits.request_timeout_s)
            except asyncio.TimeoutError:
                return _timeout(limits.request_timeout_s)
        elif not in_flight.try_enter():
            message = f"This server is grading {in_flight.limit} requests already; retry after {limits.retry_after_s} s."
            retry = [(b"retry-after", str(limits.retry_after_s).encode())]
            return 429, error_body(message, "requests", "rate_limit_exceeded"), retry
        try:
            return 200, await self.work(await self.read_body(receive), deadline), []
        except GraderValidationError as exc:
            return 400, envelope_of(exc), []
        except Refusal as exc:
            return exc.status, exc.body, [(k.encode(), v.encode()) for k, v in exc.headers.items()]
        except asyncio.TimeoutError:
            return _timeout(limits.request_timeout_s)
        except Exception:  # noqa: BLE001 - a server bug answers 500 in the envelope; the process keeps serving
            log.exception("internal error while serving a request")
            return 500, error_body("The server had an error while processing your request.", "server_error"), []
        finally:
            in_flight.leave()

    async def read_body(self, receive: Any) -> Any:
        """The JSON body; 413 as soon as it grows past the limit (a declared length was checked by the guard)."""
        limit = self.limits.max_body_bytes
        message = await receive()
        raw = message.get("body", b"")
        if message.get("more_body"):
            chunks, size = [raw], len(raw)
            while message.get("more_body"):
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise Refusal(400, error_body("The client went away before sending the whole body."))
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise Refusal(413, error_body(too_large(limit), code="request_too_large"))
                chunks.append(chunk)
            raw = b"".join(chunks)
        elif len(raw) > limit:
            raise Refusal(413, error_body(too_large(limit), code="request_too_large"))
        return _loads(raw)


def create_app(config: ServerConfig, *, port: int | None = None) -> Guard:
    """The ASGI app for `config` (`port`: the port actually bound, for the Host check)."""
    service = GraderService(config)

    async def health(request: Request) -> Response:
        python = "full isolation" if service.full_isolation else "weak isolation allowed" if service.python_allowed else "refused"
        status = {"status": "ok", "python_graders": python, "get_reward": service.reward is not None, "cached_graders": len(service.cache)}
        return _json_response(dumps(status))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = "Unknown route." if exc.status_code == 404 else f"{request.method} is not allowed on {request.url.path}."
        return _json_response(error_body(message, code="not_found" if exc.status_code == 404 else "method_not_allowed"), exc.status_code)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        yield
        service.close()

    endpoints = {
        RUN_PATH: GradingEndpoint(service.run, service, queue=False),
        VALIDATE_PATH: GradingEndpoint(service.validate, service, queue=False),
    }
    if service.reward is not None:
        endpoints[REWARD_PATH] = GradingEndpoint(service.get_reward, service, queue=True)
    playground = Playground(service, config.opened)
    endpoints.update({path: GradingEndpoint(work, service, queue=False) for path, work in playground.routes().items()})
    routes = [Route(path, endpoint, methods=["POST"]) for path, endpoint in endpoints.items()]
    routes.append(Route("/health", health, methods=["GET"]))
    routes += playground.page_routes()
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error}, lifespan=lifespan)
    app.state.service = service
    hosts = HostPolicy(config.host, config.port if port is None else port, config.allowed_hosts)
    return Guard(app, hosts, config.api_key, config.limits.max_body_bytes, fast_routes=endpoints,
                 open_paths=OPEN_PATHS | playground.public_paths)


def _timeout(limit: float) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    message = f"The request did not finish within this server's time limit of {limit:g} s (graders serve --request-timeout)."
    return 504, error_body(message, "timeout", "request_timeout"), []


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(config: ServerConfig, *, announce: Any = None) -> None:
    """Run the server until interrupted; `announce(base_url)` is called once it is listening."""
    import uvicorn

    sock = bind(config.host, config.port)
    port = sock.getsockname()[1]
    if not is_loopback(config.host):
        print(
            f"graders serve: WARNING: listening on {config.host}, reachable from other machines. "
            + ("Requests need the API key." if config.api_key else "No API key is set: anyone who can reach it can use it (set --api-key or GRADERS_API_KEY)."),
            file=sys.stderr,
        )
    app = create_app(config, port=port)
    service: GraderService = app.app.state.service  # type: ignore[attr-defined]
    if not service.python_allowed:
        print(
            "graders serve: WARNING: the python sandbox's full isolation (bubblewrap) is not available here; python "
            "graders will answer python_grader_server_error (sandbox_unavailable). Install bubblewrap, or start with "
            "--allow-weak-isolation to run them with less isolation.",
            file=sys.stderr,
        )
    elif config.allow_weak_isolation and not service.full_isolation:
        print("graders serve: WARNING: python graders run with less than full isolation (--allow-weak-isolation).", file=sys.stderr)
    shown = f"[{config.host}]" if ":" in config.host else config.host
    uv = uvicorn.Config(app, **UVICORN_SETTINGS)
    server = uvicorn.Server(uv)
    gc.collect()
    gc.freeze()  # what start-up imported never changes: keep it out of every later collection
    if announce is not None:
        announce(f"http://{shown}:{port}/v1")
    server.run(sockets=[sock])
