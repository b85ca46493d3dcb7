"""How a python-grader worker is started and what isolation it really gets (§8.4, the local promise).

Two levels, best first; `docs/sandbox.md` says what each protects and which promise lines it keeps:

- `bubblewrap` (`bubblewrap.py`): every namespace new, a filesystem view of only the interpreter and the system
  libraries, a private sized `/tmp`, an unprivileged uid without capabilities, `no_new_privs`, the seccomp filter;
- `landlock` (`keeper.py`), where namespaces cannot be had (a container whose seccomp profile forbids them, no
  bwrap): the same uid, capability, `no_new_privs` and seccomp rules, sockets refused, and Landlock restricting the
  filesystem to the same paths plus a private temp dir; a keeper process outside the sandbox cleans up after it.

No level runs grader code as root or with a capability. `python.isolation = "auto"` takes the first level that
starts a worker here (the first real worker is the probe, so the probe is exactly a worker's command line) and
warns once when it is not `bubblewrap`; `"strict"` accepts only `bubblewrap`; `"landlock"` asks for that level.
Every worker proves its state in its first frame (uid, capabilities, `no_new_privs`, seccomp), which `check_hello`
verifies before any grader code is sent. As root, each worker gets its own uid from `python.uid_range`.
Each worker also gets rlimits: address space (`python.memory_bytes`), file size (`python.disk_bytes`), open files,
processes (counted per worker uid), no core dumps, and `python.cpu_cores` CPUs.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from . import bubblewrap, keeper, seccomp, uids
from .paths import interpreter_roots, system_paths

# The worker's code goes in as `-c` text, not a path: the sandbox does not show the engine's checkout.
WORKER_SOURCE = (Path(__file__).parent.parent / "worker.py").read_text()
KEEPER_SOURCE = Path(__file__).with_name("keeper.py").read_text()
WORKER_ARGS = ["-E", "-s", "-c", WORKER_SOURCE]
LEVELS = ("bubblewrap", "landlock")
ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "USER": "grader",
    "LOGNAME": "grader",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "OPENBLAS_NUM_THREADS": "1",  # one BLAS thread per worker: the pool already uses every core
    "OMP_NUM_THREADS": "1",
}
FULL_LEVEL_HELP = (
    "for the full level: install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap); in a container, allow "
    "namespaces (e.g. docker run --security-opt seccomp=unconfined, or a seccomp profile that permits clone/unshare "
    "with namespace flags); as a non-root user, allow unprivileged user namespaces (sysctl "
    "kernel.unprivileged_userns_clone=1; Ubuntu 23.10+: kernel.apparmor_restrict_unprivileged_userns=0 or an "
    "AppArmor profile for bwrap). See docs/sandbox.md"
)


class SandboxUnavailable(RuntimeError):
    """No level that `python.isolation` accepts can start a worker here; the message says why and what to do."""


@dataclass(frozen=True)
class SandboxSpec:
    """Everything that decides how workers start (part of a pool's key)."""

    interpreter: str
    isolation: str
    memory_bytes: int
    disk_bytes: int
    cpu_cores: int = 2
    max_processes: int = 256
    max_open_files: int = 256
    uid_range: tuple[int, int] | None = None


def candidates(isolation: str) -> tuple[str, ...]:
    """The levels `python.isolation` accepts, best first."""
    return {"auto": LEVELS, "strict": ("bubblewrap",), "landlock": ("landlock",)}[isolation]


# -- what has been learnt about each level on this machine -------------------------------------------------------

_state_lock = threading.Lock()
_failures: dict[tuple[str, str], str] = {}
_worked: set[tuple[str, str]] = set()
_warned: set[str] = set()


def _unlock_after_fork() -> None:
    """A forked child gets a free lock (another thread of the parent may have held this one); what was learnt
    about the levels stays true."""
    global _state_lock
    _state_lock = threading.Lock()


os.register_at_fork(after_in_child=_unlock_after_fork)


def failure(spec: SandboxSpec, level: str) -> str | None:
    """Why `level` cannot start a worker for this interpreter here, once a start has failed (or a tool is missing)."""
    with _state_lock:
        known = _failures.get((spec.interpreter, level))
    if known is not None:
        return known
    missing = _missing(level)
    if missing is not None:
        record_failure(spec, level, missing)
    return missing


def record_failure(spec: SandboxSpec, level: str, reason: str) -> None:
    with _state_lock:
        _failures[(spec.interpreter, level)] = reason


def record_success(spec: SandboxSpec, level: str) -> None:
    with _state_lock:
        _worked.add((spec.interpreter, level))


def has_worked(spec: SandboxSpec, level: str) -> bool:
    """Whether a worker has started at this level here: a later failure is then not a reason to fall back."""
    with _state_lock:
        return (spec.interpreter, level) in _worked


def unavailable(spec: SandboxSpec) -> SandboxUnavailable:
    """The error for a spec none of whose levels works, naming each level's reason."""
    reasons = "; ".join(f"{level}: {failure(spec, level)}" for level in candidates(spec.isolation))
    if spec.isolation == "strict":
        return SandboxUnavailable(f"python.isolation is 'strict' and the full level cannot run here ({reasons}); {FULL_LEVEL_HELP}")
    return SandboxUnavailable(f"no sandbox level can run python graders here without root or capabilities ({reasons}); {FULL_LEVEL_HELP}")


def warning(spec: SandboxSpec, level: str) -> str | None:
    """For `auto` below the full level: what is missing and how to get it (also printed once to stderr)."""
    if level == "bubblewrap" or spec.isolation != "auto":
        return None
    text = (
        f"python graders run at the '{level}' level, without namespaces, because bubblewrap could not start a worker "
        f"here ({failure(spec, 'bubblewrap')}). Missing: private PID, network, mount and IPC namespaces and a "
        f"RAM-bounded /tmp (Landlock and seccomp refuse the host's files, /proc and network instead; disk use is "
        f"polled); {FULL_LEVEL_HELP}"
    )
    with _state_lock:
        first = text not in _warned
        _warned.add(text)
    if first:
        print(f"graders: warning: {text}", file=sys.stderr, flush=True)
    return text


def _missing(level: str) -> str | None:
    """A reason `level` cannot work that is known without starting anything."""
    try:
        seccomp.program(level == "landlock")
    except seccomp.SeccompUnavailable as exc:
        return str(exc)
    if level == "bubblewrap":
        if shutil.which("bwrap") is None:
            return "bwrap is not installed"
        if os.geteuid() == 0 and _setpriv() is None:
            return "setpriv (util-linux) is not installed under /usr"
        return None
    abi = keeper.landlock_abi()
    if abi == 0:
        return "the kernel has no Landlock (it needs Linux 5.13+ with landlock in CONFIG_LSM or lsm=)"
    return None


def _setpriv() -> str | None:
    found = shutil.which("setpriv", path="/usr/bin:/usr/sbin:/bin:/sbin")
    return os.path.realpath(found) if found and os.path.realpath(found).startswith("/usr/") else None


# -- starting one worker -----------------------------------------------------------------------------------------


def _cpus(spec: SandboxSpec) -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))[: spec.cpu_cores]
    except (AttributeError, OSError):
        return []


def _nproc(spec: SandboxSpec) -> int:
    """RLIMIT_NPROC counts every process of the real uid: per worker as root (its own uid), and on top of the
    processes the user already runs otherwise."""
    if os.geteuid() == 0:
        return spec.max_processes
    me = os.getuid()
    running = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                running += os.stat(f"/proc/{name}").st_uid == me
            except OSError:
                continue
    return running + spec.max_processes


def _rlimits(spec: SandboxSpec) -> list[tuple[str, int]]:
    return [
        ("RLIMIT_AS", spec.memory_bytes),
        ("RLIMIT_FSIZE", spec.disk_bytes),
        ("RLIMIT_NOFILE", spec.max_open_files),
        ("RLIMIT_NPROC", _nproc(spec)),
        ("RLIMIT_CORE", 0),
    ]


def _apply(limits: list[tuple[str, int]], cpus: list[int]) -> None:
    """rlimits and CPUs for bubblewrap and everything it starts, set between fork and exec."""
    for name, value in limits:
        limit = getattr(resource, name)
        hard = resource.getrlimit(limit)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(limit, (value, value))
    if cpus:
        os.sched_setaffinity(0, cpus)


class Launch:
    """One started worker: its process (bubblewrap or the keeper), level, uid lease and the fds to end it with."""

    def __init__(self, spec: SandboxSpec, level: str) -> None:
        self.spec = spec
        self.level = level
        self.lease = uids.lease(spec.uid_range) if os.geteuid() == 0 else None
        self.uid = self.lease.uid if self.lease else os.getuid()
        self._control = self.stderr = -1
        stderr_read, stderr_write = os.pipe()
        passed: list[int] = []
        try:
            limits, cpus = _rlimits(spec), _cpus(spec)
            bpf = seccomp.memfd(seccomp.program(level == "landlock"))
            passed.append(bpf)
            if level == "bubblewrap":
                argv = bubblewrap.command(
                    spec.interpreter, WORKER_ARGS, interpreter_roots(spec.interpreter), spec.disk_bytes, ENV, bpf,
                    self.uid if self.lease else None, _setpriv(),
                )  # fmt: skip
                preexec = lambda: _apply(limits, cpus)  # noqa: E731 - rlimits must be set between fork and exec
            else:
                control_read, self._control = os.pipe()
                passed.append(control_read)
                argv = [sys.executable, "-I", "-S", "-c", KEEPER_SOURCE, self._keeper_config(limits, cpus, bpf, control_read)]
                preexec = None
            for fd in passed:
                os.set_inheritable(fd, True)
            self.process = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr_write, env=dict(ENV), cwd="/",
                pass_fds=passed, preexec_fn=preexec, start_new_session=True,
            )  # fmt: skip
        except BaseException:
            os.close(stderr_read)
            self.release()
            raise
        finally:
            os.close(stderr_write)
            for fd in passed:
                os.close(fd)
        self.stderr = stderr_read
        os.set_blocking(stderr_read, False)

    def _keeper_config(self, limits: list[tuple[str, int]], cpus: list[int], bpf: int, control: int) -> str:
        dirs, files = system_paths()
        return json.dumps({
            "interpreter": self.spec.interpreter, "args": WORKER_ARGS, "env": ENV, "uid": self.uid,
            "gid": self.uid, "rlimits": limits, "cpus": cpus, "landlock_abi": keeper.landlock_abi(),
            "read_only": [*dirs, *files, *interpreter_roots(self.spec.interpreter)],
            "devices": list(bubblewrap.DEVICES), "tmp_root": tempfile.gettempdir(), "disk_bytes": self.spec.disk_bytes,
            "bpf_fd": bpf, "control_fd": control,
        })  # fmt: skip

    def startup_error(self) -> str:
        """What the launcher printed before the worker said hello (bubblewrap's or the keeper's reason)."""
        chunks = []
        try:
            while chunk := os.read(self.stderr, 65536):
                chunks.append(chunk)
                if sum(map(len, chunks)) > 8192:
                    break
        except (BlockingIOError, OSError):
            pass
        text = b"".join(chunks).decode(errors="replace").strip()
        return text[-2000:] or "the sandbox exited before the worker started"

    def started(self) -> None:
        """The worker is up: nothing more is read from the launcher's stderr."""
        fd, self.stderr = self.stderr, -1
        if fd >= 0:
            os.close(fd)

    def stop(self) -> None:
        """Signal the end without waiting: bubblewrap's group is killed (its PID namespace dies with it); the keeper
        is asked, so it can kill every descendant and uid process before it exits."""
        fd, self._control = self._control, -1
        if fd >= 0:
            os.close(fd)
            try:
                os.kill(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        else:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def wait(self, timeout: float) -> bool:
        """Reap the launcher; past `timeout`, SIGKILL its whole group (a keeper that does not finish) and reap."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.process.wait(2.0)
            except subprocess.TimeoutExpired:
                return False
        return True

    def forget(self) -> None:
        """In a forked child: close this process's copies of the worker's fds (the uid lease included) without
        signalling anything; the worker stays the parent's. Each fd field is set to -1 before its fd is closed,
        so a field the child finds >= 0 is a number this launch still owned at the fork, never a reused one."""
        lease = self.lease.forget() if self.lease is not None else -1
        for fd in (self.stderr, self._control, lease):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.stderr = self._control = -1

    def release(self) -> None:
        """Give the uid back and close what is left; only once the launcher has been reaped."""
        self.started()
        fd, self._control = self._control, -1
        if fd >= 0:
            os.close(fd)
        if self.lease is not None:
            self.lease.release()


def start(spec: SandboxSpec, level: str) -> Launch:
    """Start one worker at `level`; `OSError`/`UidUnavailable` when it cannot even be started."""
    return Launch(spec, level)


def check_hello(hello: object, launch: Launch) -> str | None:
    """What is wrong with the state a new worker reports (None: it is unprivileged, filtered, and as promised)."""
    if not isinstance(hello, dict):
        return "the worker did not report its state"
    try:
        uid = int(str(hello.get("Uid", "")).split()[0])
        caps = {key: int(str(hello[key]), 16) for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}
        no_new_privs, mode = int(hello["NoNewPrivs"]), int(hello["Seccomp"])
    except (KeyError, ValueError, IndexError, TypeError):
        return "the worker reported an unreadable state"
    problems = []
    if uid == 0 or uid != launch.uid:
        problems.append(f"uid {uid} (expected {launch.uid})")
    held = [key for key, value in caps.items() if value and (key != "CapBnd" or launch.lease or launch.level == "bubblewrap")]
    if held:
        problems.append("capabilities in " + ", ".join(held))
    if no_new_privs != 1:
        problems.append("no_new_privs is not set")
    if mode != 2:
        problems.append("no seccomp filter")
    return "the worker is not sandboxed as promised: " + "; ".join(problems) if problems else None
