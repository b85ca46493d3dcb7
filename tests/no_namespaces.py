"""Run a command the way a container's default seccomp profile would: namespaces refused.

    python no_namespaces.py COMMAND [ARGS...]

`unshare`, `setns` and `clone` with any namespace flag fail with EPERM, `clone3` with ENOSYS (so libc falls back
to `clone`), as Docker's default profile does for a process without CAP_SYS_ADMIN. Everything else is allowed.
"""

from __future__ import annotations

import errno
import os
import sys

import pyseccomp as sc

NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)


def main() -> None:
    rules = sc.SyscallFilter(sc.ALLOW)
    for name in ("unshare", "setns"):
        rules.add_rule(sc.ERRNO(errno.EPERM), name)
    for flag in NAMESPACE_FLAGS:
        rules.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    rules.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    rules.load()
    os.execvp(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
