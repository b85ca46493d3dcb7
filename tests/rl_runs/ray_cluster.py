"""A local 2-CPU Ray cluster owned by this process, for the tests: prints `{"address", "env"}` (what a client
needs to connect: the GCS address, and how ray.init set up authentication), then keeps the cluster until stdin
closes. Ray's native threads thus never live in the test process, which forks later.

    python ray_cluster.py
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray  # noqa: E402


def main() -> None:
    before = dict(os.environ)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    env = {k: v for k, v in os.environ.items() if k.startswith("RAY_") and before.get(k) != v}
    print(json.dumps({"address": ray.get_runtime_context().gcs_address, "env": env}), flush=True)
    sys.stdin.read()
    ray.shutdown()


if __name__ == "__main__":
    main()
