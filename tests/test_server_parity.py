"""Live parity, end to end: record from a running endpoint (this project's own server), replay offline, and a
deliberately changed option shows up as a disagreement that names that option and the value that agrees."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from graders.remote import public_url
from servers.chat_server import RunningServer
from servers.graders_server import GradersServer

FUZZY = {"type": "text_similarity", "name": "fuzzy", "input": "{{ sample.output_text }}", "reference": "{{ item.reference }}", "evaluation_metric": "fuzzy_match", "pass_threshold": 0.5}
ROWS = [
    {"model_sample": "the cat sat on the mat", "item": {"reference": "the cat sat on the mat"}},
    {"model_sample": "the mat the cat sat on", "item": {"reference": "the cat sat on the mat"}},
    {"model_sample": "Paris is the capital", "item": {"reference": "paris"}},
    {"model_sample": "x", "item": []},
]


def graders_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "graders.cli", *args], capture_output=True, text=True, timeout=300, check=False, env={**os.environ, **(env or {})})


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    grader, data = tmp_path / "grader.json", tmp_path / "rows.jsonl"
    grader.write_text(json.dumps(FUZZY))
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS) + "not json\n")
    return grader, data, tmp_path / "cases.jsonl"


def test_record_then_replay_names_the_changed_option(files: tuple[Path, Path, Path]) -> None:
    grader, data, cases = files
    with GradersServer("--api-key", "secret-parity-key", "-o", "text_similarity.fuzzy_match.scorer=wratio_dp") as srv:
        done = graders_cli("parity", "record", str(grader), str(data), "--base-url", srv.base_url, "--out", str(cases),
                           "--api-key-env", "PARITY_KEY", env={"PARITY_KEY": "secret-parity-key"})
    assert done.returncode == 1, done.stderr
    assert "recorded 4 of 5 rows" in done.stderr
    text = cases.read_text()
    assert "secret-parity-key" not in text
    recorded = [json.loads(line) for line in text.splitlines()]
    assert [("response" in c, c.get("status"), "not_recorded" in c) for c in recorded] == [
        (True, None, False), (True, None, False), (True, None, False), (False, 400, False), (False, None, True)
    ]
    assert recorded[0]["source"] == srv.base_url and recorded[3]["error"]["error"]["param"] == "item"
    assert "text_similarity.fuzzy_match.scorer='wratio_dp'" in done.stdout.split("agrees with: ", 1)[1].split("\n")[0]

    # Offline, the server gone: the frozen suite replays, with the same verdict.
    replay = graders_cli("parity", "replay", str(cases), "--json")
    report = json.loads(replay.stdout)
    assert replay.returncode == 1
    by_index = {c["index"]: c for c in report["cases"]}
    assert by_index[0]["ok"] and by_index[3]["ok"]  # identical texts agree; the recorded 400 is a local 400 too
    assert not by_index[1]["ok"] and "text_similarity.fuzzy_match.scorer='wratio_dp'" in by_index[1]["agrees_with"]
    assert by_index[1]["local_reward"] != by_index[1]["recorded_reward"] and by_index[1]["difference"] > 0
    assert report["agreement"] < 1 and report["max_abs_difference"] == max(c["difference"] or 0 for c in report["cases"])
    assert "not recorded" in by_index[4]["differences"][0]

    legacy = graders_cli("parity", str(cases))
    assert legacy.returncode == 1 and "DIFF case 1 (fuzzy): local" in legacy.stdout and "|difference|" in legacy.stdout

    fixed = graders_cli("parity", "replay", str(cases), "-o", "text_similarity.fuzzy_match.scorer=wratio_dp", "--json")
    fixed_cases = json.loads(fixed.stdout)["cases"]
    assert all(c["ok"] for c in fixed_cases[:4]) and json.loads(fixed.stdout)["max_abs_difference"] == 0


def test_record_retries_429_honouring_retry_after(tmp_path: Path) -> None:
    """An endpoint that is full answers 429 + Retry-After; the recorder waits and retries until every row is in."""
    judge = {"type": "score_model", "name": "slow", "model": "judge", "input": [{"role": "user", "content": "{{ sample.output_text }}"}]}
    grader, data, cases = tmp_path / "g.json", tmp_path / "d.jsonl", tmp_path / "c.jsonl"
    grader.write_text(json.dumps(judge))
    data.write_text("".join(json.dumps({"model_sample": f"s{i}"}) + "\n" for i in range(4)))
    with RunningServer("--latency", "0.3") as chat, GradersServer(
        "--max-in-flight", "1", "--retry-after", "1", "-o", f"models.base_url={chat.base_url}"
    ) as srv:
        done = graders_cli("parity", "record", str(grader), str(data), "--base-url", srv.base_url, "--out", str(cases),
                           "--concurrency", "4", "--max-retries", "20", "--no-flip",
                           "-o", f"models.base_url={chat.base_url}")
        assert chat.stats()["requests"] >= 8  # each row graded by the server and again locally
    recorded = [json.loads(line) for line in cases.read_text().splitlines()]
    assert [c["response"]["reward"] for c in recorded] == [1.0] * 4, done.stderr
    assert done.returncode == 0, done.stdout


def test_public_url_drops_credentials() -> None:
    assert public_url("https://user:pw@api.example.com:8443/v1/?key=x#f") == "https://api.example.com:8443/v1"
