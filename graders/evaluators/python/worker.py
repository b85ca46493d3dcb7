"""The child side of a python-grader worker (spec §8): runs user `grade(sample, item)`, never decides a reward.

Started as `python -m graders.evaluators.python.worker` inside the sandbox. Frames are 4-byte big-endian length +
JSON, read from and written to private duplicates of the original stdin/stdout; fds 0–2 then point at /dev/null
and `sys.stdout`/`sys.stderr` at capped buffers, so a grader that prints (even a fake frame) only fills its own
captured output. Every reply carries the request's sequence number; the parent drops anything else.

Request: {"seq": n, "source": str, "key": sha256, "timeout": s, "rows": [[sample, item], ...]}
Replies, batched (a frame at least every 20 ms, the last with "done"): {"seq": n, "replies": [r, ...]} where
r = {"row": i, "ok": true, "value": <json>, "kind": "<type name>", "output": str}
 or {"row": i, "ok": false, "error": "<traceback text>", "timeout"?: true, "memory"?: true, "output": str}
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import struct
import sys
import time
import traceback
import types
from typing import Any, BinaryIO

OUTPUT_CAP = 16_384
FLUSH_S = 0.02
TRACEBACK_CAP = 4_096
_HEADER = struct.Struct(">I")


class _CappedText(io.TextIOBase):
    """A text sink keeping the first `OUTPUT_CAP` characters; a flood costs nothing past that."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.dropped = 0

    def write(self, text: str) -> int:
        room = OUTPUT_CAP - self.size
        if room > 0:
            self.parts.append(text[:room])
            self.size += min(len(text), room)
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def take(self) -> str:
        out = "".join(self.parts) + (f"\n[… {self.dropped} more characters dropped]" if self.dropped else "")
        self.parts, self.size, self.dropped = [], 0, 0
        return out


def _read_frame(stream: BinaryIO) -> Any:
    header = stream.read(4)
    if len(header) < 4:
        return None
    (size,) = _HEADER.unpack(header)
    return json.loads(stream.read(size))


def _write_frame(stream: BinaryIO, message: Any) -> None:
    body = json.dumps(message, allow_nan=True).encode()
    stream.write(_HEADER.pack(len(body)) + body)
    stream.flush()


def _jsonable(value: Any) -> tuple[Any, str]:
    """The return value as JSON plus its type name; the parent applies the §8.2 policy to both."""
    kind = type(value).__module__ + "." + type(value).__qualname__
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value, kind
    if isinstance(value, int):
        return (value if abs(value) < 2**53 else float(value)), kind
    if isinstance(value, float):
        return (value if math.isfinite(value) else repr(value)), kind
    try:  # numpy scalars and other numbers
        import numbers

        if isinstance(value, numbers.Real):
            as_float = float(value)
            return (as_float if math.isfinite(as_float) else repr(as_float)), kind
    except Exception:  # noqa: BLE001 - a hostile __float__ is the grader's problem
        pass
    return repr(value)[:200], kind


def _user_traceback(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<grader>"]
    text = "".join(traceback.format_list(frames)) + "".join(traceback.format_exception_only(type(exc), exc))
    return text if len(text) <= TRACEBACK_CAP else text[: TRACEBACK_CAP // 2] + "\n…\n" + text[-TRACEBACK_CAP // 2 :]


def main() -> None:
    inbox = os.fdopen(os.dup(0), "rb")
    outbox = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    captured = _CappedText()
    sys.stdout = sys.stderr = captured  # type: ignore[assignment]
    sys.stdin = io.StringIO("")
    try:  # warm the heavy packages once per worker (issue 4: pre-import)
        import numpy  # noqa: F401
        import rapidfuzz  # noqa: F401
    except ImportError:
        pass
    signal.signal(signal.SIGALRM, _alarm)
    baseline = _process_count()
    modules: dict[str, Any] = {}
    while True:
        request = _read_frame(inbox)
        if request is None:
            return
        seq = request["seq"]
        grade = modules.get(request["key"])
        load_error = None
        if grade is None:
            module = types.ModuleType(f"grader_{request['key'][:16]}")
            sys.modules[module.__name__] = module  # dataclasses, pickle and typing look classes' modules up here
            try:
                exec(compile(request["source"], "<grader>", "exec"), module.__dict__)  # noqa: S102 - the sandboxed user code
                grade = module.__dict__.get("grade")
                if not callable(grade):
                    load_error = "the source does not define a callable grade(sample, item)"
                else:
                    modules[request["key"]] = grade
            except BaseException as exc:  # noqa: BLE001 - import-time failures are the grader's runtime error
                load_error = "error while loading the grader:\n" + _user_traceback(exc)
        timeout = float(request.get("timeout") or 0)
        pending: list[dict[str, Any]] = []
        flushed_at = time.monotonic()
        for i, (sample, item) in enumerate(request["rows"]):
            if load_error is not None:
                reply: dict[str, Any] = {"row": i, "ok": False, "error": load_error}
            else:
                reply = _call(grade, sample, item, timeout)  # type: ignore[arg-type]
                reply["row"] = i
            reply["output"] = captured.take()
            pending.append(reply)
            if time.monotonic() - flushed_at >= FLUSH_S:  # so a later hang cannot hold finished rows back long
                _write_frame(outbox, {"seq": seq, "replies": pending})
                pending, flushed_at = [], time.monotonic()
        # A grade that left processes behind (a fork bomb past its timer, a daemon) or ran out of time taints
        # the worker: the parent replaces it, which ends its PID namespace and everything in it.
        tainted = any(r.get("timeout") or r.get("memory") for r in pending) or _process_count() > baseline
        _write_frame(outbox, {"seq": seq, "replies": pending, "done": True, "tainted": tainted})


def _process_count() -> int:
    """Processes visible in /proc (inside the sandbox's PID namespace: the worker and its own children)."""
    try:
        return sum(1 for name in os.listdir("/proc") if name.isdigit())
    except OSError:
        return 0


class _GradeTimeout(BaseException):
    """Raised by the interval timer inside a grade that runs past its time (caught here, never by user code)."""


def _alarm(signum: int, frame: Any) -> None:
    raise _GradeTimeout


def _call(grade: Any, sample: Any, item: Any, timeout: float) -> dict[str, Any]:
    """One grade with its own timer (the worker stays warm); the parent still kills a worker that ignores it."""
    if timeout:
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        value, kind = _jsonable(grade(sample, item))
        return {"ok": True, "value": value, "kind": kind}
    except _GradeTimeout:
        return {"ok": False, "timeout": True, "error": f"TimeoutError: grade() exceeded {timeout:g} s"}
    except MemoryError:
        return {"ok": False, "memory": True, "error": "MemoryError"}
    except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt included (§8.3)
        return {"ok": False, "error": _user_traceback(exc)}
    finally:
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, 0)

if __name__ == "__main__":
    main()
