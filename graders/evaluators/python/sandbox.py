"""How a python-grader worker is launched, and what isolation it actually gets (spec §8.4).

Levels, best first (`python.isolation = "auto"` takes the best that works here; `"strict"` refuses anything below
`namespaces`; `"none"` is rlimits only):

- `bubblewrap`: `bwrap` with every namespace unshared (no network, own PIDs), a read-only view of the host
  filesystem, a private writable `/tmp`, and an empty environment;
- `namespaces`: util-linux `unshare` with new network and PID namespaces, empty environment, host fs writable;
- `rlimits`: a plain child process with an empty environment.

All levels set rlimits in the child (address space = `python.memory_bytes`, file size = `python.disk_bytes`, open
files, processes) and the parent enforces the wall clock. The worker runs with `-E -s`, so no `PYTHON*` variable
or user site directory of the parent reaches it.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

# The worker's code goes in as `-c` text, not a path: bubblewrap's private /tmp would hide a checkout under /tmp.
WORKER_SOURCE = Path(__file__).with_name("worker.py").read_text()
LEVELS = ("bubblewrap", "namespaces", "rlimits")
_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "OPENBLAS_NUM_THREADS": "1",  # one BLAS thread per worker: the pool already uses every core
    "OMP_NUM_THREADS": "1",
}


class SandboxUnavailable(RuntimeError):
    """`python.isolation = "strict"` and no namespace isolation works on this machine."""


@dataclass(frozen=True)
class SandboxSpec:
    """Everything that decides how workers start; pools are shared per spec."""

    interpreter: str
    isolation: str
    memory_bytes: int
    disk_bytes: int
    cpu_cores: int = 2
    max_processes: int = 256
    max_open_files: int = 256


def _bwrap_prefix() -> list[str]:
    return [
        "bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
        "--unshare-all", "--die-with-parent", "--new-session", "--clearenv", "--chdir", "/tmp",
        *[arg for key, value in _ENV.items() for arg in ("--setenv", key, value)], "--",
    ]  # fmt: skip


def _unshare_prefix() -> list[str]:
    flags = ["--net", "--pid", "--fork", "--kill-child"]
    if os.geteuid() != 0:
        flags.insert(0, "--map-root-user")
    return ["unshare", *flags, "--"]


_probe_lock = threading.Lock()
_probed: dict[str, bool] = {}


def _works(level: str) -> bool:
    """Whether `level` can start a process here (probed once per process: containers often forbid namespaces)."""
    with _probe_lock:
        if level not in _probed:
            prefix = {"bubblewrap": _bwrap_prefix, "namespaces": _unshare_prefix}[level]()
            ok = shutil.which(prefix[0]) is not None
            if ok:
                try:
                    done = subprocess.run([*prefix, sys.executable, "-E", "-s", "-c", "pass"], capture_output=True, timeout=20, env=_ENV)
                    ok = done.returncode == 0
                except (OSError, subprocess.TimeoutExpired):
                    ok = False
            _probed[level] = ok
        return _probed[level]


def choose_level(isolation: str) -> str:
    """The level this spec gets; raises `SandboxUnavailable` when strict isolation cannot be had."""
    if isolation == "none":
        return "rlimits"
    for level in ("bubblewrap", "namespaces"):
        if _works(level):
            return level
    if isolation == "strict":
        raise SandboxUnavailable(
            "python.isolation is 'strict' but neither bubblewrap (bwrap) nor unshare namespaces work here; "
            "install bubblewrap (apt-get install bubblewrap) or allow user namespaces"
        )
    return "rlimits"


def command(spec: SandboxSpec, level: str) -> list[str]:
    prefix = {"bubblewrap": _bwrap_prefix, "namespaces": _unshare_prefix, "rlimits": list}[level]()
    environment = Path(spec.interpreter).parent.parent
    if level == "bubblewrap" and environment.is_relative_to("/tmp"):  # an image env under /tmp: keep it visible
        prefix[-1:-1] = ["--ro-bind", str(environment), str(environment)]
    return [*prefix, spec.interpreter, "-E", "-s", "-c", WORKER_SOURCE]


def limits(spec: SandboxSpec) -> None:
    """rlimits for the worker, set in the child before exec (inherited by everything it starts)."""
    for limit, value in (
        (resource.RLIMIT_AS, spec.memory_bytes),
        (resource.RLIMIT_FSIZE, spec.disk_bytes),
        (resource.RLIMIT_NOFILE, spec.max_open_files),
        (resource.RLIMIT_NPROC, spec.max_processes),
        (resource.RLIMIT_CORE, 0),
    ):
        try:
            resource.setrlimit(limit, (value, value))
        except (ValueError, OSError):
            pass  # a limit the host does not allow lowering stays as it is; the wall clock still applies
    try:  # U30: the grader may use this many cores (the first ones it is allowed)
        allowed = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, allowed[: spec.cpu_cores])
    except (AttributeError, OSError):
        pass


def start(spec: SandboxSpec, level: str) -> subprocess.Popen[bytes]:
    """Start one worker process in its own session (so the whole group can be killed)."""
    return subprocess.Popen(
        command(spec, level),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=dict(_ENV),
        cwd="/tmp",
        preexec_fn=lambda: limits(spec),  # noqa: PLW1509 - rlimits must be set between fork and exec
        start_new_session=True,
    )
