"""Warm python-grader workers (spec §8): long-lived, shared per process, replaced when they die or time out.

The pool is asyncio-native: a call takes a worker for itself, watches its pipe with `add_reader` on the caller's
own event loop (no thread hop on the hot path) and keeps up to `DEPTH` chunks queued in the worker's pipe, so the
worker never waits for the parent between chunks. Workers are handed between threads and event loops under one
lock, so calls from many threads and tasks share them safely.

A worker that stops answering (it ignored its timer, crashed, or was killed by a limit) is killed with its
process group (SIGTERM, then SIGKILL, off the event loop) and replaced. Rows it answered keep their replies; the
unanswered rows of the chunk it was on run again one row per call, so a failure lands on the row that caused it;
chunks queued behind it run again whole on another worker. Replies are checked against the request's sequence
number: a malformed or out-of-order frame ends the worker like a crash.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import signal
import struct
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ..._json import dumps
from .sandbox import SandboxSpec, choose_level, start

_HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024
GRACE_S = 2.0
DEPTH = 2
"""Chunks queued per worker: one being graded, one waiting in the pipe."""
MAX_LOADED = 256
"""Distinct grader sources a worker may hold before it is retired (bounds a worker's memory)."""


@dataclass(frozen=True, slots=True)
class Failure:
    """A row the worker did not answer: `kind` is timeout, crashed, protocol, or requeue (never started)."""

    kind: str
    detail: str


_REQUEUE = Failure("requeue", "the worker ended before this chunk started")


class _Request:
    __slots__ = ("seq", "size", "timeout", "replies", "future")

    def __init__(self, seq: int, size: int, timeout: float, future: asyncio.Future[list[Any]]) -> None:
        self.seq = seq
        self.size = size
        self.timeout = timeout
        self.replies: list[Any] = []
        self.future = future


class Worker:
    """One sandboxed worker process, its private pipes, and the requests queued on it.

    Between `attach(loop)` and `detach()` the worker belongs to one event loop; every other method runs there.
    """

    def __init__(self, spec: SandboxSpec, level: str) -> None:
        self.process = start(spec, level)
        self._in = self.process.stdin.fileno()  # type: ignore[union-attr]
        self._out = self.process.stdout.fileno()  # type: ignore[union-attr]
        os.set_blocking(self._in, False)
        os.set_blocking(self._out, False)
        self.loaded: set[str] = set()
        self.alive = True
        self._seq = 0
        self._buffer = bytearray()
        self._outgoing = bytearray()
        self._pending: deque[_Request] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    # -- ownership by one event loop -------------------------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.add_reader(self._out, self._on_readable)

    def detach(self) -> None:
        """Leave the owning loop; always before the worker is released or killed, so no selector keeps its fds."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        loop.remove_reader(self._out)
        if self._outgoing:
            loop.remove_writer(self._in)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- requests --------------------------------------------------------------------------------------------

    def submit(self, key: str, source: str, rows: Sequence[bytes], timeout: float, fresh: bool) -> asyncio.Future[list[Any]]:
        """Queue one chunk of JSON-encoded `[sample, item]` rows; the future gets a reply per row, or the replies
        so far and then one `Failure`."""
        loop = self._loop
        assert loop is not None, "attach the worker to a loop first"
        future = loop.create_future()
        self._seq += 1
        message: dict[str, Any] = {"seq": self._seq, "key": key, "timeout": timeout, "fresh": fresh}
        if key not in self.loaded:
            message["source"] = source
            self.loaded.add(key)
        body = dumps(message)[:-1] + b',"rows":[' + b",".join(rows) + b"]}"
        self._pending.append(_Request(self._seq, len(rows), timeout, future))
        if len(self._pending) == 1:
            self._arm(timeout)
        self._send(_HEADER.pack(len(body)) + body)
        return future

    def _send(self, data: bytes) -> None:
        if self._outgoing:
            self._outgoing += data
            return
        try:
            written = os.write(self._in, data)
        except BlockingIOError:
            written = 0
        except OSError:
            self._die("crashed", None)
            return
        if written < len(data):
            self._outgoing += data[written:]
            self._loop.add_writer(self._in, self._on_writable)  # type: ignore[union-attr]

    def _on_writable(self) -> None:
        try:
            written = os.write(self._in, self._outgoing)
        except BlockingIOError:
            return
        except OSError:
            self._die("crashed", None)
            return
        del self._outgoing[:written]
        if not self._outgoing:
            self._loop.remove_writer(self._in)  # type: ignore[union-attr]

    def _arm(self, timeout: float) -> None:
        """The worker must send a frame within `timeout + GRACE_S` (it times each grade itself; this is the net)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(timeout + GRACE_S, self._on_deadline)  # type: ignore[union-attr]

    def _on_deadline(self) -> None:
        self._timer = None
        if self._pending:
            self._die("timeout", f"TimeoutError: grade() exceeded {self._pending[0].timeout:g} s")

    # -- replies ---------------------------------------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            data = os.read(self._out, 1 << 20)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._die("crashed", None)
            return
        buffer = self._buffer
        buffer += data
        offset = 0
        while self.alive and len(buffer) - offset >= 4:
            (size,) = _HEADER.unpack_from(buffer, offset)
            if size > MAX_FRAME:
                self._die("protocol", f"the worker sent a {size}-byte frame")
                return
            end = offset + 4 + size
            if len(buffer) < end:
                break
            try:
                frame = orjson.loads(bytes(buffer[offset + 4 : end]))
            except orjson.JSONDecodeError:
                self._die("protocol", "the worker sent a malformed frame")
                return
            offset = end
            self._on_frame(frame)
        del buffer[:offset]

    def _on_frame(self, frame: Any) -> None:
        request = self._pending[0] if self._pending else None
        if request is None or frame.__class__ is not dict or frame.get("seq") != request.seq:
            self._die("protocol", "the worker sent a frame out of sequence")
            return
        replies = frame.get("replies")
        if replies.__class__ is not list or len(request.replies) + len(replies) > request.size:
            self._die("protocol", "the worker sent more replies than rows")
            return
        request.replies += replies
        if not frame.get("done"):
            self._arm(request.timeout)
            return
        if len(request.replies) != request.size:
            self._die("protocol", "the worker skipped rows")
            return
        self._pending.popleft()
        if not request.future.done():
            request.future.set_result(request.replies)
        if frame.get("tainted") or len(self.loaded) > MAX_LOADED:
            self._die("retired", None)
        elif self._pending:
            self._arm(self._pending[0].timeout)
        elif self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- the end ---------------------------------------------------------------------------------------------

    def _die(self, kind: str, detail: str | None) -> None:
        """Stop using this worker now; kill it and settle its requests off the loop (killing may wait)."""
        if not self.alive:
            return
        self.alive = False
        loop = self._loop
        self.detach()
        pending, self._pending = list(self._pending), deque()
        if kind == "retired":  # tainted after a finished chunk: whatever is queued behind it runs elsewhere
            first, rest = None, pending
        else:
            first, rest = (pending[0], pending[1:]) if pending else (None, [])

        def finish() -> None:
            text = detail or (self._exit_text() if kind == "crashed" else kind)
            self.kill()
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(settle, text)

        def settle(text: str) -> None:
            if first is not None and not first.future.done():
                first.future.set_result([*first.replies, Failure(kind, text)])
            for request in rest:  # only the first request ever receives frames: these never started
                if not request.future.done():
                    request.future.set_result([_REQUEUE])

        threading.Thread(target=finish, name="graders-python-reaper", daemon=True).start()

    def _exit_text(self) -> str:
        try:
            code = self.process.wait(1)
        except Exception:  # noqa: BLE001 - still running: it closed its pipe
            return "the worker process closed its pipe"
        if code < 0:
            return f"the worker process was killed by signal {signal.Signals(-code).name}"
        return f"the worker process exited with status {code}"

    def cancel(self) -> None:
        """The caller gave up on a request in flight: the worker's state is unknown, so it goes."""
        self._die("requeue", "cancelled")

    def kill(self) -> None:
        """SIGTERM then SIGKILL to the worker's whole process group (the sandbox and anything it forked)."""
        self.alive = False
        for sig, wait in ((signal.SIGTERM, 0.5), (signal.SIGKILL, 2.0)):
            try:
                os.killpg(self.process.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            try:
                self.process.wait(wait)
                break
            except Exception:  # noqa: BLE001 - still alive: escalate
                continue
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:
                pass


class Pool:
    """Up to `size` warm workers for one sandbox spec, each owned by one call (and its event loop) at a time."""

    def __init__(self, spec: SandboxSpec, size: int) -> None:
        self.spec = spec
        self.size = size
        self.level = choose_level(spec.isolation)
        self._idle: list[Worker] = []
        self._count = 0
        self._lock = threading.Lock()
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def _acquire(self) -> Worker:
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive and worker.process.poll() is None:
                        return worker
                    self._count -= 1
                spawn = self._count < self.size
                if spawn:
                    self._count += 1
                else:
                    waiter = loop.create_future()
                    self._waiters.append(waiter)
            if spawn:
                try:
                    return Worker(self.spec, self.level)
                except BaseException:
                    self._release(None)
                    raise
            await waiter  # woken by a release; then try again

    def _release(self, worker: Worker | None) -> None:
        with self._lock:
            if worker is not None and worker.alive:
                self._idle.append(worker)
            else:
                self._count -= 1
            self._wake()

    def _wake(self) -> None:
        """Wake the first waiter still waiting (on whatever loop it waits on); called with the lock held."""
        while self._waiters:
            waiter = self._waiters.popleft()
            try:
                waiter.get_loop().call_soon_threadsafe(self._woken, waiter)
                return
            except RuntimeError:  # its loop is closed
                continue

    def _woken(self, waiter: asyncio.Future[None]) -> None:
        if waiter.done():  # cancelled meanwhile: pass the wake-up on
            with self._lock:
                self._wake()
        else:
            waiter.set_result(None)

    async def run(self, key: str, source: str, rows: Sequence[bytes], timeout: float, chunk: int, fresh: bool = False) -> list[Any]:
        """One reply or `Failure` per JSON-encoded row, in order, however many workers die on the way."""
        out: list[Any] = [None] * len(rows)
        queue = deque((i, rows[i : i + chunk]) for i in range(0, len(rows), chunk))
        job = (key, source, timeout, fresh)
        streams = min(self.size, len(queue))
        if streams == 1:
            await self._stream(queue, out, job)
        else:
            await asyncio.gather(*(self._stream(queue, out, job) for _ in range(streams)))
        return out

    async def _stream(self, queue: deque[tuple[int, Sequence[bytes]]], out: list[Any], job: tuple[str, str, float, bool]) -> None:
        """Take workers one after another and feed them chunks from the shared queue until it is empty."""
        loop = asyncio.get_running_loop()
        while queue:
            worker = await self._acquire()
            worker.attach(loop)
            try:
                await self._drive(worker, queue, out, job)
            except BaseException:
                worker.cancel()
                raise
            finally:
                worker.detach()
                self._release(worker)

    @staticmethod
    async def _drive(worker: Worker, queue: deque[tuple[int, Sequence[bytes]]], out: list[Any], job: tuple[str, str, float, bool]) -> None:
        key, source, timeout, fresh = job
        inflight: deque[tuple[int, Sequence[bytes], asyncio.Future[list[Any]]]] = deque()
        while queue or inflight:
            while queue and len(inflight) < DEPTH and worker.alive:
                start, part = queue.popleft()
                inflight.append((start, part, worker.submit(key, source, part, timeout, fresh)))
            if not inflight:
                return  # this worker is gone; the caller takes another
            start, part, future = inflight.popleft()
            replies = await future
            last = replies[-1]
            if last.__class__ is not Failure:
                out[start : start + len(replies)] = replies
                continue
            done = len(replies) - 1
            out[start : start + done] = replies[:done]
            rest = part[done:]
            if last is _REQUEUE:
                queue.appendleft((start + done, rest))
            elif len(rest) > 1:  # a death mid-chunk: the rest again, one row per call, to find the row at fault
                queue.extendleft((start + done + i, rest[i : i + 1]) for i in reversed(range(len(rest))))
            else:
                out[start + done] = last

    def close(self) -> None:
        with self._lock:
            workers, self._idle = self._idle, []
        for worker in workers:
            worker.kill()


_pools: dict[tuple[SandboxSpec, int], Pool] = {}
_pools_lock = threading.Lock()


def get_pool(spec: SandboxSpec, size: int) -> Pool:
    """The process-wide pool for this spec (graders with the same limits share warm workers)."""
    with _pools_lock:
        pool = _pools.get((spec, size))
        if pool is None:
            pool = _pools[(spec, size)] = Pool(spec, size)
        return pool


@atexit.register
def shutdown() -> None:
    """Stop every worker (at exit, or from tests that need a fresh pool)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()
