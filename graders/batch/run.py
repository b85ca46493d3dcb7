"""`graders batch` and `graders rescore`: a JSONL file in, one line per row out, in input order, resumable.

The parent reads blocks of raw lines, hands them to shards (or grades them here when that is cheaper), writes each
result as soon as every earlier block is written, and flushes it straight to the file, so `kill -9` loses at most
the blocks in flight. Ctrl-C stops, keeps every row written and prints the summary of those rows.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import chain
from typing import IO, Any, Protocol, TextIO

from ..engine import CompiledGrader
from ..validation import Context
from ..options import Options
from . import resume
from .layout import Layout
from .pipeline import PARENT, ShardPool, grader_path, local_ordered, resolve_workers, shard_spec, start_method
from .progress import Mode, Progress
from .reader import JoinedInput, blocks, filter_ids, is_parquet, parquet_lines, rft_pairs
from .report import ReportRows, write_report
from .shard import BlockWorker, ShardSpec, _pwrite_all
from .summary import Summary


class Shards(Protocol):
    """Shards somewhere else (Ray actors): `ordered` as `ShardPool.ordered`, with each result's lines returned."""

    window: int

    def ordered(self, messages: Iterator[tuple[Any, ...]], window: int) -> Iterator[tuple[Any, ...]]: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...
    def terminate(self) -> None: ...


class Executor(Protocol):
    """Starts `Shards` for one run (`graders.integrations.ray.RayBatch`); `workers` is `--workers`."""

    def start(self, spec: ShardSpec, compiled: CompiledGrader, workers: int | None) -> Shards: ...


@dataclass
class BatchJob:
    """One `graders batch` run."""

    grader: Any
    data: str
    out: str | None = None
    options: Options = field(default_factory=Options)
    layout: Layout = field(default_factory=Layout)
    samples: str | None = None
    """RFT: the samples file joined with the training rows in `data` (by index, or by `layout.id_field`)."""
    join: str = "index"
    workers: int | None = None
    force: bool = False
    progress: Mode = "auto"
    summary_path: str | None = None
    report_path: str | None = None
    context: Context = "run"
    executor: Executor | None = None
    """Grade the blocks there (a Ray cluster) instead of in local shards; reading, resume and output stay here."""


def _open_input(path: str) -> Any:
    if path == "-":
        return sys.stdin.buffer
    if is_parquet(path):
        open(path, "rb").close()  # a missing file is the same error as for JSONL
        return JoinedInput(parquet_lines(path))
    return open(path, "rb")  # noqa: SIM115


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def run_batch(job: BatchJob, stderr: TextIO | None = None, stdout: IO[bytes] | None = None) -> Summary:
    """Run `job`; returns the summary (also printed, and written with `summary_path`). Raises `ResumeError` when
    the output holds another job's results, `GraderValidationError` for an invalid grader."""
    stderr = stderr or sys.stderr
    layout = job.layout
    layout.validate()
    compiled = CompiledGrader(job.grader, job.options, context=job.context)
    summary = Summary()
    report = ReportRows() if job.report_path else None
    by_id = bool(layout.id_field)
    if job.join == "id" and not (job.samples and layout.id_field):
        raise ValueError("--join id needs --samples and --id-field (the field both files share)")
    with ExitStack() as stack:
        stack.callback(compiled.close)
        inputs = {"data": resume.input_identity(job.data)}
        if job.samples:
            inputs["samples"] = resume.input_identity(job.samples)
        meta = resume.fingerprint(compiled, layout, inputs)
        if job.out:
            state = resume.prepare(job.out, meta, force=job.force, by_id=by_id)
            if state.rows:
                resume.absorb(summary, job.out, layout)
            out_fd = os.open(job.out, os.O_WRONLY)  # written at offsets: shards write their own blocks beside it
            stack.callback(os.close, out_fd)
            at_offsets = True
            offset = os.path.getsize(job.out)
            ids_fd = os.open(resume.ids_path(job.out), os.O_WRONLY | os.O_APPEND) if layout.id_field else None
            if ids_fd is not None:
                stack.callback(os.close, ids_fd)
        else:
            state = resume.Resumed()
            out_fd = (stdout or sys.stdout.buffer).fileno()
            ids_fd = None
            at_offsets, offset = False, 0
        handle = _open_input(job.data)
        if hasattr(handle, "close"):
            stack.callback(handle.close)
        source: Any = handle
        if job.samples:
            samples = stack.enter_context(open(job.samples, "rb"))
            id_path = tuple(layout.id_field.split(".")) if layout.id_field and job.join == "id" else None
            source = JoinedInput(rft_pairs(handle, samples, compiled.options.batch.block_bytes, id_path))
        skip = 0 if by_id else state.rows
        reader = blocks(source, compiled.options.batch.block_bytes, skip_rows=skip)
        if by_id and state.ids:
            id_tuple = tuple(layout.id_field.split("."))  # type: ignore[union-attr]
            reader = (filter_ids(b, id_tuple, state.ids, layout.rft) for b in reader)
        total = None if job.data == "-" or job.samples or is_parquet(job.data) else inputs["data"]["size"]
        ends: dict[int, tuple[int, int]] = {}

        def messages(it: Iterator[Any]) -> Iterator[tuple[Any, ...]]:
            for seq, (first_row, first_line, data, n, end) in enumerate(it):
                ends[seq] = (n, end)
                yield seq, first_row, first_line, data

        spec_kwargs = {"layout": layout, "report": report is not None}
        path = grader_path(compiled.config)
        count = resolve_workers(job.workers, compiled)
        head: list[Any] = []
        if job.executor is None and count > 1 and path != PARENT:
            rows = 0
            for block in reader:  # small inputs stay in-process: no shard start-up for a few rows
                head.append(block)
                rows += block[3]
                if rows >= compiled.options.batch.parallel_min_rows:
                    break
            else:
                count = 1
        all_blocks = chain(head, reader)
        pool: ShardPool | Shards | None = None
        if job.executor is not None:
            spec = shard_spec(compiled, 1, **spec_kwargs)
            pool = job.executor.start(spec, compiled, job.workers)
            results = pool.ordered(messages(all_blocks), window=pool.window)
        elif count > 1 and path != PARENT:
            spec = shard_spec(compiled, count, out_path=job.out, **spec_kwargs)
            pool = ShardPool(spec, count, start_method(path), BlockWorker(spec, compiled))
            results = pool.ordered(messages(all_blocks), window=count * 4)
        else:
            spec = shard_spec(compiled, 1, **spec_kwargs)
            if report:
                worker = BlockWorker(spec)
                stack.callback(worker.close)
            else:
                worker = BlockWorker(spec, compiled)
            results = local_ordered(worker, messages(all_blocks), window=4)
        progress = Progress(total, mode="quiet" if job.progress == "quiet" else job.progress,
                            interval_s=compiled.options.batch.progress_interval_s, stream=stderr)
        progress.resumed(summary.rows, 0)
        interrupted = False
        gc.freeze()
        try:
            for seq, n, out, rewards, id_lines, stats in results:
                if out.__class__ is int:  # the shard holds the lines and writes them at this offset
                    pool.commit(seq, offset)  # type: ignore[union-attr]
                    offset += out
                elif out:
                    if at_offsets:
                        _pwrite_all(out_fd, out, offset)
                        offset += len(out)
                    else:
                        _write_all(out_fd, out)
                if ids_fd is not None and id_lines:
                    _write_all(ids_fd, id_lines)
                summary.add(rewards, stats)
                if report is not None:
                    report.add(stats)
                _, end = ends.pop(seq)
                progress.update(n, stats["errors"], end - progress.done_bytes if total else 0)
        except KeyboardInterrupt:
            interrupted = True
            if pool is not None:
                try:  # the rows counted are on disk before the shards stop (they ignore Ctrl-C meanwhile)
                    pool.flush()
                finally:
                    pool.terminate()
                    pool = None
            if pool is not None:
                pool.flush()
        finally:
            gc.unfreeze()
            if pool is not None:
                pool.close()
            progress.close()
        summary.finish(interrupted=interrupted)
        if job.out:
            resume.write_meta(job.out, meta, complete=not interrupted, rows=summary.rows)
    if job.summary_path:
        import orjson

        with open(job.summary_path, "wb") as sink:
            sink.write(orjson.dumps(summary.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    if job.report_path and report is not None:
        write_report(job.report_path, summary, report, compiled_name=compiled.name, grader=job.grader)
    if job.progress != "quiet":
        print(summary.format(), file=stderr)
    if interrupted:
        raise KeyboardInterrupt
    return summary

