"""One unprivileged uid per worker when the engine runs as root (`python.uid_range`).

A uid of its own makes `RLIMIT_NPROC` count that worker's processes only, keeps workers from signalling or reading
one another, and lets a worker be killed with everything that runs as its uid. A uid is leased with an exclusive
`flock` on a file in a root-only directory, so engine processes on one machine never hand out the same uid at once;
the lease ends when the engine closes the file (or dies).
"""

from __future__ import annotations

import fcntl
import itertools
import os
import stat
import tempfile
import threading

DEFAULT_RANGE = (1_900_000_000, 1_900_065_535)
"""Far above the ids that distributions, systemd and the usual /etc/subuid ranges hand out."""
ROTATION = 4096
"""Leases rotate over the first this many ids of the range (more only while that many are in use at once)."""
LOCK_DIRS = ("/run/graders-uids", os.path.join(tempfile.gettempdir(), "graders-uids-0"))


class UidUnavailable(RuntimeError):
    """No uid of the range can be leased (all in use, or the range is not mapped in this user namespace)."""


def _mapped() -> list[tuple[int, int]]:
    """(first, last) uid of each extent mapped in this process's user namespace."""
    try:
        with open("/proc/self/uid_map") as f:
            extents = [tuple(int(x) for x in line.split()) for line in f if line.strip()]
    except OSError:
        return [(0, 2**32 - 2)]
    return [(inside, inside + count - 1) for inside, _, count in extents]


def default_range() -> tuple[int, int]:
    """`DEFAULT_RANGE` where it is mapped; in a user namespace that maps fewer ids (a rootless container), the top
    4096 ids of the largest extent below the overflow ids 65534/65535."""
    extents = _mapped()
    low, high = DEFAULT_RANGE
    if any(first <= low and high <= last for first, last in extents):
        return DEFAULT_RANGE
    first, last = max(extents, key=lambda e: e[1] - e[0])
    last = min(last, 65533) if first < 65533 else last
    return (max(first + 1, last - 4095), last)


def _lock_dir() -> str:
    for directory in LOCK_DIRS:
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            info = os.lstat(directory)
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == 0 and not info.st_mode & 0o077:
            return directory
    raise UidUnavailable(f"no root-only directory for uid leases ({', '.join(LOCK_DIRS)})")


class Lease:
    """A uid held for one worker until `release()`."""

    def __init__(self, uid: int, fd: int) -> None:
        self.uid = uid
        self._fd = fd

    def forget(self) -> int:
        """In a forked child: hand this process's copy of the lock file's fd to the caller to close (the flock
        belongs to the open file, which the parent keeps, so the lease stays the parent's)."""
        fd, self._fd = self._fd, -1
        return fd

    def release(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


_next = itertools.count()
_lock = threading.Lock()


def _unlock_after_fork() -> None:
    global _lock
    _lock = threading.Lock()  # another thread of the parent may have held it at the fork


os.register_at_fork(after_in_child=_unlock_after_fork)


def lease(uid_range: tuple[int, int] | None) -> Lease:
    """A free uid of the range (rotating, so a just-released uid is not handed out again at once)."""
    low, high = uid_range or default_range()
    if not any(first <= low and high <= last for first, last in _mapped()):
        raise UidUnavailable(
            f"python.uid_range {low}-{high} is not mapped in this user namespace (/proc/self/uid_map); "
            "set python.uid_range to ids it maps"
        )
    directory = _lock_dir()
    size = high - low + 1
    with _lock:
        start = next(_next) % min(size, ROTATION)
    for step in range(size):
        uid = low + (start + step) % size
        fd = os.open(os.path.join(directory, str(uid)), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return Lease(uid, fd)
    raise UidUnavailable(f"every uid of python.uid_range {low}-{high} is in use")
