"""The playground: a page at `/` to debug a reward in the browser, and the routes only it uses.

Every asset is in the package (`static/`: plain HTML, CSS and JavaScript, nothing fetched from elsewhere) and the
examples are a copy of the repository's `fixtures/` (`examples/`, kept equal by a test). The page and its assets
are public (they hold no data); every route below is a POST with a JSON body, so it passes the same guard as `/run`
(Host, content type, API key, body limit, requests in flight, time limit).

- `POST /playground/info`: the server's scoring options (the only ones the page may send), its body limit, how it
  runs python graders, the examples and the files `graders ui` opened.
- `POST /playground/run`: `/run` with `explain` on, answering the wire response plus its local `details`.
- `POST /playground/validate`: `/validate`. On every playground route an invalid grader or request is a 200
  `{"error": <envelope>}` (the page shows it in the editor; it is not a failure of the request).
- `POST /playground/grade`: `{"grader", "rows": [...], "options"?}` → one compact result per row, in order.
- `POST /playground/file/{summary,page,row,regrade}`: an opened JSONL file, a page of rows at a time (`rowfile`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .._json import dumps
from ..engine import CompiledGrader
from ..errors import GraderValidationError, invalid_type, invalid_value, missing
from ..options import option_kind
from ..response import FLAG_KEYS, GraderRunResponse
from .cache import ASYNC, Entry
from .request_options import SCORING_OPTIONS, request_overrides
from .rowfile import MAX_PAGE, SORTS, UNREADABLE, RowFile, RowFileError

if TYPE_CHECKING:
    from importlib.abc import Traversable

    from .app import GraderService

Work = Callable[[Any, float], Awaitable[bytes]]
FILTERS = frozenset({None, "any", "none", UNREADABLE, *FLAG_KEYS})
STATIC = "/playground/static/"
ASSETS = {
    "playground.css": "text/css; charset=utf-8",
    "playground.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
PAGE_HEADERS = {
    # Everything comes from this server; nothing may frame the page, and no form or base URL can point elsewhere.
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


@dataclass(frozen=True)
class Opened:
    """The files `graders ui` was given: grader configs for the editor (name, text) and JSONL files of rows."""

    graders: tuple[tuple[str, str], ...] = ()
    files: tuple[RowFile, ...] = field(default=())

    @classmethod
    def open(cls, paths: Sequence[str]) -> Opened:
        """Sort the paths into graders (a JSON object) and JSONL files; raises ValueError naming a bad one."""
        graders: list[tuple[str, str]] = []
        files: list[RowFile] = []
        for path in paths:
            try:
                if path.endswith(".jsonl"):
                    files.append(RowFile(path, str(len(files))))
                    continue
                with open(path, "rb") as handle:
                    text = handle.read().decode("utf-8")
            except OSError as exc:
                raise ValueError(f"{path!r}: {exc.strerror or exc}") from None
            except UnicodeDecodeError:
                raise ValueError(f"{path!r} is not UTF-8 text") from None
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise ValueError(f"{path!r} is not JSON ({exc}); give a grader .json or a .jsonl of rows or responses") from None
            if not isinstance(value, dict):
                raise ValueError(f"{path!r} must hold a grader (a JSON object), got {type(value).__name__}")
            graders.append((os.path.basename(path), text))
        return cls(tuple(graders), tuple(files))


def _package_file(*parts: str) -> Traversable:
    node = resources.files("graders.server")
    for part in parts:
        node = node / part
    return node


def _package_text(*parts: str) -> str:
    return _package_file(*parts).read_text(encoding="utf-8")


def examples() -> dict[str, Any]:
    """The packaged copy of `fixtures/`: graders with the sample each is shown with, broken configs with the
    `param` their error names, and rows to grade."""
    root = _package_file("examples")
    samples = json.loads(_package_text("examples", "playground", "samples.json"))
    expected = json.loads(_package_text("examples", "graders", "invalid", "expected.json"))
    default = samples.get("exact_answer.json", {})
    graders = [
        {"name": f.name, "text": f.read_text(encoding="utf-8"), "group": "graders", **samples.get(f.name, default)}
        for f in sorted((root / "graders").iterdir(), key=lambda f: f.name)
        if f.name.endswith(".json")
    ]
    broken = [
        {"name": name, "text": _package_text("examples", "graders", "invalid", name), "group": "invalid", "param": param, **default}
        for name, param in sorted(expected.items())
    ]
    rows = [
        {"name": f.name, "text": f.read_text(encoding="utf-8")}
        for f in sorted((root / "data").iterdir(), key=lambda f: f.name)
        if f.name.endswith(".jsonl")
    ]
    return {"graders": graders + broken, "rows": rows}


def scoring_options(service: GraderService) -> list[dict[str, Any]]:
    """The options a request may set, with the server's value, what each decides and the values it takes."""
    values = service.options.flat()
    from ..options import describe_options

    described = {name: text for name, _, text in describe_options(service.options)}
    return [
        {"name": name, "value": values[name], "description": described.get(name, ""), **option_kind(name)}
        for name in sorted(SCORING_OPTIONS)
    ]


def _compact(response: GraderRunResponse) -> dict[str, Any]:
    errors = response.outcome.errors or {}
    out: dict[str, Any] = {"reward": response.reward, "flags": [f for f in FLAG_KEYS if errors.get(f)]}
    if response.outcome.sub_rewards:
        out["sub_rewards"] = response.sub_rewards
    if errors:
        out["error"] = response.outcome.error_text()
    return out


def _envelope_on_error(work: Work) -> Work:
    """`work` answering an invalid request with its envelope as a 200: the page shows it where the `param` points,
    and a failed request would be logged by the browser as an error."""

    async def answer(body: Any, deadline: float) -> bytes:
        try:
            return await work(body, deadline)
        except GraderValidationError as exc:
            return dumps(exc.envelope())

    return answer


class Playground:
    """The playground's routes over one `GraderService` (its cache, threads, options and guards)."""

    def __init__(self, service: GraderService, opened: Opened) -> None:
        self.service = service
        self.opened = opened
        self.files = {f.ident: f for f in opened.files}
        self._examples: dict[str, Any] | None = None
        self._static = {name: _package_file("static", name).read_bytes() for name in (*ASSETS, "index.html")}

    def routes(self) -> dict[str, Work]:
        """POST routes, by path, for the server's `GradingEndpoint` wrapper; an invalid request answers its envelope."""
        routes: dict[str, Work] = {
            "/playground/info": self.info,
            "/playground/run": partial(self.service.run, details=True),
            "/playground/validate": self.service.validate,
            "/playground/grade": self.grade,
            "/playground/file/summary": self.file_summary,
            "/playground/file/page": self.file_page,
            "/playground/file/row": self.file_row,
            "/playground/file/regrade": self.file_regrade,
        }
        return {path: _envelope_on_error(work) for path, work in routes.items()}

    def page_routes(self) -> list[Route]:
        """`GET /` (the page) and its assets; all public."""
        routes = [Route("/", partial(self._asset, "index.html", "text/html; charset=utf-8"), methods=["GET"])]
        routes += [Route(STATIC + name, partial(self._asset, name, kind), methods=["GET"]) for name, kind in ASSETS.items()]
        return routes

    @property
    def public_paths(self) -> frozenset[str]:
        return frozenset({"/", *(STATIC + name for name in ASSETS)})

    async def _asset(self, name: str, kind: str, request: Request) -> Response:
        return Response(self._static[name], media_type=kind, headers=PAGE_HEADERS)

    async def _in_thread(self, work: Callable[[], Any], deadline: float) -> Any:
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.run_in_executor(self.service.threads, work), deadline - time.monotonic())

    # -- one sample ---------------------------------------------------------------------------------------------

    async def info(self, body: Any, deadline: float) -> bytes:
        service = self.service
        if self._examples is None:
            self._examples = await self._in_thread(examples, deadline)
        python = "full isolation" if service.full_isolation else "weak isolation allowed" if service.python_allowed else "refused"
        return dumps({
            "python_graders": python,
            "max_body_bytes": service.limits.max_body_bytes,
            "scoring_options": scoring_options(service),
            "flags": list(FLAG_KEYS),
            "examples": self._examples,
            "opened_graders": [{"name": name, "text": text} for name, text in self.opened.graders],
            "files": [f.describe() for f in self.opened.files],
            "page_size_limit": MAX_PAGE,
        })

    # -- many samples -------------------------------------------------------------------------------------------

    @asynccontextmanager
    async def _compiled(self, body: Any) -> AsyncIterator[tuple[Entry, CompiledGrader]]:
        """The cached compiled grader of a request's `grader` and scoring `options`, released on leaving."""
        if not isinstance(body, dict):
            raise invalid_type("body", "an object", body)
        if body.get("grader") is None:
            raise missing("grader")
        entry = await self.service.lease(body["grader"], request_overrides(body.get("options")))
        try:
            if entry.error is not None:
                raise entry.error
            assert entry.compiled is not None
            yield entry, entry.compiled
        finally:
            self.service.cache.release(entry)

    async def grade(self, body: Any, deadline: float) -> bytes:
        """Every row graded by one grader, compact results in order; a bad row costs only itself."""
        if isinstance(body, dict) and not isinstance(body.get("rows"), list):
            raise invalid_type("rows", "an array", body.get("rows")) if "rows" in body else missing("rows")
        async with self._compiled(body) as (entry, compiled):
            rows = body["rows"]
            if entry.mode == ASYNC:
                responses = await asyncio.wait_for(compiled.arun_many(rows), deadline - time.monotonic())
            else:
                responses = await self._in_thread(partial(compiled.run_many, rows), deadline)
            return dumps({"results": [_compact(r) for r in responses]})

    # -- opened files -------------------------------------------------------------------------------------------

    def _file(self, body: Any) -> RowFile:
        if not isinstance(body, dict):
            raise invalid_type("body", "an object", body)
        ident = body.get("file")
        if ident not in self.files:
            raise invalid_value("file", f"no opened file {ident!r}; the server opened {len(self.files)} (graders ui FILE.jsonl)")
        return self.files[ident]

    async def _file_call(self, body: Any, deadline: float, work: Callable[[RowFile], Any]) -> bytes:
        rowfile = self._file(body)
        try:
            return dumps(await self._in_thread(partial(work, rowfile), deadline))
        except RowFileError as exc:
            raise invalid_value("file", str(exc)) from None

    async def file_summary(self, body: Any, deadline: float) -> bytes:
        compare = bool(body.get("compare")) if isinstance(body, dict) else False
        return await self._file_call(body, deadline, lambda f: f.summary(use_b=compare))

    async def file_page(self, body: Any, deadline: float) -> bytes:
        self._file(body)
        start, count = body.get("start", 0), body.get("count", 50)
        for name, value in (("start", start), ("count", count)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise invalid_type(name, "a non-negative integer", value)
        bin_index = body.get("bin")
        if bin_index is not None and (not isinstance(bin_index, int) or isinstance(bin_index, bool)):
            raise invalid_type("bin", "an integer", bin_index)
        flag, sort = body.get("flag"), body.get("sort", "row")
        if flag not in FILTERS:
            raise invalid_value("flag", f"{flag!r} is not a filter; expected null, 'any', 'none' or a flag name")
        if sort not in SORTS:
            raise invalid_value("sort", f"{sort!r} is not a sort; expected one of {', '.join(map(repr, SORTS))}")
        query = partial(
            RowFile.page, start=start, count=count, flag=flag, bin_index=bin_index, sort=sort,
            changed=bool(body.get("changed")), use_b=bool(body.get("compare")),
        )
        return await self._file_call(body, deadline, query)

    async def file_row(self, body: Any, deadline: float) -> bytes:
        self._file(body)
        index = body.get("row")
        if not isinstance(index, int) or isinstance(index, bool):
            raise invalid_type("row", "an integer", index)
        return await self._file_call(body, deadline, lambda f: f.line(index))

    async def file_regrade(self, body: Any, deadline: float) -> bytes:
        """Grade every input of a file with the given grader (column B); answers the comparison's summary."""
        rowfile = self._file(body)
        async with self._compiled(body) as (_, compiled):
            key = hashlib.sha256(dumps([body["grader"], body.get("options") or {}])).hexdigest()
            stop = threading.Event()
            try:
                if not rowfile.regraded(key):
                    await self._in_thread(partial(rowfile.regrade, compiled, key, stop.is_set), deadline)
                return dumps(await self._in_thread(partial(rowfile.summary, use_b=True), deadline))
            except RowFileError as exc:
                raise invalid_value("file", str(exc)) from None
            finally:
                stop.set()  # a regrade still running after a timeout stops at its next chunk
