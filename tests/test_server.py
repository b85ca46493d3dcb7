"""`graders serve` through the official `openai` SDK, unchanged: `/run` and `/validate` of every grader type (§3).

The server and the scripted chat server (for the model graders) are real processes on 127.0.0.1; the SDK talks
to the server exactly as it talks to OpenAI, only `base_url` differs.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest

import graders
from graders.response import ERROR_KEYS
from servers.chat_server import RunningServer
from servers.graders_server import GradersServer

FAST = ["-o", "models.timeout_s=5", "-o", "models.max_retries=1", "-o", "models.backoff_s=0.01"]

STRING_CHECK = {"type": "string_check", "name": "exact", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}", "operation": "eq"}
TEXT_SIMILARITY = {"type": "text_similarity", "name": "close", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}", "evaluation_metric": "fuzzy_match", "pass_threshold": 0.5}
PYTHON = {"type": "python", "name": "py", "source": "def grade(sample, item):\n    return 1.0 if sample['output_text'] == item['answer'] else 0.25\n"}
SCORE_MODEL = {
    "type": "score_model", "name": "judge", "model": "judge",
    "input": [{"role": "user", "content": "Answer: {{ sample.output_text }} #script {{ item.script }}"}],
    "range": [0, 1],
}
LABEL_MODEL = {
    "type": "label_model", "name": "tone", "model": "labeller",
    "input": [{"role": "user", "content": "{{ sample.output_text }} #script {{ item.label_script }}"}],
    "labels": ["good", "bad"], "passing_labels": ["good"],
}
MULTI = {
    "type": "multi", "name": "combo",
    "graders": {"exact": STRING_CHECK, "py": PYTHON, "tone": LABEL_MODEL},
    "calculate_output": "(exact + py + tone) / 3",
}
ITEM = {"answer": "Paris", "script": {"result": 0.75, "usage": [10, 5, 0]}, "label_script": {"result": "good"}}
TOP_LEVEL = {"string_check": STRING_CHECK, "text_similarity": TEXT_SIMILARITY, "python": PYTHON, "score_model": SCORE_MODEL, "multi": MULTI}
EXPECTED = {"string_check": 1.0, "text_similarity": 1.0, "python": 1.0, "score_model": 0.75, "multi": 1.0}


@pytest.fixture(scope="module")
def chat() -> Any:
    with RunningServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def server(chat: RunningServer) -> Any:
    with GradersServer("--allow-weak-isolation", "-o", f"models.base_url={chat.base_url}", *FAST) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: GradersServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="any-key", max_retries=0)


def local_options(chat: RunningServer) -> graders.Options:
    return graders.Options().with_values({"models.base_url": chat.base_url, "models.timeout_s": 5, "models.max_retries": 1})


def flags(errors: dict[str, Any]) -> list[str]:
    return [k for k, v in errors.items() if v]


@pytest.mark.parametrize("kind", sorted(TOP_LEVEL))
def test_sdk_run_matches_the_local_engine_for_every_type(kind: str, client: openai.OpenAI, chat: RunningServer) -> None:
    """§3.1/§3.2: the SDK's `graders.run` parses the server's answer; reward, flags and usage equal a local run."""
    grader = TOP_LEVEL[kind]
    raw = client.fine_tuning.alpha.graders.with_raw_response.run(grader=grader, model_sample="Paris", item=ITEM)
    remote = raw.parse()
    wire = raw.http_response.json()  # the SDK's model reorders keys; the wire keeps the §3.2 order
    local = graders.run(grader, "Paris", ITEM, options=local_options(chat)).model_dump()
    assert remote.reward == EXPECTED[kind] == local["reward"] == wire["reward"]
    assert list(wire["metadata"]["errors"]) == list(ERROR_KEYS)
    assert flags(wire["metadata"]["errors"]) == flags(local["metadata"]["errors"]) == []
    assert wire["metadata"]["type"] == kind and wire["metadata"]["name"] == grader["name"]
    assert wire["sub_rewards"] == local["sub_rewards"]
    assert wire["model_grader_token_usage_per_model"] == local["model_grader_token_usage_per_model"]


@pytest.mark.parametrize("kind", sorted(TOP_LEVEL))
def test_sdk_validate_echoes_every_type(kind: str, client: openai.OpenAI) -> None:
    """§3.5: the echo keeps the keys in the order sent; a missing name is generated and appended."""
    grader = {k: v for k, v in TOP_LEVEL[kind].items() if k != "name"}
    raw = client.fine_tuning.alpha.graders.with_raw_response.validate(grader=grader)
    assert raw.parse().grader.type == kind  # type: ignore[union-attr]
    echo = raw.http_response.json()["grader"]
    assert list(echo) == [*grader, "name"] and echo["name"].startswith("grader-") and len(echo["name"]) == 19


def test_label_model_is_only_valid_inside_multi(client: openai.OpenAI) -> None:
    """§4: label_model at the top level of /run is a 400 naming `type`; inside multi it ran above."""
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.alpha.graders.validate(grader=LABEL_MODEL)  # type: ignore[arg-type]
    assert caught.value.status_code == 400 and caught.value.param == "type" and caught.value.code == "invalid_value"


def test_grading_failure_is_200_with_flags(client: openai.OpenAI) -> None:
    """§3.2: an unresolved template is a normal response with its flag and reward 0.0, never an HTTP error."""
    grader = {**STRING_CHECK, "reference": "{{ item.missing }}"}
    resp = client.fine_tuning.alpha.graders.run(grader=grader, model_sample="Paris", item={})
    assert resp.reward == 0.0 and resp.metadata.errors.invalid_variable_error is True


def test_legacy_reference_answer_is_mapped_into_item(server: GradersServer) -> None:
    """U2: the May-2025 body `reference_answer` without `item` becomes `item.reference_answer`."""
    grader = {**STRING_CHECK, "reference": "{{ item.reference_answer }}"}
    resp = server.run({"grader": grader, "model_sample": "Paris", "reference_answer": "Paris"})
    assert resp.status_code == 200 and resp.json()["reward"] == 1.0


def test_unnamed_grader_gets_a_new_name_on_every_request(server: GradersServer) -> None:
    """§3.4: the cached compiled grader does not freeze a generated name."""
    grader = {k: v for k, v in STRING_CHECK.items() if k != "name"}
    names = {server.run({"grader": grader, "model_sample": "x", "item": ITEM}).json()["metadata"]["name"] for _ in range(3)}
    assert len(names) == 3 and all(n.startswith("grader-") for n in names)


def test_repeated_config_is_compiled_once(server: GradersServer) -> None:
    """A config seen before comes from the cache: the count of cached graders grows by one for five requests."""
    grader = {**STRING_CHECK, "name": "cache-probe"}
    before = server.health()["cached_graders"]
    for _ in range(5):
        assert server.run({"grader": grader, "model_sample": "Paris", "item": ITEM}).json()["reward"] == 1.0
    assert server.health()["cached_graders"] == before + 1


def test_compiled_grader_cache_is_bounded() -> None:
    """The least recently used grader is evicted past --cache-size."""
    with GradersServer("--cache-size", "2") as srv:
        for i in range(4):
            assert srv.run({"grader": {**STRING_CHECK, "name": f"g{i}"}, "model_sample": "Paris", "item": ITEM}).status_code == 200
        assert srv.health()["cached_graders"] == 2


def test_request_scoring_options_apply_to_that_request_only(server: GradersServer) -> None:
    """A request's `options` may set a scoring option (U16 here); the next request gets the server's default."""
    grader = {**STRING_CHECK, "operation": "ilike", "reference": "{{ item.word }}"}
    body = {"grader": grader, "model_sample": "STRASSE", "item": {"word": "straße"}}
    assert server.run(body).json()["reward"] == 0.0
    assert server.run({**body, "options": {"string_check.ilike_fold": "casefold"}}).json()["reward"] == 1.0
    assert server.run(body).json()["reward"] == 0.0


def test_sdk_reaches_scoring_options_through_extra_body(client: openai.OpenAI) -> None:
    grader = {**TEXT_SIMILARITY, "reference": "{{ item.text }}"}
    item = {"text": "the cat sat on the mat"}
    default = client.fine_tuning.alpha.graders.run(grader=grader, model_sample="the mat the cat sat on", item=item)
    flipped = client.fine_tuning.alpha.graders.run(
        grader=grader, model_sample="the mat the cat sat on", item=item,
        extra_body={"options": {"text_similarity.fuzzy_match.scorer": "wratio_dp"}},
    )
    assert default.reward != flipped.reward


INVALID = [
    ({"model_sample": "x"}, 400, "grader", "missing_required_parameter"),
    ({"grader": "nope", "model_sample": "x"}, 400, "grader", "invalid_type"),
    ({"grader": {**STRING_CHECK, "input": 3}, "model_sample": "x"}, 400, "input", "invalid_type"),
    ({"grader": {**STRING_CHECK, "operation": "equals"}, "model_sample": "x"}, 400, "operation", "invalid_value"),
    ({"grader": {**MULTI, "graders": {"a": {**STRING_CHECK, "input": 3}}, "calculate_output": "a"}, "model_sample": "x"}, 400, "graders.a.input", "invalid_type"),
    ({"grader": {**MULTI, "calculate_output": "exact +"}, "model_sample": "x"}, 400, "calculate_output", "invalid_value"),
    ({"grader": {**SCORE_MODEL, "range": [1, 0]}, "model_sample": "x"}, 400, "range", "invalid_value"),
    ({"grader": {**PYTHON, "source": 3}, "model_sample": "x"}, 400, "source", "invalid_type"),
    ({"grader": STRING_CHECK}, 400, "model_sample", "missing_required_parameter"),
    ({"grader": STRING_CHECK, "model_sample": 7}, 400, "model_sample", "invalid_type"),
    ({"grader": STRING_CHECK, "model_sample": "x", "item": [1]}, 400, "item", "invalid_type"),
    ({"grader": STRING_CHECK, "model_sample": "x", "options": {"python.interpreter": "/bin/sh"}}, 400, "options.python.interpreter", "invalid_value"),
    ({"grader": STRING_CHECK, "model_sample": "x", "options": {"string_check.ilike_fold": "upper"}}, 400, "options.string_check.ilike_fold", "invalid_value"),
    ([1, 2], 400, "body", "invalid_type"),
]


@pytest.mark.parametrize(("body", "status", "param", "code"), INVALID, ids=[p for _, _, p, _ in INVALID])
def test_invalid_run_bodies_give_status_and_param(server: GradersServer, body: Any, status: int, param: str, code: str) -> None:
    """§12.1: each malformed request is a 400 whose `param` names the field, relative to the grader."""
    resp = server.run(body)
    error = resp.json()["error"]
    assert resp.status_code == status and error["param"] == param and error["code"] == code
    assert error["type"] == "invalid_request_error" and error["message"]


def test_a_source_that_does_not_compile_is_accepted_and_fails_each_grade_U47(server: GradersServer) -> None:
    """U47 `warn`, as the hosted service did: /validate echoes the grader and /run answers 200 with the flag."""
    grader = {**PYTHON, "source": "def grade(sample, item):\nreturn 1\n"}
    assert server.post("/v1/fine_tuning/alpha/graders/validate", {"grader": grader}).json() == {"grader": grader}
    resp = server.run({"grader": grader, "model_sample": "x"})
    errors = resp.json()["metadata"]["errors"]
    assert resp.status_code == 200 and resp.json()["reward"] == 0.0
    assert errors["python_grader_runtime_error"] and "IndentationError" in errors["python_grader_runtime_error_details"]


def test_sdk_raises_bad_request_with_param(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.alpha.graders.run(grader={**STRING_CHECK, "input": 3}, model_sample="x")  # type: ignore[arg-type]
    assert caught.value.param == "input"
    assert "Invalid type for 'input': expected a string, but got an integer instead." in str(caught.value)


def test_invalid_json_is_a_400(server: GradersServer) -> None:
    resp = httpx.post(server.base_url + "/fine_tuning/alpha/graders/run", content=b'{"grader": ', headers={"content-type": "application/json"})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_json"


def test_unknown_route_and_method_use_the_envelope(server: GradersServer) -> None:
    missing = httpx.post(server.base_url + "/nope", json={})
    wrong = httpx.get(server.base_url + "/fine_tuning/alpha/graders/run")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"


def test_health_answers(server: GradersServer) -> None:
    health = server.health()
    assert health["status"] == "ok" and health["get_reward"] is False


def test_200_concurrent_requests_mixing_grader_types(server: GradersServer) -> None:
    """Python, model, text-metric and string graders in flight together: every answer is a 200 with its reward."""
    kinds = sorted(TOP_LEVEL)

    async def main() -> list[tuple[str, httpx.Response]]:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=200)) as http:
            async def one(i: int) -> tuple[str, httpx.Response]:
                kind = kinds[i % len(kinds)]
                body = {"grader": TOP_LEVEL[kind], "model_sample": "Paris" if i % 2 else "Lyon", "item": ITEM}
                return kind, await http.post(server.base_url + "/fine_tuning/alpha/graders/run", json=body)
            return await asyncio.gather(*(one(i) for i in range(200)))

    results = asyncio.run(main())
    assert [r.status_code for _, r in results] == [200] * 200
    for i, (kind, resp) in enumerate(results):
        body = resp.json()
        assert not flags(body["metadata"]["errors"]), (kind, body)
        if i % 2:
            assert body["reward"] == EXPECTED[kind]
    assert json.dumps(server.health())
