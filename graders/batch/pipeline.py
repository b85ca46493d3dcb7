"""The parallel pipeline: blocks of rows out to shard processes, results back in input order.

Which path a grader takes is decided from its config (a `multi` is walked): model graders and `cosine` stay on the
parent's event loop, so one limiter holds their concurrency whatever the shard count; python graders and every
CPU-bound type go to shards. Shards start with `fork` while the parent has no other thread (milliseconds, and
WordNet or compiled state already loaded is shared), else with `forkserver`; python graders always use
`forkserver`, so no warm sandbox pool or event loop of the parent is ever inherited. Each shard rebuilds the grader
from its JSON and options.

Memory is bounded by the window: at most `window` blocks are out (being graded, or graded and waiting for an
earlier one to be written), whatever the input size.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, islice
from multiprocessing.connection import wait
from typing import Any

import orjson

from .._loop import background_loop
from ..engine import CompiledGrader
from ..response import GraderRunResponse, Outcome
from .cores import available_cores
from .shard import BlockWorker, ShardSpec, shard_main

PARENT, PYTHON, CPU = "parent", "python", "cpu"
_END = object()
_PER_SHARD = 2
"""Blocks queued in each shard, so it never waits for the parent between two blocks."""


_SOCKET_BUFFER = 8 << 20


def _widen(fd: int) -> None:
    """Large socket buffers on a shard's pipe: a block's output (a few MB of wire lines) then crosses in a few
    system calls instead of hundreds of 200 KB round trips between two processes."""
    sock = socket.socket(fileno=os.dup(fd))
    try:
        for option, forced in ((socket.SO_SNDBUF, 32), (socket.SO_RCVBUF, 33)):  # SO_SNDBUFFORCE, SO_RCVBUFFORCE
            try:
                sock.setsockopt(socket.SOL_SOCKET, forced, _SOCKET_BUFFER)
            except OSError:  # not privileged: as large as net.core.[wr]mem_max allows
                sock.setsockopt(socket.SOL_SOCKET, option, _SOCKET_BUFFER)
    except OSError:
        pass
    finally:
        sock.close()


class BatchError(Exception):
    """The pipeline cannot run (a shard could not start); the message says why."""


def grader_path(config: Any) -> str:
    """Where a grader runs: `parent` if it (or any sub-grader) calls a model or an embeddings endpoint,
    `python` if any sub-grader runs user code, else `cpu`."""
    kind = config.type
    if kind in ("score_model", "label_model"):
        return PARENT
    if kind == "text_similarity" and getattr(config, "evaluation_metric", None) == "cosine":
        return PARENT
    if kind == "multi":
        paths = {grader_path(sub) for sub in config.graders.values()}
        return PARENT if PARENT in paths else PYTHON if PYTHON in paths else CPU
    return PYTHON if kind == "python" else CPU


def resolve_workers(workers: int | None, compiled: CompiledGrader) -> int:
    """`workers`, else the `batch.workers` option, else the cores this process may use."""
    if workers is None:
        workers = compiled.options.batch.workers
    if workers is None:
        workers = available_cores()
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    return workers


def start_method(path: str) -> str:
    if path == CPU and threading.active_count() == 1 and "fork" in mp.get_all_start_methods():
        return "fork"
    return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"


def shard_spec(compiled: CompiledGrader, shards: int, **kwargs: Any) -> ShardSpec:
    """The spec shards rebuild `compiled` from; python workers are shared out so shards × workers ≈ cores."""
    python_workers = None
    if grader_path(compiled.config) == PYTHON:
        total = compiled.options.python.workers or available_cores()
        python_workers = max(1, total // shards)
    return ShardSpec(compiled.source, compiled.options, compiled.context, compiled.name,
                     python_workers=python_workers, **kwargs)


class ShardPool:
    """`count` shard processes answering block messages; `ordered` hands blocks out and yields results in order."""

    def __init__(self, spec: ShardSpec, count: int, method: str, fallback: BlockWorker) -> None:
        self.spec = spec
        self.ctx = mp.get_context(method)
        if method == "forkserver":
            self.ctx.set_forkserver_preload(["graders.batch.shard"])
        self.fallback = fallback
        self.procs: list[Any] = [None] * count
        self.conns: list[Any] = [None] * count
        self._inflight: list[deque[tuple[Any, ...]]] = [deque() for _ in range(count)]
        self._done: dict[int, tuple[Any, ...]] = {}
        self._retry: deque[tuple[Any, ...]] = deque()
        self._attempts: dict[int, int] = {}
        self._held: dict[int, tuple[int, tuple[Any, ...]]] = {}
        """Blocks whose lines a shard keeps until `commit`: seq → (shard, the message that asked for it)."""
        self._writing: dict[int, int] = {}
        """Blocks committed and not yet written: seq → shard."""
        for index in range(count):
            self._start(index)
        for index in range(count):
            self._ready(index)

    def _start(self, index: int) -> None:
        parent, child = self.ctx.Pipe()
        for end in (parent, child):
            _widen(end.fileno())
        target = {"target": shard_main, "args": (child, self.spec), "name": f"graders-shard-{index}", "daemon": True}
        proc = self.ctx.Process(**target)  # type: ignore[attr-defined]
        proc.start()
        child.close()
        self.procs[index], self.conns[index] = proc, parent

    def _ready(self, index: int) -> None:
        conn = self.conns[index]
        try:
            kind, text = conn.recv()
        except (EOFError, OSError):
            kind, text = "error", f"the shard process exited (code {self.procs[index].exitcode}) before it was ready"
        if kind != "ready":
            self.close()
            raise BatchError(f"a shard could not build the grader: {text}")

    def ordered(self, messages: Iterator[tuple[Any, ...]], window: int) -> Iterator[tuple[Any, ...]]:
        """Results of `messages` (`(seq, first_row, first_line, block)`, seq counting from 0) in seq order.

        A result whose lines a shard holds (in their place, their length) is `commit`ted to an offset, and `flush`
        waits for every such write.
        A shard that dies is restarted and its blocks are sent again; a block on which shards died twice becomes
        flagged rows (through `fallback`), so the run goes on.
        """
        count = len(self.conns)
        inflight, done, retry = self._inflight, self._done, self._retry
        next_seq = issued = 0
        exhausted = False
        while True:
            while retry or (not exhausted and issued - next_seq < window):
                free = min(range(count), key=lambda i: len(inflight[i]))
                if len(inflight[free]) >= _PER_SHARD:
                    break
                if retry:
                    message = retry.popleft()
                else:
                    upcoming = next(messages, None)
                    if upcoming is None:
                        exhausted = True
                        break
                    message = upcoming
                    issued += 1
                self.conns[free].send(message)
                inflight[free].append(message)
            while next_seq in done:
                yield done.pop(next_seq)
                next_seq += 1
            busy = [self.conns[i] for i in range(count) if inflight[i]]
            if not busy:
                if exhausted and not retry:
                    return
                continue
            for conn in wait(busy):
                self._receive(self.conns.index(conn))

    def _receive(self, index: int) -> int | None:
        """Take one message from shard `index`: a result (kept in `done`), or the seq of a block it has written."""
        try:
            message = self.conns[index].recv()
        except (EOFError, OSError):
            self._crashed(index)
            return None
        if message[0] == "written":
            self._writing.pop(message[1], None)
            return int(message[1])
        sent = self._inflight[index].popleft()
        if message[2].__class__ is int:
            self._held[message[0]] = (index, sent)
        self._done[message[0]] = message
        return None

    def _crashed(self, index: int) -> None:
        code = self.procs[index].exitcode
        self.procs[index].join(1)
        self._start(index)
        self._ready(index)
        if index in self._writing.values():
            raise BatchError("a shard died before writing its lines; run the same command again to continue")
        lost = list(self._inflight[index])
        for seq, (owner, sent) in list(self._held.items()):
            if owner == index and seq in self._done:  # graded, but its lines died with the shard
                del self._done[seq], self._held[seq]
                lost.append(sent)
        for message in lost:
            attempts = self._attempts[message[0]] = self._attempts.get(message[0], 0) + 1
            if attempts >= 2:
                self._done[message[0]] = self.fallback.failed(message[0], message[1], message[2], message[3], f"the shard process grading it died twice (exit code {code})")
            else:
                self._retry.append(message)
        self._inflight[index].clear()

    def commit(self, seq: int, offset: int) -> None:
        """Have the shard holding block `seq`'s lines write them at `offset` of the output; it answers later."""
        index, _ = self._held.pop(seq)
        self.conns[index].send(("write", seq, offset))
        self._writing[seq] = index

    def flush(self) -> None:
        """Wait until every committed block is written; a shard that died with lines unwritten fails the run."""
        while self._writing:
            index = next(iter(self._writing.values()))
            alive = self.procs[index]
            written = self._receive(index)
            if written is not None:
                self._writing.pop(written, None)
            elif self.procs[index] is not alive:
                raise BatchError("a shard died before writing its lines; run the same command again to continue")

    def close(self) -> None:
        for conn in self.conns:
            if conn is not None:
                try:
                    conn.send(None)
                except OSError:
                    pass
        for proc in self.procs:
            if proc is not None:
                proc.join(2)
                if proc.is_alive():
                    proc.terminate()
                    proc.join(2)
        for conn in self.conns:
            if conn is not None:
                conn.close()

    def terminate(self) -> None:
        """Stop now (Ctrl-C): rows in flight are lost; the output holds every row written before."""
        for proc in self.procs:
            if proc is not None and proc.is_alive():
                proc.terminate()
        for proc in self.procs:
            if proc is not None:
                proc.join(2)
        for conn in self.conns:
            if conn is not None:
                conn.close()


def local_ordered(worker: BlockWorker, messages: Iterator[tuple[Any, ...]], window: int) -> Iterator[tuple[Any, ...]]:
    """The in-process path: blocks graded here, in order; for async-native graders up to `window` blocks at once
    on the background loop (one shared limiter bounds their requests)."""
    if not worker.async_native:
        for message in messages:
            yield worker.process(*message)
        return
    loop = background_loop()
    pending: deque[Any] = deque()
    for message in messages:
        pending.append(asyncio.run_coroutine_threadsafe(worker.aprocess(*message), loop))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


# -- run_many / iter_run -------------------------------------------------------------------------------------------


def _encode_block(rows: list[Any]) -> bytes | None:
    """Rows as JSONL for a shard; None when one of them is not plain JSON (that block is graded here)."""
    try:
        return b"\n".join([orjson.dumps(row) for row in rows]) + b"\n"
    except TypeError:
        return None


def iter_parallel(compiled: CompiledGrader, rows: Iterable[Any], workers: int | None, chunk_size: int,
                  local: Callable[[Iterable[Any], int], Iterator[GraderRunResponse]]) -> Iterator[GraderRunResponse]:
    """`iter_run` over shards when it pays: more than one worker, a CPU-bound grader, more than
    `batch.parallel_min_rows` rows, and those first rows (graded by `local`, the in-process path) at least
    `batch.shard_min_row_us` each; everything else stays in `local`. Responses come in input order. On 2 cores,
    string_check (2-3 µs a row), fuzzy_match (6 µs) and rouge_l on short texts (19 µs) ran 0.45-0.61x as fast on
    shards as in-process, and gleu at 82 µs 1.16x.

    Python graders stay here: the parent's sandbox pool already grades on every core, and handing in-memory rows
    to shards and their outcomes back cost more than it saved (measured by benchmarks/bench_batch.py). In
    `graders batch`, where shards also decode and encode the lines, they do go to shards.
    """
    count = resolve_workers(workers, compiled)
    path = grader_path(compiled.config)
    it = iter(rows)
    if count == 1 or path != CPU:
        yield from local(it, chunk_size)
        return
    # The first rows are graded here, as lazily as the in-process path; shards start only if more rows follow and
    # those rows took long enough to grade that shipping rows to shards and their outcomes back pays.
    head_rows = compiled.options.batch.parallel_min_rows
    graded = 0.0
    for response in local(islice(it, head_rows), chunk_size):
        graded += response.execution_time
        yield response
    first = next(it, _END)
    if first is _END:
        return
    if graded < head_rows * compiled.options.batch.shard_min_row_us * 1e-6:
        yield from local(chain([first], it), chunk_size)
        return
    head = [first]
    block_rows = max(1, min(chunk_size, compiled.options.batch.block_rows))
    spec = shard_spec(compiled, count, objects=True)
    fallback = BlockWorker(spec, compiled)
    pool = ShardPool(spec, count, start_method(path), fallback)
    local_blocks: dict[int, list[Any]] = {}
    source = chain(head, it)

    def messages() -> Iterator[tuple[Any, ...]]:
        seq = row = 0
        while True:
            chunk = list(islice(source, block_rows))
            if not chunk:
                return
            block = _encode_block(chunk)
            if block is None:
                local_blocks[seq] = chunk
                block = b""
            yield seq, row, row + 1, block
            seq += 1
            row += len(chunk)

    name, kind, fmt = compiled.name, compiled.type, compiled._fmt
    try:
        for seq, _, out, _, _, _ in pool.ordered(messages(), window=count * 4):
            chunk = local_blocks.pop(seq, None)
            if chunk is not None:
                yield from fallback.grade(chunk)
                continue
            for reward, elapsed, errors, usage, sampled, subs, details in orjson.loads(out):
                yield GraderRunResponse(reward, name, kind, elapsed, Outcome(reward, errors, usage, sampled, subs, details), fmt)
    finally:
        pool.close()
