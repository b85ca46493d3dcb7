"""TRL: a grader as GRPOTrainer's reward, in a real two-step training run, and the reward function's own contract.

The trainer run needs the `rl` extra (torch, TRL); its model and tokenizer are built in `rl_runs/grpo_two_steps.py`,
randomly initialised from a fixed word list, so nothing is downloaded.
"""

from __future__ import annotations

import asyncio
import glob
import importlib.util
import json
import math
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import graders
from graders.integrations.trl import make_async_reward, make_reward

PYTHON = {
    "type": "python",
    "name": "length",
    "source": (
        "def grade(sample, item):\n"
        "    if item['answer'] == 'boom':\n"
        "        raise ValueError('no reward for this prompt')\n"
        "    return min(1.0, len(sample['output_text'].split()) / 8)\n"
    ),
}
MULTI = {
    "type": "multi",
    "name": "answer_and_length",
    "graders": {
        "length": PYTHON,
        "mentions": {"type": "string_check", "name": "mentions", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}", "operation": "ilike"},
    },
    "calculate_output": "0.5 * length + 0.5 * mentions",
}
PROMPTS = ["what is two plus one", "the cat sat on the", "the dog ran on the", "what is three plus one"]
ANSWERS = ["three", "mat", "boom", "four"]


class Recorder:
    """Stands where TRL passes `log_extra` and `log_metric`: keeps what a reward function logged."""

    def __init__(self) -> None:
        self.extra: dict[str, list[Any]] = {}
        self.metric: dict[str, float] = {}

    def kwargs(self, **columns: list[Any]) -> dict[str, Any]:
        return {"log_extra": self.extra.__setitem__, "log_metric": self.metric.__setitem__, "trainer_state": None, **columns}


def test_errored_sample_is_none_and_extras_are_logged() -> None:
    reward = make_reward(MULTI)
    log = Recorder()
    completions = ["three three", "a b c d e f g h i", "three"]
    out = reward(prompts=PROMPTS[:3], completions=completions, completion_ids=[[0]] * 3, **log.kwargs(answer=["three", "mat", "boom"]))
    expected = graders.compile(MULTI).run_many([{"model_sample": c, "item": {"prompt": p, "answer": a}} for c, p, a in zip(completions, PROMPTS, ["three", "mat", "boom"])])
    assert out == [expected[0].reward, expected[1].reward, None]
    assert reward.__name__ == "answer_and_length"
    assert log.extra["answer_and_length/errored"] == [False, False, True]
    assert log.extra["answer_and_length/error"] == [None, None, "python_grader_runtime_error"]
    assert log.extra["answer_and_length/sub_reward/mentions"] == [1.0, 0.0, 0.0]
    assert log.metric["rewards/answer_and_length/errored"] == pytest.approx(1 / 3)
    assert set(log.metric) == {"rewards/answer_and_length/errored", "rewards/answer_and_length/sub_reward/length/mean", "rewards/answer_and_length/sub_reward/mentions/mean"}
    reward.close()


def test_conversational_completion_is_the_assistant_sample_with_tool_calls() -> None:
    """A list of messages becomes a structured sample: the last assistant content, every tool call with its
    arguments as a JSON string (TRL parses them to a dict)."""
    grader = {"type": "python", "name": "tools", "source": "def grade(sample, item):\n    return [sample['output_text'], sample['output_tools']]\n"}
    seen = {
        "type": "string_check", "name": "tool", "operation": "eq", "reference": "{{ item.want }}",
        "input": "{{ sample.output_tools[1].function.name }}:{{ sample.output_tools[1].function.arguments }}:{{ sample.output_text }}",
    }
    completion = [
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "lookup", "arguments": {"q": "cat"}}}]},
        {"role": "tool", "name": "lookup", "content": "a cat"},
        {"role": "assistant", "content": [{"type": "text", "text": "It is "}, {"type": "text", "text": "a cat"}],
         "tool_calls": [{"id": "c2", "type": "function", "function": {"name": "answer", "arguments": {"x": 1}}}]},
    ]
    prompt = [{"role": "user", "content": "what is it"}]
    out = make_reward(seen)(prompts=[prompt], completions=[completion], want=['answer:{"x": 1}:It is a cat'])
    assert out == [1.0]
    assert make_reward(grader, log=False)(prompts=[prompt], completions=[[{"role": "user", "content": "no assistant"}]]) == [None]


def test_mapping_picks_sample_and_item_paths() -> None:
    check = {"type": "string_check", "name": "c", "input": "{{ sample.output_text }}", "reference": "{{ item.gold }}", "operation": "eq"}
    reward = make_reward(check, item={"gold": "meta.answer"}, log=False)
    out = reward(prompts=["p", "q"], completions=["x", "y"], meta=[{"answer": "x"}, {"other": 1}])
    assert out == [1.0, None]  # the second row has no meta.answer: that row alone is errored
    whole = make_reward(check, sample="draft", item="meta", log=False)
    assert whole(prompts=["p"], completions=["ignored"], draft=["x"], meta=[{"gold": "x"}]) == [1.0]


def test_mapping_errors_name_the_field() -> None:
    with pytest.raises(TypeError, match="'sampel'"):
        make_reward(MULTI, sampel="completion")
    with pytest.raises(ValueError, match="item must be a path"):
        make_reward(MULTI, item=3)
    with pytest.raises(ValueError, match="dotted path"):
        make_reward(MULTI, sample="meta..x")
    reward = make_reward(MULTI, item={"answer": "solution"})
    with pytest.raises(ValueError, match="'solution'.*passed: answer, completion, prompt"):
        reward(prompts=["p"], completions=["c"], answer=["a"])
    with pytest.raises(graders.GraderValidationError):
        make_reward({**MULTI, "calculate_output": "length +"})


def test_async_reward_runs_on_a_running_loop_in_another_thread() -> None:
    """TRL awaits async rewards on its own loop thread; the sync one works from any thread (no SIGALRM)."""
    reward, areward = make_reward(MULTI, log=False), make_async_reward(MULTI, log=False)
    assert asyncio.iscoroutinefunction(areward) and not asyncio.iscoroutinefunction(reward)
    results: dict[str, Any] = {}

    def thread() -> None:
        results["sync"] = reward(prompts=PROMPTS, completions=ANSWERS, answer=ANSWERS)
        results["async"] = asyncio.run(areward(prompts=PROMPTS, completions=ANSWERS, answer=ANSWERS))

    worker = threading.Thread(target=thread)
    worker.start()
    worker.join(120)
    assert results["sync"] == results["async"]
    assert results["sync"][2] is None and all(isinstance(r, float) for i, r in enumerate(results["sync"]) if i != 2)


# -- a real GRPOTrainer ----------------------------------------------------------------------------------------------


def test_grpo_trainer_logs_the_rewards_run_many_gives(tmp_path: Path) -> None:
    """Two GRPO steps with the multi (a python sub-grader) as sync and async reward: each logged completion's
    reward equals `run_many` on it, and the prompt whose python grade fails is None (NaN) with no advantage.

    The trainer runs in a process of its own (`rl_runs/grpo_two_steps.py`), so torch's threads never live in the
    test process, which forks later."""
    if importlib.util.find_spec("trl") is None:
        pytest.skip("TRL is not installed (pip install -e '.[rl]')")
    pd = pytest.importorskip("pandas")
    script = Path(__file__).parent / "rl_runs" / "grpo_two_steps.py"
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path), json.dumps(MULTI), json.dumps(PROMPTS), json.dumps(ANSWERS)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    files = sorted(glob.glob(str(tmp_path / "completions" / "*.parquet")))
    assert len(files) == 2  # one table per step
    table = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    answer_of = dict(zip(PROMPTS, ANSWERS))
    rows = [{"model_sample": c, "item": {"prompt": p, "answer": answer_of[p]}} for p, c in zip(table["prompt"], table["completion"])]
    expected = graders.compile(MULTI).run_many(rows)
    for column in ("answer_and_length", "answer_and_length_async"):
        for got, want in zip(table[column].tolist(), expected):
            if want.failed:
                assert math.isnan(got)
            else:
                assert got == pytest.approx(want.reward, abs=1e-6)  # TRL keeps rewards as float32
    boom = table["prompt"] == "the dog ran on the"
    assert boom.any() and (table.loc[boom, "advantage"] == 0.0).all()
    assert table.loc[boom, "answer_and_length/errored"].all() and not table.loc[~boom, "answer_and_length/errored"].any()
    logged = set(json.loads((tmp_path / "metrics.json").read_text()))
    assert {"rewards/answer_and_length/mean", "rewards/answer_and_length/errored", "rewards/answer_and_length/sub_reward/mentions/mean"} <= logged
