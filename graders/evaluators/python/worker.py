"""The child side of a python-grader worker (spec §8): runs user `grade(sample, item)`, never decides a reward.

Started as `python -m graders.evaluators.python.worker` inside the sandbox. Frames are 4-byte big-endian length +
JSON, read from and written to private duplicates of the original stdin/stdout; fds 0–2 then point at /dev/null
and `sys.stdout`/`sys.stderr` at capped buffers, so a grader that prints (even a fake frame) only fills its own
captured output. Every reply carries the request's sequence number; the parent drops anything else.

Request: {"seq": n, "source": str, "key": sha256, "rows": [[sample, item], ...]}
Reply (one per row): {"seq": n, "row": i, "ok": true, "value": <json>, "kind": "<type name>", "output": str}
                  or {"seq": n, "row": i, "ok": false, "error": "<traceback text>", "memory": bool, "output": str}
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import sys
import traceback
import types
from typing import Any, BinaryIO

OUTPUT_CAP = 16_384
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
        for i, (sample, item) in enumerate(request["rows"]):
            if load_error is not None:
                _write_frame(outbox, {"seq": seq, "row": i, "ok": False, "error": load_error, "memory": False, "output": captured.take()})
                continue
            try:
                value, kind = _jsonable(grade(sample, item))  # type: ignore[misc]
                reply = {"seq": seq, "row": i, "ok": True, "value": value, "kind": kind}
            except MemoryError:
                reply = {"seq": seq, "row": i, "ok": False, "error": "MemoryError", "memory": True}
            except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt included (§8.3)
                reply = {"seq": seq, "row": i, "ok": False, "error": _user_traceback(exc), "memory": False}
            reply["output"] = captured.take()
            _write_frame(outbox, reply)


if __name__ == "__main__":
    main()
