"""OpenRLHF's reward: `/get_reward` on `graders serve --reward-grader` and the file-mode `reward_func`.

Bodies are what OpenRLHF's remote reward client sends: `query` is the decoded prompt + response tokens with special
tokens kept, `prompts` the prompts, `labels` the dataset's label column.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from graders.integrations.openrlhf import make_reward, response_text
from servers.chat_server import RunningServer
from servers.graders_server import GradersServer

CHECK = {"type": "string_check", "name": "answer", "input": "{{ sample.output_text }}", "reference": "{{ item.label }}", "operation": "eq"}
MULTI = {
    "type": "multi", "name": "both",
    "graders": {
        "exact": CHECK,
        "mentions": {"type": "string_check", "name": "m", "input": "{{ sample.output_text }}", "reference": "{{ item.label }}", "operation": "ilike"},
    },
    "calculate_output": "0.5 * exact + 0.5 * mentions",
}
PROMPT = "<|im_start|>user\nCapital of France?<|im_end|>\n<|im_start|>assistant\n"


def query(response: str, prompt: str = PROMPT) -> str:
    return prompt + response + "<|im_end|><|endoftext|>"


@pytest.fixture(scope="module")
def reward_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("grader") / "grader.json"
    path.write_text(json.dumps(MULTI))
    with GradersServer("--reward-grader", str(path)) as srv:
        yield srv


def test_get_reward_grades_the_response_without_prompt_or_end_tokens(reward_server: GradersServer) -> None:
    body = {"query": [query("Paris"), query("paris"), query("Lyon")], "prompts": [PROMPT] * 3, "labels": ["Paris"] * 3}
    resp = reward_server.post("/get_reward", body)
    assert resp.status_code == 200
    out = resp.json()
    assert out["rewards"] == [1.0, 0.5, 0.0] and out["scores"] == out["rewards"]
    assert out["extra_logs"] == {"errored": [0.0, 0.0, 0.0], "sub_reward/exact": [1.0, 0.0, 0.0], "sub_reward/mentions": [1.0, 1.0, 0.0]}
    assert reward_server.health()["get_reward"] is True


def test_get_reward_single_query_like_openrlhf_sends(reward_server: GradersServer) -> None:
    """OpenRLHF's executor posts one query per request; every list has one entry."""
    resp = reward_server.post("/get_reward", {"query": [query("Paris")], "prompts": [PROMPT], "labels": ["Paris"]})
    assert resp.json()["rewards"] == [1.0]


def test_get_reward_marks_errored_samples(reward_server: GradersServer) -> None:
    """A label that is not there leaves the template unresolved: reward 0.0, but `errored` says so."""
    resp = reward_server.post("/get_reward", {"query": [query("Paris"), query("Paris")], "prompts": [PROMPT, PROMPT], "labels": ["Paris", {"other": 1}]})
    out = resp.json()
    assert out["rewards"] == [1.0, 0.0] and out["extra_logs"]["errored"] == [0.0, 1.0]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompts": []}, "query"),
        ({"query": "one"}, "query"),
        ({"query": ["a", 2]}, "query[1]"),
        ({"query": ["a"], "labels": ["x", "y"]}, "labels"),
        ({"query": ["a"], "prompts": "p"}, "prompts"),
    ],
)
def test_get_reward_bad_bodies_name_the_field(reward_server: GradersServer, body: dict[str, Any], param: str) -> None:
    resp = reward_server.post("/get_reward", body)
    assert resp.status_code == 400 and resp.json()["error"]["param"] == param


def test_get_reward_exists_only_with_the_flag() -> None:
    with GradersServer() as srv:
        assert srv.post("/get_reward", {"query": ["x"]}).status_code == 404


def test_get_reward_queues_instead_of_429(tmp_path: Path) -> None:
    """With every slot taken, /get_reward waits its turn (OpenRLHF ignores Retry-After); /run still gets 429."""
    judge = {"type": "score_model", "name": "slow", "model": "judge", "input": [{"role": "user", "content": "{{ sample.output_text }}"}]}
    path = tmp_path / "judge.json"
    path.write_text(json.dumps(judge))
    with RunningServer("--latency", "0.4") as chat, GradersServer(
        "--reward-grader", str(path), "--max-in-flight", "1", "-o", f"models.base_url={chat.base_url}"
    ) as srv:
        async def main() -> tuple[list[httpx.Response], httpx.Response]:
            async with httpx.AsyncClient(timeout=60) as http:
                rewards = [http.post(srv.root + "/get_reward", json={"query": [f"q{i}"]}) for i in range(5)]
                tasks = [asyncio.ensure_future(r) for r in rewards]
                await asyncio.sleep(0.2)
                run = await http.post(srv.root + "/v1/fine_tuning/alpha/graders/run", json={"grader": judge, "model_sample": "x"})
                return list(await asyncio.gather(*tasks)), run

        rewards, run = asyncio.run(main())
        assert [r.status_code for r in rewards] == [200] * 5
        assert all(r.json()["rewards"] == [1.0] for r in rewards)
        assert run.status_code == 429


def test_response_text_strips_prompt_and_end_tokens() -> None:
    assert response_text(query(" Paris \n"), PROMPT) == " Paris \n"  # the model's own whitespace is kept
    assert response_text("Paris<|im_end|>\n", None) == "Paris"
    assert response_text("Paris</s>", None) == "Paris"
    assert response_text("no prompt here", "missing prompt") == "no prompt here"


def test_make_reward_is_openrlhf_file_mode_reward_func(tmp_path: Path) -> None:
    """`reward_func(queries, prompts, labels, **kwargs)` from a grader file; an object label is merged into item."""
    path = tmp_path / "grader.json"
    path.write_text(json.dumps({**CHECK, "reference": "{{ item.answer }}"}))
    reward_func = make_reward(path, error_reward=-1.0)
    out = reward_func([query("Paris"), query("Rome"), query("Paris")], [PROMPT] * 3, [{"answer": "Paris"}, {"answer": "Paris"}, "Paris"], extra="ignored")
    assert out["rewards"] == [1.0, 0.0, -1.0]  # the third label is a string, so item.answer is missing: errored
    assert out["extra_logs"] == {"errored": [0.0, 0.0, 1.0]}
    reward_func.close()


def test_make_reward_rejects_unknown_mapping_fields() -> None:
    with pytest.raises(TypeError, match="label_column"):
        make_reward(CHECK, label_column="x")


def test_invalid_reward_grader_is_refused_at_start(tmp_path: Path) -> None:
    """A bad --reward-grader stops the server before it listens, naming the file and the field."""
    import subprocess
    import sys

    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**CHECK, "input": 3}))
    done = subprocess.run([sys.executable, "-m", "graders.cli", "serve", "--port", "0", "--reward-grader", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1 and not done.stdout
    assert f"--reward-grader {path}: Invalid type for 'input'" in done.stderr
