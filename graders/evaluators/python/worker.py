"""The child side of a python-grader worker (§8): runs user `grade(sample, item)`, never decides a reward.

Started by `sandbox/` as `python -E -s -c <this file>` inside the sandbox, already unprivileged and filtered. It
needs only the standard library (orjson when installed), since it also runs in an image environment (§8.5). It
first closes every descriptor it did not need (nothing of its launcher reaches grader code), then reports its
state (`/proc/self/status`: uid, capabilities, no_new_privs, seccomp) in a hello frame that the engine checks
before it sends any grader code. Frames are a 4-byte big-endian length + JSON, read from and written to private
duplicates of the original stdin/stdout; fds 0–2 then point at /dev/null and `sys.stdout`/`sys.stderr` at a
capped buffer, so a grader that prints (even a fake frame) only fills its own captured output.

A worker serves exactly one grader source, sent with its first request. Request:
{"seq": n, "key": sha256, "source"?: str, "timeout": s, "fresh": bool, "rows": [[sample, item, text?], ...]},
where `text`, when present, is the `model_sample` text, sent once and put back in the sample's two places.
Replies come batched, in row order (a frame at least every 20 ms, the last with "done"):
{"seq": n, "replies": [r, ...]}, where r is a bare JSON number when `grade` returned a finite int or float and
printed nothing (the common case, kept small), else {"value": <scalar>, "kind": "<type name>", "output"?: str} or
{"error": "<traceback>", "timeout"?: true, "memory"?: true, "output"?: str}. The last frame says "tainted" when
the grade left processes or threads behind or hit a limit: the parent then replaces this worker. The engine
trusts none of it: it checks every frame's size, sequence and shape, and its own wall clock ends a worker that
stops answering, whatever this code does.

`fresh` runs each grade in a child forked from this warm process (grader module already loaded), so no state
carries from one sample to the next.
"""

from __future__ import annotations

import io
import json
import math
import os
import select
import signal
import struct
import sys
import time
import traceback
import types
from typing import Any

OUTPUT_CAP = 16_384
FLUSH_S = 0.02
SPIN_S = 0.0003
TRACEBACK_CAP = 4_096
_HEADER = struct.Struct(">I")
try:  # about 4x faster both ways; an image environment without it falls back to the standard library
    import orjson

    _loads, _dumps = orjson.loads, orjson.dumps
except ImportError:
    _loads, _dumps = json.loads, lambda message: json.dumps(message).encode()
_PR_SET_CHILD_SUBREAPER = 36
_PLAIN_INT = 2**53


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
        if not self.parts and not self.dropped:
            return ""
        out = "".join(self.parts) + (f"\n[… {self.dropped} more characters dropped]" if self.dropped else "")
        self.parts, self.size, self.dropped = [], 0, 0
        return out


class _Inbox:
    """Request frames from the parent. Before blocking on an empty pipe it polls for `SPIN_S`: on a VM, waking
    an idle core costs more than the whole grade, and a caller scoring one sample at a time sends again soon."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()

    def read(self) -> Any:
        buffer = self.buffer
        polled = False
        while True:
            if len(buffer) >= 4:
                end = 4 + _HEADER.unpack_from(buffer)[0]
                if len(buffer) >= end:
                    message = _loads(bytes(buffer[4:end]))
                    del buffer[:end]
                    return message
            if not polled:
                polled = True
                deadline = time.perf_counter() + SPIN_S
                while not select.select([self.fd], [], [], 0)[0] and time.perf_counter() < deadline:
                    pass
            data = os.read(self.fd, 1 << 20)
            if not data:
                return None
            buffer += data


def _write_frame(fd: int, message: Any) -> None:
    body = _dumps(message)
    view = memoryview(_HEADER.pack(len(body)) + body)
    while view:
        view = view[os.write(fd, view) :]


def _describe(value: Any) -> dict[str, Any]:
    """A return value that is not a plain finite number, as JSON plus its type name; the parent applies §8.2."""
    kind = type(value).__module__ + "." + type(value).__qualname__
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return {"value": value, "kind": kind}
    if isinstance(value, int):
        return {"value": float(value) if abs(value) < 1e308 else repr(value)[:200], "kind": kind}
    if isinstance(value, float):
        return {"value": value if math.isfinite(value) else repr(value), "kind": kind}
    try:  # numpy scalars and other numbers
        import numbers

        if isinstance(value, numbers.Real):
            as_float = float(value)
            return {"value": as_float if math.isfinite(as_float) else repr(as_float), "kind": kind}
    except Exception:  # noqa: BLE001 - a hostile __float__ is the grader's problem
        pass
    return {"value": repr(value)[:200], "kind": kind}


def _user_traceback(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<grader>"]
    text = "".join(traceback.format_list(frames)) + "".join(traceback.format_exception_only(type(exc), exc))
    return text if len(text) <= TRACEBACK_CAP else text[: TRACEBACK_CAP // 2] + "\n…\n" + text[-TRACEBACK_CAP // 2 :]


class _GradeTimeout(BaseException):
    """Raised by the interval timer inside a grade that runs past its time (caught here, never by user code)."""


class _Clock:
    """The running grade's start and limit. One interval timer covers a whole chunk: when it fires, the
    handler raises only if the current grade is past its limit, else re-arms for the rest of that grade's
    time, so the common case costs no system call per row."""

    timeout = 0.0
    started = 0.0
    active = False


def _alarm(signum: int, frame: Any) -> None:
    if _Clock.timeout:
        remaining = _Clock.timeout - (time.monotonic() - _Clock.started) if _Clock.active else _Clock.timeout
        if remaining > 0.0005:
            signal.setitimer(signal.ITIMER_REAL, remaining)
            return
        if _Clock.active:
            raise _GradeTimeout


def _timed_out(timeout: float) -> dict[str, Any]:
    return {"error": f"TimeoutError: grade() exceeded {timeout:g} s", "timeout": True}


def _arm(timeout: float) -> None:
    _Clock.timeout = timeout
    signal.setitimer(signal.ITIMER_REAL, timeout)


def _call(grade: Any, sample: Any, item: Any, timeout: float, captured: _CappedText) -> Any:
    """One grade under the chunk's timer (the worker stays warm); the parent still kills a worker that ignores it."""
    try:
        _Clock.started = time.monotonic()
        _Clock.active = True
        value = grade(sample, item)
        _Clock.active = False
        cls = value.__class__
        if (cls is float and value - value == 0.0) or (cls is int and -_PLAIN_INT < value < _PLAIN_INT):
            reply: Any = value
        else:
            reply = _describe(value)
    except _GradeTimeout:
        reply = _timed_out(timeout)
    except MemoryError:
        reply = {"error": "MemoryError", "memory": True}
    except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt included (§8.3)
        reply = {"error": _user_traceback(exc)}
    finally:
        _Clock.active = False
    output = captured.take()
    if output:
        reply = reply if reply.__class__ is dict else {"value": reply, "kind": f"builtins.{type(reply).__name__}"}
        reply["output"] = output
    return reply


def _call_forked(grade: Any, sample: Any, item: Any, timeout: float, captured: _CappedText) -> Any:
    """`_call` in a child forked from this process: whatever the grade changes dies with the child."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: grade, send one reply, vanish without running any cleanup of the parent's
        try:
            os.close(read_end)
            if timeout:
                _arm(timeout)  # interval timers are not inherited across fork
            _write_frame(write_end, _call(grade, sample, item, timeout, captured))
        finally:
            os._exit(0)
    os.close(write_end)
    data = b""
    deadline = time.monotonic() + (timeout or 1e9) + 0.25  # before the parent's own net (its grace is longer)
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([read_end], [], [], remaining)[0]:
                os.kill(pid, signal.SIGKILL)
                return _timed_out(timeout)
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
    if len(data) >= 4 and len(data) == 4 + _HEADER.unpack(data[:4])[0]:
        return _loads(data[4:])
    code = os.waitstatus_to_exitcode(status)
    reason = f"was killed by signal {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
    return {"error": f"the grade process {reason} before returning a value"}


def _become_subreaper() -> None:
    """Orphaned descendants of a grade re-parent to this worker, so `_leftovers` sees them at every level."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _leftovers() -> bool:
    """Whether a grade left processes (reaping any that ended) or threads behind."""
    try:
        while True:
            pid, _ = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return True
    except ChildProcessError:
        pass
    try:
        return os.stat("/proc/self/task").st_nlink - 2 > 1
    except OSError:
        return False


def _load(source: str) -> tuple[Any, str | None]:
    """The grader's `grade`, compiled once (this worker serves no other source), or why it cannot be had."""
    module = types.ModuleType("grader")
    sys.modules[module.__name__] = module  # dataclasses, pickle and typing look classes' modules up here
    try:
        exec(compile(source, "<grader>", "exec"), module.__dict__)  # noqa: S102 - the sandboxed user code
    except BaseException as exc:  # noqa: BLE001 - import-time failures are the grader's runtime error
        return None, "error while loading the grader:\n" + _user_traceback(exc)
    grade = module.__dict__.get("grade")
    if not callable(grade):
        return None, "the source does not define a callable grade(sample, item)"
    return grade, None


def _put_text(sample: dict[str, Any], text: str) -> None:
    """A `model_sample`'s text, sent once, back in its two places of the sample (§5.4)."""
    sample["output_text"] = text
    sample["choices"][0]["message"]["content"] = text


_STATE = ("Uid", "Gid", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")


def _state() -> dict[str, str]:
    """This process's privileges as the kernel reports them, for the engine to check."""
    try:
        with open("/proc/self/status") as status:
            fields = dict(line.rstrip("\n").split(":\t", 1) for line in status if ":\t" in line)
    except OSError:
        return {}
    return {key: fields[key] for key in _STATE if key in fields}


def main() -> None:
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    inbox = _Inbox(os.dup(0))
    outbox = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    _write_frame(outbox, {"hello": _state()})
    captured = _CappedText()
    sys.stdout = sys.stderr = captured  # type: ignore[assignment]
    sys.stdin = io.StringIO("")
    try:  # warm the heavy packages once per worker (pre-import)
        import numpy  # noqa: F401
        import rapidfuzz  # noqa: F401
    except ImportError:
        pass
    _become_subreaper()
    signal.signal(signal.SIGALRM, _alarm)
    loaded: tuple[str, Any, str | None] | None = None
    while True:
        request = inbox.read()
        if request is None:
            return
        seq = request["seq"]
        if loaded is None:
            loaded = (request["key"], *_load(request.get("source") or ""))
            captured.take()  # module-level prints are not any row's output
        key, grade, load_error = loaded
        if request["key"] != key:
            load_error = "this worker serves another grader source"
        timeout = float(request.get("timeout") or 0)
        call = _call_forked if request.get("fresh") else _call
        pending: list[Any] = []
        tainted = False
        flushed_at = time.monotonic()
        if timeout and not request.get("fresh"):
            _arm(timeout)
        for row in request["rows"]:
            sample, item = row[0], row[1]
            if len(row) > 2:
                _put_text(sample, row[2])
            reply = {"error": load_error} if load_error is not None else call(grade, sample, item, timeout, captured)
            if reply.__class__ is dict and ("timeout" in reply or "memory" in reply):
                tainted = True
            pending.append(reply)
            if time.monotonic() - flushed_at >= FLUSH_S:  # so a later hang cannot hold finished rows back long
                _write_frame(outbox, {"seq": seq, "replies": pending})
                pending, flushed_at = [], time.monotonic()
        _arm(0)
        # A grade that left processes (a fork bomb past its timer, a daemon) or threads behind, or ran out of
        # time, taints the worker: the parent replaces it, which ends everything it started.
        tainted = tainted or _leftovers()
        _write_frame(outbox, {"seq": seq, "replies": pending, "done": True, "tainted": tainted})


if __name__ == "__main__":
    main()
