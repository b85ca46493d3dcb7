"""OpenRLHF file mode: the exported reward file loaded and called as OpenRLHF 0.11's agent executor does.

OpenRLHF cannot be installed here (its wheel builds a CUDA extension), so these follow the calling convention of
`openrlhf/utils/agent.py`: the file loaded with `spec_from_file_location("reward_func", path)` (not put in
`sys.modules`), and `reward_func(queries[i:i+1], prompts[i:i+1], labels[i:i+1])` called positionally, without
keyword arguments, through `asyncio.to_thread`, one sample per call, many at once.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
from pathlib import Path
from typing import Any

import graders
from graders.cli import main

PROMPT = "<|im_start|>user\nName a python grader's result and the capital of France.<|im_end|>\n<|im_start|>assistant\n"
MULTI = {
    "type": "multi",
    "name": "orl",
    "graders": {
        "exact": {"type": "string_check", "name": "exact", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}", "operation": "eq"},
        "short": {"type": "python", "name": "short", "source": "def grade(sample, item):\n    return 1.0 if len(sample['output_text']) < item['limit'] else 0.0\n"},
    },
    "calculate_output": "0.5 * exact + 0.5 * short",
}


def load_like_openrlhf(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("reward_func", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reward_func


def test_exported_reward_func_one_sample_per_thread_call(tmp_path: Path) -> None:
    grader = tmp_path / "grader.json"
    grader.write_text(json.dumps(MULTI))
    path = tmp_path / "reward.py"
    assert main(["export", "openrlhf", str(grader), "--out", str(path)]) == 0
    reward_func = load_like_openrlhf(path)
    responses = ["Paris", "Paris, of course, it has always been Paris", "Lyon"]
    queries = [PROMPT + r + "<|im_end|>" for r in responses] + [PROMPT + "Paris<|im_end|>"]
    labels: list[Any] = [{"answer": "Paris", "limit": 10}] * 3 + [{"answer": "Paris"}]  # the last has no limit: errored
    threads: set[str] = set()

    def call(i: int) -> Any:
        threads.add(threading.current_thread().name)
        return reward_func(queries[i : i + 1], [PROMPT], labels[i : i + 1])

    async def executor() -> list[Any]:
        return list(await asyncio.gather(*(asyncio.to_thread(call, i) for i in range(len(queries)))))

    results = asyncio.run(executor())
    assert threading.main_thread().name not in threads
    expected = graders.compile(MULTI).run_many([{"model_sample": r, "item": {**label, "prompt": PROMPT}} for r, label in zip(responses + ["Paris"], labels)])
    assert [out["rewards"] for out in results] == [[0.0 if r.failed else r.reward] for r in expected]  # 0.0: error_reward
    assert all(out["scores"] == out["rewards"] for out in results)
    assert [out["extra_logs"]["errored"] for out in results] == [[0.0], [0.0], [0.0], [1.0]]
    assert results[0]["extra_logs"] == {"errored": [0.0], "sub_reward/exact": [1.0], "sub_reward/short": [1.0]}


def test_error_reward_and_mapping_from_export_flags(tmp_path: Path) -> None:
    grader = tmp_path / "grader.json"
    grader.write_text(json.dumps(MULTI["graders"]["exact"]))
    path = tmp_path / "reward.py"
    assert main(["export", "openrlhf", str(grader), "--out", str(path), "--item", "answer=label.gold", "--error-reward", "-1"]) == 0
    reward_func = load_like_openrlhf(path)
    out = reward_func([PROMPT + "Paris<|im_end|>", PROMPT + "Paris<|im_end|>"], [PROMPT, PROMPT], [{"gold": "Paris"}, {"silver": "Paris"}])
    assert out["rewards"] == [1.0, -1.0] and out["extra_logs"]["errored"] == [0.0, 1.0]
