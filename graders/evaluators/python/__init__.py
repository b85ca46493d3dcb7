"""`python` graders (§8): user `source` runs in sandboxed warm workers; the parent decides the reward.

`worker.py` runs the code, `sandbox/` decides how a worker is isolated (docs/sandbox.md), `pool.py` keeps workers
warm, one pool per source, and replaces them; this module turns each reply into an `Outcome` with the §8.2
return policy (U26) and the §8.3 failure flags (U27). Nothing a worker sends is trusted: a reply of a shape the
protocol does not allow, or nested too deep, fails its row with `python_grader_server_error`, and worker text
copied into a response is capped (`WIRE_TEXT_CAP`, `OUTPUT_CAP`).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import weakref
from collections import deque
from collections.abc import Sequence
from typing import Any

from ..._json import Unsendable, dumps_value
from ...errors import InputTooLarge, InvalidInput, failure_outcome
from ...namespaces import ModelSample, Namespaces
from ...options import Options
from ...response import Outcome, freeze
from ...schema import PythonGrader
from ...resources.images import ImageNotInstalled, resolve_interpreter
from ..base import AsyncEvaluator
from .pool import Failure, LaunchFailed, Pool, get_pool
from .sandbox import SandboxSpec, SandboxUnavailable

_NUMERIC_KINDS = frozenset({"builtins.int", "builtins.float"})
WIRE_TEXT_CAP = 4096
"""Characters of worker text (a traceback, an error) that reach a response's error details; the rest is cut."""
OUTPUT_CAP = 16_384
"""Characters of a grade's printed output kept in the local `details["output"]`."""
MAX_REPLY_DEPTH = 8
"""Nesting past which a reply is `reply_too_deep` rather than merely of a shape the protocol does not allow."""
_REPLY_FIELDS = {"value": (str, int, float, bool, type(None)), "kind": (str,), "output": (str,), "error": (str,), "timeout": (bool,), "memory": (bool,)}
_SERVER_TYPES = {"crashed": "worker_crashed", "protocol": "protocol_error", "reply_too_large": "reply_too_large", "reply_too_deep": "reply_too_deep"}


def _cap(text: str, limit: int = WIRE_TEXT_CAP) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[… {len(text) - limit} more characters dropped]"


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if node.__class__ is dict:
            stack.extend((child, depth + 1) for child in node.values())
        elif node.__class__ is list:
            stack.extend((child, depth + 1) for child in node)
    return False


def _reply_problem(reply: Any) -> tuple[str, str] | None:
    """(server error type, why) for a reply that is neither a bare number nor a dict of the protocol's fields."""
    if _deeper_than(reply, MAX_REPLY_DEPTH):
        return "reply_too_deep", f"the worker sent a reply nested deeper than {MAX_REPLY_DEPTH} levels"
    if reply.__class__ is not dict:
        return "reply_invalid", f"the worker sent a reply of type {type(reply).__name__}"
    for name, value in reply.items():
        allowed = _REPLY_FIELDS.get(name)
        if allowed is None:
            return "reply_invalid", f"the worker sent a reply with an unknown field {_cap(str(name), 100)!r}"
        if value.__class__ not in allowed:
            return "reply_invalid", f"the worker sent a reply whose {name!r} is of type {type(value).__name__}"
    return None


class _Batcher:
    """Single-sample calls waiting on one event loop, and how many calls or pumps are sending there now."""

    __slots__ = ("evaluator", "slots", "chunk", "busy", "queue", "pumps")

    def __init__(self, evaluator: PythonEvaluator, slots: int, chunk: int) -> None:
        self.evaluator = evaluator
        self.slots = slots
        self.chunk = chunk
        self.busy = 0
        self.queue: deque[tuple[Namespaces, asyncio.Future[Outcome]]] = deque()
        self.pumps: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks

    def drain(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.queue and self.busy < self.slots:
            self.busy += 1
            pump = loop.create_task(self._pump())
            self.pumps.add(pump)
            pump.add_done_callback(self.pumps.discard)

    async def _pump(self) -> None:
        """Send everything queued, a chunk at a time, until the queue is empty."""
        queue = self.queue
        try:
            while queue:
                batch = [queue.popleft() for _ in range(min(self.chunk, len(queue)))]
                try:
                    outcomes = await self.evaluator.aevaluate_many([ns for ns, _ in batch])
                except Exception as exc:  # noqa: BLE001 - each caller's guard turns it into its own outcome
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), outcome in zip(batch, outcomes):
                    if not future.done():
                        future.set_result(outcome)
        finally:
            self.busy -= 1


def _encode_rows(batch: Sequence[Namespaces], max_bytes: int) -> tuple[list[bytes], list[tuple[int, Outcome]]]:
    """Each sample's `[sample, item]` as JSON (§8.1: the grader gets JSON-deserialised copies), a `model_sample`'s
    text sent once as a third element, and a ready outcome at the index of each row that cannot be sent: a value
    JSON cannot hold (§5.7), or a row past `python.max_input_bytes`, so only that row fails."""
    rows: list[bytes] = []
    unsendable: list[tuple[int, Outcome]] = []
    for index, ns in enumerate(batch):
        sample = ns.sample
        try:
            if isinstance(sample, ModelSample):
                slim, text = sample.json_parts()
                encoded_item = dumps_value(ns.item, "item")
                row = b"[" + slim + b"," + encoded_item + b"," + text + b"]"
                sample_bytes = len(slim) + len(text)
            else:
                encoded_sample = dumps_value(sample, "sample")
                encoded_item = dumps_value(ns.item, "item")
                row = b"[" + encoded_sample + b"," + encoded_item + b"]"
                sample_bytes = len(encoded_sample)
        except Unsendable as exc:
            unsendable.append((index, failure_outcome(InvalidInput(exc.field, exc.problem))))
            continue
        except (TypeError, ValueError) as exc:
            failure = Outcome.fail("other_error", f"invalid row: 'sample' or 'item' cannot be sent to the grader as JSON: {exc}", details={"param": "item"})
            unsendable.append((index, failure))
            continue
        if len(row) > max_bytes:
            sizes = {"sample": sample_bytes, "item": len(encoded_item)}
            field = max(sizes, key=lambda k: sizes[k])
            too_large = InputTooLarge(
                field, f"{field} is {sizes[field]:,} bytes as JSON; a python grader accepts rows of at most {max_bytes:,}", "python.max_input_bytes"
            )
            unsendable.append((index, failure_outcome(too_large)))
            continue
        rows.append(row)
    return rows, unsendable


class PythonEvaluator(AsyncEvaluator):
    type = "python"

    def __init__(self, config: PythonGrader, options: Options) -> None:
        super().__init__(config, options)
        opts = options.python
        self._opts = opts
        self._source = config.source
        # Fresh-process mode forks from a copy of the module that no grade has touched, so it has a key of its own.
        self._key = hashlib.sha256(config.source.encode("utf-8", "surrogatepass")).hexdigest() + ("-fresh" if opts.fresh_process else "")
        self._image_tag = config.image_tag
        self._size = opts.workers or os.cpu_count() or 1
        self._pool: Pool | None = None
        self._environment: dict[str, Any] = {}
        self._details: dict[str, Any] | None = None
        self._batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batcher] = weakref.WeakKeyDictionary()

    def _get_pool(self) -> Pool | Outcome:
        """The warm pool of this grader's source under its environment and limits, resolved on first use (U31, §8.5)."""
        if self._pool is None:
            opts = self._opts
            try:
                if opts.interpreter:
                    interpreter, environment = opts.interpreter, f"python.interpreter ({opts.interpreter})"
                else:
                    interpreter, environment = resolve_interpreter(opts.environment, self._image_tag, opts.images_dir)
            except ImageNotInstalled as exc:
                return Outcome.fail("python_grader_server_error", "sandbox_unavailable", details={"error": str(exc)})
            spec = SandboxSpec(interpreter, opts.isolation, opts.memory_bytes, opts.disk_bytes, opts.cpu_cores, uid_range=opts.uid_range)
            cap = opts.max_warm_workers or 4 * (os.cpu_count() or 1)
            self._pool = get_pool(spec, self._key, self._source, self._size, cap)
            self._environment = {"interpreter": interpreter, "environment": environment}
        return self._pool

    def _pool_details(self, pool: Pool) -> dict[str, Any]:
        """Where this grader's code ran: the level achieved (and why it is not the full one), the interpreter."""
        if self._details is None or self._details.get("sandbox") != pool.level:
            details = {"sandbox": pool.level, **self._environment}
            if pool.warning:
                details["sandbox_warning"] = pool.warning
            self._details = freeze(details)  # shared by every response of this grader, so read-only
        return self._details

    async def aevaluate(self, ns: Namespaces) -> Outcome:
        """One sample. While fewer than `workers` calls are in flight on this loop it goes straight to a worker;
        past that, concurrent calls queue and are sent together, a chunk per frame (dynamic batching)."""
        loop = asyncio.get_running_loop()
        batcher = self._batchers.get(loop)
        if batcher is None:
            batcher = self._batchers[loop] = _Batcher(self, self._size, self._opts.chunk_size)
        if batcher.busy < batcher.slots and not batcher.queue:
            batcher.busy += 1
            try:
                return (await self.aevaluate_many((ns,)))[0]
            finally:
                batcher.busy -= 1
                batcher.drain(loop)
        future: asyncio.Future[Outcome] = loop.create_future()
        batcher.queue.append((ns, future))
        batcher.drain(loop)
        return await future

    async def aevaluate_many(self, batch: Sequence[Namespaces]) -> list[Outcome]:
        pool = self._get_pool()
        if isinstance(pool, Outcome):
            return [pool] * len(batch)
        rows, unsendable = _encode_rows(batch, self._opts.max_input_bytes)
        opts = self._opts
        try:
            replies = await pool.run(rows, opts.timeout_s, opts.chunk_size, opts.fresh_process)
        except SandboxUnavailable as exc:
            failure = Outcome.fail("python_grader_server_error", "sandbox_unavailable", details={"error": str(exc), **self._environment})
            return [failure] * len(batch)
        except (OSError, LaunchFailed) as exc:
            failure = Outcome.fail("python_grader_server_error", "sandbox_error", details={"error": f"could not start a worker: {_cap(str(exc))}", **self._environment})
            return [failure] * len(batch)
        self._pool_details(pool)
        for index, problem in unsendable:
            replies.insert(index, problem)
        outcome = self._outcome
        plain: dict[Any, Outcome] = {}  # one shared Outcome per plain reward value (outcomes are immutable)
        out = []
        for reply in replies:
            if reply.__class__ is float or reply.__class__ is int:
                shared = plain.get(reply)
                if shared is None:
                    shared = plain[reply] = outcome(reply)
                out.append(shared)
            else:
                out.append(outcome(reply))
        return out

    # -- replies to outcomes -----------------------------------------------------------------------------------

    def _outcome(self, reply: Any) -> Outcome:
        details = self._details or {}
        cls = reply.__class__
        if cls is float or cls is int:  # the worker's plain reply: grade() returned a finite float or int
            return Outcome(float(reply), details=details)
        details = dict(details)
        if cls is Failure:
            if reply.kind == "timeout":
                return self._limit(reply.detail, "timeout", details)
            if reply.kind == "disk":
                return self._limit(f"OSError: grade() exceeded the disk limit of {self._opts.disk_bytes / 1024**2:g} MB", "disk_limit", details)
            kind = _SERVER_TYPES.get(reply.kind, "protocol_error")
            return Outcome.fail("python_grader_server_error", kind, details={**details, "error": _cap(reply.detail)})
        if cls is Outcome:
            return reply
        problem = _reply_problem(reply)
        if problem is not None:
            return Outcome.fail("python_grader_server_error", problem[0], details={**details, "error": problem[1]})
        if reply.get("output") and self._opts.capture_output == "trace":
            details["output"] = _cap(reply["output"], OUTPUT_CAP)
        if "error" in reply:
            if reply.get("timeout"):
                return self._limit(_cap(reply["error"]), "timeout", details)
            if reply.get("memory"):
                limit_mb = self._opts.memory_bytes / 1024**2
                return self._limit(f"MemoryError: grade() exceeded the memory limit of {limit_mb:g} MB", "memory_limit", details)
            return Outcome.fail("python_grader_runtime_error", _cap(reply["error"]) or "grade() failed", details=details)
        reward, problem_text = self._reward(reply.get("value"), _cap(str(reply.get("kind")), 200))
        if problem_text is not None:
            return Outcome.fail("python_grader_runtime_error", problem_text, details=details)
        return Outcome(reward, details=details)  # type: ignore[arg-type]

    def _limit(self, text: str, server_type: str, details: dict[str, Any]) -> Outcome:
        """U27: which flag a time or memory limit violation sets."""
        flag = self._opts.limit_violation_flag
        if flag == "server_error":
            return Outcome.fail("python_grader_server_error", server_type, details={**details, "error": text})
        if flag == "unresponsive_reward_error":
            return Outcome.fail("unresponsive_reward_error", text, details=details)
        return Outcome.fail("python_grader_runtime_error", text, details=details)

    def _reward(self, value: Any, kind: str) -> tuple[float | None, str | None]:
        """§8.2 with U26: the reward, or why the returned value is not one."""
        policy = self._opts.return_policy
        shown = f"{kind.removeprefix('builtins.')} {value!r}"[:200]
        if isinstance(value, str) and kind != "builtins.str" and value in ("nan", "inf", "-inf"):
            return None, f"grade() returned a non-finite number ({shown}); expected a finite float"
        if policy == "coerce":
            try:
                number = float(value)
            except (TypeError, ValueError):
                return None, f"grade() returned {shown}, which float() cannot convert"
            return (number, None) if math.isfinite(number) else (None, f"grade() returned a non-finite number ({shown})")
        allowed = kind in _NUMERIC_KINDS or (
            policy == "lenient" and (kind == "builtins.bool" or (kind.startswith("numpy.") and isinstance(value, (int, float))))
        )
        if not allowed or not isinstance(value, (int, float)):
            return None, f"grade() returned {shown}; expected a number (float or int)"
        return float(value), None
