"""Which host paths a worker may see: the interpreter's own directories and the system libraries, nothing else.

Both levels use this list: bubblewrap binds exactly these paths into an otherwise empty root, Landlock allows
reading exactly these paths. Home directories, `/run`, `/var`, `/sys`, project checkouts and the engine's caches
are never in it (an image environment under `~/.cache` is bound alone, not its parent).
"""

from __future__ import annotations

import os
from functools import lru_cache

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
"""The system's programs and shared libraries (symlinks into /usr on a merged-/usr system)."""
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime")
"""What the dynamic linker and `time.localtime` read from /etc; no other file of /etc is visible."""
SYSTEM_ETC_DIRS = ("/etc/ld.so.conf.d",)


def _is_system(path: str) -> bool:
    return path == "/" or any(path == top or path.startswith(top + "/") for top in SYSTEM_DIRS)


def _venv_home(bindir: str) -> str | None:
    """The base interpreter's bin directory named by a venv's pyvenv.cfg (`home = ...`), if `bindir` is a venv's."""
    for directory in (bindir, os.path.dirname(bindir)):
        try:
            with open(os.path.join(directory, "pyvenv.cfg"), encoding="utf-8") as cfg:
                for line in cfg:
                    key, _, value = line.partition("=")
                    if key.strip() == "home":
                        return value.strip()
        except OSError:
            continue
    return None


@lru_cache(maxsize=64)
def interpreter_roots(interpreter: str) -> tuple[str, ...]:
    """The directories outside the system ones that `interpreter` needs: its venv (at the path it is called by,
    since Python finds pyvenv.cfg from there) and the base installation its binary really lives in."""
    exe = os.path.abspath(interpreter)
    bindir = os.path.dirname(exe)
    found: list[str] = []
    home = _venv_home(bindir)
    if home is not None:
        found.append(os.path.dirname(bindir))
        found.append(os.path.dirname(os.path.realpath(home)))
    found.append(os.path.dirname(os.path.dirname(os.path.realpath(exe))))
    roots: list[str] = []
    for root in found:
        if _is_system(root) or root in roots:
            continue
        roots.append(root)
    return tuple(r for r in roots if not any(r != other and r.startswith(other + "/") for other in roots))


def system_paths() -> tuple[list[str], list[str]]:
    """(directories, files) of the system that exist here; a symlinked top-level directory counts by its target."""
    dirs = [p for p in (*SYSTEM_DIRS, *SYSTEM_ETC_DIRS) if os.path.isdir(p)]
    files = [p for p in SYSTEM_FILES if os.path.isfile(p)]
    return dirs, files
