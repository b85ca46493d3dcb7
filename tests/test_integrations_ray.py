"""Ray: `Grader` in `Dataset.map_batches` on a local 2-CPU Ray, and `graders batch --ray` against the local batch.

Needs the `ray` extra. One local Ray instance serves the module (it takes seconds to start); `graders batch --ray`
runs as its own process, connecting to it with `--ray-address`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import graders
from graders.integrations.ray import Grader

ray = pytest.importorskip("ray")
pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")

PYTHON = {"type": "python", "name": "p", "source": "def grade(sample, item):\n    return 1.0 if sample['output_text'] == item['answer'] else 0.25\n"}
MULTI = {
    "type": "multi",
    "name": "m",
    "graders": {"p": PYTHON, "s": {"type": "string_check", "name": "s", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}", "operation": "eq"}},
    "calculate_output": "0.5 * p + 0.5 * s",
}
N = 5000


def rows(n: int = N) -> list[dict[str, Any]]:
    return [{"id": i, "model_sample": str(i % 3), "item": {"answer": "0"}} for i in range(n)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def test_map_batches_equals_run_many(cluster: str, tmp_path: Path) -> None:
    """5,000 rows, graded by two actors of half a CPU each (so a file's read tasks still get a CPU), with a python
    grader and a multi, in every batch format: rewards and sub-rewards equal `run_many`, in order."""
    path = tmp_path / "rows.parquet"
    pa.parquet.write_table(pa.Table.from_pylist(rows()), path)
    for grader, fmt, source in ((PYTHON, "pandas", "parquet"), (MULTI, "pyarrow", "items"), (MULTI, "numpy", "items")):
        expected = graders.compile(grader).run_many(rows())
        read = ray.data.read_parquet(str(path)) if source == "parquet" else ray.data.from_items(rows(), override_num_blocks=4)
        ds = read.map_batches(
            Grader, fn_constructor_kwargs={"grader": grader}, batch_format=fmt, batch_size=500,
            compute=ray.data.ActorPoolStrategy(size=2), num_cpus=0.5,
        )
        out = ds.take_all()
        assert [r["id"] for r in out] == list(range(N)), fmt
        assert [r["reward"] for r in out] == [r.reward for r in expected], fmt
        assert not any(r["errored"] for r in out)
        if grader is MULTI:
            assert [r["sub_reward/s"] for r in out] == [r.sub_rewards["s"] for r in expected]


def test_actor_pool_is_sized_to_the_actor_cpus(cluster: str) -> None:
    """Inside an actor of half a CPU the sandbox pool gets one worker, not one per core of the node."""

    @ray.remote(num_cpus=0.5)
    class Probe:
        def workers(self) -> int | None:
            return Grader(PYTHON).scorer.compiled.options.python.workers

    assert ray.get(Probe.remote().workers.remote()) == 1


def test_grader_call_outside_ray_keeps_the_batch_kind() -> None:
    """Called directly (as Ray does in each actor's thread), with a missing column mapped by path."""
    import numpy as np

    grader = Grader(MULTI, sample="out.text", item={"answer": "gold"}, prefix="g_", response=True)
    frame = pd.DataFrame({"out": [{"text": "0"}, {"text": "1"}, {"other": 1}], "gold": ["0", "0", "0"]})
    scored = grader(frame)
    assert list(scored["g_reward"]) == [1.0, 0.125, 0.0] and list(scored["g_errored"]) == [False, False, True]
    assert json.loads(scored["g_response"][0])["reward"] == 1.0 and "g_reward" not in frame
    table = grader(pa.Table.from_pandas(frame.iloc[:2]))
    assert table.column("g_sub_reward/p").to_pylist() == [1.0, 0.25]
    arrays = grader({"out": np.array([{"text": "0"}], dtype=object), "gold": np.array(["0"])})
    assert arrays["g_reward"].tolist() == [1.0]
    with pytest.raises(TypeError, match="'columns'"):
        Grader(MULTI, columns=["x"])


def write_jsonl(path: Path) -> None:
    lines = [json.dumps(r) for r in rows()]
    lines[10] = "not json"
    lines[20] = ""
    lines[30] = json.dumps({"model_sample": "0"})  # no item: the templates cannot resolve
    path.write_text("\n".join(lines) + "\n")


def batch(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}  # as it is now: ray.init set how to authenticate to the cluster
    return subprocess.run([sys.executable, "-m", "graders.cli", "batch", *args], capture_output=True, text=True, timeout=600, env=env, check=False)


def comparable(path: Path) -> list[Any]:
    out = [json.loads(line) for line in path.read_text().splitlines()]
    for line in out:
        line["metadata"].pop("execution_time")
    return out


def summary(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    for key in ("wall_time_s", "rows_per_s"):
        data.pop(key)
    return data


def test_batch_on_ray_writes_the_local_output(cluster: str, tmp_path: Path) -> None:
    """JSONL (a bad line, a blank line, a row without item) and Parquet: the same lines, summary and report
    figures as the local batch, all but execution_time; an interrupted output is resumed on Ray."""
    grader = tmp_path / "multi.json"
    grader.write_text(json.dumps(MULTI))
    data = tmp_path / "rows.jsonl"
    write_jsonl(data)
    parquet = tmp_path / "rows.parquet"
    pa.parquet.write_table(pa.Table.from_pylist(rows()), parquet)
    ray_flags = ("--ray-address", cluster, "--workers", "2", "--quiet")
    for source in (data, parquet):
        local, remote = tmp_path / f"local-{source.suffix[1:]}.jsonl", tmp_path / f"ray-{source.suffix[1:]}.jsonl"
        done = batch(str(grader), str(source), "--out", str(local), "--summary", f"{local}.sum", "--quiet")
        assert done.returncode == 0, done.stderr
        done = batch(str(grader), str(source), "--out", str(remote), "--summary", f"{remote}.sum", *ray_flags)
        assert done.returncode == 0, done.stderr[-3000:]
        assert comparable(remote) == comparable(local)
        assert summary(Path(f"{remote}.sum")) == summary(Path(f"{local}.sum"))
    text = (tmp_path / "ray-jsonl.jsonl").read_text().splitlines(keepends=True)
    assert len(text) == N - 1  # the blank line is not a row
    resumed = tmp_path / "resumed.jsonl"
    resumed.write_text("".join(text[:1234]) + text[1234][:17])  # killed mid-line
    (tmp_path / "resumed.jsonl.meta.json").write_text((tmp_path / "ray-jsonl.jsonl.meta.json").read_text())
    done = batch(str(grader), str(data), "--out", str(resumed), "--summary", f"{resumed}.sum", *ray_flags)
    assert done.returncode == 0, done.stderr[-3000:]
    assert comparable(resumed) == comparable(tmp_path / "local-jsonl.jsonl")
    assert json.loads(Path(f"{resumed}.sum").read_text())["resumed_rows"] == 1234


def test_batch_on_ray_refuses_more_actors_than_cpus(cluster: str, tmp_path: Path) -> None:
    grader = tmp_path / "p.json"
    grader.write_text(json.dumps(PYTHON))
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps(rows(1)[0]) + "\n")
    done = batch(str(grader), str(data), "--ray-address", cluster, "--workers", "5", "--quiet")
    assert done.returncode == 2 and "5 Ray actors of 1 CPUs need 5 CPUs; the cluster has 2" in done.stderr
