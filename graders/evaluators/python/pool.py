"""Warm python-grader workers (spec §8): long-lived, shared per process, replaced when they die or time out.

A call sends a chunk of rows in one frame; the worker times each grade itself and answers in batched frames. A
worker that stops answering (it ignored its timer, crashed, or was killed by a limit) is killed with its process
group (SIGTERM, then SIGKILL) and replaced, and the rows it did not answer are retried so no other call or row is
lost. Replies are checked against the request's
sequence number: a malformed or out-of-order frame ends the worker like a crash.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import struct
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .sandbox import SandboxSpec, choose_level, start

_HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024
GRACE_S = 2.0


@dataclass(frozen=True, slots=True)
class Failure:
    """A row the worker did not answer: `kind` is timeout, crashed or protocol."""

    kind: str
    detail: str


class _Dead(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class Worker:
    """One sandboxed worker process and its private pipes."""

    def __init__(self, spec: SandboxSpec, level: str) -> None:
        self.process = start(spec, level)
        self._in = self.process.stdin.fileno()  # type: ignore[union-attr]
        self._out = self.process.stdout.fileno()  # type: ignore[union-attr]
        self._seq = 0
        self._buffer = b""
        self.alive = True

    def run(self, source: str, key: str, rows: Sequence[Any], timeout: float) -> list[Any]:
        """Replies for a prefix of `rows`, then at most one `Failure` where the worker stopped answering.

        The worker times each grade itself; the parent allows `timeout + GRACE_S` between frames and kills a
        worker that ignores its timer (a C loop, a replaced signal handler).
        """
        self._seq += 1
        body = json.dumps({"seq": self._seq, "source": source, "key": key, "timeout": timeout, "rows": rows}).encode()
        out: list[Any] = []
        try:
            self._write(_HEADER.pack(len(body)) + body)
            while True:
                frame = self._read_frame(time.monotonic() + timeout + GRACE_S, timeout)
                if not isinstance(frame, dict) or frame.get("seq") != self._seq or not isinstance(frame.get("replies"), list):
                    raise _Dead("protocol", "the worker sent a frame out of sequence")
                for reply in frame["replies"]:
                    if not isinstance(reply, dict) or reply.get("row") != len(out):
                        raise _Dead("protocol", "the worker sent a reply out of order")
                    out.append(reply)
                if frame.get("done"):
                    if len(out) != len(rows):
                        raise _Dead("protocol", "the worker skipped rows")
                    if frame.get("tainted"):
                        self.kill()
                    return out
        except _Dead as dead:
            self.kill()
            out.append(Failure(dead.kind, dead.detail))
        return out

    def _write(self, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._in, view)
                view = view[written:]
        except (BrokenPipeError, OSError):
            raise _Dead("crashed", self._exit_text()) from None

    def _read_exact(self, size: int, deadline: float, timeout: float) -> bytes:
        while len(self._buffer) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Dead("timeout", f"TimeoutError: grade() exceeded {timeout:g} s")
            ready, _, _ = select.select([self._out], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self._out, max(65536, size - len(self._buffer)))
            if not chunk:
                raise _Dead("crashed", self._exit_text())
            self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _read_frame(self, deadline: float, timeout: float) -> Any:
        (size,) = _HEADER.unpack(self._read_exact(4, deadline, timeout))
        if size > MAX_FRAME:
            raise _Dead("protocol", f"the worker sent a {size}-byte frame")
        try:
            return json.loads(self._read_exact(size, deadline, timeout))
        except ValueError:
            raise _Dead("protocol", "the worker sent a malformed frame") from None

    def _exit_text(self) -> str:
        try:
            code = self.process.wait(1)
        except Exception:  # noqa: BLE001
            return "the worker process ended unexpectedly"
        if code < 0:
            return f"the worker process was killed by signal {signal.Signals(-code).name}"
        return f"the worker process exited with status {code}"

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
    """Up to `size` warm workers for one sandbox spec, handed out one call at a time."""

    def __init__(self, spec: SandboxSpec, size: int) -> None:
        self.spec = spec
        self.size = size
        self.level = choose_level(spec.isolation)
        self._idle: list[Worker] = []
        self._count = 0
        self._cond = threading.Condition()
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="graders-python")

    def _acquire(self) -> Worker:
        with self._cond:
            while True:
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive and worker.process.poll() is None:
                        return worker
                    self._count -= 1
                if self._count < self.size:
                    self._count += 1
                    break
                self._cond.wait()
        try:
            return Worker(self.spec, self.level)
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def _release(self, worker: Worker) -> None:
        with self._cond:
            if worker.alive:
                self._idle.append(worker)
            else:
                self._count -= 1
            self._cond.notify()

    def run(self, source: str, key: str, rows: Sequence[Any], timeout: float) -> list[Any]:
        """One reply or `Failure` per row, in order, however many workers die on the way.

        When a worker dies with several rows unanswered, the answered ones are kept and the rest run one row per
        worker call, so the failure lands on the row that caused it and every other row still gets its grade.
        """
        out: list[Any] = []
        one_by_one = False
        while len(out) < len(rows):
            rest = rows[len(out) :]
            batch = rest[:1] if one_by_one else rest
            worker = self._acquire()
            try:
                replies = worker.run(source, key, batch, timeout)
            finally:
                self._release(worker)
            if isinstance(replies[-1], Failure) and len(batch) - (len(replies) - 1) > 1:
                out.extend(replies[:-1])
                one_by_one = True
                continue
            out.extend(replies)
        return out

    def map(self, source: str, key: str, rows: Sequence[Any], timeout: float, chunk: int) -> list[Any]:
        """`run` over chunks of rows on all workers at once."""
        if len(rows) <= chunk:
            return self.run(source, key, rows, timeout)
        parts = [rows[i : i + chunk] for i in range(0, len(rows), chunk)]
        results = self._executor.map(lambda part: self.run(source, key, part, timeout), parts)
        return [reply for part in results for reply in part]

    def close(self) -> None:
        with self._cond:
            workers, self._idle = self._idle, []
        for worker in workers:
            worker.kill()
        self._executor.shutdown(wait=False)


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
