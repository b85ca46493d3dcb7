"""Warm python-grader workers (§8): one pool per grader source, replaced when they die or time out.

One worker never serves two sources: a pool is keyed by the grader's source hash (and its sandbox spec and
mode), so no module state, file or descriptor of one config reaches another, and no config sees another's rows.
Many sources do not mean unbounded processes: warm workers are capped process-wide (`python.max_warm_workers`);
past the cap a new start retires an idle worker of the least recently used other pool, or waits for one; cold
starts in flight are bounded too (`MAX_STARTING`).

A new worker is not used until its hello frame proves its state (`sandbox.check_hello`); the first start at a
level is the probe of that level, so `auto` falls back only when a real worker could not start.

The pool is asyncio-native: a call takes a worker for itself, watches its pipe with `add_reader` on the caller's
own event loop (no thread hop on the hot path) and keeps up to `DEPTH` chunks queued in the worker's pipe, so the
worker never waits for the parent between chunks. Workers are handed between threads and event loops under one
lock, so calls from many threads and tasks share them safely.

The engine trusts nothing a worker sends. Each row has an absolute wall-clock deadline, `python.timeout_s` plus
`GRACE_S` from the moment the previous row was answered, which only a reply for a row moves: a frame without
one (a keep-alive) changes nothing. A worker past it is killed with everything it started and replaced. A frame
over `MAX_FRAME` bytes, one out of sequence, or malformed ends the worker without being read. Rows it answered
keep their replies; the unanswered rows of the chunk it was on run again one row per call, so a failure lands on
the row that caused it; chunks queued behind it run again whole on another worker.

A forked child never uses its parent's workers (two processes on one worker's pipes would read each other's
replies): it closes its copies of their pipes and uid leases, signals nothing, and starts workers of its own.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import signal
import struct
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ..._json import dumps
from . import sandbox
from .sandbox.keeper import DISK_EXIT
from .sandbox.uids import UidUnavailable

_HEADER = struct.Struct(">I")
MAX_FRAME = 4 * 1024 * 1024
"""The largest frame a worker may send (a chunk of replies with output and tracebacks needs well under 2 MB)."""
GRACE_S = 1.0
"""How long past `python.timeout_s` the parent waits for a row before it kills the worker (the worker's own
timer answers at the timeout; this is the net under a grader that disables it)."""
HELLO_S = 30.0
MAX_IDLE_FRAMES = 1000
"""Frames without a reply a worker may send for one request (a real worker sends none before its last frame):
past this it is flooding the engine's event loop and is ended."""
DEPTH = 2
"""Chunks queued per worker: one being graded, one waiting in the pipe."""
CHUNK_BYTES = 8 * 1024 * 1024
"""Request bytes past which a chunk is cut before `python.chunk_size` rows, so large rows never pile up in one
frame that a worker must hold at once (a single row larger than this goes alone)."""
MAX_STARTING = max(2, os.cpu_count() or 1)
"""Worker cold starts in flight at once, process-wide."""


@dataclass(frozen=True, slots=True)
class Failure:
    """A row the worker did not answer. `kind`: timeout, disk, crashed, protocol, reply_too_large,
    reply_too_deep, or requeue (never started)."""

    kind: str
    detail: str


_REQUEUE = Failure("requeue", "the worker ended before this chunk started")
_Queue = deque[tuple[int, Sequence[bytes], int]]
"""Chunks still to grade: (index of the first row, encoded rows, how often this one row has been retried)."""


def _chunks(rows: Sequence[bytes], chunk: int) -> Iterator[tuple[int, Sequence[bytes], int]]:
    """(first index, rows, retries) of each chunk: at most `chunk` rows and, past one row, `CHUNK_BYTES` bytes."""
    start, size = 0, 0
    for i, row in enumerate(rows):
        if i > start and (i - start >= chunk or size + len(row) > CHUNK_BYTES):
            yield start, rows[start:i], 0
            start, size = i, 0
        size += len(row)
    if start < len(rows):
        yield start, rows[start:], 0


class LaunchFailed(RuntimeError):
    """A worker that never reached its hello frame, or reported a state that is not the promised one."""


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

    def __init__(self, spec: sandbox.SandboxSpec, level: str, key: str, source: str) -> None:
        self.launch = sandbox.start(spec, level)
        self.process = self.launch.process
        self.key = key
        self._source: str | None = source
        self._in = self.process.stdin.fileno()  # type: ignore[union-attr]
        self._out = self.process.stdout.fileno()  # type: ignore[union-attr]
        os.set_blocking(self._in, False)
        os.set_blocking(self._out, False)
        self.alive = True
        self.pipes_open = True
        self.ready = False
        self._hello: asyncio.Future[None] | None = None
        self._seq = 0
        self._buffer = bytearray()
        self._outgoing = bytearray()
        self._pending: deque[_Request] = deque()
        self._idle_frames = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        _every_worker.add(self)

    def forget(self, null: int) -> None:
        """In a forked child: this worker is the parent's. This process's copies of its pipes are pointed at
        `null` (/dev/null) with `dup2`, which takes no lock (the pipes' Python file objects may have been locked by
        a thread the fork did not copy) and leaves the numbers owned by those file objects, so whenever they are
        closed here no other fd is."""
        self.alive = False
        self._loop = self._timer = None
        if self.pipes_open:
            self.pipes_open = False
            for fd in (self._in, self._out):
                try:
                    os.dup2(null, fd, inheritable=False)
                except OSError:
                    pass
        self.launch.forget()

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

    async def handshake(self) -> None:
        """Wait for the hello frame and check it; `LaunchFailed` says what the sandbox printed or what is wrong."""
        loop = asyncio.get_running_loop()
        self._hello = loop.create_future()
        self.attach(loop)
        self._timer = loop.call_later(HELLO_S, self._die, "crashed", f"no hello from the worker within {HELLO_S:g} s")
        try:
            await self._hello
        finally:
            self.detach()

    # -- requests --------------------------------------------------------------------------------------------

    def submit(self, rows: Sequence[bytes], timeout: float, fresh: bool) -> asyncio.Future[list[Any]]:
        """Queue one chunk of JSON-encoded `[sample, item]` rows; the future gets a reply per row, or the replies
        so far and then one `Failure`."""
        loop = self._loop
        assert loop is not None, "attach the worker to a loop first"
        future = loop.create_future()
        self._seq += 1
        message: dict[str, Any] = {"seq": self._seq, "key": self.key, "timeout": timeout, "fresh": fresh}
        if self._source is not None:
            message["source"], self._source = self._source, None
        body = dumps(message)[:-1] + b',"rows":[' + b",".join(rows) + b"]}"
        self._pending.append(_Request(self._seq, len(rows), timeout, future))
        if len(self._pending) == 1:
            self._arm()
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

    def _arm(self) -> None:
        """The row now in progress must be answered by `timeout + GRACE_S` from now; called only when a row
        starts (a request reaches an idle worker, or a row was answered), never for a frame without replies."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(self._pending[0].timeout + GRACE_S, self._on_deadline)  # type: ignore[union-attr]

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
                self._die("reply_too_large", f"the worker sent a {size:,}-byte frame; the limit is {MAX_FRAME:,} bytes")
                return
            end = offset + 4 + size
            if len(buffer) < end:
                break
            try:
                frame = orjson.loads(bytes(buffer[offset + 4 : end]))
            except orjson.JSONDecodeError as exc:
                deep = "recursion" in str(exc).lower()
                self._die("reply_too_deep" if deep else "protocol", "the worker sent a frame nested too deep" if deep else "the worker sent a malformed frame")
                return
            offset = end
            self._on_frame(frame)
        del buffer[:offset]

    def _on_frame(self, frame: Any) -> None:
        if not self.ready:
            self._on_hello(frame)
            return
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
            if replies:
                self._idle_frames = 0
                self._arm()
            elif (idle := self._idle_frames + 1) > MAX_IDLE_FRAMES:
                self._die("protocol", f"the worker sent more than {MAX_IDLE_FRAMES} frames without a reply")
            else:
                self._idle_frames = idle
            return
        self._idle_frames = 0
        if len(request.replies) != request.size:
            self._die("protocol", "the worker skipped rows")
            return
        self._pending.popleft()
        if not request.future.done():
            request.future.set_result(request.replies)
        if frame.get("tainted"):
            self._die("retired", None)
        elif self._pending:
            self._arm()
        elif self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_hello(self, frame: Any) -> None:
        hello = frame.get("hello") if frame.__class__ is dict else None
        problem = sandbox.check_hello(hello, self.launch)
        if problem is not None:
            self._die("crashed", problem)
            return
        self.ready = True
        self.launch.started()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._hello is not None and not self._hello.done():
            self._hello.set_result(None)

    # -- the end ---------------------------------------------------------------------------------------------

    def _die(self, kind: str, detail: str | None) -> None:
        """Stop using this worker now; kill it and settle its requests off the loop (reaping may wait)."""
        if not self.alive:
            return
        self.alive = False
        loop = self._loop
        self.detach()
        self.launch.stop()
        pending, self._pending = list(self._pending), deque()
        hello = self._hello if not self.ready else None
        if kind == "retired":  # tainted after a finished chunk: whatever is queued behind it runs elsewhere
            first, rest = None, pending
        else:
            first, rest = (pending[0], pending[1:]) if pending else (None, [])

        def finish() -> None:
            self.launch.wait(2.0)
            final_kind, text = kind, detail
            code = self.process.returncode
            if kind == "crashed" and code == DISK_EXIT and self.launch.level == "landlock":
                final_kind, text = "disk", None
            if hello is not None:
                text = f"{text + ': ' if text else ''}{self.launch.startup_error()} ({self._exit_text()})"
            elif text is None:
                text = self._exit_text() if kind == "crashed" else kind
            self.launch.release()
            self._close_pipes()
            if loop is not None and not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(settle, final_kind, text)
                except RuntimeError:  # the loop closed meanwhile
                    pass

        def settle(final_kind: str, text: str) -> None:
            if hello is not None and not hello.done():
                hello.set_exception(LaunchFailed(text))
            if first is not None and not first.future.done():
                first.future.set_result([*first.replies, Failure(final_kind, text)])
            for request in rest:  # only the first request ever receives frames: these never started
                if not request.future.done():
                    request.future.set_result([_REQUEUE])

        threading.Thread(target=finish, name="graders-python-reaper", daemon=True).start()

    def _exit_text(self) -> str:
        code = self.process.returncode
        if code is None:
            return "the worker process closed its pipe"
        if code < 0:
            return f"the worker process was killed by signal {signal.Signals(-code).name}"
        return f"the worker process exited with status {code}"

    def _close_pipes(self) -> None:
        self.pipes_open = False  # before the fds go: a fork meanwhile must not touch numbers that may be reused
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:
                pass

    def cancel(self) -> None:
        """The caller gave up on a request in flight: the worker's state is unknown, so it goes."""
        self._die("requeue", "cancelled")

    def retire(self) -> None:
        """End an idle worker (its pool is least recently used and the warm cap is reached)."""
        self._die("retired", None)


class _Registry:
    """Every pool of this process, least recently used first, and the count of live and starting workers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pools: OrderedDict[tuple[Any, ...], Pool] = OrderedDict()
        self.live = 0
        self.starting = 0
        self.peak_starting = 0
        """The most cold starts that were ever in flight at once (the bound is `MAX_STARTING`)."""
        self.waiters: list[asyncio.Future[None]] = []

    def idle_victim(self, exclude: Pool) -> Worker | None:
        """Take an idle worker from the least recently used other pool (called with the lock held)."""
        for pool in self.pools.values():
            if pool is not exclude and pool._idle:
                pool._count -= 1
                return pool._idle.pop(0)
        return None

    def wake_all(self) -> None:
        """Every waiter re-checks (called with the lock held); waiters on closed loops are dropped."""
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():
                try:
                    waiter.get_loop().call_soon_threadsafe(_wake, waiter)
                except RuntimeError:
                    continue


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


_registry = _Registry()


class Pool:
    """Up to `size` warm workers for one grader source under one sandbox spec, each owned by one call at a time."""

    def __init__(self, spec: sandbox.SandboxSpec, key: str, source: str, size: int, cap: int) -> None:
        self.spec = spec
        self.key = key
        self.source = source
        self.size = min(size, cap)
        self.cap = cap
        self.level: str | None = None
        self.warning: str | None = None
        self._idle: list[Worker] = []
        self._count = 0
        _every_pool.add(self)

    async def _acquire(self) -> Worker:
        loop = asyncio.get_running_loop()
        registry = _registry
        while True:
            victim: Worker | None = None
            spawn = False
            with registry.lock:
                if registry.pools.setdefault(self.key_tuple, self) is self:  # re-registered after a shutdown()
                    registry.pools.move_to_end(self.key_tuple)
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive and worker.process.poll() is None:
                        return worker
                    self._count -= 1
                    registry.live -= 1
                    worker._die("crashed", None)  # it died idle: reap it and give its uid back
                if self._count < self.size and registry.starting < MAX_STARTING:
                    if registry.live < self.cap:
                        spawn = True
                        registry.live += 1
                    else:
                        victim = registry.idle_victim(self)
                        spawn = victim is not None
                    if spawn:
                        self._count += 1
                        registry.starting += 1
                        registry.peak_starting = max(registry.peak_starting, registry.starting)
                if not spawn:
                    waiter = loop.create_future()
                    registry.waiters.append(waiter)
            if victim is not None:
                victim.retire()
            if spawn:
                try:
                    return await self._spawn()
                except BaseException:
                    with registry.lock:
                        self._count -= 1
                        registry.live -= 1
                    raise
                finally:
                    with registry.lock:
                        registry.starting -= 1
                        registry.wake_all()
            await waiter  # woken by any release, death or finished start; then try again

    async def _spawn(self) -> Worker:
        """A new worker at the best level that works; a level that has never started a worker here and fails
        now is recorded as unavailable (with its reason) and the next accepted level is tried."""
        for level in sandbox.candidates(self.spec.isolation):
            if sandbox.failure(self.spec, level) is not None:
                continue
            try:
                worker = Worker(self.spec, level, self.key, self.source)
            except UidUnavailable as exc:
                sandbox.record_failure(self.spec, level, str(exc))
                continue
            try:
                await worker.handshake()
            except LaunchFailed as exc:
                if sandbox.has_worked(self.spec, level):
                    raise
                sandbox.record_failure(self.spec, level, str(exc))
                continue
            sandbox.record_success(self.spec, level)
            self.level, self.warning = level, sandbox.warning(self.spec, level)
            return worker
        raise sandbox.unavailable(self.spec)

    def _release(self, worker: Worker) -> None:
        with _registry.lock:
            if worker.alive:
                self._idle.append(worker)
            else:
                self._count -= 1
                _registry.live -= 1
            _registry.wake_all()

    @property
    def key_tuple(self) -> tuple[Any, ...]:
        return (self.spec, self.key, self.size)

    async def run(self, rows: Sequence[bytes], timeout: float, chunk: int, fresh: bool = False) -> list[Any]:
        """One reply or `Failure` per JSON-encoded row, in order, however many workers die on the way."""
        out: list[Any] = [None] * len(rows)
        queue: _Queue = deque(_chunks(rows, chunk))
        job = (timeout, fresh)
        streams = min(self.size, len(queue))
        if streams == 1:
            await self._stream(queue, out, job)
        else:
            await asyncio.gather(*(self._stream(queue, out, job) for _ in range(streams)))
        return out

    async def _stream(self, queue: _Queue, out: list[Any], job: tuple[float, bool]) -> None:
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
    async def _drive(worker: Worker, queue: _Queue, out: list[Any], job: tuple[float, bool]) -> None:
        timeout, fresh = job
        inflight: deque[tuple[int, Sequence[bytes], int, asyncio.Future[list[Any]]]] = deque()
        while queue or inflight:
            while queue and len(inflight) < DEPTH and worker.alive:
                start, part, tries = queue.popleft()
                inflight.append((start, part, tries, worker.submit(part, timeout, fresh)))
            if not inflight:
                return  # this worker is gone; the caller takes another
            start, part, tries, future = inflight.popleft()
            replies = await future
            last = replies[-1]
            if last.__class__ is not Failure:
                out[start : start + len(replies)] = replies
                continue
            done = len(replies) - 1
            out[start : start + done] = replies[:done]
            rest = part[done:]
            if last is _REQUEUE:
                queue.appendleft((start + done, rest, tries))
            elif len(rest) > 1:  # a death mid-chunk: the rest again, one row per call, to find the row at fault
                queue.extendleft((start + done + i, rest[i : i + 1], 0) for i in reversed(range(len(rest))))
            elif done == 0 and tries == 0 and last.kind != "timeout":
                # No reply came for this request: with chunks pipelined it may never have started (a grader
                # that forged its own last frame, then crashed), so it runs once more before it is blamed.
                queue.appendleft((start, rest, 1))
            else:
                out[start + done] = last

    def take_idle(self) -> list[Worker]:
        with _registry.lock:
            workers, self._idle = self._idle, []
            self._count -= len(workers)
            _registry.live -= len(workers)
            _registry.wake_all()
        return workers


_every_worker: weakref.WeakSet[Worker] = weakref.WeakSet()
_every_pool: weakref.WeakSet[Pool] = weakref.WeakSet()
"""Every worker and pool object of this process, wherever it is held (idle list, a call in flight, an evaluator),
so a forked child can disown them all."""
_disowned: list[Worker] = []
"""A forked child's copies of its parent's workers, kept referenced: emptying the pools must not finalize them in
the at-fork handler (their file objects' `close` takes a lock; a `Popen` child runs this between fork and exec)."""


def _disown_after_fork() -> None:
    """In a forked child: forget the parent's workers (their pipes and leases released here, the processes left
    alone) and empty every pool, so the child's first grade starts workers of its own. The registry's lock and
    waiters belonged to threads and loops that do not exist here. Only system calls that take no lock: this also
    runs in the child of every `Popen` with a `preexec_fn`, between fork and exec."""
    workers = list(_every_worker)
    _disowned.extend(workers)
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        for worker in workers:
            worker.forget(null)
    finally:
        os.close(null)
    for pool in list(_every_pool):
        pool._idle = []
        pool._count = 0
    _registry.lock = threading.Lock()
    _registry.live = _registry.starting = 0
    _registry.waiters = []


os.register_at_fork(after_in_child=_disown_after_fork)


def get_pool(spec: sandbox.SandboxSpec, key: str, source: str, size: int, cap: int) -> Pool:
    """The process-wide pool of this source under this spec (no other source ever uses its workers)."""
    with _registry.lock:
        pool = _registry.pools.get((spec, key, min(size, cap)))
        if pool is None:
            pool = Pool(spec, key, source, size, cap)
            _registry.pools[pool.key_tuple] = pool
        return pool


def stop_all(workers: list[Worker], timeout: float = 2.0) -> None:
    """End these workers together: signal all, then reap all against one deadline (no per-worker wait)."""
    for worker in workers:
        worker.alive = False
        worker.launch.stop()
    deadline = time.monotonic() + timeout
    for worker in workers:
        worker.launch.wait(max(0.0, deadline - time.monotonic()))
        worker.launch.release()
        worker._close_pipes()


@atexit.register
def shutdown() -> None:
    """Stop every idle worker of every pool (at exit, or from tests and benchmarks that need fresh pools)."""
    with _registry.lock:
        pools = list(_registry.pools.values())
        _registry.pools.clear()
    stop_all([worker for pool in pools for worker in pool.take_idle()])
