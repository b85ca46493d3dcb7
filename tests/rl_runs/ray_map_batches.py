"""`Grader` in `Dataset.map_batches` on the cluster at ADDRESS: 5,000 rows (from PARQUET, and from items), two
actors of half a CPU each, a python grader and a multi in the three batch formats. Prints, per case, the ids and
rewards in the order Ray returned them, and the sandbox workers a 0.5-CPU actor gets.

    python ray_map_batches.py ADDRESS PARQUET GRADERS_JSON
"""

from __future__ import annotations

import json
import sys

import ray

from graders.integrations.ray import Grader


@ray.remote(num_cpus=0.5)
class Probe:
    def workers(self, grader: dict) -> int | None:
        return Grader(grader).scorer.compiled.options.python.workers


def main() -> None:
    address, parquet, graders = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    ray.init(address=address, log_to_driver=False)
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    rows = ray.data.read_parquet(parquet).take_all()
    out = {}
    for name, fmt, source in (("python", "pandas", "parquet"), ("multi", "pyarrow", "items"), ("multi", "numpy", "items")):
        read = ray.data.read_parquet(parquet) if source == "parquet" else ray.data.from_items(rows, override_num_blocks=4)
        scored = read.map_batches(
            Grader, fn_constructor_kwargs={"grader": graders[name]}, batch_format=fmt, batch_size=500,
            compute=ray.data.ActorPoolStrategy(size=2), num_cpus=0.5,
        ).take_all()
        out[f"{name}/{fmt}"] = {key: [r.get(key) for r in scored] for key in ("id", "reward", "errored", "sub_reward/s")}
    out["workers"] = ray.get(Probe.remote().workers.remote(graders["python"]))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
