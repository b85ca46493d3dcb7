"""The `bubblewrap` level's command line: an empty root holding only what the interpreter needs.

The view: `/usr` and the top-level system links or directories, three files of /etc that the dynamic linker and
`localtime` read, the interpreter's own directories (read-only, at the paths it is called by, with 0755 parents so
a pyenv under a 0700 /root still works), a fresh `/proc` of the sandbox's PID namespace, a `/dev` with null, zero,
full, random and urandom only, and a private `/tmp` tmpfs of `python.disk_bytes` (`/dev/shm` points into it, so
shared memory counts against the same size); everything else of the root is read-only and empty. Every namespace
is new (no network at all), the session is new (no terminal to push input into), and bubblewrap dies with the
engine.

As root, bubblewrap runs privileged, without a user namespace: it keeps only CAP_SETUID, CAP_SETGID and
CAP_SETPCAP for `setpriv`, which empties the bounding set, drops to the worker's own uid and sets
`no_new_privs` before the interpreter starts. As any other user it creates a user namespace, which leaves no
capability at all, and forbids nested ones.
"""

from __future__ import annotations

import os

from .paths import SYSTEM_DIRS, system_paths

DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")


def _view(roots: tuple[str, ...], disk_bytes: int) -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in SYSTEM_DIRS[1:]:
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    dirs, files = system_paths()
    for path in [*files, *(d for d in dirs if d.startswith("/etc/"))]:
        args += ["--ro-bind", path, path]
    args += ["--proc", "/proc", "--size", "65536", "--tmpfs", "/dev"]
    for device in DEVICES:
        args += ["--dev-bind", device, device]
    args += ["--symlink", "/proc/self/fd", "/dev/fd", "--symlink", "/tmp", "/dev/shm"]
    for number, name in enumerate(("stdin", "stdout", "stderr")):
        args += ["--symlink", f"/proc/self/fd/{number}", f"/dev/{name}"]
    args += ["--remount-ro", "/dev", "--size", str(disk_bytes), "--perms", "1777", "--tmpfs", "/tmp"]
    made = {"/", "/tmp", "/usr", "/dev", "/proc", "/etc"}
    for root in roots:
        parts = root.strip("/").split("/")
        for depth in range(1, len(parts)):
            parent = "/" + "/".join(parts[:depth])
            if parent not in made:
                made.add(parent)
                args += ["--perms", "0755", "--dir", parent]
        args += ["--ro-bind", root, root]
    return [*args, "--remount-ro", "/"]


def command(
    interpreter: str, worker_args: list[str], roots: tuple[str, ...], disk_bytes: int, env: dict[str, str],
    seccomp_fd: int, uid: int | None, setpriv: str | None,
) -> list[str]:  # fmt: skip
    """The full argv: bubblewrap, then (as root) setpriv, then the interpreter with `worker_args`."""
    args = ["bwrap", "--die-with-parent", "--new-session", "--clearenv", "--chdir", "/tmp", "--hostname", "grader"]
    if uid is not None:
        args += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    else:
        args += ["--unshare-all", "--unshare-user", "--disable-userns"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    args += [*_view(roots, disk_bytes), "--seccomp", str(seccomp_fd)]
    if uid is not None:
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP", "--"]
        args += [setpriv or "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--bounding-set=-all",
                 "--inh-caps=-all", "--no-new-privs"]  # fmt: skip
    return [*args, "--", interpreter, *worker_args]
