"""How many cores this process may use: its CPU affinity, capped by a cgroup CPU quota (v2 `cpu.max`, v1 CFS).

`os.cpu_count()` is the host's count; a container limited to two CPUs on a 64-core host must start two shards,
not 64.
"""

from __future__ import annotations

import math
import os
from pathlib import Path


def _affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _quota_v2(root: Path, cgroup_path: str) -> float | None:
    """The smallest `cpu.max` quota from this cgroup up to the root, in CPUs; None when unlimited."""
    best: float | None = None
    node = root / cgroup_path.lstrip("/")
    while True:
        try:
            quota, period = (node / "cpu.max").read_text().split()[:2]
        except (OSError, ValueError):
            quota = period = ""
        if quota and quota != "max" and period:
            try:
                cpus = int(quota) / int(period)
            except (ValueError, ZeroDivisionError):
                cpus = 0.0
            if cpus > 0:
                best = cpus if best is None else min(best, cpus)
        if node == root or root not in node.parents:
            return best
        node = node.parent


def _quota_v1(root: Path, cgroup_path: str) -> float | None:
    node = root / "cpu" / cgroup_path.lstrip("/")
    for directory in (node, root / "cpu"):
        try:
            quota = int((directory / "cpu.cfs_quota_us").read_text())
            period = int((directory / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        if quota > 0 and period > 0:
            return quota / period
    return None


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (e.g. 1.5), or None when there is none."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "" and (root / "cgroup.controllers").exists():
            return _quota_v2(root, path)
    for line in lines:
        _, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if "cpu" in controllers.split(","):
            return _quota_v1(root, path)
    return None


def available_cores(root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = Path("/proc/self/cgroup")) -> int:
    """Cores this process may use: affinity, capped by the cgroup quota rounded up; at least 1."""
    cores = _affinity()
    quota = cgroup_cpu_limit(root, proc_cgroup)
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)
