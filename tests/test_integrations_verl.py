"""verl: the exported reward file, called with the signatures verl's reward managers use (single sample from an
executor thread, awaited on a running loop, the batch manager's plural form), and, where verl is installed,
through verl's own loader and managers."""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import graders
from graders.cli import main
from graders.integrations.verl import make_async_reward, make_reward

MULTI = {
    "type": "multi",
    "name": "verl_check",
    "graders": {
        "exact": {"type": "string_check", "name": "exact", "input": "{{ sample.output_text }}", "reference": "{{ item.ground_truth }}", "operation": "eq"},
        "level": {
            "type": "python",
            "name": "level",
            "source": "def grade(sample, item):\n    return {'easy': 1.0, 'hard': 0.5}[item['difficulty']]\n",
        },
    },
    "calculate_output": "exact * level",
}
KEYS = {"score", "errored", "error", "sub_reward/exact", "sub_reward/level"}


def export(tmp_path: Path, *args: str) -> Path:
    grader = tmp_path / "grader.json"
    grader.write_text(json.dumps(MULTI))
    out = tmp_path / "reward.py"
    assert main(["export", "verl", str(grader), "--out", str(out), *args]) == 0
    return out


def load_like_verl(path: Path, name: str) -> Any:
    """What verl's `load_extern_object` does: a fresh module from the file each time, not put in sys.modules."""
    spec = importlib.util.spec_from_file_location(f"custom_module_{abs(hash(str(path.resolve())))}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def test_single_sample_calls_from_an_executor_thread_return_the_same_keys(tmp_path: Path) -> None:
    """The naive manager runs a sync compute_score with `loop.run_in_executor(None, …)`; every sample's dict has
    the same keys (verl stacks them by the first sample's keys), an errored one included."""
    compute_score = load_like_verl(export(tmp_path), "compute_score")

    async def manager() -> list[Any]:
        loop = asyncio.get_running_loop()
        calls = [
            dict(data_source="toy", solution_str="Paris", ground_truth="Paris", extra_info={"difficulty": "hard", "num_turns": None, "rollout_reward_scores": {}}),
            dict(data_source="toy", solution_str="Lyon", ground_truth="Paris", extra_info={"difficulty": "easy"}),
            dict(data_source="toy", solution_str="Paris", ground_truth="Paris", extra_info={"difficulty": "unknown"}),
        ]
        return list(await asyncio.gather(*(loop.run_in_executor(None, lambda c=c: compute_score(**c)) for c in calls)))

    first, second, broken = asyncio.run(manager())
    assert first == {"score": 0.5, "errored": 0.0, "error": "", "sub_reward/exact": 1.0, "sub_reward/level": 0.5}
    assert second["score"] == 0.0 and second["errored"] == 0.0
    assert broken["errored"] == 1.0 and broken["score"] == 0.0 and broken["error"] == "python_grader_runtime_error"
    assert set(first) == set(second) == set(broken) == KEYS


def test_async_compute_score_is_awaited_on_the_running_loop(tmp_path: Path) -> None:
    compute_score = make_async_reward(MULTI, error_reward=-1.0)
    assert inspect.iscoroutinefunction(compute_score)  # how verl's loader and managers tell it is async

    async def manager() -> list[Any]:
        return list(await asyncio.gather(
            compute_score(data_source="toy", solution_str="Paris", ground_truth="Paris", extra_info={"difficulty": "easy"}),
            compute_score(data_source="toy", solution_str="Paris", ground_truth="Paris", extra_info=None),
        ))

    ok, broken = asyncio.run(manager())
    assert ok["score"] == 1.0 and broken == {"score": -1.0, "errored": 1.0, "error": "python_grader_runtime_error", "sub_reward/exact": 1.0, "sub_reward/level": 0.0}


def test_batch_form_matches_run_many(tmp_path: Path) -> None:
    """The batch manager's call: numpy object arrays for data_sources and extra_infos, lists for the rest."""
    compute_score = load_like_verl(export(tmp_path, "--error-reward", "-0.5"), "compute_score")
    solutions = ["Paris", "Lyon", "Paris", "Rome"]
    truths = ["Paris", "Paris", "Paris", "Rome"]
    extras = np.array([{"difficulty": d} for d in ("easy", "hard", "nope", "hard")], dtype=object)
    out = compute_score(data_sources=np.array(["toy"] * 4, dtype=object), solution_strs=solutions, ground_truths=truths, extra_infos=extras)
    expected = graders.compile(MULTI).run_many(
        [{"model_sample": s, "item": {**e, "data_source": "toy", "ground_truth": t}} for s, t, e in zip(solutions, truths, extras)]
    )
    assert [o["score"] for o in out] == [-0.5 if r.failed else r.reward for r in expected]
    assert [o["errored"] for o in out] == [0.0, 0.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="ground_truths has 1 entries for 4"):
        compute_score(data_sources=None, solution_strs=solutions, ground_truths=truths[:1], extra_infos=None)


def test_mapping_names_a_field_verl_does_not_pass() -> None:
    with pytest.raises(ValueError, match="'reference' is not a field verl passes"):
        make_reward(MULTI, item={"ground_truth": "reference"})
    with pytest.raises(TypeError, match="'labels'"):
        make_reward(MULTI, labels="x")
    picked = make_reward(
        {"type": "string_check", "name": "c", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}", "operation": "eq"},
        item={"answer": "extra_info.meta.answer"},
    )
    assert picked(data_source="d", solution_str="x", ground_truth="", extra_info={"meta": {"answer": "x"}})["score"] == 1.0


# -- verl's own loader and managers (the `verl` package, where installed) ---------------------------------------------


def test_verl_loader_and_managers_call_the_exported_file(tmp_path: Path) -> None:
    """verl's `get_custom_reward_fn` loads the file; its naive manager (sync and async functions) scores single
    samples, and the legacy batch manager calls the plural form. verl runs in `rl_runs/verl_managers.py`, so torch
    never lives in the test process, which forks later."""
    if importlib.util.find_spec("verl") is None:
        pytest.skip("verl is not installed (pip install verl==0.9.1)")
    path = export(tmp_path)
    path.write_text(path.read_text() + "\nfrom graders.integrations.verl import make_async_reward\ncompute_score_async = make_async_reward(GRADER)\n")
    script = Path(__file__).parent / "rl_runs" / "verl_managers.py"
    done = subprocess.run([sys.executable, str(script), str(path), str(tmp_path)], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["loaded"]["score"] == 1.0
    for name in ("compute_score", "compute_score_async"):
        results = out[name]
        assert [r["reward_score"] for r in results] == [0.5, 0.0]
        assert results[1]["reward_extra_info"]["errored"] == 1.0 and set(results[0]["reward_extra_info"]) == KEYS
    assert out["batch"] == {"reward": [0.5, 0.0], "errored": [0.0, 1.0]}
