"""One block of input lines → graded, encoded output: the whole per-row path, run in a shard process or in-process.

A block is raw bytes of whole JSONL lines. `BlockWorker.process` decodes them, maps each to a row (layout),
grades them in bulk, encodes the output lines and the block's share of the summary (one float per row, flag counts,
reasons, sub-grader sums, token usage, and with a report its worst and errored rows). A shard process rebuilds the
compiled grader from its JSON and options, so nothing of the parent's threads, event loop or pools is inherited.
"""

from __future__ import annotations

import gc
import heapq
import os
import queue
import signal
import threading
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from ..engine import CompiledGrader
from ..errors import BadRow
from ..options import Options
from ..response import DETAILS_KEY, FLAG_KEYS, GraderRunResponse, ResponseEncoder, _dump
from .layout import Layout, RowMapper, decode_line

REPORT_ROWS = 25
"""Worst and errored rows kept for the report (per block here, overall in the parent)."""
REASON_CHARS = 200
SUB_BINS = 20
SKIPPED = b"\x00"
"""A line the reader put in place of a row already written (resume by id)."""


@dataclass
class ShardSpec:
    """Everything a shard needs to rebuild the grader: picklable, so it travels to spawned processes."""

    grader: Any
    options: Options
    context: Any
    name: str
    layout: Layout = field(default_factory=Layout)
    report: bool = False
    objects: bool = False
    """Return outcomes for `run_many` instead of output lines."""
    python_workers: int | None = None
    out_path: str | None = None
    """The output file: the shard writes its blocks' lines itself at the offsets the parent gives, so they never
    cross a pipe and no shard waits for another."""

    def build(self) -> CompiledGrader:
        values: dict[str, Any] = {}
        if self.report:
            values["explain"] = True
        if self.python_workers is not None:
            values["python.workers"] = self.python_workers
        options = self.options.with_values(values) if values else self.options
        compiled = CompiledGrader(self.grader, options, context=self.context)
        compiled.name = self.name  # a generated name is the parent's, not a new one per shard (§3.4)
        return compiled


def reason_of(response: GraderRunResponse) -> tuple[list[str], str]:
    """(set flags, one-line reason) of a failed response."""
    errors = response.outcome.errors or {}
    flags = [f for f in FLAG_KEYS if errors.get(f)]
    text = None
    for flag in flags:
        key = DETAILS_KEY.get(flag)
        if key and isinstance(errors.get(key), str):
            text = errors[key]
            break
    if text is None:
        text = response.outcome.error_text() or ", ".join(flags)
    line = " ".join(str(text).split())
    return flags, line[:REASON_CHARS]


def _clip(value: Any, limit: int = 4000) -> Any:
    """Report data kept small: long strings cut, with their length said."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + f"… ({len(value)} chars)"
    if isinstance(value, dict):
        return {k: _clip(v, limit) for k, v in list(value.items())[:50]}
    if isinstance(value, list):
        return [_clip(v, limit) for v in value[:50]]
    return value


class BlockWorker:
    """Grades blocks for one compiled grader and layout."""

    def __init__(self, spec: ShardSpec, compiled: CompiledGrader | None = None) -> None:
        self.spec = spec
        self.compiled = compiled or spec.build()
        self.layout = spec.layout
        self.mapper = None if spec.layout.plain and not spec.layout.id_field else RowMapper(spec.layout)
        c = self.compiled
        self.encoder = ResponseEncoder(c.name, c.type, c._fmt)
        self.async_native = c._runner.is_async

    # -- decode -------------------------------------------------------------------------------------------------

    def decode(self, first_row: int, first_line: int, block: bytes) -> tuple[list[Any], list[Any], list[bytes], list[int], list[int]]:
        """(rows, ids, raw inputs, line numbers, row numbers) of the non-blank lines of a block.

        A line that is exactly `SKIPPED` (written by the reader for a row done in an earlier run) counts as a row
        but is not graded.
        """
        lines = block.split(b"\n")
        if lines and not lines[-1]:
            lines.pop()
        loads = orjson.loads
        if self.mapper is None:
            try:  # the fast path: every line is a JSON row as it is
                rows = [loads(raw) for raw in lines]
                return rows, [], lines, list(range(first_line, first_line + len(lines))), list(range(first_row, first_row + len(lines)))
            except orjson.JSONDecodeError:
                pass  # a blank or broken line: line by line below, so each gets its own number
        rows, ids, inputs, numbers, indices = [], [], [], [], []
        mapper = self.mapper
        index = first_row
        for offset, raw in enumerate(lines):
            if not raw or raw.isspace():
                continue
            if raw == SKIPPED:
                index += 1
                continue
            row, ident, source = decode_line(raw, first_line + offset, mapper)
            rows.append(row)
            ids.append(ident)
            inputs.append(source)
            numbers.append(first_line + offset)
            indices.append(index)
            index += 1
        return rows, ids, inputs, numbers, indices

    # -- grade --------------------------------------------------------------------------------------------------

    def grade(self, rows: list[Any]) -> list[GraderRunResponse]:
        return self.compiled.run_many(rows, chunk_size=max(1, len(rows)), workers=1)

    async def agrade(self, rows: list[Any]) -> list[GraderRunResponse]:
        return await self.compiled.arun_many(rows, chunk_size=max(1, len(rows)))

    def process(self, seq: int, first_row: int, first_line: int, block: bytes) -> tuple[Any, ...]:
        rows, ids, inputs, numbers, indices = self.decode(first_row, first_line, block)
        return self.finish(seq, rows, ids, inputs, numbers, indices, self.grade(rows))

    async def aprocess(self, seq: int, first_row: int, first_line: int, block: bytes) -> tuple[Any, ...]:
        rows, ids, inputs, numbers, indices = self.decode(first_row, first_line, block)
        return self.finish(seq, rows, ids, inputs, numbers, indices, await self.agrade(rows))

    def failed(self, seq: int, first_row: int, first_line: int, block: bytes, reason: str) -> tuple[Any, ...]:
        """The result of a block whose shard died on it twice: each row flagged with the reason, none graded."""
        rows, ids, inputs, numbers, indices = self.decode(first_row, first_line, block)
        bad: list[Any] = [BadRow(f"line {n}: {reason}") for n in numbers]
        return self.finish(seq, bad, ids, inputs, numbers, indices, self.grade(bad))

    # -- encode -------------------------------------------------------------------------------------------------

    def finish(self, seq: int, rows: list[Any], ids: list[Any], inputs: list[bytes], numbers: list[int], indices: list[int],
               responses: list[GraderRunResponse]) -> tuple[Any, ...]:
        """(seq, rows, output bytes, rewards as float64 bytes, ids as JSON lines, block stats)."""
        n = len(responses)
        out = self._objects(responses) if self.spec.objects else self._lines(indices, ids, inputs, responses)
        if self.spec.objects:
            return seq, n, out, b"", b"", None
        rewards = array("d", [r.reward for r in responses])
        id_lines = b"".join(orjson.dumps(i) + b"\n" for i in ids) if self.layout.id_field else b""
        return seq, n, out, rewards.tobytes(), id_lines, self._stats(indices, rewards, inputs, numbers, responses)

    def _lines(self, indices: list[int], ids: list[Any], inputs: list[bytes], responses: list[GraderRunResponse]) -> bytes:
        encode = self.encoder.encode
        details = self.layout.details
        output = self.layout.output
        if output == "wire":
            return b"".join([encode(r, include_details=details) + b"\n" for r in responses])
        parts = []
        dumps = orjson.dumps
        for i, r in enumerate(responses):
            row = indices[i]
            if output == "compact":
                line: dict[str, Any] = {"row": row}
                if ids:
                    line["id"] = ids[i]
                line["reward"] = r.reward
                if r.outcome.errors:
                    line["flags"] = reason_of(r)[0]
                if r.outcome.sub_rewards:
                    line["sub_rewards"] = r.outcome.sub_rewards
                if details and r.outcome.details:
                    line["details"] = _dump(r.outcome.details, "json")
                parts.append(dumps(line, default=repr) + b"\n")
            else:
                ident = dumps(ids[i]) if ids else b"null"
                parts.append(b'{"row":%d,"id":%s,"input":%s,"response":%s}\n' % (row, ident, inputs[i].rstrip(), encode(r, include_details=details)))
        return b"".join(parts)

    @staticmethod
    def _objects(responses: list[GraderRunResponse]) -> bytes:
        return orjson.dumps(
            [(r.reward, r.execution_time, o.errors, o.usage, o.sampled_model_name, o.sub_rewards, o.details) for r in responses for o in (r.outcome,)],
            default=repr,
            option=orjson.OPT_NON_STR_KEYS,
        )

    def _stats(self, indices: list[int], rewards: array, inputs: list[bytes], numbers: list[int], responses: list[GraderRunResponse]) -> dict[str, Any]:
        failed = [i for i, r in enumerate(responses) if r.outcome.errors]
        flags: Counter[str] = Counter()
        reasons: dict[str, Counter[str]] = {}
        for i in failed:
            set_flags, reason = reason_of(responses[i])
            for flag in set_flags:
                flags[flag] += 1
                reasons.setdefault(flag, Counter())[reason] += 1
        subs: dict[str, list[Any]] = {}
        usage: dict[str, dict[str, int]] = {}
        if responses and (responses[0].outcome.sub_rewards or any(r.outcome.sub_rewards for r in responses)):
            columns: dict[str, list[float]] = {}
            for r in responses:
                for key, value in (r.outcome.sub_rewards or {}).items():
                    column = columns.get(key)
                    if column is None:
                        column = columns[key] = []
                    column.append(value)
            for key, column in columns.items():
                values = np.asarray(column, dtype=float)
                inside = np.clip(values, 0.0, 1.0)
                bins = np.bincount(np.minimum((inside * SUB_BINS).astype(int), SUB_BINS - 1) + 1, minlength=SUB_BINS + 2)
                bins[0] = int((values < 0).sum())
                bins[SUB_BINS + 1] = int((values > 1).sum())
                bins[1:SUB_BINS + 1] -= np.bincount(np.minimum((inside[(values < 0) | (values > 1)] * SUB_BINS).astype(int), SUB_BINS - 1), minlength=SUB_BINS)
                subs[key] = [float(values.sum()), len(column), bins.tolist(), float(values.min()), float(values.max())]
        for r in responses:
            if r.outcome.usage:
                for model, u in r.outcome.usage.items():
                    total = usage.setdefault(model, {})
                    for k, v in u.items():
                        total[k] = total.get(k, 0) + int(v or 0)
        stats: dict[str, Any] = {"errors": len(failed), "flags": dict(flags), "reasons": {k: dict(v) for k, v in reasons.items()}, "subs": subs, "usage": usage}
        if self.spec.report and responses:
            worst = heapq.nsmallest(REPORT_ROWS, range(len(responses)), key=rewards.__getitem__)
            stats["worst"] = [self._entry(indices, i, inputs, numbers, responses[i]) for i in worst]
            stats["errored"] = [self._entry(indices, i, inputs, numbers, responses[i]) for i in failed[:REPORT_ROWS]]
        return stats

    def _entry(self, indices: list[int], i: int, inputs: list[bytes], numbers: list[int], r: GraderRunResponse) -> dict[str, Any]:
        raw = inputs[i] if i < len(inputs) else b""
        try:
            shown: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            shown = raw.decode("utf-8", "replace")
        flags, reason = reason_of(r) if r.outcome.errors else ([], "")
        return {
            "row": indices[i],
            "line": numbers[i] if i < len(numbers) else None,
            "reward": r.reward,
            "flags": flags,
            "reason": reason,
            "sub_rewards": r.outcome.sub_rewards or {},
            "input": _clip(shown),
            "details": _clip(_dump(r.outcome.details or {}, "json")),
        }

    def close(self) -> None:
        self.compiled.close()


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done


def shard_main(conn: Any, spec: ShardSpec) -> None:
    """A shard process: build the grader, then answer block messages until told to stop (None) or the pipe closes.

    A reader thread takes messages off the pipe as they come, so the parent's sends never wait on this shard's
    replies (two blocked writers would deadlock), and writes a held block's lines as soon as the parent knows
    their offset. Ctrl-C is the parent's to handle: it stops sending, keeps every
    finished row and prints the summary.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        worker = BlockWorker(spec)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the run with this text
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    gc.freeze()  # the grader's long-lived state (WordNet, compiled templates) is never scanned again
    inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
    held: dict[int, bytes] = {}
    sending = threading.Lock()
    out_fd = os.open(spec.out_path, os.O_WRONLY) if spec.out_path else None

    def read() -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                message = None
            if message is not None and message[0] == "write":  # this block's place in the output is known
                _pwrite_all(out_fd, held.pop(message[1]), message[2])  # type: ignore[arg-type]
                with sending:
                    conn.send(("written", message[1]))
                continue
            inbox.put(message)
            if message is None:
                return

    threading.Thread(target=read, name="graders-shard-inbox", daemon=True).start()
    conn.send(("ready", None))
    try:
        while True:
            message = inbox.get()
            if message is None:
                return
            result = worker.process(*message)
            if out_fd is not None:
                held[result[0]] = result[2]
                result = (result[0], result[1], len(result[2]), *result[3:])
            with sending:
                conn.send(result)
    finally:
        worker.close()
