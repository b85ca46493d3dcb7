"""Ray: `Grader` in `Dataset.map_batches` on a local 2-CPU Ray, and `graders batch --ray` against the local batch.

Needs the `ray` extra. One local Ray cluster serves the module, owned by a helper process
(`rl_runs/ray_cluster.py`), and everything that connects to it runs in a process of its own: Ray's native threads
never live in the test process, which forks later.
"""

from __future__ import annotations

import importlib.util
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

if importlib.util.find_spec("ray") is None:
    pytest.skip("Ray is not installed (pip install -e '.[ray]')", allow_module_level=True)
pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

RUNS = Path(__file__).parent / "rl_runs"
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


class Cluster:
    def __init__(self, address: str, env: dict[str, str]) -> None:
        self.address = address
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **env}

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=600, env=self.env, check=False)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    helper = subprocess.Popen(
        [sys.executable, str(RUNS / "ray_cluster.py")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
    )
    try:
        assert helper.stdout is not None
        started = json.loads(helper.stdout.readline())
        yield Cluster(started["address"], started["env"])
    finally:
        helper.communicate(timeout=120)  # closing its stdin stops the cluster


def test_map_batches_equals_run_many(cluster: Cluster, tmp_path: Path) -> None:
    """5,000 rows, graded by two actors of half a CPU each (so a file's read tasks still get a CPU), with a python
    grader and a multi, in every batch format: rewards and sub-rewards equal `run_many`, in order; the sandbox pool
    of a 0.5-CPU actor has one worker, not one per core of the node."""
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist(rows()), path)
    done = cluster.run(str(RUNS / "ray_map_batches.py"), cluster.address, str(path), json.dumps({"python": PYTHON, "multi": MULTI}))
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    expected = {"python": graders.compile(PYTHON).run_many(rows()), "multi": graders.compile(MULTI).run_many(rows())}
    for case in ("python/pandas", "multi/pyarrow", "multi/numpy"):
        got, want = out[case], expected[case.split("/")[0]]
        assert got["id"] == list(range(N)), case
        assert got["reward"] == [r.reward for r in want], case
        assert not any(got["errored"]), case
        if case.startswith("multi"):
            assert got["sub_reward/s"] == [r.sub_rewards["s"] for r in want], case
    assert out["workers"] == 1


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


def batch(cluster: Cluster | None, *args: str) -> subprocess.CompletedProcess[str]:
    """`graders batch` in its own process; with a cluster, on it (`--ray-address`, 2 actors)."""
    ray_flags = ("--ray-address", cluster.address, "--workers", "2") if cluster else ()
    env = cluster.env if cluster else {**os.environ}
    return subprocess.run([sys.executable, "-m", "graders.cli", "batch", *args, *ray_flags, "--quiet"], capture_output=True, text=True,
                          timeout=600, env=env, check=False)


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


def test_batch_on_ray_writes_the_local_output(cluster: Cluster, tmp_path: Path) -> None:
    """JSONL (a bad line, a blank line, a row without item) and Parquet: the same lines, summary and report
    figures as the local batch, all but execution_time; an interrupted output is resumed on Ray."""
    grader = tmp_path / "multi.json"
    grader.write_text(json.dumps(MULTI))
    data = tmp_path / "rows.jsonl"
    write_jsonl(data)
    parquet = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist(rows()), parquet)
    for source in (data, parquet):
        local, remote = tmp_path / f"local-{source.suffix[1:]}.jsonl", tmp_path / f"ray-{source.suffix[1:]}.jsonl"
        done = batch(None, str(grader), str(source), "--out", str(local), "--summary", f"{local}.sum")
        assert done.returncode == 0, done.stderr
        done = batch(cluster, str(grader), str(source), "--out", str(remote), "--summary", f"{remote}.sum")
        assert done.returncode == 0, done.stderr[-3000:]
        assert comparable(remote) == comparable(local)
        assert summary(Path(f"{remote}.sum")) == summary(Path(f"{local}.sum"))
    text = (tmp_path / "ray-jsonl.jsonl").read_text().splitlines(keepends=True)
    assert len(text) == N - 1  # the blank line is not a row
    resumed = tmp_path / "resumed.jsonl"
    resumed.write_text("".join(text[:1234]) + text[1234][:17])  # killed mid-line
    (tmp_path / "resumed.jsonl.meta.json").write_text((tmp_path / "ray-jsonl.jsonl.meta.json").read_text())
    done = batch(cluster, str(grader), str(data), "--out", str(resumed), "--summary", f"{resumed}.sum")
    assert done.returncode == 0, done.stderr[-3000:]
    assert comparable(resumed) == comparable(tmp_path / "local-jsonl.jsonl")
    assert json.loads(Path(f"{resumed}.sum").read_text())["resumed_rows"] == 1234


def test_batch_on_ray_refuses_more_actors_than_cpus(cluster: Cluster, tmp_path: Path) -> None:
    grader = tmp_path / "p.json"
    grader.write_text(json.dumps(PYTHON))
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps(rows(1)[0]) + "\n")
    done = cluster.run("-m", "graders.cli", "batch", str(grader), str(data), "--ray-address", cluster.address, "--workers", "5", "--quiet")
    assert done.returncode == 2 and "5 Ray actors of 1 CPUs need 5 CPUs; the cluster has 2" in done.stderr


def test_batch_on_ray_names_an_address_it_cannot_use(tmp_path: Path) -> None:
    """An address Ray cannot use is a clear error (exit 2 naming it and Ray's reason), not a traceback."""
    grader = tmp_path / "p.json"
    grader.write_text(json.dumps(PYTHON))
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps(rows(1)[0]) + "\n")
    done = batch(None, str(grader), str(data), "--ray-address", "nonsense")
    assert done.returncode == 2, done.stderr[-3000:]
    assert "cannot start or reach the Ray cluster at nonsense: Invalid address format" in done.stderr
    assert "Traceback" not in done.stderr
