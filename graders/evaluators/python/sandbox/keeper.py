"""The `landlock` level's launcher: where namespaces cannot be had, this process starts one worker and outlives it.

The engine runs it as `python -I -S -c <this file> <config>` with the engine's own uid; it needs only the standard
library. It forks the worker and, in the child, before any grader code exists: sets the rlimits, empties the
capability bounding set and drops to the sandbox uid (when the engine is root), checks that uid can reach the
interpreter, restricts the filesystem with Landlock (the interpreter's and the system's paths read-only, a private
temp dir read-write; TCP bind/connect, abstract Unix sockets and signals outside the sandbox refused where the
kernel's Landlock ABI has them), sets `no_new_privs`, loads the seccomp filter and executes the worker.

The keeper itself stays outside the sandbox as the worker's child subreaper: it watches the temp dir's size
(`python.disk_bytes`), and when the worker ends, the engine asks (SIGTERM or its control pipe closing, which also
happens when the engine dies) or the disk limit is crossed, it kills every descendant, including ones that
called `setsid()` and ignore SIGTERM, and, when it runs as root, every process of the sandbox uid; then it removes
the temp dir and exits the way the worker did (status `DISK_EXIT` for the disk limit).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import select
import shutil
import signal
import sys
import time

DISK_EXIT = 3
"""The keeper's exit status when the worker wrote more than `python.disk_bytes` into its temp dir."""
SETUP_EXIT = 126
WATCH_S = 0.05
MAX_ENTRIES = 100_000

_PR_SET_PDEATHSIG = 1
_PR_SET_SECCOMP = 22
_PR_CAPBSET_DROP = 24
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38
_SECCOMP_MODE_FILTER = 2
_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446  # the same number on every architecture
_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1

# Landlock access rights (include/uapi/linux/landlock.h), by the ABI version that introduced them.
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_V1_ALL = (1 << 13) - 1
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, or 0 when Landlock is missing or disabled at boot."""
    version = _libc.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_RULESET_VERSION))
    return max(int(version), 0)


def _check(result: int, what: str) -> int:
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")
    return result


def _fs_rights(abi: int) -> tuple[int, int]:
    """(every filesystem right this ABI knows, the subset that applies to files)."""
    every = FS_V1_ALL | (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0) | (FS_IOCTL_DEV if abi >= 5 else 0)
    return every, every & (FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV)


def landlock_restrict(abi: int, read_only: list[str], devices: list[str], writable: list[str]) -> None:
    """Restrict this process and its future children to these paths (Landlock, no privilege needed)."""
    every, file_rights = _fs_rights(abi)
    attr = _RulesetAttr(every, NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0, SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = _check(_libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)), "landlock_create_ruleset")
    try:
        reading = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
        device = FS_READ_FILE | FS_WRITE_FILE | (FS_TRUNCATE | FS_IOCTL_DEV) & every
        grants = [(p, reading) for p in read_only] + [(p, device) for p in devices] + [(p, every) for p in writable]
        for path, access in grants:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                if not os.path.isdir(f"/proc/self/fd/{fd}"):
                    access &= file_rights
                rule = _PathBeneath(access, fd)
                _check(_libc.syscall(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), ctypes.c_uint32(0)), f"landlock_add_rule({path})")
            finally:
                os.close(fd)
        _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
        _check(_libc.syscall(_SYS_RESTRICT_SELF, ruleset, ctypes.c_uint32(0)), "landlock_restrict_self")
    finally:
        os.close(ruleset)


def seccomp_load(bpf: bytes) -> None:
    """Load a BPF program made by libseccomp (an array of 8-byte `struct sock_filter`) for this process."""
    buffer = ctypes.create_string_buffer(bpf, len(bpf))
    prog = _SockFprog(len(bpf) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    _check(_libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0), "prctl(PR_SET_SECCOMP)")


def unreachable(path: str) -> str | None:
    """Why this process cannot run `path`: the first directory on its way, or on its real (symlink-resolved)
    way, that it may not search, if any."""
    for way in dict.fromkeys((os.path.abspath(path), os.path.realpath(path))):
        current = "/"
        for part in way.strip("/").split("/")[:-1]:
            current = os.path.join(current, part)
            if not os.access(current, os.X_OK):
                mode = oct(os.stat(current).st_mode & 0o7777)
                return f"{current} (mode {mode}) cannot be searched by uid {os.getuid()}"
    if not os.access(path, os.X_OK):
        return f"{path} cannot be executed by uid {os.getuid()}"
    return None


def _processes_of(uid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    found.append(int(name))
            except OSError:
                continue
    return found


def _children(me: int) -> list[int]:
    kids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as stat:
                    fields = stat.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me:
                kids.append(int(name))
    return kids


def _kill_uid(uid: int) -> None:
    """SIGKILL every process of `uid` (kill(-1) from a child that has become `uid`; the keeper is single-threaded)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        os._exit(0)
    os.waitpid(pid, 0)


def _reap() -> dict[int, int]:
    statuses = {}
    try:
        while True:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            statuses[pid] = status
    except ChildProcessError:
        pass
    return statuses


def _kill_all(uid: int | None) -> dict[int, int]:
    """Kill every descendant (orphans come to this subreaper) and, as root, every process of the sandbox uid;
    the exit statuses reaped on the way."""
    me = os.getpid()
    statuses: dict[int, int] = {}
    for _ in range(200):
        if uid is not None:
            _kill_uid(uid)
        kids = _children(me)
        for kid in kids:
            try:
                os.kill(kid, signal.SIGKILL)
            except OSError:
                pass
        statuses.update(_reap())
        if not kids and (uid is None or not _processes_of(uid)):
            break
        time.sleep(0.002)
    return statuses


def _usage(root: str) -> int:
    """Bytes allocated under `root`, walked by directory descriptors without following a symlink (the grader is
    still running and may swap a directory for a link); past `MAX_ENTRIES` entries, or with a directory that
    cannot be opened even after restoring its owner's permissions, it counts as full."""
    full = 1 << 62
    total, entries = 0, 0
    stack = [os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)]
    try:
        while stack:
            directory = stack.pop()
            try:
                with os.scandir(directory) as listing:
                    names = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in listing]
                for name, is_dir in names:
                    entries += 1
                    if entries > MAX_ENTRIES:
                        return full
                    try:
                        total += os.stat(name, dir_fd=directory, follow_symlinks=False).st_blocks * 512
                        if is_dir:
                            stack.append(_open_dir(name, directory))
                    except FileNotFoundError:
                        continue
            except OSError:
                return full
            finally:
                os.close(directory)
    finally:
        for fd in stack:
            os.close(fd)
    return total


def _open_dir(name: str, parent: int) -> int:
    """A subdirectory's descriptor, never through a symlink; one the grader made unreadable is given its owner's
    permissions back first (through an O_PATH descriptor, so the chmod cannot be redirected)."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(name, flags, dir_fd=parent)
    except PermissionError:
        handle = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        try:
            os.chmod(f"/proc/self/fd/{handle}", 0o700)
        finally:
            os.close(handle)
        return os.open(name, flags, dir_fd=parent)


def _remove(tmp: str) -> None:
    """Delete the temp dir whatever modes the grader left on it; every process that could race is dead by now, and
    symlinks are removed, never followed."""
    for top, dirs, _ in os.walk(tmp):
        for name in dirs:
            path = os.path.join(top, name)
            if not os.path.islink(path):
                try:
                    os.chmod(path, 0o700)
                except OSError:
                    pass
    shutil.rmtree(tmp, ignore_errors=True)


def _child(config: dict, tmp: str, bpf: bytes) -> None:
    """Between fork and exec: limits, privilege drop, Landlock, seccomp, then the worker."""
    for name, value in config["rlimits"]:
        limit = getattr(resource, name)
        hard = resource.getrlimit(limit)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(limit, (value, value))
    if config["cpus"]:
        os.sched_setaffinity(0, config["cpus"])
    uid, gid = config["uid"], config["gid"]
    if os.geteuid() == 0:
        for cap in range(int(open("/proc/sys/kernel/cap_last_cap").read()) + 1):
            _check(_libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0), "prctl(PR_CAPBSET_DROP)")
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    interpreter = config["interpreter"]
    blocked = unreachable(interpreter)
    if blocked is not None:
        raise PermissionError(
            f"the interpreter {interpreter} cannot be run at the landlock level: {blocked}. Install bubblewrap and "
            "allow namespaces for the full level (which binds it), or point python.interpreter at an interpreter "
            "the sandbox uid can read, e.g. a venv under /opt made with `python3 -m venv /opt/graders-venv`"
        )
    own_proc = os.path.realpath("/proc/self")
    landlock_restrict(config["landlock_abi"], [*config["read_only"], own_proc], config["devices"], [tmp])
    seccomp_load(bpf)
    _check(_libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != config["keeper"]:
        os._exit(SETUP_EXIT)  # the keeper died before the death signal was armed
    env = {**config["env"], "TMPDIR": tmp, "HOME": tmp}
    os.chdir(tmp)
    os.execve(interpreter, [interpreter, *config["args"]], env)


def main() -> None:
    config = json.loads(sys.argv[1])
    control = config["control_fd"]
    with open(config["bpf_fd"], "rb") as source:
        bpf = source.read()
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: stopping.append(signum))
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # only to wake the select below
    _libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    root = os.geteuid() == 0
    uid = config["uid"] if root else None
    if uid is not None:
        _kill_uid(uid)  # whatever an earlier holder of this uid left behind
    tmp = os.path.join(config["tmp_root"], f"graders-worker-{os.getpid()}-{os.urandom(6).hex()}")
    os.mkdir(tmp, 0o700)
    if root:
        os.chown(tmp, config["uid"], config["gid"])
    config["keeper"] = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(control)
            os.close(wake_read)
            _child(config, tmp, bpf)
        except BaseException as exc:  # noqa: BLE001 - whatever went wrong, the engine reads it on our stderr
            os.write(2, f"graders keeper: {exc}\n".encode())
        os._exit(SETUP_EXIT)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    status, over = None, False
    while status is None and not stopping and not over:
        readable, _, _ = select.select([control, wake_read], [], [], WATCH_S)
        if control in readable and not os.read(control, 64):
            break
        if wake_read in readable:
            os.read(wake_read, 512)
        status = _reap().get(pid)
        over = status is None and _usage(tmp) > config["disk_bytes"]
    os.dup2(devnull, 2)
    reaped = _kill_all(uid)
    status = reaped.get(pid) if status is None else status
    _remove(tmp)
    if over:
        os._exit(DISK_EXIT)
    if status is None:
        os._exit(0)
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


if __name__ == "__main__":
    main()
